"""Fault injection: a multi-cell ddcmh-bench run killed at random points, resumed each time, gives the
results of an uninterrupted run, value for value.

The run (random codes and DDCMH + LSH, 2 code lengths, 2 seeds, small networks) is first timed
uninterrupted. Then the same command, into another folder, is started ``DDCMH_FAULT_KILLS`` times
(default 5) and killed after a random delay (seeded, counted from its first output line) within
the time the uninterrupted run needed for the cells still to do, spread over the kills left,
alternately with SIGKILL and SIGINT, and finally run to the end. Its ``results.json`` must equal the
uninterrupted one's except for timings, dates, the command and the output folder. Every kill (the
signal, the delay, the exit status, the last progress line before it) is printed: run with ``-s`` to
see them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_results import first_difference, read_results

FAST_CONFIG = """
[model]
image_network = { hidden_sizes = [32], kernel_lift = "none" }
text_network = { hidden_sizes = [32], kernel_lift = "none" }
image_training = { max_epochs = 2, batch_size = 64 }
text_training = { max_epochs = 2, batch_size = 64 }
"""
KILLS = int(os.environ.get("DDCMH_FAULT_KILLS", "5"))
SEED = int(os.environ.get("DDCMH_FAULT_SEED", "14"))
BENCH = "import sys; from ddcmh_core.cli.bench import main; sys.exit(main())"


def _command(data: Path, config: Path, out: Path) -> list[str]:
    options = ["--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8,16", "--seeds", "2"]
    return [sys.executable, "-c", BENCH, *map(str, options), "--out", str(out)]


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(starting: nothing printed yet)"


def _first_line(process: subprocess.Popen[bytes], log: Path) -> float:
    """Wait until the run prints its first line (its imports are done) or ends; return the time."""
    while process.poll() is None and not log.stat().st_size:
        time.sleep(0.02)
    return time.perf_counter()


def _timed_run(command: list[str], log: Path) -> float:
    """Run to the end; the seconds from its first line to its exit (the run's own work)."""
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        began = _first_line(process, log)
        assert process.wait() == 0, log.read_text()
    return time.perf_counter() - began


def _kill_once(command: list[str], log: Path, delay: float, kill: signal.Signals) -> tuple[int, str]:
    """Start the run, send ``kill`` ``delay`` seconds after its first line; its exit status and where."""
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        began = _first_line(process, log)
        remaining = delay - (time.perf_counter() - began)
        try:
            process.wait(timeout=max(remaining, 0.0))
            return process.returncode, "finished before the signal"
        except subprocess.TimeoutExpired:
            landed = _last_line(log)
            process.send_signal(kill)
            return process.wait(timeout=300), landed


def test_random_kills_then_resume_give_the_uninterrupted_results(tiny_dataset, tmp_path):
    data, _ = tiny_dataset
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG)
    duration = _timed_run(_command(data, config, tmp_path / "reference"), tmp_path / "reference.log")
    out = tmp_path / "killed"
    n_cells = 8  # 2 seeds x 2 code lengths x (random codes, DDCMH + LSH)
    rng = np.random.default_rng(SEED)
    report = []
    for attempt in range(KILLS):
        # A random point of the work still to do (estimated from the cells already finished),
        # spread so that the kills left fall, on average, evenly over it.
        done = len(list((out / "cells").glob("*.json"))) if out.exists() else 0
        remaining = duration * max(1 - done / n_cells, 1 / n_cells)
        delay = float(rng.uniform(0.0, 2.0) * remaining / (KILLS - attempt))
        kill = signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT
        log = tmp_path / f"kill{attempt}.log"
        status, landed = _kill_once(_command(data, config, out), log, delay, kill)
        assert status in (0, 130, -signal.SIGKILL, -signal.SIGINT), log.read_text()
        report.append(
            f"kill {attempt + 1}: {kill.name} {delay:.1f}s after start-up, exit {status}, at: {landed}"
        )
    landed = [line for line in report if not line.endswith("finished before the signal")]
    assert landed, "no signal reached a running bench:\n" + "\n".join(report)
    final = subprocess.run(_command(data, config, out), capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    print(f"\nuninterrupted run: {duration:.1f}s of work; {KILLS} kills (seed {SEED}):\n" + "\n".join(report))
    results = read_results(out)
    assert json.loads((out / "results.json").read_text())["complete"] is True
    difference = first_difference(results, read_results(tmp_path / "reference"))
    assert difference is None, difference
