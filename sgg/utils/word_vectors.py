"""GloVe word vectors for class names (the label embeddings of the relation predictors, PROTOCOL.md 4.5).

``obj_edge_vectors(names, glove_dir, dim)`` returns one ``dim``-d row per name, read from ``glove.6B.{dim}d.pt`` (a
``torch.save``d cache) or ``glove.6B.{dim}d.txt`` in ``glove_dir``. Nothing is downloaded: without the file (the
offline quick start) every row comes from a normal distribution drawn with a fixed seed, with one warning per missing
file, so two runs build the same embeddings.

Names missing from the vocabulary:
* ``multiword="longest"`` (SGB's rule): a name of several words ("traffic light") takes the vector of its longest word
  known to GloVe (SGB tries only the single longest word; we fall back to the next longest when that one is unknown);
* ``multiword="average"``: the mean of the vectors of its known words;
* a name with no known word (``__background__``) keeps a random N(0, 1) row, as in SGB.

Random rows are drawn per name from a generator seeded with ``seed`` and the name's CRC-32, so a name gets the same
vector whatever list it is in (the Motif decoder's ``["start"] + classes`` table matches the class table).
"""
from __future__ import annotations

import logging
import os
import warnings
import zlib
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch

from .errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_SEED = 0
_WARNED_MISSING: Set[str] = set()
_CACHE: Dict[Tuple, torch.Tensor] = {}


def glove_paths(glove_dir: str, dim: int) -> Tuple[str, str]:
    """(torch cache, text file) where the vectors of ``dim`` dimensions are looked for."""
    stem = os.path.join(os.path.expanduser(str(glove_dir)), f"glove.6B.{int(dim)}d")
    return stem + ".pt", stem + ".txt"


def random_vector(name: str, dim: int, seed: int = DEFAULT_SEED) -> torch.Tensor:
    """The fallback N(0, 1) vector of ``name``: deterministic, independent of the other names."""
    generator = torch.Generator().manual_seed((int(seed) << 32) + zlib.crc32(name.encode("utf-8")))
    return torch.randn(int(dim), generator=generator)


def _tokens(name: str) -> List[str]:
    # words are split on whitespace only, as in SGB: "__background__" stays one (unknown) token
    return name.lower().split()


def _load_torch_cache(path: str, wanted: Set[str], dim: int) -> Dict[str, torch.Tensor]:
    """SGB's cache layout ``(word -> row dict, (V, dim) tensor, dim)``, or a dict with ``itos`` and ``vectors``."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and "vectors" in data:
        itos = data.get("itos") or data.get("words")
        index = {word: i for i, word in enumerate(itos)}
        vectors = data["vectors"]
    elif isinstance(data, (tuple, list)) and len(data) >= 2:
        index, vectors = data[0], data[1]
        if isinstance(index, (list, tuple)):
            index = {word: i for i, word in enumerate(index)}
    else:
        raise DataError(f"{path}: expected (word_to_index, vectors, dim) or {{'itos', 'vectors'}}")
    vectors = torch.as_tensor(vectors, dtype=torch.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise DataError(f"{path}: vectors have shape {tuple(vectors.shape)}, expected (V, {dim})")
    return {word: vectors[index[word]] for word in wanted if word in index}


def _load_text(path: str, wanted: Set[str], dim: int) -> Dict[str, torch.Tensor]:
    """Scans the text file once and parses only the lines of the wanted words (the full 6B file has 400k)."""
    found: Dict[str, torch.Tensor] = {}
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word not in wanted or word in found:
                continue
            values = rest.split()
            if len(values) != dim:
                raise DataError(f"{path}:{line_no}: {len(values)} values for {word!r}, expected {dim}")
            found[word] = torch.tensor([float(v) for v in values], dtype=torch.float32)
            if len(found) == len(wanted):
                break
    return found


def load_word_vectors(words: Iterable[str], glove_dir: str, dim: int) -> Optional[Dict[str, torch.Tensor]]:
    """The vectors of those ``words`` that GloVe knows, or None when neither file exists in ``glove_dir``."""
    wanted = set(words)
    pt_path, txt_path = glove_paths(glove_dir, dim)
    if os.path.isfile(pt_path):
        return _load_torch_cache(pt_path, wanted, dim)
    if os.path.isfile(txt_path):
        return _load_text(txt_path, wanted, dim)
    return None


def obj_edge_vectors(names: Sequence[str], glove_dir: str, dim: int = 200, multiword: str = "longest",
                     seed: int = DEFAULT_SEED) -> torch.Tensor:
    """(len(names), dim) float tensor of word vectors for class names (see the module docstring for the rules)."""
    if multiword not in ("longest", "average"):
        raise ValueError(f"multiword must be 'longest' or 'average', got {multiword!r}")
    names = [str(n) for n in names]
    key = (tuple(names), os.path.abspath(os.path.expanduser(str(glove_dir))), int(dim), multiword, int(seed))
    if key in _CACHE:
        return _CACHE[key].clone()

    vectors = torch.stack([random_vector(n, dim, seed) for n in names]) if names else torch.zeros(0, int(dim))
    tokens = [_tokens(n) for n in names]
    wanted = {n.lower() for n in names} | {t for ts in tokens for t in ts}
    known = load_word_vectors(wanted, glove_dir, dim)
    if known is None:
        pt_path, txt_path = glove_paths(glove_dir, dim)
        if txt_path not in _WARNED_MISSING:
            _WARNED_MISSING.add(txt_path)
            message = (f"word vectors {os.path.basename(txt_path)} (or .pt) not found in GLOVE_DIR={glove_dir!r}: "
                       f"using seeded random N(0, 1) vectors (seed {seed}) for the label embeddings")
            logger.warning(message)
            warnings.warn(message, stacklevel=2)
    else:
        missing = []
        for row, (name, name_tokens) in enumerate(zip(names, tokens)):
            if name.lower() in known:
                vectors[row] = known[name.lower()]
                continue
            hits = [t for t in name_tokens if t in known]
            if not hits:
                missing.append(name)
            elif multiword == "longest":
                vectors[row] = known[max(hits, key=len)]  # max keeps the first of equally long words
            else:
                vectors[row] = torch.stack([known[t] for t in hits]).mean(0)
        if missing:
            logger.info("no word vector for %s: seeded random rows", ", ".join(repr(m) for m in missing))
    _CACHE[key] = vectors
    return vectors.clone()
