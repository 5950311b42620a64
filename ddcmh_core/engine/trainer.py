"""The epoch loop of the deep methods, and training of one hash network on per-bit targets.

:func:`run_epochs` is the one training loop: resume from a checkpoint, epochs, validation with
patience early stopping, the best weights, the per-epoch history, an atomic checkpoint after
every epoch and progress lines with an ETA. What an epoch does is an :class:`EpochTask`.

:func:`train_hash_network` is such a task: sigmoid cross-entropy on per-bit targets, used for
Stage 2 (image network on Stage-1 codes) and Stage 3 (text network on reconstructed codes). Each
sample's loss depends only on that sample, so an epoch costs O(n).

Reproducibility: the shuffling of epoch ``e`` comes from a generator seeded with ``(seed, e)``
and the torch RNG state is saved in every checkpoint, so a run resumed from the checkpoint of
epoch ``e`` continues exactly as the uninterrupted run would have (on CPU).
"""

from __future__ import annotations

import abc
import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import NumericalError
from .abandon import TrainingAbandoned, abandon_verdict
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .device import DistributedContext, autocast, distributed_context
from .epoch_sampling import LoopTiming, active_sampler
from .sources import BatchSource

ProgressCallback = Callable[[str], None]
Validator = Callable[[nn.Module], float]


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
        eta = "" if status.stop else f" ETA {_format_seconds(status.eta_seconds)}"
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
        state.record_validation(task, epoch, validation)
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

    def record_validation(self, task: EpochTask, epoch: int, validation: Validation | None) -> None:
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


def parameter_groups(network: nn.Module, config: TrainingConfig) -> list[dict[str, Any]]:
    """The trainable parameters in groups of one learning rate, each with its ``lr_scale``.

    One group at ``learning_rate``, unless the network has a CNN ``body`` and
    ``backbone_rate_scale`` is below 1: then the other parameters (hash layer, head, feature norm) come
    first at ``learning_rate`` and the body's follow at ``learning_rate * backbone_rate_scale``. A
    training loop that sets the rate itself multiplies by each group's ``lr_scale``.
    """
    trainable = [p for p in network.parameters() if p.requires_grad]
    body = getattr(network, "body", None)
    if config.backbone_rate_scale == 1.0 or not isinstance(body, nn.Module):
        return [{"params": trainable, "lr": config.learning_rate, "lr_scale": 1.0}]
    in_body = {id(p) for p in body.parameters()}
    shares = (
        ([p for p in trainable if id(p) not in in_body], 1.0),
        ([p for p in trainable if id(p) in in_body], config.backbone_rate_scale),
    )
    return [
        {"params": parameters, "lr": config.learning_rate * share, "lr_scale": share}
        for parameters, share in shares
        if parameters
    ]


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    """Set the rate of a loop that schedules it itself: each group at ``rate`` times its ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = rate * group.get("lr_scale", 1.0)


def make_optimizer(network: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """The optimiser a :class:`TrainingConfig` names, over :func:`parameter_groups`."""
    groups = parameter_groups(network, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule a :class:`TrainingConfig` names (None for a constant rate)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(config.max_epochs // 3, 1), gamma=0.1)
    return None


def epoch_order(indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The shuffled training order of one epoch (a pure function of seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(indices)


def epoch_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``order`` cut into batches of ``batch_size``.

    A last batch of one row is dropped (it breaks batch normalisation) unless the epoch has a
    single row.
    """
    batches = [order[begin : begin + batch_size] for begin in range(0, len(order), batch_size)]
    if len(order) > 1:
        batches = [rows for rows in batches if len(rows) >= 2]
    return batches


def _unwrap(network: nn.Module) -> nn.Module:
    return network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network


