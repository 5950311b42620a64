"""benchmarks/bench_gpu.py runs on a CPU (``--device cpu --quick``), so CI proves it is not broken."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, shared_data

SCRIPT = REPO_ROOT / "benchmarks" / "bench_gpu.py"


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.data
def test_quick_cpu_run_prints_every_figure() -> None:
    folder: Path = shared_data("web_news")
    run = _run("--device", "cpu", "--quick", "--epochs", "2", "--limit", "48", "--data-dir", str(folder))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "48 photos from" in out and "mobilenet_v2 at 64 px, 32 bits" in out
    assert re.search(r"photo cache filled: [\d.]+ s", out)
    assert re.search(r"^fp32, row-major +[\d.]+ +[\d.]+ +\d+  reference$", out, re.MULTILINE), out
    faster = r"^fp32, channels-last +[\d.]+ +[\d.]+ +\d+  [\d.]+x fp32, row-major$"
    assert re.search(faster, out, re.MULTILINE), out
    assert "mixed precision" not in out and "(on a CPU autocast is off: no mixed-precision row)" in out
    # the same seed and initial weights on the same device give the same codes, bit for bit
    assert "cpu model vs cpu model (same initial weights and seed, fp32, 32 photos x 32 bits): 1.0000" in out
    assert "[fp32, channels-last] epoch 2/2" in run.stderr  # training progress goes to standard error


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_a_gpu_the_default_device_is_refused_clearly(tmp_path: Path) -> None:
    run = _run("--data-dir", str(tmp_path))
    assert run.returncode == 2 and "no CUDA device here (use --device cpu --quick)" in run.stderr
    run = _run("--device", "cpu", "--data-dir", str(tmp_path / "absent"))
    assert run.returncode == 2 and "absent does not exist" in run.stderr
