"""DCMH's training internals: its objective, the networks it builds, and its epoch.

:class:`~ddcmh_core.methods.dcmh.DCMH` (the method and its configuration) drives these through
:func:`~ddcmh_core.engine.epoch_loop.run_epochs`: :func:`build_dcmh_networks` makes the two networks,
:class:`DCMHEpochs` runs one epoch (image pass against all of ``G``, text pass against all of
``F``, then ``B``), and :func:`pairwise_batch_loss` / :func:`dcmh_objective` are the objective of a
mini-batch and of the whole training set.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..engine.config import NetworkConfig
from ..engine.device import autocast
from ..engine.epoch_loop import EpochStatus, EpochTask, Validation
from ..engine.holdout import validation_map
from ..engine.inference import batches_ahead, encode_with
from ..engine.networks import build_network, fit_input_scaling, lift_may_help
from ..engine.sources import BatchSource, rows_as_matrix
from ..engine.trainer import (
    BatchProgress,
    epoch_batches,
    epoch_order,
    make_optimizer,
    make_scheduler,
    set_learning_rate,
)
from ..linalg import column_mean
from .base import VIEWS, ProgressCallback

if TYPE_CHECKING:
    from .dcmh import DCMHConfig


class CentredInput(nn.Module):
    """Subtract a fixed mean from each input row before the wrapped network (batch-wise densify)."""

    mean: torch.Tensor

    def __init__(self, network: nn.Module, mean: np.ndarray, n_bits: int) -> None:
        super().__init__()
        self.network = network
        self.n_bits = n_bits
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The wrapped network's outputs on the centred rows."""
        dense = inputs.to_dense() if inputs.is_sparse else inputs
        return self.network(dense - self.mean.to(dense.dtype))


