"""Compact records of ``ddcmh-bench`` runs: what a results page is generated from.

A run folder's ``results.json`` holds every metric, curve and cell; the record kept beside the
documentation holds what the pages show (MAP@all under both tie policies, the random-code floor,
fit times, tuning choices) plus the provenance a reviewer needs: the exact command, versions, the
dataset fingerprint and split checksum, the machine. Pages are regenerated from records by
``ddcmh-bench report`` (see :mod:`ddcmh_core.bench.report`), so no table is edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError

RECORD_SCHEMA = 1
KEPT_METRICS = frozenset({"map@all"})
KEPT_KEYS = (
    "created",
    "complete",
    "ddcmh_version",
    "config",
    "versions",
    "device",
    "wall_seconds",
    "cell_seconds",
    "resumed_cells",
    "threads",
    "methods",
    "fit_seconds",
    "tuning",
    "command",
)
REQUIRED_KEYS = ("config", "dataset", "records")


def compact_record(results: dict[str, Any], *, command: str | None = None) -> dict[str, Any]:
    """The record of a run's ``results.json``: MAP@all records and provenance, no curves.

    Parameters
    ----------
    results : dict
        A run's ``results.json`` (or a record, which is returned unchanged but for ``command``).
    command : str, optional
        The command line that produced the run, when ``results`` does not say it.
    """
    record: dict[str, Any] = {"record_schema": RECORD_SCHEMA}
    record.update({key: results[key] for key in KEPT_KEYS if key in results})
    dataset = results["dataset"]
    record["dataset"] = {
        "name": dataset["name"],
        "fingerprint": {"sha256": dataset["fingerprint"]["sha256"]},
        "split": dataset["split"],
    }
    record["records"] = [entry for entry in results["records"] if entry["metric"] in KEPT_METRICS]
    if command is not None:
        record["command"] = command
    return record


def read_record(path: str | Path) -> dict[str, Any]:
    """A record, or a run folder's ``results.json`` (given the folder or the file).

    Raises
    ------
    InputError
        Naming the path, when it is missing, not JSON, or not a ddcmh-bench result.
    """
    source = Path(path)
    if source.is_dir():
        source = source / "results.json"
    if not source.is_file():
        raise InputError(f"{source}: no such file (give a ddcmh-bench run folder or a record .json)")
    try:
        results = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{source}: not a JSON file: {error}") from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(results, dict) or key not in results]
    if missing:
        raise InputError(f"{source}: not a ddcmh-bench result (missing {', '.join(missing)})")
    return dict(results)
