"""Timing a fit from the first epochs of each training loop: how ``ddcmh-bench --dry-run`` estimates.

A deep method's fit is a few training loops (:func:`~ddcmh_core.engine.epoch_loop.run_epochs`)
around work that runs once (a Stage-1 hasher, an input lift, encoding). Timed on a small sample
of the data, it grows in ways no single exponent captures: a lifted network's first layer widens
with the rows (up to its anchor count), and early stopping ends small-sample loops at a different
epoch from full-size ones. So the dry run fits each method once on the full training set with an
:class:`EpochSampler` installed (a context variable, so no method code needs to know): every loop
stops after its first :attr:`EpochSampler.epochs` epochs and records its seconds per epoch and its
epoch budget, and the estimate replaces the sampled epochs by the whole budget
(:meth:`EpochSampler.unsampled_seconds`).

A loop without validation (a refit for the epochs a validated loop chose) is counted at the largest
budget of the validated loops before it, since under the sampler its own budget is the sampled
choice. The estimate is thus an upper bound on the epochs: early stopping can only end loops sooner.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["EpochSampler", "LoopTiming", "active_sampler", "sampling_epochs"]


@dataclass(frozen=True)
class LoopTiming:
    """One training loop cut short by an :class:`EpochSampler`.

    Attributes
    ----------
    curve : str
        The kind of loop (as passed to ``run_epochs``).
    validated : bool
        Whether the loop validated after each epoch (and could stop early).
    epochs_run : int
        Epochs the loop ran before the sampler stopped it.
    seconds : float
        Wall time of those epochs (training and validation).
    budget : int
        The loop's own epoch budget (its ``max_epochs``).
    """

    curve: str
    validated: bool
    epochs_run: int
    seconds: float
    budget: int


@dataclass
class EpochSampler:
    """Cuts every training loop to its first ``epochs`` epochs and records what each would cost.

    Parameters
    ----------
    epochs : int
        Epochs each loop runs (the first carries one-off warm-up costs, so more than one gives a
        steadier per-epoch time).
    """

    epochs: int = 2
    loops: list[LoopTiming] = field(default_factory=list)

    def record(self, loop: LoopTiming) -> None:
        """Add one finished (cut) loop."""
        self.loops.append(loop)

    def unsampled_seconds(self) -> float:
        """Seconds the loops' remaining epochs would take: per-epoch time × epochs not run.

        A validated loop is counted at its budget; a loop without validation at the largest
        budget of the validated loops before it (its own, when none came before).
        """
        extra, validated_budget = 0.0, 0
        for loop in self.loops:
            if loop.validated:
                validated_budget = max(validated_budget, loop.budget)
                epochs = loop.budget
            else:
                epochs = max(loop.budget, validated_budget)
            if loop.epochs_run > 0:
                extra += loop.seconds / loop.epochs_run * max(0, epochs - loop.epochs_run)
        return extra


_SAMPLER: contextvars.ContextVar[EpochSampler | None] = contextvars.ContextVar(
    "ddcmh_epoch_sampler", default=None
)


@contextlib.contextmanager
def sampling_epochs(epochs: int = 2) -> Iterator[EpochSampler]:
    """Install a fresh :class:`EpochSampler` for the training loops started inside the block."""
    if epochs < 1:
        raise ValueError(f"sampling_epochs: epochs must be at least 1, got {epochs}")
    sampler = EpochSampler(epochs)
    token = _SAMPLER.set(sampler)
    try:
        yield sampler
    finally:
        _SAMPLER.reset(token)


def active_sampler() -> EpochSampler | None:
    """The installed sampler, or None outside :func:`sampling_epochs`."""
    return _SAMPLER.get()
