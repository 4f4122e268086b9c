"""One comparison table from a list of experiments (``tools/run_benchmark.py``).

An experiment list is a small yaml::

    detector:                                   # one detector shared by every experiment
      config: configs/synthetic/detector_tiny_fpn.yaml
      weights: output/benchmark/detector/model_final.pth    # trained with ``config`` when missing
      threads: 2                                # optional: OMP_NUM_THREADS of its training (CPU training repeats
                                                # bit for bit only at one thread count)
    base_config: configs/synthetic/relation_base.yaml
    protocols: [predcls, sgcls, sgdet]
    seeds: [0]                                  # or per protocol: {predcls: [0, 1], sgcls: [0, 1], sgdet: [0]}
    opts: []                                    # KEY VALUE pairs for every run
    experiments:
      - name: Transformer
        opts: [MODEL.ROI_RELATION_HEAD.PREDICTOR, TransformerPredictor]
      - name: Transformer+BA-SGG                 # a multi-stage recipe: any command that leaves
        command: bash scripts/ba_sgg/run.sh TransformerPredictor {protocol} {detector} {output_dir} {seed}
                                                 # {output_dir}/inference/<test set>/results.json behind
        parent: Transformer                      # optional: the row it modifies (default: the name's +-prefix)

Each run lives in ``<root>/<name>/<protocol>/seed<k>`` and is skipped when its ``results.json`` exists, so an
interrupted benchmark continues where it stopped. ``collect`` reads every finished run back; the Markdown and JSON
tables give mean (and spread over seeds) of R@K, mR@K, F@K, head/body/tail mR@K and their no-graph-constraint variants,
plus a model table (parameters, detector AP@0.5, batch, device, training and inference time).

It drives the tools as subprocesses and reads their output files; it imports nothing of ``sgg.engine`` or
``sgg.modeling``, so it lives beside them (``sgg/benchmarking``) for ``tools/run_benchmark.py`` and
``benchmarks/bench_vg150_cost.py``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import yaml

from sgg.config.sgg_config import ConfigError
from sgg.utils.durations import format_hours
from sgg.utils.errors import RunError
from sgg.utils.plots import save_bar_chart

PROTOCOLS = ("predcls", "sgcls", "sgdet")
PROTOCOL_SWITCHES = {"predcls": ("True", "True"), "sgcls": ("True", "False"), "sgdet": ("False", "False")}
LIST_KEYS = ("name", "config", "opts", "command", "protocols", "seeds", "parent")
DETECTOR_KEYS = ("config", "weights", "threads")
TOP_KEYS = ("detector", "base_config", "protocols", "seeds", "opts", "experiments", "ks")
METRIC_PREFIXES = ("R", "mR", "F", "head_mR", "body_mR", "tail_mR", "ngR", "ngmR", "ngF")


@dataclass
class Experiment:
    name: str
    config: str
    opts: List[str]
    command: str
    protocols: List[str]
    seeds: Dict[str, List[int]]  # protocol -> its seeds
    parent: str = ""  # the row this one modifies (figures draw an arrow from it); see experiment_parents

    def seeds_for(self, protocol: str) -> List[int]:
        return self.seeds[protocol]


@dataclass
class BenchmarkSpec:
    path: str
    detector_config: str
    detector_weights: str
    experiments: List[Experiment] = field(default_factory=list)
    ks: List[int] = field(default_factory=lambda: [20, 50, 100])
    detector_threads: Optional[int] = None  # OMP_NUM_THREADS of the detector's training and test (repeatability)


def _check_protocols(protocols, where: str) -> List[str]:
    protocols = [str(p).lower() for p in protocols]
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise ConfigError(f"{where}: protocols must be a non-empty list of {', '.join(PROTOCOLS)}, got {protocols}")
    return protocols


def _check_seeds(seeds, defaults: Dict[str, List[int]], where: str) -> Dict[str, List[int]]:
    """``seeds`` as protocol -> seeds: a list applies to every protocol, a mapping overrides the protocols it names
    (the others keep ``defaults``)."""
    def as_list(value, key):
        if not isinstance(value, (list, tuple)) or not value or \
                not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: {key} must be a non-empty list of integers, got {value!r}")
        return [int(v) for v in value]

    if isinstance(seeds, dict):
        unknown = sorted(str(p) for p in seeds if str(p).lower() not in PROTOCOLS)
        if unknown:
            raise ConfigError(f"{where}: seeds names unknown protocols {unknown}; use {', '.join(PROTOCOLS)}")
        chosen = dict(defaults)
        chosen.update({str(p).lower(): as_list(v, f"seeds[{p}]") for p, v in seeds.items()})
        return chosen
    return {p: as_list(seeds, "seeds") for p in PROTOCOLS}


def _check_opts(opts, where: str) -> List[str]:
    if not isinstance(opts, (list, tuple)) or len(opts) % 2:
        raise ConfigError(f"{where}: opts must be a list of KEY VALUE pairs (an even number of items), got {opts!r}")
    return [str(o) for o in opts]


def load_benchmark_spec(path: str) -> BenchmarkSpec:
    """Read and check an experiment list; every error names the file and the entry."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"experiment list {path} does not exist")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with an 'experiments' list at the top level")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown}; allowed: {', '.join(TOP_KEYS)}")
    entries = raw.get("experiments")
    if not entries or not isinstance(entries, list):
        raise ConfigError(f"{path}: 'experiments' must be a non-empty list")
    detector = raw.get("detector") or {}
    if not isinstance(detector, dict) or set(detector) - set(DETECTOR_KEYS):
        raise ConfigError(f"{path}: detector must be a mapping with keys among {', '.join(DETECTOR_KEYS)}, "
                          f"got {detector!r}")
    threads = detector.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"{path}: detector.threads must be a positive integer (OMP_NUM_THREADS of the "
                          f"detector's training), got {threads!r}")
    protocols = _check_protocols(raw.get("protocols", PROTOCOLS), f"{path}: protocols")
    seeds = _check_seeds(raw.get("seeds", [0]), {p: [0] for p in PROTOCOLS}, f"{path}")
    common_opts = _check_opts(raw.get("opts", []), f"{path}: opts")
    base_config = str(raw.get("base_config", ""))
    spec = BenchmarkSpec(path, str(detector.get("config", "")), str(detector.get("weights", "")),
                         ks=[int(k) for k in raw.get("ks", [20, 50, 100])], detector_threads=threads)
    names = set()
    for index, entry in enumerate(entries):
        where = f"{path}: experiments[{index}]"
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ConfigError(f"{where}: each experiment needs a 'name'")
        unknown = sorted(set(entry) - set(LIST_KEYS))
        if unknown:
            raise ConfigError(f"{where} ({entry['name']}): unknown keys {unknown}; allowed: {', '.join(LIST_KEYS)}")
        name = str(entry["name"])
        if not re.fullmatch(r"[A-Za-z0-9_.+\-]+", name):
            raise ConfigError(f"{where}: name {name!r} must be letters, digits and _ . + - (it becomes a folder)")
        if name in names:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        config = str(entry.get("config", base_config))
        command = str(entry.get("command", ""))
        if not command and not config:
            raise ConfigError(f"{where} ({name}): give a 'config' (or a top-level base_config) or a 'command'")
        spec.experiments.append(Experiment(
            name=name, config=config, opts=common_opts + _check_opts(entry.get("opts", []), f"{where} ({name}): opts"),
            command=command,
            protocols=_check_protocols(entry.get("protocols", protocols), f"{where} ({name})"),
            seeds=_check_seeds(entry.get("seeds", seeds), seeds, f"{where} ({name})"),
            parent=str(entry.get("parent", ""))))
    for index, exp in enumerate(spec.experiments):
        if exp.parent and (exp.parent not in names or exp.parent == exp.name):
            raise ConfigError(f"{path}: experiments[{index}] ({exp.name}): parent {exp.parent!r} must name another "
                              "experiment of the list")
    return spec


