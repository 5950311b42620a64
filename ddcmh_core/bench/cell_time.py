"""The seconds a bench cell has spent, counted across the processes that computed it.

A deep method's cell can be interrupted and resumed from its checkpoints by a later process. Timed
in the last process alone, such a cell would report only the epochs that process ran. A
:class:`CellTimeLedger` keeps the cell's running total in a small file in the cell's checkpoint
folder, written at most every few seconds while the cell trains; a resumed cell starts from it.
Time spent after the last write of an interrupted process (at most one interval) is not counted.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..files import atomic_path

__all__ = ["LEDGER_PREFIX", "CellTimeLedger"]

LEDGER_PREFIX = "seconds-"
"""Ledger files are named ``seconds-<cell key>.json`` inside the cell's checkpoint folder."""


class CellTimeLedger:
    """A cell's seconds in earlier processes, and the running total of this one.

    Parameters
    ----------
    folder : Path
        The cell's checkpoint folder (shared by the tuning candidates of one cell).
    cell_key : str
        The cell's key: each candidate keeps its own ledger.
    interval : float, default 10.0
        Least seconds between two writes of the ledger.
    """

    def __init__(self, folder: Path, cell_key: str, *, interval: float = 10.0) -> None:
        self.path = folder / f"{LEDGER_PREFIX}{cell_key}.json"
        self.interval = interval
        self.earlier_seconds = self._read()
        self._started = time.perf_counter()
        self._written = -math.inf

    def _read(self) -> float:
        """Seconds the ledger holds: 0 when there is none, or when it is unreadable."""
        try:
            seconds = float(json.loads(self.path.read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0
        return seconds if math.isfinite(seconds) and seconds > 0 else 0.0

    def elapsed(self) -> float:
        """Seconds in earlier processes plus those since this ledger was opened."""
        return self.earlier_seconds + time.perf_counter() - self._started

    def tick(self) -> None:
        """Write the running total when the last write is ``interval`` seconds old."""
        now = time.perf_counter()
        if now - self._written >= self.interval and self.path.parent.is_dir():
            with atomic_path(self.path) as temporary:
                temporary.write_text(json.dumps({"seconds": self.elapsed()}))
            self._written = now

    def close(self) -> None:
        """Forget the ledger once the cell's result is saved (a later run reuses that instead)."""
        self.path.unlink(missing_ok=True)
