#!/usr/bin/env python
"""SPL's conceptual prototypes (METHODS.md 4.5): one text embedding per predicate class, background first.

    python tools/compute_concept_prototypes.py --source SOURCE --output FILE [options]

Sources:
  file      a file in the reference format (--input): a (R, D) tensor (.pt, or a dict with "prototypes") or .npy,
            e.g. SPL's CLIP (D = 2304) or LLaMA (D = 4096) files; checked and rewritten in our format.
  sentence  a sentence-transformers model in a local folder (--sentence-model, e.g. all-MiniLM-L6-v2, D = 384;
            needs ``pip install sentence-transformers``) embeds each predicate's description. Nothing downloads.
  glove     averaged GloVe vectors of the words of each description (--glove-dir, --dim); without the GloVe file
            the framework's seeded random vectors are used, with a warning.

Descriptions (--descriptions, for sentence and glove; optional for file): a text file with one line per predicate
class in class order, ``name: description``, the first line ``__background__: ...``; '#' starts a comment line.
Editable: configs/spl/predicate_descriptions_vg150.txt, configs/spl/predicate_descriptions_synthetic.txt.
With --dataset-dict VG-SGG-dicts-with-attri.json the names are checked against the dataset's predicates.
The output is ``{"prototypes": (R, D), "predicates": names, "source": ...}``: set CON_PRO_TYPE FILE,
CON_PRO_PATH to it and CON_PRO_DIM / CON_VAE_INPUT_DIM to D.
"""
import argparse
import json
import logging
import os
import re
from typing import List, Optional, Sequence, Tuple


import numpy as np
import torch

from sgg.config.sgg_config import ConfigError
from sgg.modeling.roi_heads.relation_head.layers.spl import read_prototype_tensor
from sgg.utils.errors import DataError

logger = logging.getLogger("sgg.tools.compute_concept_prototypes")

SENTENCE_MODULE = "sentence_transformers"
SOURCES = ("file", "sentence", "glove")


def read_descriptions(path: str) -> Tuple[List[str], List[str]]:
    """(names, descriptions) from ``name: description`` lines."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--descriptions: {path} does not exist")
    names, descriptions = [], []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, description = line.partition(":")
            if not sep or not name.strip() or not description.strip():
                raise DataError(f"{path}:{line_no}: expected 'predicate: description', got {line!r}")
            names.append(name.strip())
            descriptions.append(description.strip())
    if not names or names[0] != "__background__":
        raise DataError(f"{path}: the first entry must be '__background__: <description>' (class 0)")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: a predicate is described twice")
    return names, descriptions


def check_against_dataset(names: Sequence[str], dict_file: str) -> None:
    with open(dict_file) as handle:
        idx_to_predicate = json.load(handle)["idx_to_predicate"]
    expected = ["__background__"] + [idx_to_predicate[str(i)] for i in range(1, len(idx_to_predicate) + 1)]
    if list(names) != expected:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(names, expected)) if a != b][:3]
        raise DataError(f"the descriptions name {len(names)} predicates but {dict_file} has {len(expected)}; first "
                        f"differences (index, described, dataset): {diff}")


def load_reference_file(path: str) -> torch.Tensor:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input: {path} does not exist")
    return read_prototype_tensor(path, "--input")


def sentence_embeddings(descriptions: Sequence[str], model_dir: str, device: str = "cpu") -> torch.Tensor:
    if not model_dir or not os.path.isdir(model_dir):
        raise FileNotFoundError(f"--sentence-model: {model_dir!r} is not a folder; --source sentence needs a "
                                f"sentence-transformers model saved locally (e.g. all-MiniLM-L6-v2)")
    try:
        import importlib

        package = importlib.import_module(SENTENCE_MODULE)
    except ImportError:
        raise ImportError("--source sentence needs the optional package sentence-transformers: "
                          "pip install sentence-transformers; or use --source glove") from None
    model = package.SentenceTransformer(model_dir, device=device)
    return torch.as_tensor(np.asarray(model.encode(list(descriptions)), dtype=np.float32))


def glove_embeddings(descriptions: Sequence[str], glove_dir: str, dim: int) -> torch.Tensor:
    from sgg.utils.word_vectors import obj_edge_vectors

    words = [" ".join(re.findall(r"[a-z]+", d.lower())) for d in descriptions]
    return obj_edge_vectors(words, glove_dir, dim, multiword="average")


def compute(source: str, descriptions_file: Optional[str], input_file: Optional[str], glove_dir: str, dim: int,
            dataset_dict: Optional[str] = None, device: str = "cpu", sentence_model: str = ""):
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    names = descriptions = None
    if descriptions_file:
        names, descriptions = read_descriptions(descriptions_file)
        if dataset_dict:
            check_against_dataset(names, dataset_dict)
    elif source != "file":
        raise ConfigError(f"--source {source} needs --descriptions (one 'predicate: description' line per class)")
    if source == "file":
        if not input_file:
            raise ConfigError("--source file needs --input (a reference CLIP / LLaMA prototype file)")
        prototypes = load_reference_file(input_file)
        if names is not None and prototypes.shape[0] != len(names):
            raise DataError(f"--input: {input_file} has {prototypes.shape[0]} rows but {descriptions_file} "
                            f"describes {len(names)} predicate classes")
    elif source == "sentence":
        prototypes = sentence_embeddings(descriptions, sentence_model, device)
    else:
        prototypes = glove_embeddings(descriptions, glove_dir, dim)
    if not torch.isfinite(prototypes).all():
        raise DataError("the prototypes contain non-finite values")
    return prototypes, names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Predicate text embeddings for SPL's conceptual prototypes")
    parser.add_argument("--source", required=True, choices=SOURCES)
    parser.add_argument("--output", required=True, help="prototype file to write (.pt)")
    parser.add_argument("--descriptions", default="", help="'predicate: description' lines, background first")
    parser.add_argument("--input", default="", help="--source file: the reference prototype file")
    parser.add_argument("--glove-dir", default="datasets/glove", help="--source glove: folder of glove.6B.<dim>d")
    parser.add_argument("--dim", type=int, default=300, help="--source glove: word vector size")
    parser.add_argument("--dataset-dict", default="", help="VG-SGG-dicts json to check the predicate names against")
    parser.add_argument("--sentence-model", default="", help="--source sentence: local sentence-transformers folder")
    parser.add_argument("--device", default="cpu", help="--source sentence: device of the text model")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        prototypes, names = compute(args.source, args.descriptions, args.input, args.glove_dir, args.dim,
                                    args.dataset_dict or None, args.device, args.sentence_model)
    except (ImportError, ValueError, FileNotFoundError) as err:
        logger.error("%s", err)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save({"prototypes": prototypes, "predicates": names, "source": args.source}, args.output)
    logger.info("concept prototypes %s (%s) written to %s: set CON_PRO_TYPE FILE, CON_PRO_PATH to it and "
                "CON_PRO_DIM / CON_VAE_INPUT_DIM to %d", tuple(prototypes.shape), args.source, args.output,
                prototypes.shape[1])
    return 0


if __name__ == "__main__":
    from sgg.utils.cli import run_tool  # SggError / missing file: one line, exit 2; --debug: traceback

    run_tool(main)