def experiment_parents(spec: BenchmarkSpec) -> Dict[str, str]:
    """Each debiasing row's parent in the list, for figures that show what a method changes: its ``parent`` key,
    else the longest ``+``-prefix of its name that is a row (``PE-Net+Reweight`` -> ``PE-Net``, ``HCA+cdl+BA-SGG``
    -> ``HCA+cdl``). Rows without either are left out."""
    names = {e.name for e in spec.experiments}
    parents = {}
    for exp in spec.experiments:
        if exp.parent:
            parents[exp.name] = exp.parent
            continue
        parts = exp.name.split("+")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = "+".join(parts[:cut])
            if prefix in names:
                parents[exp.name] = prefix
                break
    return parents


def run_dir(root: str, name: str, protocol: str, seed: int) -> str:
    return os.path.join(root, name, protocol, f"seed{seed}")


def find_results(folder: str) -> Optional[str]:
    """The test results of a run: ``inference/<dataset>/results.json``, preferring a dataset named *test*."""
    paths = sorted(glob.glob(os.path.join(folder, "inference", "*", "results.json")))
    tests = [p for p in paths if "test" in os.path.basename(os.path.dirname(p)).lower()]
    return (tests or paths or [None])[-1]


def train_command(exp: Experiment, protocol: str, seed: int, detector: str, output_dir: str,
                  extra_opts: Sequence[str] = (), python: str = sys.executable) -> List[str]:
    """The command line of one run (``relation_train_net.py`` for a config experiment)."""
    if exp.command:
        filled = exp.command.format(protocol=protocol, seed=seed, detector=detector, output_dir=output_dir,
                                    python=python)
        return shlex.split(filled) + [str(o) for o in exp.opts] + list(extra_opts)
    box, label = PROTOCOL_SWITCHES[protocol]
    return [python, os.path.join("tools", "relation_train_net.py"), "--config-file", exp.config,
            "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", box, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", label,
            "MODEL.PRETRAINED_DETECTOR_CKPT", detector, "SEED", str(seed), "OUTPUT_DIR", output_dir,
            *exp.opts, *extra_opts]


