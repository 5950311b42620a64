"""Training of one hash network on per-bit targets (sigmoid cross-entropy), with early stopping.

Used for Stage 2 (image network on Stage-1 codes) and Stage 3 (text network on reconstructed
codes). Each sample's loss depends only on that sample, so an epoch costs O(n).

Reproducibility: the shuffling of epoch ``e`` comes from a generator seeded with ``(seed, e)``
and the torch RNG state is saved in every checkpoint, so a run resumed from the checkpoint of
epoch ``e`` continues exactly as the uninterrupted run would have (on CPU).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..files import atomic_path
from .config import TrainingConfig
from .device import autocast, distributed_context
from .sources import BatchSource

ProgressCallback = Callable[[str], None]
Validator = Callable[[nn.Module], float]
CHECKPOINT_FORMAT_VERSION = 1


@dataclass
class TrainingResult:
    """What a training run did.

    Attributes
    ----------
    best_epoch : int
        1-based epoch whose weights were kept (the last one without validation).
    best_score : float or None
        Validation MAP of the kept weights.
    epochs_run : int
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``validation`` (or None), ``seconds``.
    seconds : float
        Wall time of the epochs run in this call.
    """

    best_epoch: int
    best_score: float | None
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def make_optimizer(network: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """The optimiser a :class:`TrainingConfig` names, over the trainable parameters."""
    parameters = [p for p in network.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


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


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


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
        Receives one line per epoch (stage, epoch, loss, validation, ETA).
    label : str
        Name used in progress lines.

    Returns
    -------
    TrainingResult
    """
    context = distributed_context()
    device = device or next(network.parameters()).device
    network.to(device)
    core = network
    if context.active:
        device_ids = [device.index] if device.type == "cuda" else None
        network = nn.parallel.DistributedDataParallel(core, device_ids=device_ids)
    optimizer = make_optimizer(core, config)
    scheduler = make_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=mixed_precision and device.type == "cuda")
    target_tensor = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    loss_function = nn.BCEWithLogitsLoss()

    start_epoch = 0
    best_score: float | None = None
    best_epoch = 0
    best_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    epochs_without_gain = 0
    torch.manual_seed(seed)
    found = bool(resume and checkpoint_path is not None and checkpoint_path.exists())
    if context.active:  # rank 0 decides, so every rank resumes (or not) together
        flag = torch.tensor([int(found)])
        dist.broadcast(flag, src=0)
        found = bool(flag.item())
    if found and checkpoint_path is not None:
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            raise ValueError(
                f"{checkpoint_path}: checkpoint format {state.get('format_version')} unsupported"
            )
        core.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        best_score = state["best_score"]
        best_epoch = int(state["best_epoch"])
        best_state = state["best_state"]
        history = list(state["history"])
        epochs_without_gain = int(state["epochs_without_gain"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if progress and context.is_main:
            progress(f"[{label}] resumed after epoch {start_epoch}")

    started = time.perf_counter()
    epochs_run = 0
    stop = epochs_without_gain >= config.patience and validate is not None
    for epoch in range(start_epoch, config.max_epochs):
        if stop:
            break
        epoch_started = time.perf_counter()
        network.train()
        order = epoch_order(train_indices, seed, epoch)
        if context.active:
            per_rank = len(order) // context.world_size
            order = order[context.rank :: context.world_size][:per_rank]
        total_loss = 0.0
        total_rows = 0
        for begin in range(0, len(order), config.batch_size):
            batch_rows = order[begin : begin + config.batch_size]
            if len(batch_rows) < 2 and len(order) > 1:
                continue  # a batch of one breaks batch normalisation
            inputs = source.batch(batch_rows, train=True).to(device, non_blocking=True)
            batch_targets = target_tensor[torch.from_numpy(batch_rows)].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, mixed_precision):
                logits = network(inputs)
                loss = loss_function(logits.float(), batch_targets)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += float(loss.detach()) * len(batch_rows)
            total_rows += len(batch_rows)
        if scheduler is not None:
            scheduler.step()
        mean_loss = total_loss / max(total_rows, 1)
        if context.active:
            reduced = torch.tensor([total_loss, float(total_rows)], dtype=torch.float64)
            dist.all_reduce(reduced)
            mean_loss = float(reduced[0] / reduced[1].clamp(min=1.0))
        score = None
        if validate is not None:
            network.eval()
            with torch.no_grad():
                score = float(validate(core))
        improved = score is None or best_score is None or score > best_score
        if improved:
            best_score, best_epoch = score, epoch + 1
            best_state = copy.deepcopy(core.state_dict())
            epochs_without_gain = 0
        else:
            epochs_without_gain += 1
        seconds = time.perf_counter() - epoch_started
        history.append({"epoch": epoch + 1, "loss": mean_loss, "validation": score, "seconds": seconds})
        epochs_run += 1
        stop = validate is not None and epochs_without_gain >= config.patience
        if context.is_main:
            if checkpoint_path is not None:
                _atomic_torch_save(
                    {
                        "format_version": CHECKPOINT_FORMAT_VERSION,
                        "network": core.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "epoch": epoch + 1,
                        "best_score": best_score,
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "history": history,
                        "epochs_without_gain": epochs_without_gain,
                        "torch_rng": torch.get_rng_state(),
                    },
                    checkpoint_path,
                )
            if progress is not None:
                remaining = (config.max_epochs - epoch - 1) * seconds
                validation = (
                    "" if score is None else f" val MAP {score:.4f} (best {best_score:.4f} @ {best_epoch})"
                )
                eta = "" if stop else f" ETA {_format_seconds(remaining)}"
                progress(
                    f"[{label}] epoch {epoch + 1}/{config.max_epochs} loss {mean_loss:.4f}"
                    f"{validation} {seconds:.1f}s{eta}"
                )
        if context.active:
            flag = torch.tensor([int(stop)])
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
    if best_state is not None:
        core.load_state_dict(best_state)
    core.eval()
    return TrainingResult(
        best_epoch=best_epoch,
        best_score=best_score,
        epochs_run=epochs_run,
        history=history,
        seconds=time.perf_counter() - started,
    )


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
    """Codes ``[logit > 0]`` as uint8 {0,1} of shape (n, n_bits)."""
    return np.ascontiguousarray(predict_logits(network, source, indices, **options) > 0, dtype=np.uint8)
