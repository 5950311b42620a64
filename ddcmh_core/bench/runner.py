"""The ``ddcmh-bench`` run loop: cells (method x hasher x bits x seed), each cached on disk.

A cell trains one cross-modal method (DDCMH with one Stage-1 hasher, or any other registered
method such as DCMH), or draws random codes; encodes the query and database items of the split and
scores every task with the one evaluator. Finished cells are written to ``<out>/cells/`` as JSON, so an
interrupted run resumes where it stopped; Ctrl-C leaves valid partial results. The aggregate of the
cells (mean and spread over seeds, the tuning choices) is the run's ``results.json``.

What the cells are and how each is set up, and the checks before work, are in
:mod:`ddcmh_core.bench.plan`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..engine.fingerprint import (
    check_discardable,
    discard_run_state,
    fingerprint_differences,
    folder_differences,
    mismatch_error,
    write_run_fingerprint,
)
from ..evaluation.metrics import (
    mean_average_precision,
    precision_at_n,
    precision_recall_by_radius,
    precision_within_radius,
    random_code_floor,
)
from ..files import atomic_path
from ..plugins import method_registry
from ..threads import thread_counts, torch_threads
from ..tuning import choose_candidate, describe_overrides, halving_survivors, validation_score
from .cell_time import CellTimeLedger
from .config import BenchConfig
from .plan import Cell, cell_fingerprint, model_config_for, plan_cells, tuning_candidates

RESULTS_SCHEMA_VERSION = 1
CROSS_MODAL_TASKS = ("image->text", "text->image")
Progress = Callable[[str], None]


def stderr_progress(prefix: str = "") -> Callable[[str], None]:
    """A progress callback printing ``<elapsed> <prefix><line>`` to standard error."""
    started = time.perf_counter()

    def progress(line: str) -> None:
        elapsed = int(time.perf_counter() - started)
        print(f"{elapsed // 60:3d}m{elapsed % 60:02d}s {prefix}{line}", file=sys.stderr, flush=True)

    return progress


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def score_task(
    query_codes: np.ndarray,
    database_codes: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    config: BenchConfig,
) -> dict[str, Any]:
    """Every metric of one retrieval task, plus its curves."""
    arguments = (query_codes, database_codes, query_labels, database_labels)
    n_database = len(database_codes)
    metrics: list[dict[str, Any]] = []
    expected = mean_average_precision(*arguments, tie_policy="expected")
    metrics.append({"metric": "map@all", "tie_policy": "expected", "value": float(expected)})
    if config.index_order_map:
        index_order = mean_average_precision(*arguments, tie_policy="index")
        metrics.append({"metric": "map@all", "tie_policy": "index", "value": float(index_order)})
    k = min(config.map_at_k, n_database)
    at_k = mean_average_precision(*arguments, k=k, tie_policy="expected")
    metrics.append({"metric": f"map@{k}", "tie_policy": "expected", "value": float(at_k)})
    within = precision_within_radius(*arguments, radius=2)
    metrics.append({"metric": "precision@radius2", "tie_policy": None, "value": float(within)})
    n_values = sorted({min(n, n_database) for n in config.precision_at})
    curve_n = np.unique(np.clip(np.geomspace(1, n_database, 40).astype(int), 1, n_database))
    precision = precision_at_n(*arguments, np.union1d(n_values, curve_n), tie_policy="expected")
    lookup = dict(zip(precision.n_values.tolist(), precision.precision.tolist(), strict=True))
    for n in n_values:
        metrics.append({"metric": f"p@{n}", "tie_policy": "expected", "value": float(lookup[n])})
    radius = precision_recall_by_radius(*arguments)
    curves = {
        "p@N": {"n": precision.n_values.tolist(), "precision": precision.precision.tolist()},
        "pr_by_radius": {
            "radius": radius.radii.tolist(),
            "precision": radius.precision.tolist(),
            "recall": radius.recall.tolist(),
        },
    }
    return {
        "metrics": metrics,
        "curves": curves,
        "queries_without_relevant": int(expected.n_queries_without_relevant),
    }


class BenchRun:
    """One ``ddcmh-bench`` run over a dataset: plans cells, runs or reuses them, aggregates.

    Parameters
    ----------
    config : BenchConfig
        The resolved configuration (hashers and options already validated).
    dataset : CrossModalDataset
        With both views and no unlabelled items.
    out_dir : Path
        Output folder (created and checked writable by the caller).
    progress : callable
        Receives progress lines.
    """

    def __init__(self, config: BenchConfig, dataset: Any, out_dir: Path, progress: Progress) -> None:
        self.config = config
        self.dataset = dataset
        self.out_dir = out_dir
        self.progress = progress
        self.cells_dir = out_dir / "cells"
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir = out_dir / "checkpoints"
        split = dataset.split
        self.train, self.query, self.database = split.train, split.query, split.database
        self.labels = dataset.labels
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ cells
    def run(self, only: set[str] | None = None) -> tuple[dict[str, Any], bool]:
        """Run (or reuse) every cell; return the aggregated results and whether all finished.

        ``only`` restricts the loop to the cells with these keys (a ``--jobs`` worker's share).
        A KeyboardInterrupt stops the loop after writing results for the finished cells.
        """
        cells = [cell for cell in plan_cells(self.config) if only is None or cell.key in only]
        # Read once: no other process writes these cells (a --jobs worker owns its cells' group).
        reusable = {cell.key: stored for cell in cells if (stored := self._cached(cell)) is not None}
        finished: list[dict[str, Any]] = []
        complete = True
        durations: dict[str, list[float]] = {}
        try:
            for position, cell in enumerate(cells, start=1):
                if self._eliminated(cell, finished):
                    self.progress(
                        f"[{position}/{len(cells)}] {cell.describe()}{self._settings(cell)}: skipped, "
                        "behind on validation after the earlier seeds (successive halving)"
                    )
                    continue
                cached = reusable.get(cell.key)
                if cached is not None:
                    finished.append(cached)
                    self.progress(
                        f"[{position}/{len(cells)}] {cell.describe()}{self._settings(cell)}: reused from "
                        f"{self.cell_file(cell)}{_other_threads_note(cached)}"
                    )
                    continue
                eta = self._eta([c for c in cells[position - 1 :] if c.key not in reusable], durations)
                prefix = f"[{position}/{len(cells)} | {cell.describe()}{eta}]"
                # The candidate's settings and the file's name, as the label counts candidates
                # from 1 and the file's key from 0.
                settings, destination = self._settings(cell), self.cell_file(cell)
                self.progress(f"{prefix} started{settings}; its result goes to {destination}")
                started = time.perf_counter()
                result, ledger = self._run_cell(cell, prefix)
                earlier = result["seconds"].get("earlier_processes", 0.0)
                result["seconds"]["total"] = time.perf_counter() - started + earlier
                durations.setdefault(cell.method, []).append(result["seconds"]["total"])
                write_json_atomic(self.cell_file(cell), result)
                if ledger is not None:
                    ledger.close()  # only now: a crash before the cell file keeps the seconds spent
                finished.append(result)
                summary = ", ".join(f"{task} {self._map_of(result, task):.4f}" for task in CROSS_MODAL_TASKS)
                self.progress(f"{prefix} done in {result['seconds']['total']:.1f}s: MAP@all {summary}")
        except KeyboardInterrupt:
            complete = False
            self.progress(
                f"interrupted: {len(finished)} of {len(cells)} cells finished; writing partial results "
                f"(run the same command again to resume)"
            )
        return self._aggregate(finished, complete), complete

    def cell_file(self, cell: Cell) -> Path:
        """The file a cell's result is written to and reused from (``cells/<key>.json``)."""
        return self.cells_dir / f"{cell.key}.json"

    def stale_state(self) -> list[tuple[str, list[str], list[Path]]]:
        """The planned cells whose saved state (cell file, checkpoints) another run made.

        Returns
        -------
        list of (str, list of str, list of Path)
            Per stale cell: its description, what differs (``field: old → new``) and its files.
        """
        stale = []
        for cell in plan_cells(self.config):
            path = self.cell_file(cell)
            differences = self._cell_file_differences(cell, path)
            files = [path] if differences else []
            if cell.method != "random":
                shared = Cell(cell.method, cell.hasher, cell.bits, cell.seed)
                folder = self.checkpoints_dir / shared.key
                fingerprint = cell_fingerprint(self.config, shared, self.dataset, scoring=False)
                folder_changes = folder_differences(folder, fingerprint)
                if folder_changes:
                    differences = differences or folder_changes
                    files.append(folder)
            if files:
                stale.append((cell.describe(), differences, files))
        return stale

    def _cell_file_differences(self, cell: Cell, path: Path) -> list[str]:
        try:
            stored = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, json.JSONDecodeError):
            return []  # a damaged cell file is recomputed
        if not isinstance(stored, dict):
            return []
        return fingerprint_differences(
            stored.get("fingerprint"), cell_fingerprint(self.config, cell, self.dataset)
        )

    def claim(self, *, restart: bool) -> None:
        """Before any work: refuse state of another run, or discard it when ``restart``.

        Raises
        ------
        RunMismatchError
            When a planned cell's saved state was made by another run (without ``restart``); the
            message lists what differs and says to use ``--restart`` or another ``--out``.
        InputError
            With ``restart``, when a checkpoint folder holds files ddcmh did not write.
        """
        stale = self.stale_state()
        if not stale:
            return
        if not restart:
            name, differences, _ = stale[0]
            what = f"the saved state of {len(stale)} cell(s) in {self.out_dir} (the first: {name})"
            advice = (
                "run the same command with --restart to discard the saved state of these cells and "
                "compute them afresh, or choose a new --out"
            )
            raise mismatch_error(what, differences, advice)
        folders = [path for _, _, files in stale for path in files if path.suffix != ".json"]
        for folder in folders:
            check_discardable(folder)
        for _, _, files in stale:
            for path in files:
                if path.suffix == ".json":
                    path.unlink(missing_ok=True)
                else:
                    discard_run_state(path)
        self.progress(f"--restart: discarded the saved state of {len(stale)} cell(s) made by another run")

    def _eliminated(self, cell: Cell, finished: list[dict[str, Any]]) -> bool:
        """Whether successive halving has dropped this tuning candidate before the cell's seed."""
        if cell.candidate is None or cell.seed == 0 or self.config.tune_strategy != "halving":
            return False
        scores = candidate_scores(finished, cell.hasher, cell.bits, self.config)
        return cell.candidate not in halving_survivors(scores, cell.seed)

    @staticmethod
    def _map_of(result: dict[str, Any], task: str) -> float:
        for record in result["tasks"].get(task, {}).get("metrics", []):
            if record["metric"] == "map@all" and record["tie_policy"] == "expected":
                return float(record["value"])
        return float("nan")

    @staticmethod
    def _eta(remaining: list[Cell], durations: dict[str, list[float]]) -> str:
        """`` | ETA ...`` of the cells still to compute, from the mean time of each method's finished cells.

        ``remaining`` leaves out the cells that will be reused (they cost nothing). Empty until a
        cell of every method still to run has finished (random codes take no time): no estimate is
        shown rather than a guess.
        """
        if any(cell.method != "random" and not durations.get(cell.method) for cell in remaining):
            return ""
        seconds = sum(
            float(np.mean(durations[cell.method])) for cell in remaining if durations.get(cell.method)
        )
        minutes, secs = divmod(int(seconds), 60)
        return f" | ETA {minutes}m{secs:02d}s"

    def _settings(self, cell: Cell) -> str:
        """`` (a.b=1)``: the settings of a tuning candidate's cell; empty for an untuned cell."""
        if cell.candidate is None or cell.hasher is None:
            return ""
        return f" ({describe_overrides(tuning_candidates(self.config, cell.hasher)[cell.candidate])})"

    def _cached(self, cell: Cell) -> dict[str, Any] | None:
        path = self.cell_file(cell)
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged cache entry is recomputed
        if stored.get("fingerprint") != cell_fingerprint(self.config, cell, self.dataset):
            return None
        # The same settings, data and split: this is the planned cell's result, whatever run wrote
        # it (a cell file copied from a run where its settings were another tuning candidate).
        return {**stored, "cell": cell.key, "candidate": cell.candidate}

    def _base_result(self, cell: Cell) -> dict[str, Any]:
        return {
            "cell": cell.key,
            "method": cell.method,
            "hasher": cell.hasher,
            "bits": cell.bits,
            "seed": cell.seed,
            "candidate": cell.candidate,
            "fingerprint": cell_fingerprint(self.config, cell, self.dataset),
            "threads": torch_threads(),
            "tasks": {},
            "seconds": {},
        }

    def _run_cell(self, cell: Cell, prefix: str) -> tuple[dict[str, Any], CellTimeLedger | None]:
        """Train (or draw) one cell and score it; return its result and, for a deep method, its ledger."""
        result = self._base_result(cell)
        query_labels, database_labels = self.labels[self.query], self.labels[self.database]
        if cell.method == "random":
            for task in CROSS_MODAL_TASKS:
                floor = random_code_floor(query_labels, database_labels, cell.bits, seed=cell.seed)
                result["tasks"][task] = {
                    "metrics": [{"metric": "map@all", "tie_policy": "expected", "value": float(floor)}]
                }
            return result, None
        model, fit_seconds, ledger = self._train(cell, prefix)
        image, text = self.dataset.image, self.dataset.text
        # A line before the four passes; DDCMH and DCMH add their own lines while a pass is slow
        # (photos on a CPU), other methods encode silently (CrossModalMethod.reports_encode_progress).
        self.progress(
            f"{prefix} encoding the {len(self.query)} queries and {len(self.database)} database items "
            "of both views"
        )
        started = time.perf_counter()
        options = {"progress": lambda line: self.progress(f"{prefix} {line}")}
        codes = {
            ("image", "query"): model.encode_image(image.select(self.query), **options),
            ("image", "database"): model.encode_image(image.select(self.database), **options),
            ("text", "query"): model.encode_text(text.select(self.query), **options),
            ("text", "database"): model.encode_text(text.select(self.database), **options),
        }
        result["seconds"]["encode"] = time.perf_counter() - started
        tasks = {
            "image->text": (codes["image", "query"], codes["text", "database"]),
            "text->image": (codes["text", "query"], codes["image", "database"]),
            "text->text": (codes["text", "query"], codes["text", "database"]),
        }
        for task, (queries, base) in tasks.items():
            result["tasks"][task] = score_task(queries, base, query_labels, database_labels, self.config)
        hasher = getattr(model, "hasher_", None)
        if hasher is not None and hasher.tags()["supports_encode"]:
            # The Stage-1 hasher's own text codes, used directly: what Stages 2 and 3 add.
            stage1_query = hasher.encode(text.select(self.query).take())
            stage1_database = hasher.encode(text.select(self.database).take())
            result["stage1"] = {
                "text->text": score_task(
                    stage1_query, stage1_database, query_labels, database_labels, self.config
                )
            }
        result["seconds"].update(model.report_.get("seconds", {}))
        result["seconds"]["fit"] = fit_seconds
        if ledger is not None and ledger.earlier_seconds:
            result["seconds"]["earlier_processes"] = ledger.earlier_seconds
        result["report"] = model.report_
        return result, ledger

    def _train(self, cell: Cell, prefix: str) -> tuple[Any, float, CellTimeLedger | None]:
        """Fit the cell's method on the training split; return it, its fit seconds and its ledger.

        A deep method trains in the cell's checkpoint folder and resumes from it; its
        :class:`CellTimeLedger` counts the seconds of earlier, interrupted processes in the fit time.
        """
        fields = model_config_for(self.config, cell)
        image = self.dataset.image.select(self.train)
        text = self.dataset.text.select(self.train)
        labels = self.labels[self.train]

        method = method_registry().create(cell.method, **fields)
        started = time.perf_counter()
        if method.tags.deep:
            # Candidates of one cell share a folder: DDCMH names its stage files by their settings,
            # so a stage that candidates agree on (Stage 1, often Stage 2) is trained once.
            shared = Cell(cell.method, cell.hasher, cell.bits, cell.seed)
            run_dir = self.checkpoints_dir / shared.key
            write_run_fingerprint(run_dir, cell_fingerprint(self.config, shared, self.dataset, scoring=False))
            ledger = CellTimeLedger(run_dir, cell.key)

            def say(line: str) -> None:
                ledger.tick()  # a resumed cell counts the seconds its earlier processes spent
                self.progress(f"{prefix} {line}")

            method.fit(image, text, labels, run_dir=run_dir, resume=True, progress=say)
            return method, ledger.elapsed(), ledger
        method.fit(image, text, labels, progress=lambda line: self.progress(f"{prefix} {line}"))
        return method, time.perf_counter() - started, None

    # ------------------------------------------------------------------ aggregation
    def _aggregate(self, finished: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        from ..model_file import runtime_versions

        reported, tuning = select_tuned_cells(finished, self.config)
        records, curves = mean_over_seeds(reported)
        split = self.dataset.split
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": complete,
            "ddcmh_version": __version__,
            "config": self.config.model_dump(mode="json"),
            "dataset": {
                "name": self.dataset.name,
                "fingerprint": self.dataset.fingerprint.as_dict(),
                "split": {
                    **split.sizes,
                    "protocol": split.protocol,
                    "seed": split.seed,
                    "checksum": split.checksum(),
                    "file": "split.h5",
                },
                "dropped_unlabelled": int(self.dataset.source.get("dropped_unlabelled", 0)),
            },
            "versions": runtime_versions(),
            "device": _device_description(self.config.device),
            "wall_seconds": time.perf_counter() - self.started,
            "cell_seconds": float(sum(r["seconds"].get("total", 0.0) for r in finished)),
            "resumed_cells": resumed_cells(finished),
            "threads": thread_counts(r.get("threads") for r in finished if r["method"] != "random"),
            "cells": [
                {"cell": r["cell"], "seconds": r["seconds"], "report": r.get("report", {})} for r in finished
            ],
            "tuning": tuning,
            "methods": describe_methods(reported),
            "fit_seconds": fit_seconds(reported),
            "records": records,
            "curves": curves,
        }