_ATTEMPT_HEADER = re.compile(r"== \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def run_one(command: List[str], output_dir: str, env: Optional[Dict[str, str]] = None) -> float:
    """Run ``command`` with its output appended to ``output_dir/run.log`` (a run started again after a failure or
    an interruption keeps the earlier attempts' output above its own); returns the wall time. ``wall_time.json``
    records this attempt's seconds and how many attempts ``run.log`` holds: a run resumed after an interruption
    trained part of its iterations in attempts whose wall time nobody recorded (the training logs' "Total training
    time" of a resumed run sums its attempts, ``TrainingClock``). A failure raises with the log's path and its last
    lines."""
    os.makedirs(output_dir, exist_ok=True)
    log_path = os.path.join(output_dir, "run.log")
    start = time.time()
    with open(log_path, "a") as log:
        log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')}\n$ " + " ".join(shlex.quote(c) for c in command) + "\n")
        log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.time() - start
    if code != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-15:])
        raise RunError(f"run failed (exit {code}); log {log_path}:\n{tail}")
    with open(log_path) as f:  # this attempt and any earlier ones (interrupted, failed, or resumed)
        attempts = sum(1 for line in f if _ATTEMPT_HEADER.match(line))
    with open(os.path.join(output_dir, "wall_time.json"), "w") as f:
        record = {"seconds": seconds, "attempts": attempts, "machine": machine_description()}
        if os.environ.get("OMP_NUM_THREADS"):
            record["threads"] = os.environ["OMP_NUM_THREADS"]
        json.dump(record, f)
    return seconds


