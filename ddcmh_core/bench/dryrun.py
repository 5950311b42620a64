"""``ddcmh-bench --dry-run``: the plan of a run, its estimated time and memory, without the run.

The plan has already been checked against the data when this runs (every cell's constraints, all
problems reported together). The estimate comes from a short calibration: each distinct method
(DDCMH once per hasher) is fitted and scored once, at the plan's largest code length, on the full
training set, with every training loop cut to its first :data:`CALIBRATION_EPOCHS` epochs
(:mod:`ddcmh_core.engine.epoch_sampling`); the epochs not run are added at the per-epoch time
measured. Work that runs once (a Stage-1 hasher, an input lift, encoding and scoring) is thus
timed at full size, not extrapolated: fits on a tenth of the data, scaled by a growth exponent,
underestimated DDCMH cells on Wikipedia five- to tenfold (a lifted network's first layer widens
with the rows, and early stopping ends small-sample loops at other epochs). Every loop is counted
at its whole epoch budget, so early stopping can only make the run faster than the estimate.
Times are the lesser of wall and CPU time, so other processes on the machine do not inflate them.
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
from ..engine.epoch_sampling import sampling_epochs
from ..errors import InputError, NumericalError
from ..memory import available_memory, format_bytes
from .config import BenchConfig
from .plan import Cell, largest_memory_estimate, plan_cells
from .runner import BenchRun

CALIBRATION_EPOCHS = 2
"""Epochs each training loop runs during the calibration (the first carries warm-up costs)."""


def _view_bytes(dataset: CrossModalDataset) -> int:
    """Bytes of the views as dense arrays of their dtype (an upper bound for sparse views)."""
    total = 0
    for view in dataset.views.values():
        if view is not None and view.dtype is not None and len(view.shape) == 2:
            total += int(np.prod(view.shape)) * np.dtype(view.dtype).itemsize
    return total


def cell_seconds(runner: BenchRun, cell: Cell) -> float:
    """Estimated seconds of one cell: fitted and scored with its training loops cut short.

    The sampled run's time is the lesser of wall and CPU time (other processes stretch the wall
    time, several threads the CPU time); the epochs it did not run are added at the per-epoch
    time measured, scaled the same way.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    with sampling_epochs(CALIBRATION_EPOCHS) as sampler:
        runner._run_cell(cell, "[calibration]")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    measured = min(wall, cpu)
    return measured + sampler.unsampled_seconds() * (measured / wall if wall > 0 else 1.0)


def estimate_plan(
    config: BenchConfig, dataset: CrossModalDataset, progress: Callable[[str], None]
) -> list[tuple[str, int, float | None]]:
    """Per method label: number of cells and estimated seconds per cell, from the calibration.

    Each method is calibrated once (:func:`cell_seconds`), at the largest code length of the plan
    and seed 0; a method that cannot be calibrated is listed without an estimate, with the reason
    in the progress lines.
    """
    kinds: dict[tuple[str, str | None], int] = {}
    for cell in plan_cells(config):
        if cell.method != "random":
            kinds[(cell.method, cell.hasher)] = kinds.get((cell.method, cell.hasher), 0) + 1
    estimates: list[tuple[str, int, float | None]] = []
    with tempfile.TemporaryDirectory() as folder:
        runner = BenchRun(config, dataset, Path(folder), lambda _: None)
        for position, ((method, hasher), count) in enumerate(kinds.items(), start=1):
            label = method if hasher is None else f"{method} + {hasher}"
            try:
                seconds = cell_seconds(runner, Cell(method, hasher, max(config.bits), 0))
            except (InputError, NumericalError) as error:
                progress(f"[{position}/{len(kinds)}] {label}: not calibrated: {error}")
                estimates.append((label, count, None))
                continue
            progress(f"[{position}/{len(kinds)}] calibrated {label}: about {seconds:.0f} s per cell")
            estimates.append((label, count, seconds))
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
        f"{total / jobs / 60:.1f} min (one fit of each method on all training pairs at {max(config.bits)} "
        f"bits, each training loop timed on its first {CALIBRATION_EPOCHS} epochs and counted at its "
        "whole epoch budget: early stopping makes the run faster)."
        if calibrate
        else "No estimate of time: --no-calibration.",
        f"Memory: the dataset's arrays at most {_view_bytes(dataset) / 2**20:.1f} MiB; peak resident "
        f"size so far {_peak_rss_mib():.0f} MiB.{_largest_fit(config, dataset)}",
    ]
    return "\n".join(lines) + "\n"


def _largest_fit(config: BenchConfig, dataset: CrossModalDataset) -> str:
    """`` Largest fit: about 2.1 GiB (CVH, 32 bits: ...), 19.4 GiB free.`` or nothing."""
    largest = largest_memory_estimate(config, dataset)
    if largest is None:
        return ""
    need, cell, why = largest
    free = available_memory()
    room = "" if free is None else f"; {format_bytes(free)} free"
    return f" Largest fit: about {format_bytes(need)} ({cell}: {why}){room}."


def _estimate_row(label: str, count: int, seconds: float | None) -> str:
    if seconds is None:
        return f"| {label} | {count} | not calibrated | — |"
    return f"| {label} | {count} | {seconds:.0f} | {count * seconds:.0f} |"


def _peak_rss_mib() -> float:
    peak: Any = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)