def mean_over_seeds(reported: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each metric of the reported cells as its mean and spread over seeds, and the curves of seed 0.

    Parameters
    ----------
    reported : list of dict
        Finished cells (a tuned cell as its chosen candidate), each with ``method``, ``hasher``,
        ``bits``, ``seed``, ``tasks`` (per retrieval task, its ``metrics`` and optional ``curves``)
        and, for DDCMH, ``stage1`` (the hasher's own codes, reported as method ``"stage1"``).

    Returns
    -------
    records : list of dict
        One per (method, hasher, bits, task, metric, tie policy), sorted: ``value`` (the mean),
        ``std``, ``seeds`` and ``per_seed``.
    curves : dict
        ``"method|hasher|bits|task"`` to the curves of the seed-0 cell.
    """
    groups: dict[tuple[Any, ...], list[tuple[int, float]]] = {}
    curves: dict[str, Any] = {}
    for result in reported:
        entries: Iterable[tuple[str, str | None, str, dict[str, Any]]] = [
            (result["method"], result["hasher"], task, payload) for task, payload in result["tasks"].items()
        ]
        if "stage1" in result:
            entries = [
                *entries,
                *(("stage1", result["hasher"], task, payload) for task, payload in result["stage1"].items()),
            ]
        for method, hasher, task, payload in entries:
            for record in payload["metrics"]:
                key = (method, hasher, result["bits"], task, record["metric"], record["tie_policy"])
                groups.setdefault(key, []).append((result["seed"], record["value"]))
            if "curves" in payload and result["seed"] == 0:
                curve_key = f"{method}|{hasher or ''}|{result['bits']}|{task}"
                curves[curve_key] = payload["curves"]
    records = []
    for (method, hasher, bits, task, metric, tie_policy), values in sorted(
        groups.items(), key=lambda item: tuple(str(part) for part in item[0])
    ):
        numbers = np.array([value for _, value in values])
        records.append(
            {
                "method": method,
                "hasher": hasher,
                "bits": bits,
                "task": task,
                "metric": metric,
                "tie_policy": tie_policy,
                "value": float(numbers.mean()),
                "std": float(numbers.std()),
                "seeds": [seed for seed, _ in values],
                "per_seed": numbers.tolist(),
            }
        )
    return records, curves


def resumed_cells(finished: list[dict[str, Any]]) -> dict[str, Any]:
    """How many cells resumed an interrupted process, and the seconds those earlier processes spent.

    Parameters
    ----------
    finished : list of dict
        The cells' results.

    Returns
    -------
    dict
        ``cells`` (count) and ``earlier_seconds`` (already part of those cells' ``total``).
    """
    earlier = [r["seconds"]["earlier_processes"] for r in finished if r["seconds"].get("earlier_processes")]
    return {"cells": len(earlier), "earlier_seconds": float(sum(earlier))}


def _other_threads_note(cached: dict[str, Any]) -> str:
    """A note for a reused cell computed with another thread count than this process uses ('' if not)."""
    stored, current = cached.get("threads"), torch_threads()
    if cached["method"] == "random" or stored is None or stored == current:
        return ""
    return (
        f" (computed with {stored} thread(s), this run uses {current}: its sums ran in another order, "
        "which can move one seed's MAP in the second decimal; delete the cell to recompute it)"
    )


def describe_methods(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Label, provider and tags of every method in ``results`` (so reports need no plugin)."""
    described: dict[str, dict[str, Any]] = {}
    for name in sorted({r["method"] for r in results} - {"random"}):
        entry = method_registry().get(name)
        method = entry.load()
        described[name] = {
            "label": method.label(),
            "summary": entry.spec.summary,
            "provider": entry.plugin.provider,
            "tags": method.tags.as_dict(),
        }
    return described


def fit_seconds(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread of each method's fit time per hasher and code length (trained cells only)."""
    groups: dict[tuple[str, str | None, int], list[float]] = {}
    for result in results:
        if "fit" in result["seconds"]:
            key = (result["method"], result["hasher"], result["bits"])
            groups.setdefault(key, []).append(float(result["seconds"]["fit"]))
    return [
        {
            "method": method,
            "hasher": hasher,
            "bits": bits,
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "per_seed": values,
        }
        for (method, hasher, bits), values in sorted(groups.items(), key=lambda item: str(item[0]))
    ]


def candidate_scores(
    results: list[dict[str, Any]], hasher: str | None, bits: int, config: BenchConfig
) -> list[list[float]]:
    """Per tuning candidate of ``hasher`` at ``bits``, its validation scores in seed order."""
    assert hasher is not None  # tuning candidates belong to a DDCMH hasher
    grid = tuning_candidates(config, hasher)
    members: list[list[tuple[int, float]]] = [[] for _ in grid]
    for result in results:
        if result.get("candidate") is not None and (result["hasher"], result["bits"]) == (hasher, bits):
            score = validation_score(result["report"]["validation_map"], config.tune_objective)
            members[result["candidate"]].append((result["seed"], score))
    return [[score for _, score in sorted(values)] for values in members]


def select_tuned_cells(
    results: list[dict[str, Any]], config: BenchConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep, per hasher and code length, only the tuning candidate with the best validation score.

    The score of a cell is :func:`~ddcmh_core.tuning.validation_score` of the validation MAP
    in its report (``config.tune_objective``), averaged over the seeds that finished; test figures
    play no part. Returns the kept cell results (untuned ones unchanged) and one record per hasher
    and code length with every candidate's scores.
    """
    tuned: dict[tuple[str | None, int], list[dict[str, Any]]] = {}
    kept = []
    for result in results:
        if result.get("candidate") is None:
            kept.append(result)
        else:
            tuned.setdefault((result["hasher"], result["bits"]), []).append(result)
    records = []
    for (hasher, bits), group in sorted(tuned.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        assert hasher is not None
        grid = tuning_candidates(config, hasher)
        by_candidate: list[list[dict[str, Any]]] = [[] for _ in grid]
        for result in group:
            by_candidate[result["candidate"]].append(result)
        scores = candidate_scores(group, hasher, bits, config)
        complete = max(len(values) for values in scores)
        chosen = choose_candidate([values if len(values) == complete else [] for values in scores])
        kept += by_candidate[chosen]
        records.append(
            {
                "hasher": hasher,
                "bits": bits,
                "objective": config.tune_objective,
                "strategy": config.tune_strategy,
                "chosen": chosen,
                "candidates": [
                    {
                        "candidate": index,
                        "overrides": grid[index],
                        "seeds": sorted(r["seed"] for r in members),
                        "scores": values,
                        "mean_score": sum(values) / len(values) if values else None,
                    }
                    for index, (members, values) in enumerate(zip(by_candidate, scores, strict=True))
                ],
            }
        )
    return kept, records


def _device_description(requested: str) -> str:
    import platform

    import torch

    from ..engine.device import resolve_device

    device = resolve_device(requested)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