def machine_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU a run trained on: CPU training repeats bit for bit only on one type of CPU, so a seed re-run on
    another machine is another draw, and the record says which machine drew it."""
    fields: Dict[str, str] = {}
    if os.path.isfile(cpuinfo):
        with open(cpuinfo, errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if not line.strip():  # the first processor's block is enough
                    break
    name = fields.get("model name") or platform.processor() or platform.machine()
    family = fields.get("cpu family")
    return f"{name} (CPU family {family})" if family else name


_TRAIN_TIME = re.compile(r"Total training time: (\d+):(\d+):(\d+)")
_INFER_TIME = re.compile(r"Total inference pure compute time: ([0-9.]+) s / img")


def parse_times(folder: str) -> Dict[str, float]:
    """Training seconds and test inference seconds per image from the run's logs (the last occurrence in each)."""
    times: Dict[str, float] = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.txt"), recursive=True)) + \
            sorted(glob.glob(os.path.join(folder, "**", "run.log"), recursive=True)):
        with open(path, errors="replace") as f:
            text = f.read()
        train = _TRAIN_TIME.findall(text)
        if train:
            h, m, s = (int(v) for v in train[-1])
            times["train_seconds"] = max(times.get("train_seconds", 0.0), 3600.0 * h + 60.0 * m + s)
        infer = _INFER_TIME.findall(text)
        if infer:
            times["inference_s_per_image"] = float(infer[-1])
    return times


def _read_json(path: str) -> Dict:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def detector_fingerprint(weights: str) -> str:
    """SHA-256 of a detector checkpoint. Training a detector is bitwise repeatable only at one thread count and on
    one type of CPU, so rows are compared by the weights they were given, not the path: a retrained detector on a
    new machine has the same path and may differ."""
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DETECTOR_RECORD = "detector.json"  # in each run folder: the list's detector weights the run was given


def write_detector_record(output_dir: str, weights: str, sha256: str, ap50: Optional[float] = None) -> None:
    """``detector.json``: the weights' path, SHA-256 and test AP@0.5 (the row's own, so a table whose rows were
    given different detectors prints each row's)."""
    record = {"weights": weights, "sha256": sha256}
    if ap50 is not None:
        record["ap50"] = ap50
    _write_json(os.path.join(output_dir, DETECTOR_RECORD), record)


def run_detector_sha256(folder: str) -> Optional[str]:
    """The fingerprint of the detector a run was given, or None for runs recorded before fingerprints existed."""
    return _read_json(os.path.join(folder, DETECTOR_RECORD)).get("sha256")


def _last_stage_file(folder: str, name: str) -> Optional[str]:
    """``name`` of the last stage of a (multi-stage) run: sorted paths, the deepest last."""
    paths = sorted(glob.glob(os.path.join(folder, "**", name), recursive=True))
    return paths[-1] if paths else None


def collect_run(folder: str) -> Optional[Dict]:
    """Everything the tables need from one finished run, or None when it has no results yet."""
    results_path = find_results(folder)
    if results_path is None:
        return None
    results = _read_json(results_path)
    info_path = _last_stage_file(folder, "model_info.json")
    info = _read_json(info_path) if info_path else {}
    if "detector_ap50" not in info:  # kept in exported records, which have neither the config's weights nor metrics
        ap50 = _run_detector_ap50(folder)
        if ap50 is not None:
            info = dict(info, detector_ap50=ap50)
    config_path = os.path.join(os.path.dirname(info_path), "config.yaml") if info_path else None
    return {"results": results, "results_path": results_path, "model_info": info, **parse_times(folder),
            **_read_json(os.path.join(folder, "wall_time.json")), "detector_sha256": run_detector_sha256(folder),
            "config_path": config_path if config_path and os.path.isfile(config_path) else None}


def _run_detector_ap50(folder: str) -> Optional[float]:
    """AP@0.5 of the detector the run's relation stage started from (``MODEL.PRETRAINED_DETECTOR_CKPT`` of its
    config). When that is the list's detector named in ``detector.json``, the AP recorded there when the run started
    (a detector retrained later at the same path may differ); otherwise (IterativeSG: its own DETR) the checkpoint's
    test metrics, or None rather than the list's detector's AP."""
    record = _read_json(os.path.join(folder, DETECTOR_RECORD))
    path = os.path.join(folder, "config.yaml")
    weights = None
    if os.path.isfile(path):
        with open(path) as f:
            weights = ((yaml.safe_load(f) or {}).get("MODEL") or {}).get("PRETRAINED_DETECTOR_CKPT")
    if not weights:
        return record.get("ap50")
    if record.get("ap50") is not None and os.path.abspath(weights) == os.path.abspath(record.get("weights", "")):
        return record["ap50"]
    return detector_ap50(weights)


