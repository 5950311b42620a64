"""Training of one hash network on per-bit targets, and the optimiser and batch helpers of the deep methods.

:func:`train_hash_network` is an :class:`~ddcmh_core.engine.epoch_loop.EpochTask` run by
:func:`~ddcmh_core.engine.epoch_loop.run_epochs`: sigmoid cross-entropy on per-bit targets, used
for Stage 2 (image network on Stage-1 codes) and Stage 3 (text network on reconstructed codes).
Each sample's loss depends only on that sample, so an epoch costs O(n).

Reproducibility: the shuffling of epoch ``e`` comes from a generator seeded with ``(seed, e)``
and the torch RNG state is saved in every checkpoint, so a run resumed from the checkpoint of
epoch ``e`` continues exactly as the uninterrupted run would have (on CPU).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .config import TrainingConfig
from .device import DistributedContext, autocast, distributed_context
from .epoch_loop import (
    EpochTask,
    ProgressCallback,
    TrainingResult,
    Validation,
    format_seconds,
    run_epochs,
)
from .inference import PassProgress, batches_ahead
from .sources import BatchSource

Validator = Callable[[nn.Module], float]


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


class BatchProgress(PassProgress):
    """Per-batch progress lines inside a slow epoch: rows done, rows per second and the epoch's ETA.

    Nothing is printed while an epoch is quick: the first line comes once ``quiet_seconds`` have
    passed, later ones at most every ``every_seconds`` (the rules of :class:`PassProgress`), so a
    CPU epoch of a CNN on photos shows it is moving while an MLP epoch of a second stays at one
    line per epoch. The epoch's last batch prints nothing: the per-epoch line says the rest.

    Parameters
    ----------
    progress : callable or None
        Receives the lines; None prints nothing.
    label : str
        Name at the start of each line (as in the per-epoch lines).
    quiet_seconds, every_seconds : float, optional
        Delay before the first line, and between two lines.
    clock : callable
        Seconds (``time.perf_counter``); replaceable in tests.
    """

    def __init__(
        self,
        progress: ProgressCallback | None,
        label: str,
        *,
        quiet_seconds: float | None = None,
        every_seconds: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(
            progress, label, 0, quiet_seconds=quiet_seconds, every_seconds=every_seconds, clock=clock
        )
        self.epoch = 0

    def start(self, epoch: int, total_rows: int) -> None:
        """An epoch (0-based) of ``total_rows`` rows begins."""
        self.epoch = epoch
        self.restart(total_rows)

    def update(self, rows_done: int) -> None:
        """``rows_done`` rows of the epoch are trained; print a line when one is due."""
        if rows_done < self.total:
            super().update(rows_done)

    def line(self, done: int, rate: float) -> str:
        """``[label] epoch N: done/total rows, rate rows/s, epoch ETA ...``."""
        eta = (self.total - done) / rate if rate > 0 else math.inf
        return (
            f"[{self.label}] epoch {self.epoch + 1}: {done}/{self.total} rows, {rate:.1f} rows/s, "
            f"epoch ETA {format_seconds(eta)}"
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
