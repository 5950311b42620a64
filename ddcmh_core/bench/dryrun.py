"""``ddcmh-bench --dry-run``: the plan of a run, its estimated time and memory, without the run.

The plan has already been checked against the data when this runs (every cell's constraints, all
problems reported together). The estimate comes from a short calibration: each distinct method
(DDCMH once per hasher) is fitted and scored once, at the plan's smallest code length, on a random
tenth of the training pairs (at least 200). A slow method (a deep one) is fitted on half that
sample too, and its time is extrapolated with the growth measured between the two: at a tenth of
the data per-epoch and per-stage overheads dominate, so scaling by the ratio of training pairs
overstated a DDCMH cell on Wikipedia about twentyfold. Times are the lesser of wall and CPU time,
so other processes on the machine do not inflate them. Early stopping can make a full run faster
or slower than the estimate.
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
from ..errors import InputError, NumericalError
from .config import BenchConfig
from .runner import BenchRun, Cell, plan_cells

CALIBRATION_FRACTION = 0.1
CALIBRATION_MIN_ROWS = 200
SLOW_FIT_SECONDS = 1.0
"""A method whose calibration fit takes longer is also fitted on half the sample (see estimate_plan)."""
EXPONENT_RANGE = (0.0, 2.0)


def calibration_dataset(
    dataset: CrossModalDataset, seed: int = 0, n_train: int | None = None
) -> CrossModalDataset:
    """A random tenth (at least 200) of the training pairs, or ``n_train`` of them, and up to 200 queries."""
    rng = np.random.default_rng(seed)
    train, query = dataset.split.train, dataset.split.query
    if n_train is None:
        n_train = max(CALIBRATION_MIN_ROWS, int(CALIBRATION_FRACTION * len(train)))
    n_train = min(len(train), n_train)
    rows = np.concatenate([rng.choice(train, n_train, replace=False), query[: min(len(query), 200)]])
    return dataset.subset(np.sort(rows))


def _view_bytes(dataset: CrossModalDataset) -> int:
    """Bytes of the views as dense arrays of their dtype (an upper bound for sparse views)."""
    total = 0
    for view in dataset.views.values():
        if view is not None and view.dtype is not None and len(view.shape) == 2:
            total += int(np.prod(view.shape)) * np.dtype(view.dtype).itemsize
    return total


def scaling_exponent(sizes: tuple[int, int], seconds: tuple[float, float]) -> float:
    """The exponent p of ``seconds ~ size ** p`` through two timed fits, clipped to [0, 2].

    Deep methods at a tenth of the data spend most of their time in per-epoch and per-stage
    overheads, so their time grows far slower than the data (p well below 1); a pairwise loss
    grows faster (p up to 2). The clip keeps timing noise from extrapolating wildly.
    """
    (small, large), (fast, slow) = sizes, seconds
    if small <= 0 or large <= small or fast <= 0 or slow <= 0:
        return 1.0
    return float(np.clip(np.log(slow / fast) / np.log(large / small), *EXPONENT_RANGE))


def _fit_seconds(runner: BenchRun, cell: Cell) -> float:
    """Seconds one cell takes to fit and score: the lesser of wall and CPU time.

    Other processes on the machine stretch the wall time but not the CPU time; a method using
    several threads has a CPU time above its wall time. The lesser is the closer to what the cell
    takes on a machine of its own.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    runner._run_cell(cell, "[calibration]")
    return min(time.perf_counter() - wall, time.process_time() - cpu)


class _Samples:
    """Calibration samples of ``dataset`` by size, each with its own (temporary) bench runner."""

    def __init__(self, config: BenchConfig, dataset: CrossModalDataset, folder: Path) -> None:
        self.config, self.dataset, self.folder = config, dataset, folder
        self.runners: dict[int, BenchRun] = {}

    def seconds(self, cell: Cell, n_train: int) -> tuple[int, float]:
        """The sample's actual size and the time of ``cell`` fitted and scored on it."""
        n_train = min(n_train, len(self.dataset.split.train))
        if n_train not in self.runners:
            sample = calibration_dataset(self.dataset, seed=n_train, n_train=n_train)
            self.runners[n_train] = BenchRun(self.config, sample, self.folder / str(n_train), lambda _: None)
        return n_train, _fit_seconds(self.runners[n_train], cell)


def _calibrate(samples: _Samples, cell: Cell, n_small: int) -> tuple[int, float, float]:
    """Sample size, seconds and growth exponent of one method's calibration.

    The sample is doubled (up to twice) when the method cannot fit it: too few rows for its
    anchors, or a fit that diverges on so little data. Raises the last error when none fits. The
    growth of a slow method is measured against half the sample, or, when the method cannot fit
    that, against twice it.
    """
    for attempt in range(3):
        try:
            n_fit, seconds = samples.seconds(cell, n_small * 2**attempt)
            break
        except (InputError, NumericalError):
            if attempt == 2 or n_small * 2**attempt >= len(samples.dataset.split.train):
                raise
    if seconds <= SLOW_FIT_SECONDS:
        return n_fit, seconds, 1.0
    try:
        n_half, quicker = samples.seconds(cell, n_fit // 2)
        return n_fit, seconds, scaling_exponent((n_half, n_fit), (quicker, seconds))
    except (InputError, NumericalError):
        pass  # too few rows for this method: measure the growth on a doubled sample instead
    if 2 * n_fit > len(samples.dataset.split.train):
        return n_fit, seconds, 1.0
    try:
        n_double, slower = samples.seconds(cell, 2 * n_fit)
    except (InputError, NumericalError):
        return n_fit, seconds, 1.0
    return n_double, slower, scaling_exponent((n_fit, n_double), (seconds, slower))


def estimate_plan(
    config: BenchConfig, dataset: CrossModalDataset, progress: Callable[[str], None]
) -> list[tuple[str, int, float | None]]:
    """Per method label: number of cells and estimated seconds per cell, from the calibration.

    Each method is fitted on the calibration sample of n1 pairs (doubled when it cannot fit so
    few). One that takes over :data:`SLOW_FIT_SECONDS` is fitted again on half of it, and its
    time is extrapolated to the n training pairs with the measured growth, ``t1 * (n / n1) ** p``
    (:func:`scaling_exponent`); a fast one (or one whose half sample is too small for it) is
    scaled linearly.
    """
    kinds: dict[tuple[str, str | None], int] = {}
    for cell in plan_cells(config):
        if cell.method != "random":
            kinds[(cell.method, cell.hasher)] = kinds.get((cell.method, cell.hasher), 0) + 1
    n_small = len(calibration_dataset(dataset).split.train)
    n_full = len(dataset.split.train)
    estimates: list[tuple[str, int, float | None]] = []
    with tempfile.TemporaryDirectory() as folder:
        samples = _Samples(config, dataset, Path(folder))
        for (method, hasher), count in kinds.items():
            label = method if hasher is None else f"{method} + {hasher}"
            try:
                n_fit, seconds, exponent = _calibrate(
                    samples, Cell(method, hasher, min(config.bits), 0), n_small
                )
            except (InputError, NumericalError) as error:
                progress(
                    f"{label}: not calibrated on up to {min(4 * n_small, n_full)} training pairs: {error}"
                )
                estimates.append((label, count, None))
                continue
            progress(f"calibrated {label} on {n_fit} training pairs (time grows as n^{exponent:.2f})")
            estimates.append((label, count, seconds * (n_full / n_fit) ** exponent))
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
        f"{total / jobs / 60:.1f} min (a fit on a tenth of the training pairs, and of slow methods on "
        "a twentieth too, extrapolated with the growth between them; early stopping moves it either way)."
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
