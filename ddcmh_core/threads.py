"""How many threads ddcmh's numerical libraries use: from the cores a process may run on.

torch and the BLAS libraries under numpy and scipy each start one thread per *machine* core by
default. Several processes on a small machine (a ``--jobs`` run, or two runs side by side) then
oversubscribe it, and small networks slow down many times over while threads wait on each other.
:func:`configure_threads` gives each library the process's share of the cores it may use.

Processes that know nothing of each other (two runs started side by side) cannot share the cores
that way. What makes them slow is OpenMP's default of *spinning* while a thread waits for the next
parallel region: a spinning thread holds a core that the other process needs. Importing
``ddcmh_core`` therefore asks OpenMP to let waiting threads sleep (:func:`prefer_passive_waiting`),
unless ``OMP_WAIT_POLICY`` is already set. ``benchmarks/bench_concurrency.py`` measures the effect.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

THREAD_ENVIRONMENT = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WAIT_POLICY_ENVIRONMENT = "OMP_WAIT_POLICY"
_limits: Any = None  # the threadpoolctl limiter kept alive for the life of the process


def prefer_passive_waiting() -> str:
    """Let idle OpenMP threads sleep instead of spinning, unless ``OMP_WAIT_POLICY`` says otherwise.

    OpenMP reads the variable once, when its runtime is loaded (by ``import torch`` or by
    scikit-learn), so this runs when ``ddcmh_core`` is imported, before either; child processes
    inherit it. A process alone on its cores loses little (a thread wakes in microseconds); several
    processes on the same cores no longer take turns at spinning. ``OMP_WAIT_POLICY=ACTIVE`` brings
    back spinning for a machine that runs one job at a time.

    Returns
    -------
    str
        The wait policy now in the environment (``"PASSIVE"`` unless the user chose another).
    """
    return os.environ.setdefault(WAIT_POLICY_ENVIRONMENT, "PASSIVE")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's core count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def torch_threads() -> int:
    """The intra-op threads torch uses in this process now (what :func:`configure_threads` set)."""
    import torch

    return int(torch.get_num_threads())


def thread_counts(thread_numbers: Iterable[int | None]) -> dict[str, int]:
    """How many cells ran with each thread count: ``{"1": 4, "2": 2}``, ``"unrecorded"`` for ``None``.

    The thread count does not change what a cell computes in exact arithmetic, so it is not part of
    a cell's fingerprint; in floating point it changes the order of sums, which can move one seed's
    MAP in the second decimal. Results say which counts their cells ran with.
    """
    counts = Counter(None if number is None else int(number) for number in thread_numbers)
    recorded = sorted(number for number in counts if number is not None)  # 2 before 10
    ordered = {str(number): counts[number] for number in recorded}
    if None in counts:
        ordered["unrecorded"] = counts[None]
    return ordered


def threads_per_job(jobs: int = 1, threads: int | None = None) -> int:
    """Threads for each of ``jobs`` processes: ``threads`` when given, else an equal share of the cores."""
    if threads is not None:
        return max(1, int(threads))
    return max(1, usable_cores() // max(1, jobs))


def configure_threads(threads: int) -> int:
    """Use ``threads`` threads in torch (intra-op), in the BLAS libraries, and in child processes.

    Returns ``threads``. Child processes (data-loader workers, ``--jobs`` workers) inherit the
    limit through the ``OMP_NUM_THREADS`` family of environment variables.
    """
    global _limits
    for name in THREAD_ENVIRONMENT:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        _limits = threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        _limits = None
    import torch

    torch.set_num_threads(threads)
    return threads
