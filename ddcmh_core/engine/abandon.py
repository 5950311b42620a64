"""Abandoning hopeless training runs: how a tuner stops a candidate in the middle of its fit.

The epoch loop (:func:`~ddcmh_core.engine.epoch_loop.run_epochs`) reports the best validation score
of every epoch to the :class:`AbandonRule` installed with :func:`abandoning` (a context variable,
so no method or network code needs to know about tuning). When the rule answers that the run is
hopeless, the loop raises :class:`TrainingAbandoned`, which unwinds the whole ``fit`` of that
candidate; the tuner catches it and drops the candidate.

:class:`MedianStoppingRule` is the rule ``ddcmh_core.tuning`` uses (the median stopping rule of
Golovin et al., "Google Vizier", KDD 2017): after a grace period, a run whose best validation
score so far is below the median of what the finished runs of the same kind had reached by the
same epoch is stopped.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import DdcmhError


class TrainingAbandoned(DdcmhError):
    """Raised by the epoch loop when the installed rule finds the run hopeless."""

    def __init__(self, curve: str, epoch: int, reason: str) -> None:
        super().__init__(f"{curve}: abandoned after epoch {epoch}: {reason}")
        self.curve, self.epoch, self.reason = curve, epoch, reason


class AbandonRule(Protocol):
    """Decides, epoch by epoch, whether a training run is worth continuing."""

    def verdict(self, curve: str, epoch: int, best_score: float) -> str | None:
        """Why the run of kind ``curve`` should stop after 1-based ``epoch``, or None to go on."""
        ...


_RULE: contextvars.ContextVar[AbandonRule | None] = contextvars.ContextVar("ddcmh_abandon_rule", default=None)


@contextlib.contextmanager
def abandoning(rule: AbandonRule) -> Iterator[AbandonRule]:
    """Install ``rule`` for the training runs started inside the ``with`` block."""
    token = _RULE.set(rule)
    try:
        yield rule
    finally:
        _RULE.reset(token)


def abandon_verdict(curve: str, epoch: int, best_score: float | None) -> str | None:
    """The installed rule's verdict on a run (None without a rule or a validation score)."""
    rule = _RULE.get()
    if rule is None or best_score is None:
        return None
    return rule.verdict(curve, epoch, best_score)


@dataclass
class MedianStoppingRule:
    """Stop a run whose best score trails the median of finished runs of its kind at that epoch.

    Runs are grouped by their curve name (the training stage and kind of network: only runs of
    the same kind are compared). The tuner calls :meth:`start` before each candidate's fit and
    :meth:`finish` after a fit that was not abandoned; only finished candidates' curves count.

    Parameters
    ----------
    grace_epochs : int
        No run is stopped before this many epochs.
    min_finished : int
        Runs of the same kind that must have finished (and reached the epoch, or stopped earlier)
        before the rule stops anything.
    """

    grace_epochs: int = 10
    min_finished: int = 2
    _finished: dict[str, list[list[float]]] = field(default_factory=dict)
    _running: dict[str, list[float]] = field(default_factory=dict)

    def start(self) -> None:
        """A new candidate's fit begins."""
        self._running = {}

    def finish(self) -> None:
        """The current candidate's fit ended without being abandoned: its curves now count."""
        for curve, scores in self._running.items():
            self._finished.setdefault(curve, []).append(scores)
        self._running = {}

    def verdict(self, curve: str, epoch: int, best_score: float) -> str | None:
        """See :class:`AbandonRule`."""
        scores = self._running.setdefault(curve, [])
        del scores[epoch - 1 :]  # a resumed run repeats nothing; keep the curve aligned by epoch
        scores.extend([best_score] * (epoch - len(scores)))
        if epoch < self.grace_epochs:
            return None
        reached = [finished[min(epoch, len(finished)) - 1] for finished in self._finished.get(curve, [])]
        if len(reached) < self.min_finished:
            return None
        median = float(np.median(reached))
        if best_score < median:
            return (
                f"best validation score {best_score:.4f} is below the median {median:.4f} of "
                f"{len(reached)} finished runs at epoch {epoch}"
            )
        return None
