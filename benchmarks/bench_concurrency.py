"""Two identical small ddcmh-bench runs one after the other, then both at once: is concurrency free?

Run: ``python benchmarks/bench_concurrency.py [--runs 2] [-- ddcmh-bench arguments...]``

Each run is a separate ``ddcmh-bench`` process (default: DDCMH + ITQ on the embedded UCI Multiple
Features, ``--quick``, 16 bits, one seed: small MLPs) with the thread settings the package picks
itself: the OMP/BLAS/MKL thread variables and ``OMP_WAIT_POLICY`` of this shell are removed from
the children's environment (importing ddcmh_core sets the wait policy). The script prints the
machine (usable cores, load average at the start), the total wall time of the runs one after the
other, the wall time of the same runs started together, and the ratio concurrent / sequential. On
N cores with N runs the target is a ratio of at most 1.0: a process's threads sleep, rather than
spin, while they wait, so that they do not hold cores the other processes need. Other processes on
the machine (see the load) make both totals longer and the ratio noisier.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import describe_machine, load_average

SMALL_RUN = ("--dataset", "uci-mfeat", "--hasher", "itq", "--bits", "16", "--seeds", "1", "--quick")
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TORCH_NUM_THREADS",
    "OMP_WAIT_POLICY",
)


def _command(arguments: Sequence[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "ddcmh_core.cli.bench", *arguments, "--out", str(out)]


def _environment() -> dict[str, str]:
    """This process's environment without thread settings: the package chooses its own."""
    return {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}


def run_together(arguments: Sequence[str], count: int, folder: Path, tag: str) -> float:
    """Start ``count`` runs at once, wait for all; their total wall time in seconds."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            _command(arguments, folder / f"{tag}-{index}"),
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(count)
    ]
    for process in processes:
        _, errors = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"ddcmh-bench exited {process.returncode}: {errors[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="how many identical runs (default 2)")
    parser.add_argument("bench", nargs="*", help="ddcmh-bench arguments after -- (default: a small UCI run)")
    arguments = parser.parse_args()
    bench = arguments.bench or list(SMALL_RUN)
    print("== Concurrent ddcmh-bench runs ==")
    for line in describe_machine(("torch",)):
        print(line)
    print(
        f"load average at the start: {load_average()}; runs: {arguments.runs} x ddcmh-bench {' '.join(bench)}"
    )
    with tempfile.TemporaryDirectory(prefix="ddcmh-concurrency-") as name:
        folder = Path(name)
        run_together(bench, 1, folder, "warm-up")  # imports and data files into the page cache
        sequential = sum(run_together(bench, 1, folder, f"sequential-{i}") for i in range(arguments.runs))
        concurrent = run_together(bench, arguments.runs, folder, "concurrent")
    print(f"sequential: {sequential:.1f} s in all ({arguments.runs} runs one after the other)")
    print(f"concurrent: {concurrent:.1f} s in all ({arguments.runs} runs started together)")
    print(f"ratio concurrent / sequential: {concurrent / sequential:.2f} (target <= 1.0)")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
