"""Device choice, mixed precision and the (optional) distributed context."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import InputError


def resolve_device(requested: str = "auto") -> torch.device:
    """Return the device to train on: CUDA when present for 'auto', else CPU.

    Under ``torchrun`` with CUDA, each process takes the GPU of its ``LOCAL_RANK``.

    Raises
    ------
    InputError
        When 'cuda' is requested on a machine without CUDA.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise InputError(f"argument 'device': expected 'auto', 'cpu' or 'cuda', got {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("argument 'device': 'cuda' was requested but no CUDA device is available")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[object]:
    """Mixed-precision context on CUDA (float16), a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class DistributedContext:
    """Rank and world size of this process (1 process when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


def distributed_context() -> DistributedContext:
    """The current process group's context (a single process if none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size())
    return DistributedContext()


@contextlib.contextmanager
def process_group_from_environment(backend: str | None = None) -> Iterator[DistributedContext]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Outside torchrun (no ``WORLD_SIZE`` > 1) this does nothing. The backend defaults to NCCL on
    CUDA and gloo otherwise.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        yield distributed_context()
        return
    chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=chosen)
    try:
        yield distributed_context()
    finally:
        dist.destroy_process_group()
