"""benchmarks/bench_images.py runs every phase on a few real photos, so CI proves it is not broken."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, shared_data

SCRIPT = REPO_ROOT / "benchmarks" / "bench_images.py"
NUMBERS = r" +[\d.]+ +[\d.]+ +\d+  "  # photos/s, s/epoch and peak MiB


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=600, check=False
    )


def _row(label: str, speed: str) -> str:
    return rf"^{re.escape(label)}{NUMBERS}{speed}$"


@pytest.mark.data
def test_every_phase_prints_its_row_against_its_references() -> None:
    folder: Path = shared_data("web_news")
    arguments = ("--limit", "12", "--image-size", "64", "--batch-size", "4", "--epochs", "1")
    run = _run(*arguments, "--data-dir", str(folder))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "12 photos from" in out and "mobilenet_v2 input 64 px; batches of 4; 1 epoch(s) per phase" in out
    ratio = r"[\d.]+x"
    expected = {
        "naive loop": "reference",
        "decode every time": rf"{ratio} naive",
        "decode, worker processes": rf"{ratio} naive, {ratio} decode",
        "cache, first epoch": rf"{ratio} naive, {ratio} decode",
        "cache, later epochs": rf"{ratio} naive, {ratio} decode",
        "frozen body, every epoch": "reference",
        "frozen features": rf"{ratio} frozen-body",
        "encode, 1,024 per pass": "reference",
        "encode, bounded batches": rf"{ratio} encode-whole",
        "fine-tune, row-major": "reference",
        "fine-tune, channels-last": rf"{ratio} fine-tune-row-major",
    }
    for label, speed in expected.items():
        assert re.search(_row(label, speed), out, re.MULTILINE), f"no row {label!r}:\n{out}"
    assert re.search(r"\(worker pool started once: [\d.]+ s, not in the epochs\)", out)
    assert re.search(r"\(features computed once: [\d.]+ s, [\d.]+ photos/s\)", out)
    assert len(re.findall(r"\(photo cache filled once: [\d.]+ s, not in the epochs\)", out)) == 2


@pytest.mark.data
def test_only_runs_the_named_phases_and_skips_references_it_was_not_given() -> None:
    folder: Path = shared_data("web_news")
    run = _run(
        "--limit", "8", "--image-size", "64", "--epochs", "1", "--only", "decode", "--data-dir", str(folder)
    )
    assert run.returncode == 0, run.stderr
    assert re.search(_row("decode every time", "reference"), run.stdout, re.MULTILINE), run.stdout
    assert "naive loop" not in run.stdout and "fine-tune" not in run.stdout


def test_bad_arguments_are_refused_before_any_work(tmp_path: Path) -> None:
    run = _run("--data-dir", str(tmp_path / "absent"))
    assert run.returncode == 2 and "--data-dir" in run.stderr and "absent does not exist" in run.stderr
    run = _run("--data-dir", str(tmp_path), "--only", "decode,warp")
    assert run.returncode == 2 and "unknown phase(s) ['warp']" in run.stderr
    assert run.stdout == ""  # nothing printed, no phase run
