"""``ddcmh-bench --jobs N``: independent cells run in N worker processes, the cores split between them.

Cells are grouped so that everything one cell may depend on stays in one process: all seeds and
tuning candidates of one (method, hasher, code length) share a group (successive halving reads the
earlier seeds' scores; DDCMH cells share their stage files). Each worker loads the dataset, runs
its groups and writes each finished cell to ``<out>/cells/`` like a sequential run; the parent then
runs the ordinary loop, which finds every cell cached and aggregates them. An interrupted parallel
run therefore resumes like any other.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..threads import configure_threads
from .config import BenchConfig
from .plan import Cell, load_bench_dataset, plan_cells
from .runner import BenchRun, stderr_progress


class _Pace:
    """Cells finished by the workers and the ETA of the rest, from the pace since the start.

    Only trained cells count (random codes take no time). Groups run side by side, so the wall
    time per finished cell already accounts for the parallelism.
    """

    def __init__(self, total: int) -> None:
        self.total, self.finished, self.started = total, 0, time.perf_counter()

    def add(self, cells: int) -> None:
        self.finished += cells

    def __str__(self) -> str:
        line = f"{self.finished}/{self.total} trained cells"
        if 0 < self.finished < self.total:
            seconds = int((time.perf_counter() - self.started) / self.finished * (self.total - self.finished))
            line += f" | ETA {seconds // 60}m{seconds % 60:02d}s"
        return line


def cell_groups(cells: list[Cell]) -> list[list[str]]:
    """Keys of the cells grouped by (method, hasher, code length), in plan order, largest first."""
    groups: dict[tuple[str, str | None, int], list[str]] = {}
    for cell in cells:
        groups.setdefault((cell.method, cell.hasher, cell.bits), []).append(cell.key)
    return sorted(groups.values(), key=len, reverse=True)


def _run_group(config_json: str, out_dir: str, keys: list[str], threads: int) -> int:
    """Worker: run the cells ``keys`` of the plan (cells already finished are reused)."""
    configure_threads(threads)
    config = BenchConfig.model_validate_json(config_json)
    progress = stderr_progress("[worker] ")
    dataset = load_bench_dataset(config)  # image features come from the cache the parent filled
    _, complete = BenchRun(config, dataset, Path(out_dir), progress).run(only=set(keys))
    return len(keys) if complete else 0


def run_cells_in_workers(
    config: BenchConfig, out_dir: Path, threads: int, progress: Callable[[str], None]
) -> None:
    """Run every cell of the plan in ``config.jobs`` worker processes (``spawn``: no shared state)."""
    cells = plan_cells(config)
    groups = cell_groups(cells)
    progress(
        f"--jobs {config.jobs}: {len(groups)} groups of cells in {config.jobs} processes, "
        f"{threads} thread(s) each"
    )
    trained = {cell.key for cell in cells if cell.method != "random"}
    pace = _Pace(len(trained))
    context = multiprocessing.get_context("spawn")
    payload: Any = config.model_dump_json()
    with concurrent.futures.ProcessPoolExecutor(max_workers=config.jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_group, payload, str(out_dir), keys, threads): keys for keys in groups}
        try:
            for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                future.result()
                pace.add(len(trained.intersection(futures[future])))
                progress(f"[groups {done}/{len(groups)} finished | {pace}]")
        except BaseException:
            for future in futures:
                future.cancel()
            raise
