"""The reference numbers every port is held to: the authors' code run on Wikipedia.

They live in ``wikipedia_reference.toml`` beside this module, with their provenance (ddcmh's
BASELINES.md section c.5b): the one place the benchmark, the fidelity tests and the results page
read them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import tomllib

TASKS = ("image->text", "text->image")


@dataclass(frozen=True)
class ReferenceTable:
    """Reference MAP per method, code length and task, with the protocol they were measured under."""

    protocol: dict[str, Any]
    values: dict[str, dict[int, dict[str, float]]]

    def value(self, method: str, bits: int, task: str) -> float | None:
        """The reference MAP of ``method`` at ``bits`` for ``task``; None where there is none."""
        return self.values.get(method, {}).get(bits, {}).get(task)


@cache
def wikipedia_reference() -> ReferenceTable:
    """The §c.5b table of the authors' code on Wikipedia (seed 1, tie-aware MAP@all)."""
    text = resources.files("ddcmh_baselines").joinpath("wikipedia_reference.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    values = {
        method: {int(bits): dict(zip(TASKS, pair, strict=True)) for bits, pair in cells.items()}
        for method, cells in raw["methods"].items()
    }
    return ReferenceTable(protocol=raw["protocol"], values=values)
