"""``ddcmh-bench compare RUN_A RUN_B``: which differences between two runs are real.

Cells are matched by method, hasher, code length and task; for each, the difference of the mean
MAP@all (tie-aware) of B minus A, and a paired t-test over the seeds both runs share (each seed
draws its own validation split and initialisation, so seed-paired differences remove the common
part of that noise). A difference is called real when its p-value is below ``alpha``; with fewer
than two shared seeds no test is possible and the table says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats

CellKey = tuple[str, str | None, int, str]


@dataclass(frozen=True)
class CellComparison:
    """One matched cell of two runs."""

    key: CellKey
    mean_a: float
    mean_b: float
    seeds: list[int]
    p_value: float | None

    @property
    def difference(self) -> float:
        """Mean of B minus mean of A."""
        return self.mean_b - self.mean_a

    def verdict(self, alpha: float) -> str:
        """``real``, ``noise`` or why there is no test."""
        if self.p_value is None:
            return f"untested ({len(self.seeds)} shared seed{'s' if len(self.seeds) != 1 else ''})"
        return "real" if self.p_value < alpha else "noise"


def _cells(record: dict[str, Any], metric: str) -> dict[CellKey, dict[int, float]]:
    cells: dict[CellKey, dict[int, float]] = {}
    for entry in record["records"]:
        if entry["metric"] != metric or entry["tie_policy"] != "expected" or entry["method"] == "random":
            continue
        key = (entry["method"], entry["hasher"], int(entry["bits"]), entry["task"])
        cells[key] = dict(zip(entry["seeds"], entry.get("per_seed") or [entry["value"]], strict=False))
    return cells


def _mean(values: dict[int, float]) -> float:
    return sum(values.values()) / len(values)


def compare_runs(
    run_a: dict[str, Any], run_b: dict[str, Any], metric: str = "map@all"
) -> list[CellComparison]:
    """The cells both runs hold, each with its difference and paired test over shared seeds."""
    cells_a, cells_b = _cells(run_a, metric), _cells(run_b, metric)
    comparisons = []
    for key in sorted(set(cells_a) & set(cells_b), key=lambda k: (k[0], str(k[1]), k[2], k[3])):
        a, b = cells_a[key], cells_b[key]
        shared = sorted(set(a) & set(b))
        p_value = None
        if len(shared) >= 2:
            differences = [b[seed] - a[seed] for seed in shared]
            if all(math.isclose(d, differences[0], abs_tol=1e-12) for d in differences):
                p_value = 0.0 if abs(differences[0]) > 1e-12 else 1.0
            else:
                p_value = float(stats.ttest_rel([b[s] for s in shared], [a[s] for s in shared]).pvalue)
        comparisons.append(CellComparison(key, _mean(a), _mean(b), shared, p_value))
    return comparisons


def comparison_table(comparisons: list[CellComparison], alpha: float, names: tuple[str, str]) -> str:
    """The comparison as a Markdown table, real differences first named in a summary line."""
    lines = [
        f"A = {names[0]}, B = {names[1]}; MAP@all (tie-aware), paired t-test over shared seeds, "
        f"alpha {alpha}.",
        "",
        "| method | hasher | bits | task | A | B | B - A | p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for item in comparisons:
        method, hasher, bits, task = item.key
        p_text = "—" if item.p_value is None else f"{item.p_value:.3g}"
        lines.append(
            f"| {method} | {hasher or '—'} | {bits} | {task} | {item.mean_a:.4f} | {item.mean_b:.4f} | "
            f"{item.difference:+.4f} | {p_text} | {item.verdict(alpha)} |"
        )
    real = [item for item in comparisons if item.verdict(alpha) == "real"]
    lines += ["", f"{len(real)} of {len(comparisons)} matched cells differ beyond seed noise."]
    if not comparisons:
        lines[-1] = "The two runs share no cell (method, hasher, bits, task)."
    return "\n".join(lines) + "\n"
