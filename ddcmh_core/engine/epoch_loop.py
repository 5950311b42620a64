"""The one epoch loop of the deep methods, and what an epoch must provide to it.

:func:`run_epochs` runs an :class:`EpochTask` (what one epoch does: a pass over the batches, a
validation, the state to keep and to checkpoint): resume from a checkpoint, epochs, validation
with patience early stopping, the best weights, the per-epoch history, an atomic checkpoint after
every epoch and progress lines with an ETA. Under ``torchrun`` every rank runs it and rank 0
decides. :func:`~ddcmh_core.engine.trainer.train_hash_network` (Stage 2 and Stage 3) and DCMH's
alternating epochs (:mod:`ddcmh_core.methods.dcmh_training`) are such tasks.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .abandon import TrainingAbandoned, abandon_verdict
from .checkpoint import load_checkpoint, save_checkpoint
from .device import DistributedContext, distributed_context
from .epoch_sampling import LoopTiming, active_sampler

ProgressCallback = Callable[[str], None]


@dataclass
class TrainingResult:
    """What a training run did.

    Attributes
    ----------
    best_epoch : int
        1-based epoch whose weights were kept (the last one without validation).
    best_score : float or None
        Validation score (MAP) of the kept weights.
    epochs_run : int
        Epochs run in this call (a resumed run does not count the earlier ones).
    history : list of dict
        Per epoch: ``epoch``, the task's own fields (``loss`` for :func:`train_hash_network`),
        ``validation`` (or None), ``seconds``.
    seconds : float
        Wall time of the epochs run in this call.
    best_detail : dict or None
        The validation detail of the kept epoch (:attr:`Validation.detail`), if the task gives one.
    """

    best_epoch: int
    best_score: float | None
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    best_detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class Validation:
    """The validation of one epoch.

    Attributes
    ----------
    score : float
        Higher is better (e.g. validation MAP); drives early stopping and the kept weights.
    detail : dict, optional
        More about it (e.g. the MAP of each direction), kept for the best epoch.
    """

    score: float
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class EpochStatus:
    """Where the loop stands after an epoch, for a progress line.

    Attributes
    ----------
    label : str
        Name of the run.
    max_epochs : int
        Upper bound on epochs.
    best_score : float or None
        Best validation score so far.
    best_epoch : int
        1-based epoch of ``best_score``.
    stop : bool
        True when this was the last epoch because of early stopping.
    eta_seconds : float
        Estimated time of the remaining epochs (this epoch's time each).
    """

    label: str
    max_epochs: int
    best_score: float | None
    best_epoch: int
    stop: bool
    eta_seconds: float


class EpochTask(abc.ABC):
    """What :func:`run_epochs` trains: one epoch's work, its validation, its state.

    Attributes
    ----------
    has_validation : bool
        Whether :meth:`validate` scores the epochs (early stopping and choice of the weights);
        without it every epoch counts as the best and training runs ``max_epochs``.
    """

    has_validation: bool = False

    @abc.abstractmethod
    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch (0-based) and return the history fields it measured (e.g. ``loss``)."""

    def validate(self) -> Validation | None:
        """Score the current weights (called after each epoch when :attr:`has_validation`)."""
        return None

    @abc.abstractmethod
    def best_state(self) -> dict[str, Any]:
        """Copies of what to keep from the current epoch should it be the best (the weights)."""

    @abc.abstractmethod
    def restore_best(self, state: dict[str, Any] | None) -> None:
        """Put back a state from :meth:`best_state` at the end (None when no epoch ran)."""

    @abc.abstractmethod
    def checkpoint_state(self) -> dict[str, Any]:
        """The task's part of a checkpoint (weights, optimisers, schedulers, ...)."""

    @abc.abstractmethod
    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Continue from a state returned by :meth:`checkpoint_state`."""

    def history_entry(
        self, epoch: int, fields: dict[str, Any], validation: Validation | None
    ) -> dict[str, Any]:
        """One epoch's history entry, without ``seconds`` (the loop appends it).

        Parameters
        ----------
        epoch : int
            0-based epoch.
        fields : dict
            What :meth:`run_epoch` returned.
        validation : Validation or None
            What :meth:`validate` returned.

        Returns
        -------
        dict
            By default ``epoch`` (1-based), the fields, then ``validation`` (the score or None).
        """
        return {"epoch": epoch + 1, **fields, "validation": None if validation is None else validation.score}

    def progress_fields(self, entry: dict[str, Any]) -> str:
        """The task's part of a progress line (e.g. ``" loss 0.1234"``), from the history entry."""
        return ""

    def progress_line(self, entry: dict[str, Any], status: EpochStatus) -> str:
        """The progress line of an epoch.

        Parameters
        ----------
        entry : dict
            The epoch's history entry.
        status : EpochStatus
            The loop's state.

        Returns
        -------
        str
            ``[label] epoch e/max<fields> val MAP s (best b @ e) t s ETA ...`` (no ETA after the
            last epoch of an early stop).
        """
        validation = ""
        if entry["validation"] is not None:
            validation = (
                f" val MAP {entry['validation']:.4f} (best {status.best_score:.4f} @ {status.best_epoch})"
            )
        eta = "" if status.stop else f" ETA {format_seconds(status.eta_seconds)}"
        return (
            f"[{status.label}] epoch {entry['epoch']}/{status.max_epochs}{self.progress_fields(entry)}"
            f"{validation} {entry['seconds']:.1f}s{eta}"
        )


def run_epochs(
    task: EpochTask,
    *,
    max_epochs: int,
    patience: int,
    seed: int,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    label: str = "network",
    map_location: torch.device | None = None,
    curve: str | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> TrainingResult:
    """Train ``task`` epoch by epoch with early stopping, checkpoints and resume.

    Under a process group (``torchrun``) every rank calls this; rank 0 decides whether to resume,
    writes the checkpoints and the progress lines, and decides when to stop. Under an
    :class:`~ddcmh_core.engine.epoch_sampling.EpochSampler` (a dry run's calibration) the loop
    runs only the sampler's first epochs and reports their time and its budget to it.

    Parameters
    ----------
    task : EpochTask
        The epoch's work and state.
    max_epochs : int
        Upper bound on epochs (counting those before a resume).
    patience : int
        Stop after this many epochs without a better validation score (with validation only).
    seed : int
        Seed of the torch RNG before the first epoch (a resumed run restores the saved state).
    checkpoint_path : Path, optional
        Written atomically after every epoch: the task's state, the loop's state and the torch
        RNG state.
    resume : bool
        Continue from ``checkpoint_path`` when it exists.
    progress : callable, optional
        Receives one line per epoch (:meth:`EpochTask.progress_line`) and one on resuming.
    label : str
        Name used in progress lines.
    map_location : torch.device, optional
        Where the tensors of a resumed checkpoint go.
    curve : str, optional
        The kind of run, for an abandonment rule installed by a tuner
        (:mod:`ddcmh_core.engine.abandon`), which compares only runs of the same kind
        (default: ``label``).
    fingerprint : dict, optional
        The run's fingerprint (:mod:`ddcmh_core.engine.fingerprint`), saved in every checkpoint;
        a resume needs the saved one to be the same.

    Returns
    -------
    TrainingResult
        On return the task holds the state of the best epoch (:meth:`EpochTask.restore_best`).

    Raises
    ------
    CheckpointError
        When resuming from a checkpoint that is unreadable or of another format version.
    RunMismatchError
        When resuming from a checkpoint that a run with another fingerprint wrote.
    TrainingAbandoned
        When an installed abandonment rule finds the run hopeless (after that epoch's checkpoint).
    """
    context = distributed_context()
    torch.manual_seed(seed)
    state = _LoopState()
    found = bool(resume and checkpoint_path is not None and checkpoint_path.exists())
    if context.active:  # rank 0 decides, so every rank resumes (or not) together
        found = _broadcast_flag(found)
    if found and checkpoint_path is not None:
        saved = load_checkpoint(checkpoint_path, map_location=map_location, fingerprint=fingerprint)
        task.load_checkpoint_state(saved["task"])
        state = _LoopState.from_checkpoint(saved)
        torch.set_rng_state(saved["torch_rng"].cpu())
        if progress and context.is_main:
            progress(f"[{label}] resumed after epoch {state.epoch}")

    started = time.perf_counter()
    epochs_run, epoch_seconds = 0, 0.0
    sampler = active_sampler()  # a dry run's calibration: only the first epochs, timed
    last_epoch = max_epochs if sampler is None else min(max_epochs, state.epoch + sampler.epochs)
    stop = state.patience_spent(task, patience)
    for epoch in range(state.epoch, last_epoch):
        if stop:
            break
        epoch_started = time.perf_counter()
        fields = task.run_epoch(epoch)
        validation = task.validate() if task.has_validation else None
        state.record_epoch(task, epoch, validation)
        stop = state.patience_spent(task, patience)
        seconds = time.perf_counter() - epoch_started
        entry = {**task.history_entry(epoch, fields, validation), "seconds": seconds}
        state.history.append(entry)
        epochs_run, epoch_seconds = epochs_run + 1, epoch_seconds + seconds
        if context.is_main:
            if checkpoint_path is not None:
                save_checkpoint(state.checkpoint(task), checkpoint_path, fingerprint=fingerprint)
            if progress is not None:
                eta = (max_epochs - epoch - 1) * seconds
                status = EpochStatus(label, max_epochs, state.best_score, state.best_epoch, stop, eta)
                progress(task.progress_line(entry, status))
        if context.active:
            stop = _broadcast_flag(stop)
        _raise_if_abandoned(context, curve or label, epoch + 1, state.best_score)
    if sampler is not None:
        sampler.record(LoopTiming(curve or label, task.has_validation, epochs_run, epoch_seconds, max_epochs))
    task.restore_best(state.best_state)
    return TrainingResult(
        best_epoch=state.best_epoch,
        best_score=state.best_score,
        epochs_run=epochs_run,
        history=state.history,
        seconds=time.perf_counter() - started,
        best_detail=state.best_detail,
    )


@dataclass
class _LoopState:
    """What :func:`run_epochs` carries from epoch to epoch, and saves in each checkpoint.

    ``epoch`` counts the epochs done (a resumed loop starts at the saved count); ``best_*`` describe
    the kept weights; ``epochs_without_gain`` counts validations since the last better score.
    """

    epoch: int = 0
    best_epoch: int = 0
    best_score: float | None = None
    best_detail: dict[str, Any] | None = None
    best_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_without_gain: int = 0

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> _LoopState:
        """The loop's state as :meth:`checkpoint` saved it."""
        return cls(
            epoch=int(saved["epoch"]),
            best_epoch=int(saved["best_epoch"]),
            best_score=saved["best_score"],
            best_detail=saved["best_detail"],
            best_state=saved["best_state"],
            history=list(saved["history"]),
            epochs_without_gain=int(saved["epochs_without_gain"]),
        )

    def record_epoch(self, task: EpochTask, epoch: int, validation: Validation | None) -> None:
        """Count 0-based ``epoch`` as done; keep the task's state when it scored best (or unscored)."""
        self.epoch = epoch + 1
        score = None if validation is None else float(validation.score)
        if score is None or self.best_score is None or score > self.best_score:
            self.best_score, self.best_epoch, self.epochs_without_gain = score, epoch + 1, 0
            self.best_detail = None if validation is None else validation.detail
            self.best_state = task.best_state()
        else:
            self.epochs_without_gain += 1

    def patience_spent(self, task: EpochTask, patience: int) -> bool:
        """Whether early stopping ends the loop (only a validated task stops early)."""
        return task.has_validation and self.epochs_without_gain >= patience

    def checkpoint(self, task: EpochTask) -> dict[str, Any]:
        """The checkpoint payload: the task's state, this state and the torch RNG state."""
        return {
            "task": task.checkpoint_state(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_detail": self.best_detail,
            "best_state": self.best_state,
            "history": self.history,
            "epochs_without_gain": self.epochs_without_gain,
            "torch_rng": torch.get_rng_state(),
        }


def _raise_if_abandoned(context: DistributedContext, curve: str, epoch: int, best: float | None) -> None:
    """Raise :class:`TrainingAbandoned` on every rank when rank 0's abandonment rule says so."""
    verdict = abandon_verdict(curve, epoch, best) if context.is_main else None
    if context.active and _broadcast_flag(verdict is not None) and verdict is None:
        verdict = "rank 0 abandoned the run"
    if verdict is not None:
        raise TrainingAbandoned(curve, epoch, verdict)


def _broadcast_flag(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank."""
    tensor = torch.tensor([int(flag)])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def format_seconds(seconds: float) -> str:
    """``seconds`` as ``"12s"`` or ``"3m05s"`` for progress lines (``"?"`` when not finite)."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