def mean_std(values: List[float]):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def summarise(spec: BenchmarkSpec, root: str, detector_ap50: Optional[float] = None) -> List[Dict]:
    """One row per (experiment, protocol) with finished runs: metric means and spreads over seeds."""
    rows = []
    for exp in spec.experiments:
        for protocol in exp.protocols:
            runs = [collect_run(run_dir(root, exp.name, protocol, seed)) for seed in exp.seeds_for(protocol)]
            runs = [r for r in runs if r is not None]
            if not runs:
                continue
            row = {"name": exp.name, "protocol": protocol, "seeds": len(runs), "metrics": {}, "spread": {}}
            for prefix in METRIC_PREFIXES:
                for k in spec.ks:
                    key = f"{prefix}@{k}"
                    mean, std = mean_std([r["results"].get(key) for r in runs])
                    if mean is not None:
                        row["metrics"][key], row["spread"][key] = mean, std
            info = runs[0]["model_info"]
            row["model"] = {
                "encoder": info.get("encoder"), "decoder": info.get("decoder"),
                "backbone_parameters": info.get("backbone_parameters"),
                "total_parameters": info.get("total_parameters"),
                "trainable_parameters": info.get("trainable_parameters"),
                "ims_per_batch": info.get("ims_per_batch"), "device": info.get("device"),
                "detector_ap50": info.get("detector_ap50", detector_ap50),
                "train_seconds": mean_std([r.get("train_seconds") for r in runs])[0],
                "inference_s_per_image": mean_std([r.get("inference_s_per_image") for r in runs])[0],
                "max_triplets_per_image": info.get("max_triplets_per_image"),
                "detector_sha256": sorted({r["detector_sha256"] or "unrecorded" for r in runs}),
            }
            row["per_predicate"] = runs[0]["results"].get("per_predicate")
            rows.append(row)
    return rows


CAPPED = "†"  # marks an @K cell whose K exceeds the triplets the model can rank per image


def triplet_cap_below(row: Dict, k: int) -> Optional[int]:
    """The most triplets per image a benchmark row's model ranks (``model.max_triplets_per_image``, e.g. IterativeSG's
    relation queries) when that is fewer than ``k``, else None: such a row's @K equals its value at the cap."""
    cap = (row.get("model") or {}).get("max_triplets_per_image")
    return int(cap) if cap is not None and int(cap) < k else None


def _capped(row: Dict, k: int) -> bool:
    return triplet_cap_below(row, k) is not None


def _cell(row: Dict, prefix: str, ks: Sequence[int]) -> str:
    """One ``a / b / c`` cell over ``ks``; graph-constrained @K beyond the model's triplet cap carry CAPPED (the
    no-graph-constraint metrics rank every predicate of each triplet, so they are not capped)."""
    parts = []
    for k in ks:
        key = f"{prefix}@{k}"
        if key not in row["metrics"]:
            parts.append("-")
            continue
        text = f"{100 * row['metrics'][key]:.1f}"
        if row["seeds"] > 1:
            text += f"±{100 * row['spread'][key]:.1f}"
        if not prefix.startswith("ng") and _capped(row, k):
            text += CAPPED
        parts.append(text)
    return " / ".join(parts)


