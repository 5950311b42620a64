"""``ddcmh-bench --dry-run``: the plan of a run, its estimated time and memory, without the run.

The plan has already been checked against the data when this runs (every cell's constraints, all
problems reported together). The estimate comes from a short calibration: each distinct method
(DDCMH once per hasher) is fitted and scored once, at the plan's smallest code length, on a random
tenth of the training pairs (at least 200), and its time is scaled by the ratio of training pairs.
Training cost is linear in n for every built-in method, so the estimate is of the right order;
early stopping can make a full run faster or slower than that scaling says.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import CrossModalDataset
from ..errors import InputError
from .config import BenchConfig
from .runner import BenchRun, Cell, plan_cells

CALIBRATION_FRACTION = 0.1
CALIBRATION_MIN_ROWS = 200


def calibration_dataset(dataset: CrossModalDataset, seed: int = 0) -> CrossModalDataset:
    """A random tenth (at least 200) of the training pairs and up to 200 queries of ``dataset``."""
    rng = np.random.default_rng(seed)
    train, query = dataset.split.train, dataset.split.query
    n_train = min(len(train), max(CALIBRATION_MIN_ROWS, int(CALIBRATION_FRACTION * len(train))))
    rows = np.concatenate([rng.choice(train, n_train, replace=False), query[: min(len(query), 200)]])
    return dataset.subset(np.sort(rows))


def _view_bytes(dataset: CrossModalDataset) -> int:
    """Bytes of the views as dense arrays of their dtype (an upper bound for sparse views)."""
    total = 0
    for view in dataset.views.values():
        if view is not None and view.dtype is not None and len(view.shape) == 2:
            total += int(np.prod(view.shape)) * np.dtype(view.dtype).itemsize
    return total


def estimate_plan(
    config: BenchConfig, dataset: CrossModalDataset, progress: Callable[[str], None]
) -> list[tuple[str, int, float | None]]:
    """Per method label: number of cells and estimated seconds per cell, from the calibration."""
    cells = [cell for cell in plan_cells(config) if cell.method != "random"]
    kinds: dict[tuple[str, str | None], list[Cell]] = {}
    for cell in cells:
        kinds.setdefault((cell.method, cell.hasher), []).append(cell)
    small = calibration_dataset(dataset)
    scale = len(dataset.split.train) / len(small.split.train)
    estimates: list[tuple[str, int, float | None]] = []
    with tempfile.TemporaryDirectory() as folder:
        runner = BenchRun(config, small, Path(folder), lambda line: None)
        for (method, hasher), group in kinds.items():
            label = method if hasher is None else f"{method} + {hasher}"
            started = time.perf_counter()
            try:
                runner._run_cell(Cell(method, hasher, min(config.bits), 0), "[calibration]")
            except InputError as error:  # the calibration sample is too small for this method
                progress(f"{label}: not calibrated on {len(small.split.train)} training pairs: {error}")
                estimates.append((label, len(group), None))
                continue
            seconds = (time.perf_counter() - started) * scale
            progress(f"calibrated {label} on {len(small.split.train)} training pairs")
            estimates.append((label, len(group), seconds))
    return estimates


def dry_run_report(
    config: BenchConfig,
    dataset: CrossModalDataset,
    progress: Callable[[str], None],
    *,
    calibrate: bool = True,
) -> str:
    """The plan as text: cells per method, estimated time per cell and in all, memory.

    Without ``calibrate`` no method is fitted: the table lists the cells only.
    """
    if calibrate:
        estimates = estimate_plan(config, dataset, progress)
    else:
        counts: dict[str, int] = {}
        for cell in plan_cells(config):
            if cell.method != "random":
                label = cell.method if cell.hasher is None else f"{cell.method} + {cell.hasher}"
                counts[label] = counts.get(label, 0) + 1
        estimates = [(label, count, None) for label, count in counts.items()]
    total = sum(count * seconds for _, count, seconds in estimates if seconds is not None)
    jobs = max(1, config.jobs)
    lines = [
        f"Plan for {dataset.name}: {len(plan_cells(config))} cells (random-code floors included), "
        f"bits {config.bits}, seeds {config.seeds}; nothing trained, nothing written.",
        "",
        "| method | cells | estimated s per cell | estimated s in all |",
        "|---|---|---|---|",
        *(_estimate_row(label, count, seconds) for label, count, seconds in estimates),
        "",
        f"Estimated compute: {total / 60:.1f} min; wall time with --jobs {jobs}: about "
        f"{total / jobs / 60:.1f} min (linear scaling of a fit on a tenth of the training pairs; "
        "early stopping moves it either way)."
        if calibrate
        else "No estimate of time: --no-calibration.",
        f"Memory: the dataset's arrays at most {_view_bytes(dataset) / 2**20:.1f} MiB; peak resident "
        f"size so far {_peak_rss_mib():.0f} MiB.",
    ]
    return "\n".join(lines) + "\n"


def _estimate_row(label: str, count: int, seconds: float | None) -> str:
    if seconds is None:
        return f"| {label} | {count} | not calibrated | — |"
    return f"| {label} | {count} | {seconds:.0f} | {count * seconds:.0f} |"


def _peak_rss_mib() -> float:
    peak: Any = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)