def train_hash_network(
    network: nn.Module,
    source: BatchSource,
    targets: np.ndarray,
    train_indices: np.ndarray,
    config: TrainingConfig,
    *,
    validate: Validator | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    mixed_precision: bool = False,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    label: str = "network",
    curve: str | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> TrainingResult:
    """Fit ``network`` so that its logits predict ``targets`` bit by bit.

    Parameters
    ----------
    network : torch.nn.Module
        Maps a batch from ``source`` to (batch, n_bits) logits. Trained in place; on return it
        holds the weights of the best validation epoch.
    source : BatchSource
        The input view.
    targets : ndarray of shape (len(source), n_bits)
        Targets in [0, 1] for every row of ``source`` (rows outside ``train_indices`` unused).
    train_indices : ndarray of int
        Rows to train on.
    config : TrainingConfig
    validate : callable, optional
        ``validate(network) -> score`` (higher is better, e.g. validation MAP), called after each
        epoch with the network in eval mode; drives early stopping and the choice of weights.
    seed : int
        Seed of shuffling and of the torch RNG (dropout).
    device : torch.device, optional
        Defaults to the device of the network's parameters.
    mixed_precision : bool
        Autocast on CUDA.
    checkpoint_path : Path, optional
        Written atomically after every epoch (rank 0 only).
    resume : bool
        Continue from ``checkpoint_path`` when it exists.
    progress : callable, optional
        Receives one line per epoch (stage, epoch, loss, validation, ETA) and, inside an epoch
        that lasts more than a few seconds, a line every ten seconds (:class:`BatchProgress`).
    label : str
        Name used in progress lines.
    curve : str, optional
        The kind of run an abandonment rule compares it with (see :func:`run_epochs`).
    fingerprint : dict, optional
        The run's fingerprint, saved in every checkpoint and checked on resume (see
        :func:`run_epochs`).

    Returns
    -------
    TrainingResult

    Raises
    ------
    CheckpointError
        When resuming from a checkpoint that is unreadable or of another format version.
    RunMismatchError
        When resuming from a checkpoint that a run with another fingerprint wrote.
    TrainingAbandoned
        When an installed abandonment rule stops the run.
    """
    device = device or next(network.parameters()).device
    task = _HashNetworkTask(
        network,
        source,
        targets,
        train_indices,
        config,
        validate,
        seed,
        device,
        mixed_precision,
        BatchProgress(progress, label),
    )
    return run_epochs(
        task,
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=seed,
        checkpoint_path=checkpoint_path,
        resume=resume,
        progress=progress,
        label=label,
        map_location=device,
        curve=curve,
        fingerprint=fingerprint,
    )


def batches_ahead(
    source: BatchSource, batches: Sequence[np.ndarray], *, train: bool
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(rows, batch)`` for each of ``batches``, the next one assembled while the caller works.

    A source with ``submit_batch`` (photos: :meth:`ImageFileSource.submit_batch`) gets batch
    ``k + 1`` submitted before batch ``k`` is handed out, so decoding overlaps training and at
    most two batches are held at a time; other sources are read one batch at a time. A failure
    in the background (a photo that does not decode) is raised here, naming the file.
    """
    submit = getattr(source, "submit_batch", None)
    if submit is None:
        for rows in batches:
            yield rows, source.batch(rows, train=train)
        return
    pending = submit(batches[0], train=train) if batches else None
    for position, rows in enumerate(batches):
        current = pending
        pending = submit(batches[position + 1], train=train) if position + 1 < len(batches) else None
        assert current is not None
        yield rows, current.result()


class BatchProgress:
    """Per-batch progress lines inside a slow epoch: rows done, rows per second and the epoch's ETA.

    Nothing is printed while an epoch is quick: the first line comes once ``quiet_seconds`` have
    passed, later ones at most every ``every_seconds``, so a CPU epoch of a CNN on photos shows
    it is moving while an MLP epoch of a second stays at one line per epoch.

    Parameters
    ----------
    progress : callable or None
        Receives the lines; None prints nothing.
    label : str
        Name at the start of each line (as in the per-epoch lines).
    quiet_seconds, every_seconds : float
        Delay before the first line, and between two lines.
    clock : callable
        Seconds (``time.perf_counter``); replaceable in tests.
    """

    def __init__(
        self,
        progress: ProgressCallback | None,
        label: str,
        *,
        quiet_seconds: float = 5.0,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.progress, self.label, self.clock = progress, label, clock
        self.quiet_seconds, self.every_seconds = quiet_seconds, every_seconds
        self.epoch, self.total, self.started, self.last = 0, 0, 0.0, -math.inf

    def start(self, epoch: int, total_rows: int) -> None:
        """An epoch (0-based) of ``total_rows`` rows begins."""
        self.epoch, self.total = epoch, total_rows
        self.started, self.last = self.clock(), -math.inf

    def update(self, rows_done: int) -> None:
        """``rows_done`` rows of the epoch are trained; print a line when one is due."""
        if self.progress is None:
            return
        now = self.clock()
        elapsed = now - self.started
        if elapsed < self.quiet_seconds or now - self.last < self.every_seconds or rows_done >= self.total:
            return
        self.last = now
        rate = rows_done / elapsed if elapsed > 0 else math.inf
        eta = (self.total - rows_done) / rate if rate > 0 else math.inf
        self.progress(
            f"[{self.label}] epoch {self.epoch + 1}: {rows_done}/{self.total} rows, {rate:.1f} rows/s, "
            f"epoch ETA {_format_seconds(eta)}"
        )


class _HashNetworkTask(EpochTask):
    """One epoch of :func:`train_hash_network`: per-bit sigmoid cross-entropy, sharded under DDP."""

    def __init__(
        self,
        network: nn.Module,
        source: BatchSource,
        targets: np.ndarray,
        train_indices: np.ndarray,
        config: TrainingConfig,
        validate: Validator | None,
        seed: int,
        device: torch.device,
        mixed_precision: bool,
        batch_progress: BatchProgress | None = None,
    ) -> None:
        self.context: DistributedContext = distributed_context()
        self.batch_progress = batch_progress if self.context.is_main else None
        network.to(device)
        self.core = network
        self.network = network
        if self.context.active:
            device_ids = [device.index] if device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
        self.source, self.train_indices, self.config = source, train_indices, config
        self.validator, self.has_validation = validate, validate is not None
        self.seed, self.device, self.mixed_precision = seed, device, mixed_precision
        self.optimizer = make_optimizer(network, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=mixed_precision and device.type == "cuda")
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        self.loss_function = nn.BCEWithLogitsLoss()

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch; return its mean ``loss`` (over all ranks)."""
        context, device, config = self.context, self.device, self.config
        self.network.train()
        order = epoch_order(self.train_indices, self.seed, epoch)
        if context.active:
            per_rank = len(order) // context.world_size
            order = order[context.rank :: context.world_size][:per_rank]
        total_loss = 0.0
        total_rows = 0
        if self.batch_progress is not None:
            self.batch_progress.start(epoch, len(order))
        batches = epoch_batches(order, config.batch_size)
        for batch_rows, batch in batches_ahead(self.source, batches, train=True):
            inputs = batch.to(device, non_blocking=True)
            batch_targets = self.targets[torch.from_numpy(batch_rows)].to(device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(device, self.mixed_precision):
                logits = self.network(inputs)
                loss = self.loss_function(logits.float(), batch_targets)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total_loss += float(loss.detach()) * len(batch_rows)
            total_rows += len(batch_rows)
            if self.batch_progress is not None:
                self.batch_progress.update(total_rows)
        if self.scheduler is not None:
            self.scheduler.step()
        mean_loss = total_loss / max(total_rows, 1)
        if context.active:
            reduced = torch.tensor([total_loss, float(total_rows)], dtype=torch.float64)
            dist.all_reduce(reduced)
            mean_loss = float(reduced[0] / reduced[1].clamp(min=1.0))
        return {"loss": mean_loss}

    def validate(self) -> Validation | None:
        """The validator's score of the network, in eval mode without gradients."""
        if self.validator is None:
            return None
        self.network.eval()
        with torch.no_grad():
            return Validation(float(self.validator(self.core)))

    def best_state(self) -> dict[str, Any]:
        """A copy of the network's weights."""
        return copy.deepcopy(self.core.state_dict())

    def restore_best(self, state: dict[str, Any] | None) -> None:
        """Load the kept weights and leave the network in eval mode."""
        if state is not None:
            self.core.load_state_dict(state)
        self.core.eval()

    def checkpoint_state(self) -> dict[str, Any]:
        """Network, optimiser and scheduler."""
        return {
            "network": self.core.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`checkpoint_state`."""
        self.core.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])

    def progress_fields(self, entry: dict[str, Any]) -> str:
        """`` loss <mean loss>``."""
        return f" loss {entry['loss']:.4f}"


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@torch.no_grad()
def predict_logits(
    network: nn.Module,
    source: BatchSource,
    indices: np.ndarray | None = None,
    *,
    batch_size: int = 1024,
    device: torch.device | None = None,
    mixed_precision: bool = False,
) -> np.ndarray:
    """Logits of the network in eval mode for rows ``indices`` (all rows by default)."""
    device = device or next(network.parameters()).device
    rows = np.arange(len(source)) if indices is None else np.asarray(indices)
    was_training = network.training
    network.eval()
    outputs = []
    with contextlib.ExitStack():
        for begin in range(0, len(rows), batch_size):
            inputs = source.batch(rows[begin : begin + batch_size], train=False).to(device)
            with autocast(device, mixed_precision):
                outputs.append(network(inputs).float().cpu().numpy())
    network.train(was_training)
    n_bits = getattr(_unwrap(network), "n_bits", None)
    if not outputs:
        return np.zeros((0, n_bits or 0), dtype=np.float32)
    return np.concatenate(outputs)


def encode_with(
    network: nn.Module,
    source: BatchSource,
    indices: np.ndarray | None = None,
    **options: Any,
) -> np.ndarray:
    """Codes ``[logit > 0]`` as uint8 {0,1} of shape (n, n_bits).

    Raises
    ------
    NumericalError
        If a logit is NaN or infinite (the network's weights are not finite: a diverged training
        or a damaged model), instead of turning it into a code bit.
    """
    logits = predict_logits(network, source, indices, **options)
    bad_rows = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if bad_rows.size:
        raise NumericalError(
            f"{type(_unwrap(network)).__name__}: the network's output is NaN or infinite for "
            f"{bad_rows.size} of {len(logits)} rows (first: row {int(bad_rows[0])}); its weights are "
            "not finite (training diverged: lower the learning rate) or the model file is damaged"
        )
    return np.ascontiguousarray(logits > 0, dtype=np.uint8)
