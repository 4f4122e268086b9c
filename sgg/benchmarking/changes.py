"""What each debiasing row changes: its metrics minus its parent row's, seed against the same seed.

A debiasing recipe starts from (or, for TDE, is) its parent's model of the same seed, so the change is measured
pairwise: for every seed both rows finished, ``row - parent``; the table gives the mean and spread (sample standard
deviation) of those differences and each seed's change at the middle K. Only seeds both rows list and finished are
paired, so a row with a seed its parent lacks (or the other way round) is never compared with a different seed's
parent, and a parent's run outside its list (which exported records leave out) is not used.
The parent is ``experiment_parents``' (the ``parent`` key, else the name's ``+``-prefix).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from sgg.benchmarking.runner import (CAPPED, BenchmarkSpec, collect_run, experiment_parents, mean_std, run_dir,
                                     triplet_cap_below)

CHANGE_PREFIXES = ("R", "mR", "head_mR", "body_mR", "tail_mR")


def _finished(root: str, name: str, protocol: str, seeds: Sequence[int], cache: Dict[str, Optional[Dict]]
              ) -> Dict[int, Dict]:
    """The finished runs among ``seeds``; ``cache`` keeps each folder's read, as a parent serves several rows."""
    runs = {}
    for seed in seeds:
        folder = run_dir(root, name, protocol, seed)
        if folder not in cache:
            cache[folder] = collect_run(folder)
        if cache[folder] is not None:
            runs[seed] = cache[folder]
    return runs


def parent_changes(spec: BenchmarkSpec, root: str) -> List[Dict]:
    """One entry per (row with a parent, protocol) with at least one seed finished by both rows: ``seeds`` (the
    paired seeds), ``change`` and ``spread`` (mean and standard deviation of row - parent per metric, fractions as
    in results.json), ``per_seed`` ({seed: {metric: change}}) and ``capped_ks`` (K beyond either model's triplet
    cap, whose graph-constrained changes are not comparable with other rows')."""
    by_name = {e.name: e for e in spec.experiments}
    parent_of = experiment_parents(spec)
    cache: Dict[str, Optional[Dict]] = {}
    entries = []
    for exp in spec.experiments:
        parent_name = parent_of.get(exp.name)
        if parent_name is None:
            continue
        parent = by_name[parent_name]
        for protocol in [p for p in exp.protocols if p in parent.protocols]:
            rows = _finished(root, exp.name, protocol, exp.seeds_for(protocol), cache)
            # only the parent's own listed seeds: they are the runs --export-records keeps, so the records
            # rebuild the same pairs
            listed = [seed for seed in sorted(rows) if seed in parent.seeds_for(protocol)]
            parents = _finished(root, parent_name, protocol, listed, cache)
            seeds = sorted(set(rows) & set(parents))
            if not seeds:
                continue
            per_seed = {}
            for seed in seeds:
                mine, theirs = rows[seed]["results"], parents[seed]["results"]
                per_seed[seed] = {f"{prefix}@{k}": mine[f"{prefix}@{k}"] - theirs[f"{prefix}@{k}"]
                                  for prefix in CHANGE_PREFIXES for k in spec.ks
                                  if mine.get(f"{prefix}@{k}") is not None and theirs.get(f"{prefix}@{k}") is not None}
            entry = {"name": exp.name, "parent": parent_name, "protocol": protocol, "seeds": seeds,
                     "change": {}, "spread": {}, "per_seed": per_seed,
                     "capped_ks": [k for k in spec.ks if any(
                         triplet_cap_below({"model": run["model_info"]}, k) is not None
                         for run in (rows[seeds[0]], parents[seeds[0]]))]}
            for key in per_seed[seeds[0]]:
                entry["change"][key], entry["spread"][key] = mean_std([per_seed[s].get(key) for s in seeds])
            entries.append(entry)
    return entries


def _signed(value: Optional[float], spread: Optional[float] = None, capped: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:+.1f}"
    if spread is not None:
        text += f"±{100 * spread:.1f}"
    return text + (CAPPED if capped else "")


def changes_table(entries: List[Dict], ks: Sequence[int]) -> str:
    """Markdown: per row, the change against its parent in points (percent), mean ± spread over the paired seeds,
    and each seed's change of R@K / mR@K at the middle K."""
    if not entries:
        return ""
    k_text = "/".join(str(k) for k in ks)
    mid = ks[len(ks) // 2]
    lines = ["Change against the parent row (this row minus its parent, the same seed; points; mean ± spread over "
             "the seeds both rows list and finished):", "",
             f"| experiment | parent | protocol | seeds | ΔR@{k_text} | ΔmR@{k_text} | "
             f"Δ head / body / tail mR@{ks[-1]} | each seed's ΔR@{mid} / ΔmR@{mid} |", "|---" * 8 + "|"]
    for entry in entries:
        several = len(entry["seeds"]) > 1

        def cells(prefix):
            return " / ".join(_signed(entry["change"].get(f"{prefix}@{k}"),
                                      entry["spread"].get(f"{prefix}@{k}") if several else None,
                                      k in entry["capped_ks"]) for k in ks)

        hbt = " / ".join(_signed(entry["change"].get(f"{g}_mR@{ks[-1]}")) for g in ("head", "body", "tail"))
        hbt += CAPPED if ks[-1] in entry["capped_ks"] else ""
        capped = mid in entry["capped_ks"]
        each = "; ".join(f"s{seed} {_signed(d.get(f'R@{mid}'), capped=capped)} / "
                         f"{_signed(d.get(f'mR@{mid}'), capped=capped)}" for seed, d in entry["per_seed"].items())
        lines.append(f"| {entry['name']} | {entry['parent']} | {entry['protocol']} | {len(entry['seeds'])} | "
                     f"{cells('R')} | {cells('mR')} | {hbt} | {each} |")
    return "\n".join(lines) + "\n"