def similarity_block(row_labels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``S[rows, :]`` as a float tensor: 1 where two items share a label, else 0.

    Parameters
    ----------
    row_labels : Tensor of shape (b, c)
        {0,1} labels of the block's rows.
    labels : Tensor of shape (n, c)
        {0,1} labels of all training items.

    Returns
    -------
    Tensor of shape (b, n)
    """
    return (row_labels @ labels.T > 0).to(row_labels.dtype)


def pairwise_batch_loss(
    outputs: torch.Tensor,
    rows: torch.Tensor,
    own: torch.Tensor,
    other: torch.Tensor,
    codes: torch.Tensor,
    labels: torch.Tensor,
    gamma: float,
    eta: float,
) -> torch.Tensor:
    """The DCMH objective as a function of one network's outputs on a mini-batch.

    Parameters
    ----------
    outputs : Tensor of shape (b, k)
        Network outputs of the batch (with gradient).
    rows : Tensor of int, shape (b,)
        Positions of the batch in the training set.
    own : Tensor of shape (n, k)
        Current outputs of this network on all training items (rows ``rows`` already updated).
    other : Tensor of shape (n, k)
        Current outputs of the other network on all training items (``G`` when training ``f``).
    codes : Tensor of shape (n, k)
        Training codes ``B`` in {-1, +1}.
    labels : Tensor of shape (n, c)
        Training labels, {0,1}.
    gamma, eta : float
        Weights of the quantisation and balance terms.

    Returns
    -------
    Tensor
        ``sum_{i in batch, j} (log(1 + e^Theta_ij) - S_ij Theta_ij) + gamma ||B_b - outputs||^2
        + eta ||outputs^T 1 + own_rest^T 1||^2``: its gradient is the reference's ``dJ/dF_b``
        (``process_DCMH.m``). Cost O(b n k): the batch x n block is the pairwise part.
    """
    theta = 0.5 * outputs @ other.T
    similar = similarity_block(labels[rows], labels)
    likelihood = (torch.nn.functional.softplus(theta) - similar * theta).sum()
    quantisation = (codes[rows] - outputs).pow(2).sum()
    rest = own.sum(dim=0) - own[rows].sum(dim=0)
    balance = (outputs.sum(dim=0) + rest).pow(2).sum()
    return likelihood + gamma * quantisation + eta * balance


def dcmh_objective(
    image_outputs: torch.Tensor,
    text_outputs: torch.Tensor,
    codes: torch.Tensor,
    labels: torch.Tensor,
    gamma: float,
    eta: float,
    *,
    block_rows: int = 128,
) -> float:
    """The full DCMH objective, accumulated over row blocks of at most ``block_rows`` x n.

    Same value as the reference's ``calc_loss`` (``process_DCMH.m``), never forming ``Theta`` or
    ``S`` whole.
    """
    n_rows = image_outputs.shape[0]
    likelihood = 0.0
    for begin in range(0, n_rows, max(block_rows, 1)):
        block = slice(begin, begin + block_rows)
        theta = 0.5 * image_outputs[block] @ text_outputs.T
        similar = similarity_block(labels[block], labels)
        likelihood += float((torch.nn.functional.softplus(theta) - similar * theta).double().sum())
    both = (image_outputs, text_outputs)
    quantisation = sum(float((codes - outputs).double().pow(2).sum()) for outputs in both)
    balance = sum(float(outputs.double().sum(dim=0).pow(2).sum()) for outputs in both)
    return likelihood + gamma * quantisation + eta * balance


def _signs(values: torch.Tensor) -> torch.Tensor:
    """``sgn`` with ties mapped to +1."""
    return torch.where(values >= 0, 1.0, -1.0).to(values.dtype)


def resolve_lift(network: NetworkConfig, source: BatchSource) -> NetworkConfig:
    """``kernel_lift="auto"`` decided by the view's shape (:func:`lift_may_help`): DCMH trains once."""
    if network.kernel_lift != "auto":
        return network
    return network.model_copy(update={"kernel_lift": "rbf" if lift_may_help(network, source) else "none"})


def build_dcmh_networks(
    config: DCMHConfig,
    image_source: BatchSource,
    text_source: BatchSource,
    fit_rows: np.ndarray,
    device: torch.device,
) -> tuple[nn.Module, nn.Module]:
    """The image and text networks, input scaling fitted (and the text mean subtracted), on ``device``.

    Parameters
    ----------
    config : DCMHConfig
        The networks' settings, the code length, ``center_text`` and the seed (the image network
        is initialised from ``seed``, the text network from ``seed + 1``).
    image_source, text_source : BatchSource
        The training views; scaling and the text mean are fitted on their ``fit_rows``.
    fit_rows : ndarray of int
        Rows that train (the validation rows are left out of every fitted statistic).
    device : torch.device
        Where both networks are placed.

    Returns
    -------
    tuple of torch.nn.Module
        The image network and the text network (wrapped in :class:`CentredInput` when the text
        mean is subtracted outside the network).
    """
    n_bits, n_fit = config.n_bits, len(fit_rows)
    torch.manual_seed(config.seed)
    image_network = build_network(
        resolve_lift(config.image_network, image_source),
        n_bits,
        image_source.n_features,
        n_training_rows=n_fit,
    )
    fit_input_scaling(image_network, image_source, fit_rows, seed=config.seed)
    torch.manual_seed(config.seed + 1)
    text_config = resolve_lift(config.text_network, text_source)
    text_network = build_network(text_config, n_bits, text_source.n_features, n_training_rows=n_fit)
    fit_input_scaling(text_network, text_source, fit_rows, seed=config.seed)
    if config.center_text and text_source.n_features is not None:
        rows = rows_as_matrix(text_source, fit_rows)
        if config.text_network.input_scaling == "none" or sp.issparse(rows):
            text_network = CentredInput(text_network, column_mean(rows), n_bits)
    return image_network.to(device), text_network.to(device)


class DCMHEpochs(EpochTask):
    """DCMH's epoch for :func:`~ddcmh_core.engine.epoch_loop.run_epochs`: image pass, text pass, codes.

    Holds ``F`` (``image_outputs``), ``G`` (``text_outputs``) and ``B`` (``codes``) on the
    training device, the two optimisers and their schedulers (with ``final_learning_rate=None``);
    ``progress`` receives per-batch lines when a pass is slow (:class:`BatchProgress`).
    """

    def __init__(
        self,
        config: DCMHConfig,
        networks: tuple[nn.Module, nn.Module],
        sources: tuple[BatchSource, BatchSource],
        fit_rows: np.ndarray,
        validation_rows: np.ndarray,
        label_matrix: np.ndarray,
        *,
        learning_rate: Callable[[int, torch.optim.Optimizer], float],
        device: torch.device,
        mixed: bool,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.config, self.networks, self.sources = config, networks, sources
        self.batch_progress = [BatchProgress(progress, f"DCMH {view} net") for view in VIEWS]
        self.progress = progress
        self.fit_rows, self.validation_rows = fit_rows, validation_rows
        self.fit_labels, self.validation_labels = label_matrix[fit_rows], label_matrix[validation_rows]
        self.labels = torch.as_tensor(self.fit_labels, dtype=torch.float32, device=device)
        self.learning_rate, self.device, self.mixed = learning_rate, device, mixed
        self.has_validation = len(validation_rows) > 0
        self.optimizers = [make_optimizer(network, config.training) for network in networks]
        self.schedulers = (
            [make_scheduler(optimizer, config.training) for optimizer in self.optimizers]
            if config.final_learning_rate is None
            else [None, None]
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=mixed and device.type == "cuda")
        n_fit, n_bits = len(fit_rows), config.n_bits
        if config.initialization == "gaussian":
            start = np.random.default_rng([config.seed, 11]).standard_normal((2, n_fit, n_bits))
        else:
            start = np.zeros((2, n_fit, n_bits))
        self.image_outputs = torch.as_tensor(start[0], dtype=torch.float32, device=device)
        self.text_outputs = torch.as_tensor(start[1], dtype=torch.float32, device=device)
        # The first B maps exact zeros to 0, as the reference e_sign (zero start: B = 0); afterwards
        # ties go to +1.
        self.codes = torch.sign(config.gamma * (self.image_outputs + self.text_outputs))

    def objective(self) -> float:
        """The full DCMH objective at the current ``F``, ``G``, ``B``."""
        config = self.config
        return dcmh_objective(
            self.image_outputs,
            self.text_outputs,
            self.codes,
            self.labels,
            config.gamma,
            config.eta,
            block_rows=config.training.batch_size,
        )

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Image pass against all of ``G``, text pass against all of ``F``, then ``B = sign(gamma (F + G))``.

        Returns ``learning_rate``, ``objective`` (or None) and the seconds of each part.
        """
        config = self.config
        rate = self.learning_rate(epoch, self.optimizers[0])
        if config.final_learning_rate is not None:
            for optimizer in self.optimizers:
                set_learning_rate(optimizer, rate)
        passes = (
            (self.networks[0], self.optimizers[0], self.sources[0], self.image_outputs, self.text_outputs),
            (self.networks[1], self.optimizers[1], self.sources[1], self.text_outputs, self.image_outputs),
        )
        pass_seconds = []
        for view, (network, optimizer, source, own, other) in enumerate(passes):
            pass_started = time.perf_counter()
            order = epoch_order(np.arange(len(self.fit_rows)), config.seed + view, epoch)
            self._train_pass(network, optimizer, source, order, own, other, self.batch_progress[view], epoch)
            pass_seconds.append(time.perf_counter() - pass_started)
        codes_started = time.perf_counter()
        self.codes = _signs(config.gamma * (self.image_outputs + self.text_outputs))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        codes_seconds = time.perf_counter() - codes_started
        for scheduler in self.schedulers:
            if scheduler is not None:
                scheduler.step()
        return {
            "learning_rate": rate,
            "objective": self.objective() if config.compute_objective else None,
            "image_seconds": pass_seconds[0],
            "text_seconds": pass_seconds[1],
            "codes_seconds": codes_seconds,
            "training_seconds": pass_seconds[0] + pass_seconds[1] + codes_seconds,
        }

    def _train_pass(
        self,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        source: BatchSource,
        order: np.ndarray,
        own: torch.Tensor,
        other: torch.Tensor,
        progress: BatchProgress,
        epoch: int,
    ) -> None:
        """One epoch of one network; updates ``own`` (F or G) in place, batch by batch.

        Batches of photos are decoded while the previous one trains (:func:`batches_ahead`); a
        slow pass (a CNN on a CPU) prints its rows done and ETA through ``progress``.
        """
        config, device = self.config, self.device
        n_fit = len(order)
        network.train()
        batches = epoch_batches(order, config.training.batch_size)  # DCMH fits on at least 2 rows
        progress.start(epoch, n_fit)
        rows_done = 0
        training_rows = [self.fit_rows[positions] for positions in batches]
        source_batches = batches_ahead(source, training_rows, train=True)
        for positions, (_, batch) in zip(batches, source_batches, strict=True):
            inputs = batch.to(device, non_blocking=True)
            rows = torch.from_numpy(positions).to(device)
            with autocast(device, self.mixed):
                outputs = network(inputs)
            outputs = outputs.float()
            with torch.no_grad():
                own[rows] = outputs.detach()
            loss = pairwise_batch_loss(
                outputs, rows, own, other, self.codes, self.labels, config.gamma, config.eta
            )
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss / (n_fit * len(positions))).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            rows_done += len(positions)
            progress.update(rows_done)

    def validate(self) -> Validation | None:
        """Mean validation MAP of both directions (database: the fitting rows); detail: each one."""
        # A slow pass (a CNN on photos, on a CPU) prints its progress: every fitting photo is encoded.
        options: dict[str, Any] = {
            "device": self.device,
            "mixed_precision": self.mixed,
            "progress": self.progress,
        }
        (image_network, text_network), (image_source, text_source) = self.networks, self.sources
        image_options = {**options, "label": "DCMH validation: image codes"}
        text_options = {**options, "label": "DCMH validation: text codes"}
        query_image = encode_with(image_network, image_source, self.validation_rows, **image_options)
        query_text = encode_with(text_network, text_source, self.validation_rows, **text_options)
        database_image = encode_with(image_network, image_source, self.fit_rows, **image_options)
        database_text = encode_with(text_network, text_source, self.fit_rows, **text_options)
        maps = (
            validation_map(query_image, database_text, self.validation_labels, self.fit_labels),
            validation_map(query_text, database_image, self.validation_labels, self.fit_labels),
        )
        return Validation(float(np.mean(maps)), {"image->text": maps[0], "text->image": maps[1]})

    def history_entry(
        self, epoch: int, fields: dict[str, Any], validation: Validation | None
    ) -> dict[str, Any]:
        """``epoch``, ``learning_rate``, ``objective``, ``validation``, ``validation_map``, the seconds."""
        timings = {key: value for key, value in fields.items() if key.endswith("_seconds")}
        return {
            "epoch": epoch + 1,
            "learning_rate": fields["learning_rate"],
            "objective": fields["objective"],
            "validation": None if validation is None else validation.score,
            "validation_map": None if validation is None else dict(validation.detail or {}),
            **timings,
        }

    def best_state(self) -> dict[str, Any]:
        """Copies of both networks' weights."""
        image_network, text_network = self.networks
        return {
            "image": copy.deepcopy(image_network.state_dict()),
            "text": copy.deepcopy(text_network.state_dict()),
        }

    def restore_best(self, state: dict[str, Any] | None) -> None:
        """Load the kept weights of both networks; leave them in eval mode."""
        for network, view in zip(self.networks, ("image", "text"), strict=True):
            if state is not None:
                network.load_state_dict(state[view])
            network.eval()

    def checkpoint_state(self) -> dict[str, Any]:
        """Both networks, optimisers and schedulers, and ``F``, ``G``, ``B``."""
        return {
            "image_network": self.networks[0].state_dict(),
            "text_network": self.networks[1].state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
            "F": self.image_outputs,
            "G": self.text_outputs,
            "B": self.codes,
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`checkpoint_state`."""
        self.networks[0].load_state_dict(state["image_network"])
        self.networks[1].load_state_dict(state["text_network"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            if scheduler is not None and saved is not None:
                scheduler.load_state_dict(saved)
        self.image_outputs, self.text_outputs, self.codes = state["F"], state["G"], state["B"]

    def progress_line(self, entry: dict[str, Any], status: EpochStatus) -> str:
        """``[DCMH] epoch e/max lr r objective o val MAP s (best b @ e) t s`` and ``(early stop)``."""
        objective = "" if entry["objective"] is None else f" objective {entry['objective']:.4g}"
        validation = ""
        if entry["validation"] is not None:
            validation = (
                f" val MAP {entry['validation']:.4f} (best {status.best_score:.4f} @ {status.best_epoch})"
            )
        ending = " (early stop)" if status.stop else ""
        return (
            f"[{status.label}] epoch {entry['epoch']}/{status.max_epochs} lr {entry['learning_rate']:.3g}"
            f"{objective}{validation} {entry['seconds']:.1f}s{ending}"
        )


__all__ = [
    "CentredInput",
    "DCMHEpochs",
    "build_dcmh_networks",
    "dcmh_objective",
    "pairwise_batch_loss",
    "resolve_lift",
    "similarity_block",
]
