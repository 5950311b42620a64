"""Helpers shared by the benchmark scripts: the machine they ran on, load, timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddcmh_core.threads import usable_cores

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def describe_machine(libraries: Sequence[str] = ("torch", "faiss", "scipy", "h5py")) -> list[str]:
    """Lines naming the CPU, usable cores, memory and library versions."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        memory = f"; {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    lines = [
        f"cpu: {model}; usable cores: {usable_cores()}{memory}; python {platform.python_version()}; "
        f"numpy {np.__version__}"
    ]
    for name in libraries:
        try:
            lines.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            lines.append(f"{name} not installed")
    return lines


def print_header(title: str, libraries: Sequence[str] = ("torch", "faiss", "scipy", "h5py")) -> None:
    """Print the benchmark's title and the machine it runs on."""
    print(f"== {title} ==")
    for line in describe_machine(libraries):
        print(line)
    print(f"load average: {load_average()}")


def load_average() -> str:
    """The 1-minute load average: other processes compete for the cores when it exceeds the core count."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall time and the CPU time (all threads) of that run, and its result."""
    best: tuple[float, float, Any] = (float("inf"), float("inf"), None)
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu, result), key=lambda t: t[0])
    return best


def fill_photo_cache(source: Any, block: int = 256) -> float:
    """Read every photo of an image source with a cache once, so no timed epoch decodes a JPEG.

    Returns the seconds it took (the first epoch's decoding, which the callers time apart).
    """
    started = time.perf_counter()
    for begin in range(0, len(source), block):
        source.batch(np.arange(begin, min(begin + block, len(source))), train=False)
    return time.perf_counter() - started
