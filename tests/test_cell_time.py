"""A bench cell's seconds across the processes that computed it (ddcmh_core.bench.cell_time)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ddcmh_core.bench.cell_time import CellTimeLedger
from ddcmh_core.engine.fingerprint import check_discardable


def test_a_ledger_carries_the_seconds_of_an_interrupted_process_to_the_next(tmp_path: Path) -> None:
    first = CellTimeLedger(tmp_path, "ddcmh-itq-16bits-seed0", interval=0.0)
    assert first.earlier_seconds == 0.0
    time.sleep(0.05)
    first.tick()  # the process is then killed: no close
    written = json.loads(first.path.read_text())["seconds"]
    assert written >= 0.05
    check_discardable(tmp_path)  # --restart may delete a folder holding a ledger
    resumed = CellTimeLedger(tmp_path, "ddcmh-itq-16bits-seed0")
    assert resumed.earlier_seconds == pytest.approx(written)
    assert resumed.elapsed() >= written
    other = CellTimeLedger(tmp_path, "ddcmh-itq-16bits-seed0-candidate1")
    assert other.earlier_seconds == 0.0  # each tuning candidate counts its own time
    resumed.close()
    assert not resumed.path.exists()
    assert CellTimeLedger(tmp_path, "ddcmh-itq-16bits-seed0").earlier_seconds == 0.0


def test_ticks_are_throttled_and_a_missing_folder_is_left_alone(tmp_path: Path) -> None:
    ledger = CellTimeLedger(tmp_path, "cell", interval=3600.0)
    ledger.tick()
    first = ledger.path.read_text()
    time.sleep(0.02)
    ledger.tick()  # within the interval: not written again
    assert ledger.path.read_text() == first
    gone = CellTimeLedger(tmp_path / "removed", "cell", interval=0.0)
    gone.tick()
    assert not gone.path.exists()


@pytest.mark.parametrize(
    "content", ["", "{", '{"seconds": "many"}', '{"seconds": -5}', '{"seconds": NaN}', "[]"]
)
def test_a_damaged_ledger_counts_nothing(tmp_path: Path, content: str) -> None:
    (tmp_path / "seconds-cell.json").write_text(content)
    assert CellTimeLedger(tmp_path, "cell").earlier_seconds == 0.0