def markdown_tables(rows: List[Dict], ks: Sequence[int]) -> str:
    """The results table (percent, as papers print them; ± = standard deviation over seeds) and the model table."""
    k_text = "/".join(str(k) for k in ks)
    lines = [f"| experiment | protocol | seeds | R@{k_text} | mR@{k_text} | F@{k_text} | head / body / tail mR@{ks[-1]} "
             f"| ngR@{k_text} | ngmR@{k_text} |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        hbt = " / ".join(f"{100 * row['metrics'][f'{g}_mR@{ks[-1]}']:.1f}"
                         if f"{g}_mR@{ks[-1]}" in row["metrics"] else "-" for g in ("head", "body", "tail"))
        hbt += CAPPED if _capped(row, ks[-1]) else ""
        lines.append(f"| {row['name']} | {row['protocol']} | {row['seeds']} | {_cell(row, 'R', ks)} | "
                     f"{_cell(row, 'mR', ks)} | {_cell(row, 'F', ks)} | {hbt} | {_cell(row, 'ngR', ks)} | "
                     f"{_cell(row, 'ngmR', ks)} |")
    caps = sorted({row["model"]["max_triplets_per_image"] for row in rows
                   if any(_capped(row, k) for k in ks)})
    if caps:
        lines += ["", f"{CAPPED} K above the most triplets the model ranks per image "
                  f"({', '.join(str(c) for c in caps)}; model_info.json's max_triplets_per_image): R@K, mR@K and F@K "
                  "there "
                  "equal their value at that number, so they are not comparable with the other rows' (the "
                  "no-graph-constraint ngR@K rank every predicate of each triplet and are not capped)."]
    lines += ["", detector_note(rows)]
    lines += ["", "| experiment | protocol | encoder | decoder | backbone params | total params | trainable params | "
              "detector AP@0.5 | batch | device | training time | inference s/image |", "|---" * 12 + "|"]

    def number(value, fmt):
        return "-" if value is None else format(value, fmt)

    for row in rows:
        m = row["model"]
        train = "-" if m["train_seconds"] is None else format_hours(m["train_seconds"]).zfill(8)
        lines.append(f"| {row['name']} | {row['protocol']} | {m.get('encoder') or '-'} | {m.get('decoder') or '-'} | "
                     f"{number(m['backbone_parameters'], ',')} | "
                     f"{number(m['total_parameters'], ',')} | {number(m['trainable_parameters'], ',')} | "
                     f"{number(m['detector_ap50'], '.3f')} | {number(m['ims_per_batch'], 'd')} | "
                     f"{m['device'] or '-'} | {train} | {number(m['inference_s_per_image'], '.4f')} |")
    return "\n".join(lines) + "\n"


def detector_note(rows: List[Dict]) -> str:
    """Which detector weights (SHA-256, first 12 digits) the rows were given; a loud note when they differ."""
    groups: Dict[str, List[str]] = {}
    for row in rows:
        for sha in row["model"].get("detector_sha256") or ["unrecorded"]:
            groups.setdefault(sha, []).append(f"{row['name']} {row['protocol']}")
    if len(groups) == 1:
        (sha,) = groups
        if sha == "unrecorded":
            return "Detector weights: not recorded for these runs (recorded before `detector.json` existed)."
        return f"Detector weights (SHA-256): `{sha[:12]}` for every row."
    parts = [f"`{sha[:12]}` ({', '.join(names)})" if sha != "unrecorded" else f"unrecorded ({', '.join(names)})"
             for sha, names in sorted(groups.items())]
    if len(groups) == 2 and "unrecorded" in groups:  # one set of weights, some rows from before detector.json
        return ("**Warning: not every row recorded its detector weights** (SHA-256), so those rows cannot be shown "
                "to share the others' detector: " + "; ".join(parts) + ".")
    return ("**Warning: the rows were given different detector weights** (SHA-256), so they are not one "
            "comparison: " + "; ".join(parts) + ".")


