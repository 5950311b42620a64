"""Helpers of the resume tests: ddcmh-bench results without what differs between equal runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Keys whose values differ between two runs that computed the same: times, dates, the command,
#: the output folder, how many cells resumed after an interruption.
VOLATILE_KEYS = frozenset({"created", "command", "out", "resumed_cells"})


def comparable(value: Any) -> Any:
    """``value`` without timing fields (any key containing ``seconds``) and :data:`VOLATILE_KEYS`."""
    if isinstance(value, dict):
        return {
            key: comparable(item)
            for key, item in value.items()
            if "seconds" not in key and key not in VOLATILE_KEYS
        }
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def read_results(out: Path) -> Any:
    """The comparable content of ``out/results.json``."""
    return comparable(json.loads((out / "results.json").read_text()))


def first_difference(left: Any, right: Any, where: str = "results") -> str | None:
    """Where two comparable results first differ (None when they are equal), for assert messages."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right), key=str):
            found = first_difference(left.get(key), right.get(key), f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    return None if left == right else f"{where}: {left!r} != {right!r}"
