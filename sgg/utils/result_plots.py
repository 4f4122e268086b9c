"""Figures of relation results, the three kinds of the CCE paper (matplotlib, the optional ``plots`` extra):

* ``plot_predicate_distribution``: how often each predicate is annotated, sorted, optionally on a log scale;
* ``plot_per_predicate_recall``: per-predicate R@K of one run, predicates in frequency order;
* ``plot_recall_change``: per-predicate R@K of run B minus run A (gains up, losses down);

and the training curves of runs (``plot_training_curves``: one panel per logged value, e.g. ``loss``, ``val/AP50``),
and the recall / mean-recall trade-off of a benchmark (``plot_recall_tradeoff``: R@K against mR@K, one point per
experiment, an arrow from each debiasing row's parent).

Inputs are the evaluator's ``results.json`` (its ``per_predicate`` block: ``names``, ``gt_count``, ``R@K``) and the
trainer's ``metrics.json`` (one JSON object per log line, with its ``iteration``).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from sgg.config.sgg_config import ConfigError

from .errors import DataError


class MissingMetricError(DataError):
    """A metrics.json without the asked-for key (a curve panel skips such a run)."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the result plots need matplotlib: pip install matplotlib (or pip install -e .[plots])") \
            from None
    return plt


def _read_json(path: str, what: str, producer: str):
    """The JSON content of ``path``; a missing file names ``what`` and who writes it (``producer``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist ({producer})")
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise DataError(f"{path} is not valid JSON: {err}") from None


def load_per_predicate(path: str) -> Dict:
    """The ``per_predicate`` block of an evaluator ``results.json``, checked."""
    results = _read_json(path, "results file",
                         "relation_test_net.py writes OUTPUT_DIR/inference/<dataset>/results.json")
    block = results.get("per_predicate") if isinstance(results, dict) else None
    if not isinstance(block, dict) or "names" not in block or "gt_count" not in block:
        raise DataError(f"{path} has no 'per_predicate' block with 'names' and 'gt_count' (is it an evaluator "
                        f"results.json?)")
    return block


def _recall(block: Dict, k: int, path: str) -> np.ndarray:
    key = f"R@{k}"
    if key not in block:
        available = sorted(x for x in block if x.startswith("R@"))
        raise DataError(f"{path}: no per-predicate {key}; available: {', '.join(available)}")
    return np.asarray(block[key], dtype=np.float64)


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _bars(names: Sequence[str], values: Sequence[float], ylabel: str, title: str, colors=None, log: bool = False):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(names) + 1.5), 4.2))
    ax.bar(np.arange(len(names)), values, color=colors if colors is not None else "#3b6ea8")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def frequency_order(counts: Sequence[float]) -> np.ndarray:
    """Predicate indices by decreasing count (ties in index order)."""
    return np.argsort(-np.asarray(counts, dtype=np.float64), kind="stable")


def plot_predicate_distribution(names: Sequence[str], counts: Sequence[float], path: str, log: bool = False,
                                title: str = "predicate distribution") -> str:
    if len(names) != len(counts):
        raise ValueError(f"{len(names)} predicate names for {len(counts)} counts")
    order = frequency_order(counts)
    fig, _ = _bars([names[i] for i in order], np.asarray(counts, dtype=np.float64)[order], "instances", title,
                   log=log)
    return _save(fig, path)


def plot_per_predicate_recall(results_path: str, path: str, k: int = 100, title: Optional[str] = None) -> str:
    block = load_per_predicate(results_path)
    recall = _recall(block, k, results_path)
    order = frequency_order(block["gt_count"])
    names = [block["names"][i] for i in order]
    fig, ax = _bars(names, recall[order], f"R@{k}", title or f"per-predicate R@{k} (mean {np.nanmean(recall):.3f})")
    ax.set_ylim(0, 1)
    return _save(fig, path)


def plot_recall_change(results_a: str, results_b: str, path: str, k: int = 100, label_a: str = "A",
                       label_b: str = "B") -> str:
    """Per-predicate R@K of B minus A; both runs must cover the same predicates."""
    block_a, block_b = load_per_predicate(results_a), load_per_predicate(results_b)
    if list(block_a["names"]) != list(block_b["names"]):
        raise DataError(f"{results_a} and {results_b} evaluate different predicate lists")
    change = _recall(block_b, k, results_b) - _recall(block_a, k, results_a)
    order = frequency_order(block_a["gt_count"])
    values = change[order]
    colors = ["#2a9d5c" if v >= 0 else "#c8553d" for v in values]
    fig, ax = _bars([block_a["names"][i] for i in order], values, f"change of R@{k}",
                    f"R@{k}: {label_b} minus {label_a} (mean {np.nanmean(change):+.3f})", colors=colors)
    ax.axhline(0.0, color="black", linewidth=0.8)
    return _save(fig, path)


def load_curve(metrics_path: str, key: str) -> Tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of ``key`` in a trainer ``metrics.json``; lines without the key (the validation lines
    of a training value, the training lines of a ``val/`` value) are skipped."""
    if not os.path.isfile(metrics_path):
        raise FileNotFoundError(f"metrics file {metrics_path} does not exist (training writes OUTPUT_DIR/metrics.json)")
    iterations, values, seen = [], [], set()
    with open(metrics_path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                raise DataError(f"{metrics_path}:{number}: not a JSON object: {err}") from None
            seen.update(record)
            if key in record:
                iterations.append(record["iteration"])
                values.append(record[key])
    if not values:
        raise MissingMetricError(f"{metrics_path}: no logged value '{key}'; available: "
                        f"{', '.join(sorted(seen - {'iteration'}))}")
    return np.asarray(iterations, dtype=np.int64), np.asarray(values, dtype=np.float64)


VALIDATION_PREFIX = "val/"  # the validation hook's keys in metrics.json (sgg/engine/hooks.py)


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` points (fewer at the start), so a curve keeps its length and its
    first value."""
    if window < 1:
        raise ConfigError(f"the moving-average window must be at least 1, got {window}")
    values = np.asarray(values, dtype=np.float64)
    if window == 1:  # the values themselves, without the running sums' rounding
        return values.copy()
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def _iteration_axis(ax) -> None:
    """At most six iteration ticks, thousands written as ``k``: five-digit labels at matplotlib's default density
    run into each other on a 4.6-inch panel."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:g}k" if abs(value) >= 1000
                                               else f"{value:g}"))


def plot_training_curves(runs: Sequence[Tuple[str, str]], path: str, keys: Sequence[str] = ("loss",),
                         window: int = 1, title: Optional[str] = None) -> str:
    """One panel per key, one line per (label, metrics.json) run that logged it, smoothed by ``moving_average``
    over ``window`` log lines; a run keeps its colour in every panel (a panel may lack some runs); a key no run
    logged is an error. Validation keys (``val/...``) are drawn as logged, with a marker at each pass: a mean over
    passes thousands of iterations apart would misstate every validation after the first."""
    if not runs or not keys:
        raise ConfigError("training curves need at least one run and one key")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        validation = key.startswith(VALIDATION_PREFIX)
        key_window = 1 if validation else window
        missing = []
        for index, (label, metrics_path) in enumerate(runs):
            try:
                iterations, values = load_curve(metrics_path, key)
            except MissingMetricError as err:
                missing.append(str(err))
                continue
            ax.plot(iterations, moving_average(values, key_window), label=label, color=f"C{index % 10}",
                    marker="o" if validation else None, markersize=4)
        if len(missing) == len(runs):
            plt.close(fig)
            raise DataError("; ".join(missing))
        _iteration_axis(ax)
        ax.set_ylabel(key if key_window == 1 else f"{key} (mean of {key_window} logs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def load_benchmark_rows(benchmark_json: str, protocol: str) -> List[Dict]:
    """The rows of ``protocol`` in a benchmark's ``benchmark.json``, checked."""
    rows = _read_json(benchmark_json, "benchmark table", "tools/run_benchmark.py writes <output-root>/benchmark.json; "
                      "--collect-only rebuilds it from records")
    if not isinstance(rows, list):
        raise DataError(f"{benchmark_json}: expected a list of rows (run_benchmark.py's benchmark.json)")
    chosen = [row for row in rows if row.get("protocol") == protocol]
    if not chosen:
        found = sorted({str(r.get("protocol")) for r in rows})
        raise DataError(f"{benchmark_json} has no {protocol} rows (it has: {', '.join(found) or 'none'})")
    return chosen


def load_tradeoff(benchmark_json: str, protocol: str, k: int) -> Dict[str, Tuple[float, float]]:
    """(R@K, mR@K) in percent of every row of ``protocol`` in a benchmark's ``benchmark.json``
    (``tools/run_benchmark.py`` writes it; seed means)."""
    points = {}
    for row in load_benchmark_rows(benchmark_json, protocol):
        metrics = row.get("metrics", {})
        if f"R@{k}" not in metrics or f"mR@{k}" not in metrics:
            raise DataError(f"{benchmark_json}: row {row.get('name')} {protocol} has no R@{k} / mR@{k}")
        points[row["name"]] = (100.0 * metrics[f"R@{k}"], 100.0 * metrics[f"mR@{k}"])
    return points


def _separate_labels(fig, labels, step: float = 9.0, tries: int = 12, marker: float = 3.0) -> None:
    """Place each point label right of its point, else left of it, else moved down (then up) in steps of ``step``
    points, at the first place where its text overlaps no earlier label and no other point's marker (``marker``
    points either side of the point), so that rows with close numbers stay readable. A label moved off its point's
    line shows its leader line, so that it cannot be read as a neighbour's."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()  # settle the axes' limits, which place the points
    renderer = fig.canvas.get_renderer()
    half = marker * fig.dpi / 72.0
    markers = []
    for label in labels:
        x, y = label.axes.transData.transform(label.xy)
        markers.append(Bbox.from_extents(x - half, y - half, x + half, y + half))
    offsets = [0.0] + [sign * step * i for i in range(1, tries + 1) for sign in (-1, 1)]
    placed = []
    for index, label in enumerate(labels):
        others = placed + markers[:index] + markers[index + 1:]
        spot = next(((side, dy) for dy in offsets for side in (1, -1)
                     if _fits(label, side, dy, others, renderer)), (1, 0.0))  # nowhere free: by its point
        _place_label(label, *spot)
        label.arrow_patch.set_visible(spot[1] != 0.0)
        placed.append(_text_box(label, renderer))


def _fits(label, side: int, dy: float, boxes, renderer) -> bool:
    """Put the label there (``_place_label``) and tell whether its text stays clear of ``boxes``."""
    _place_label(label, side, dy)
    box = _text_box(label, renderer)
    return not any(box.overlaps(other) for other in boxes)


def _point_label(ax, text: str, xy: Tuple[float, float], color: str):
    """A label right of its point, with a leader line that stays hidden until ``_separate_labels`` moves it."""
    label = ax.annotate(text, xy, xytext=(4, 3), textcoords="offset points", fontsize=7,
                        arrowprops=dict(arrowstyle="-", color=color, lw=0.5, shrinkA=0, shrinkB=3))
    label.arrow_patch.set_visible(False)
    return label


def _text_box(label, renderer):
    """The label's text alone (an annotation's own extent includes its leader line, even a hidden one)."""
    from matplotlib.text import Text

    label.update_positions(renderer)  # the text's place follows its offset only when updated
    return Text.get_window_extent(label, renderer)


def _place_label(label, side: int, dy: float) -> None:
    """``side`` 1: the label starts 4 points right of its point; -1: it ends 4 points left of it; ``dy`` points up."""
    label.xyann = (4.0 * side, 3.0 + dy)
    label.set_horizontalalignment("left" if side > 0 else "right")
    label.arrowprops["relpos"] = (0.0 if side > 0 else 1.0, 0.5)


def plot_recall_tradeoff(points: Dict[str, Tuple[float, float]], path: str, k: int = 50,
                         parents: Optional[Dict[str, str]] = None, title: Optional[str] = None,
                         capped: Optional[Dict[str, int]] = None) -> str:
    """R@K (x) against mR@K (y), one labelled point per experiment; an arrow from each row's parent (both must be
    plotted), so that what a debiasing method trades reads as the arrow's direction: right = recall, up = mean
    recall. ``capped`` rows (name -> triplets per image, fewer than K) are drawn hollow with a dagger and a note."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 6.0))
    children = set((parents or {}).keys())
    capped = capped or {}
    labels = []
    for name, (recall, mean_recall) in points.items():
        color = "#c8553d" if name in children else "#3b6ea8"
        ax.scatter([recall], [mean_recall], s=28, zorder=3, color="none" if name in capped else color,
                   edgecolors=color)
        labels.append(_point_label(ax, name + ("\u2020" if name in capped else ""), (recall, mean_recall), color))
    _separate_labels(fig, labels)
    for child, parent in (parents or {}).items():
        if child in points and parent in points:
            ax.annotate("", xy=points[child], xytext=points[parent], zorder=2,
                        arrowprops=dict(arrowstyle="->", color="#888888", lw=0.9, shrinkA=3, shrinkB=3))
    ax.set_xlabel(f"R@{k} (%)")
    ax.set_ylabel(f"mR@{k} (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"R@{k} against mR@{k} (blue: baselines, red: a method on its parent, arrow from it)",
                 fontsize=10)
    if capped:
        caps = ", ".join(f"{name} {cap}" for name, cap in capped.items())
        fig.text(0.01, 0.01, f"\u2020 hollow: fewer than K = {k} triplets per image ({caps}); R@{k} there is R@ that "
                 "number, not a ranking of every pair", fontsize=7)
    return _save(fig, path)


__all__ = ["load_per_predicate", "plot_predicate_distribution", "plot_per_predicate_recall", "plot_recall_change",
           "frequency_order", "load_curve", "moving_average", "plot_training_curves", "load_tradeoff",
           "load_benchmark_rows", "plot_recall_tradeoff"]