def write_tables(rows: List[Dict], ks: Sequence[int], out_dir: str, appendix: str = "") -> Dict[str, str]:
    """``benchmark.md`` (with ``appendix``, more Markdown, after the tables), ``benchmark.json`` and one
    per-predicate R@K chart per row (PNG, drawn with OpenCV)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"markdown": os.path.join(out_dir, "benchmark.md"), "json": os.path.join(out_dir, "benchmark.json")}
    with open(paths["markdown"], "w") as f:
        f.write(markdown_tables(rows, ks) + (f"\n{appendix}" if appendix else ""))
    with open(paths["json"], "w") as f:
        json.dump([{k: v for k, v in row.items() if k != "per_predicate"} for row in rows], f, indent=1)
    plot_dir = os.path.join(out_dir, "per_predicate")
    for row in rows:
        per_predicate = row.get("per_predicate") or {}
        names, recalls = per_predicate.get("names"), per_predicate.get(f"R@{ks[-1]}")
        if names and recalls:
            save_bar_chart(os.path.join(plot_dir, f"{row['name']}_{row['protocol']}_R@{ks[-1]}.png"), names,
                           [0.0 if v is None else float(v) for v in recalls],
                           title=f"{row['name']} {row['protocol']}: per-predicate R@{ks[-1]}")
    return paths


def export_records(spec: BenchmarkSpec, root: str, dest: str) -> int:
    """Copy what the tables need from every finished run under ``root`` into ``dest``, without checkpoints: the
    results, the last stage's ``model_info.json`` and resolved ``config.yaml``, ``wall_time.json``, the run's
    ``detector.json`` (the fingerprint of the detector it was given) and the two log lines ``parse_times`` reads
    (``times.txt``), plus the detector's ``detection_metrics.json``. ``--collect-only --output-root dest`` rebuilds
    the same tables from them, and copying them back into ``root`` lets an interrupted benchmark resume (their
    runs are skipped). Returns the number of runs exported."""
    exported = 0
    for exp in spec.experiments:
        for protocol in exp.protocols:
            for seed in exp.seeds_for(protocol):
                folder = run_dir(root, exp.name, protocol, seed)
                run = collect_run(folder)
                if run is None:
                    continue
                target = run_dir(dest, exp.name, protocol, seed)
                relative = os.path.relpath(run["results_path"], folder)
                _write_json(os.path.join(target, relative), run["results"])
                if run["model_info"]:
                    _write_json(os.path.join(target, "model_info.json"), run["model_info"])
                if run["detector_sha256"]:
                    shutil.copyfile(os.path.join(folder, DETECTOR_RECORD), os.path.join(target, DETECTOR_RECORD))
                if run["config_path"]:  # the resolved config of the run (its last stage): what was trained
                    shutil.copyfile(run["config_path"], os.path.join(target, "config.yaml"))
                if "seconds" in run:
                    _write_json(os.path.join(target, "wall_time.json"),
                                {key: run[key] for key in ("seconds", "attempts", "machine", "threads") if key in run})
                with open(os.path.join(target, "times.txt"), "w") as f:
                    if "train_seconds" in run:
                        f.write(f"Total training time: {format_hours(run['train_seconds'])}\n")
                    if "inference_s_per_image" in run:
                        f.write(f"Total inference pure compute time: {run['inference_s_per_image']!r} s / img\n")
                exported += 1
    if spec.detector_weights:
        for path in glob.glob(os.path.join(os.path.dirname(spec.detector_weights), "inference", "*",
                                           "detection_metrics.json")):
            dataset = os.path.basename(os.path.dirname(path))
            _write_json(os.path.join(dest, "detector", "inference", dataset, "detection_metrics.json"),
                        _read_json(path))
    return exported


def _write_json(path: str, value) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


def table_detector_ap50(spec: BenchmarkSpec, root: str, collect_only: bool) -> Optional[float]:
    """The detector AP@0.5 the tables print. Runs just trained use the list's detector; tables rebuilt with
    ``--collect-only`` prefer the metrics kept under ``<root>/detector`` (exported records carry their own
    detector's), so that rebuilding old records on a machine with a newer detector does not print the newer one."""
    listed = detector_ap50(spec.detector_weights) if spec.detector_weights else None
    own = detector_ap50(os.path.join(root, "detector", "model_final.pth"))
    first, second = (own, listed) if collect_only else (listed, own)
    return first if first is not None else second


def detector_ap50(weights: str) -> Optional[float]:
    """AP@0.5 of the detector from ``<weights folder>/inference/*test*/detection_metrics.json`` when present."""
    folder = os.path.dirname(weights)
    paths = sorted(glob.glob(os.path.join(folder, "inference", "*", "detection_metrics.json")))
    tests = [p for p in paths if "test" in p.lower()] or paths
    if not tests:
        return None
    metrics = _read_json(tests[-1])
    return metrics.get("AP50", metrics.get("mAP"))
