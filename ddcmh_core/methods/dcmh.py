"""DCMH, the pairwise deep cross-modal hashing baseline (Jiang & Li, CVPR 2017), in the DDCMH engine.

DCMH learns an image network ``f`` and a text network ``g`` jointly with training codes ``B``::

    min_{F, G, B}  - sum_ij (S_ij Theta_ij - log(1 + exp(Theta_ij)))
                   + gamma (||B - F||^2 + ||B - G||^2) + eta (||F 1||^2 + ||G 1||^2)

with ``F`` (``G``) the n x k real outputs of the image (text) network on the training pairs,
``Theta_ij = F_i . G_j / 2``, ``S_ij = 1`` iff pairs ``i`` and ``j`` share a label, and
``B in {-1, +1}^{n x k}``. Training alternates (reference ``jiangqy/DCMH-CVPR2017``,
``DCMH_tensorflow/DCMH_demo.py``; the MATLAB release ``process_DCMH.m`` is the same loop with the
text pass first): one epoch of the image network, each mini-batch step
differentiating the loss of its rows against **all n** current text outputs ``G`` (a
batch x n similarity block); one epoch of the text network against all of ``F``; then
``B = sign(gamma (F + G))``. That batch x n block is what makes an epoch cost O(n^2); it is kept
on purpose, since this class is the pairwise baseline that DDCMH's O(n) training is measured
against (METHOD.md §1.9, §3). Memory stays O(n k + batch x n): the label similarity is computed
block by block from the label matrix (``L_batch L^T > 0``) and an n x n matrix is never formed.

Codes at query time are ``sign`` of the network outputs: bit = 1 iff output > 0.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from ..engine.config import NetworkConfig, TrainingConfig
from ..engine.device import autocast, distributed_context, resolve_device
from ..engine.holdout import split_validation, validation_map
from ..engine.networks import build_network, fit_input_scaling
from ..engine.sources import BatchSource, as_source, rows_as_matrix
from ..engine.trainer import encode_with, epoch_order, make_optimizer, make_scheduler
from ..errors import InputError, NotFittedError
from ..linalg import column_mean
from ..validation import check_labels

ProgressCallback = Callable[[str], None]
CHECKPOINT_FORMAT_VERSION = 1

#: Hidden width of the reference text network: BoW -> FC 8192 + ReLU -> FC k
#: (``DCMH_matlab/DCMH_release/net_structure_txt.m``, ``DCMH_tensorflow/net_structure_txt.py``).
REFERENCE_HIDDEN_WIDTH = 8192


def reference_network() -> NetworkConfig:
    """The reference text network: one ReLU layer of 8192 units, no dropout, normalisation or scaling."""
    return NetworkConfig.model_validate(
        {
            "hidden_sizes": [REFERENCE_HIDDEN_WIDTH],
            "dropout": 0.0,
            "normalization": "none",
            "input_scaling": "none",
        }
    )


def reference_training() -> TrainingConfig:
    """The reference optimisation (``DCMH_matlab/DCMH_release``): plain SGD, batch 128, 500 epochs.

    ``learning_rate`` is the first epoch's rate ``10^-1.5`` of ``logspace(-1.5, -3, 500)``
    (``DCMH_demo.m``); the log-linear decay to ``DCMHConfig.final_learning_rate`` replaces
    ``schedule``, so ``schedule`` is ``"none"``. ``weight_decay`` 5e-4 and no momentum follow
    ``update_net.m``. ``patience`` (50) is a ddcmh choice: the reference trains all 500 epochs
    without model selection.
    """
    return TrainingConfig.model_validate(
        {
            "max_epochs": 500,
            "patience": 50,
            "batch_size": 128,
            "optimizer": "sgd",
            "learning_rate": 10**-1.5,
            "momentum": 0.0,
            "weight_decay": 5e-4,
            "schedule": "none",
        }
    )


class DCMHConfig(BaseModel):
    """Everything that defines a DCMH model and how it is trained.

    Defaults follow the authors' code ``jiangqy/DCMH-CVPR2017`` (MATLAB release, the recommended
    version, and the TensorFlow demo); each field says where its default comes from.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_bits: int = Field(default=32, ge=1, le=4096, description="Code length k (the paper: 16/32/64).")
    gamma: float = Field(
        default=1.0,
        ge=0.0,
        description="Weight gamma of the quantisation term ||B-F||^2 + ||B-G||^2 (reference: 1).",
    )
    eta: float = Field(
        default=1.0,
        ge=0.0,
        description="Weight eta of the bit-balance term ||F1||^2 + ||G1||^2 (reference: 1).",
    )
    image_network: NetworkConfig = Field(
        default_factory=reference_network,
        description=(
            "Image network. The reference fine-tunes CNN-F on raw images (architecture='cnn' here); for "
            "image feature vectors the default is the reference text network's shape (8192 ReLU units)."
        ),
    )
    text_network: NetworkConfig = Field(
        default_factory=reference_network,
        description=(
            "Text network; default: the reference BoW -> 8192 ReLU -> k MLP, no dropout, normalisation "
            "or input scaling."
        ),
    )
    training: TrainingConfig = Field(
        default_factory=reference_training,
        description=(
            "Optimisation shared by both networks (the reference uses the same schedule for both): "
            "epochs, patience, batch size, optimiser, first learning rate, momentum, weight decay."
        ),
    )
    final_learning_rate: float | None = Field(
        default=1e-3,
        gt=0.0,
        description=(
            "Learning rate of the last epoch: the rate decays log-linearly from training.learning_rate "
            "(logspace(-1.5, -3, max_epochs) in DCMH_demo.m). None uses training.schedule instead."
        ),
    )
    initialization: Literal["zeros", "gaussian"] = Field(
        default="zeros",
        description=(
            "Initial F and G before the first epoch: zeros, so B starts at 0 (MATLAB release, the "
            "recommended version), or standard normal, so B starts random (TensorFlow demo)."
        ),
    )
    center_text: bool = Field(
        default=True,
        description=(
            "Subtract the training mean from every text row (normZeroMean in DCMH_demo.m; the reference "
            "takes the mean over all rows, here over the fitting rows). Sparse rows are densified one "
            "batch at a time only. Applies when text_network.input_scaling is 'none'; 'standardize' "
            "scales the input inside the network instead."
        ),
    )
    compute_objective: bool = Field(
        default=True,
        description=(
            "Evaluate the full objective after every epoch (as the reference does), block by block in "
            "O(n^2 k) time and O(batch n) memory; recorded in the history."
        ),
    )
    drop_unlabelled: bool = Field(
        default=False,
        description="Drop training rows without labels instead of failing (the DCMH protocol removes them).",
    )
    validation_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=0.5,
        description=(
            "Share of the training rows held out to choose the epoch (mean validation MAP of both "
            "directions); 0 trains for max_epochs without selection, like the reference."
        ),
    )
    seed: int = Field(default=0, ge=0, description="Seed of the split, F/G, initialisation, shuffling.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="'auto': CUDA when present.")
    mixed_precision: bool | None = Field(
        default=None, description="Autocast of the networks on CUDA; None: on for CUDA, off for CPU."
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> DCMHConfig:
        if self.final_learning_rate is not None and self.training.schedule != "none":
            raise ValueError(
                "final_learning_rate sets the reference log-linear decay; set training.schedule='none' "
                f"(got {self.training.schedule!r}) or final_learning_rate=None to use the schedule"
            )
        return self


class _CentredInput(nn.Module):
    """Subtract a fixed mean from each input row before the wrapped network (batch-wise densify)."""

    mean: torch.Tensor

    def __init__(self, network: nn.Module, mean: np.ndarray, n_bits: int) -> None:
        super().__init__()
        self.network = network
        self.n_bits = n_bits
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
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


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, BaseModel):
            merged[key] = value.model_dump()
        else:
            merged[key] = value
    return merged


class DCMH:
    """Deep Cross-Modal Hashing (Jiang & Li, CVPR 2017): the pairwise baseline.

    Same public interface as :class:`~ddcmh_core.methods.ddcmh.DDCMH`: ``fit`` on paired,
    labelled training views, then ``encode_image`` / ``encode_text``; ``report_`` holds the
    validation MAP and the seconds per epoch.

    Parameters
    ----------
    config : DCMHConfig, optional
        The whole configuration; keyword arguments override its fields, nested fields merged
        (``DCMH(n_bits=64, training={"max_epochs": 100})`` keeps the other reference settings).

    Attributes
    ----------
    image_network_, text_network_ : torch.nn.Module
        The trained networks (weights of the chosen epoch).
    image_outputs_, text_outputs_ : ndarray of shape (n_fit, n_bits), float32
        ``F`` and ``G`` at the end of training (as maintained during the last epoch).
    codes_ : ndarray of shape (n_fit, n_bits), uint8
        Training codes ``B`` mapped to {0,1}.
    fit_rows_, validation_rows_, dropped_rows_ : ndarray of int
        Rows (of the training views passed to :meth:`fit`) used to fit, to validate, and dropped
        for having no label.
    history_ : list of dict
        Per epoch: ``epoch``, ``learning_rate``, ``objective`` (or None), ``validation`` (mean of
        both directions, or None), ``image_seconds``, ``text_seconds``, ``codes_seconds``,
        ``training_seconds`` (the three together), ``seconds`` (everything, with objective and
        validation), ``validation_map`` (both directions, or None).
    initial_objective_ : float or None
        The objective before the first epoch (``n^2 log 2`` from the zero start).
    report_ : dict
        ``n_fit``, ``n_validation``, ``n_dropped_unlabelled``, ``best_epoch``, ``epochs_run``,
        ``seconds`` (``training``), ``seconds_per_epoch`` (``image``, ``text``, ``training``,
        ``epoch``), ``seconds_to_best_epoch`` (wall time of the epochs up to the kept one),
        ``objective`` (``initial``, ``final``) when computed, and ``validation_map``
        (``image->text``, ``text->image``) of the kept weights when there is a validation split.

    Notes
    -----
    Reference behaviour kept: each step's gradient involves the whole of ``G`` (``F``), with the
    batch's own rows of ``F`` (``G``) refreshed first and the others as last computed; the loss
    is divided by ``n * batch`` (``update_net.m`` / TensorFlow demo); ``B`` is updated once per
    epoch after both networks; the first ``B`` maps exact zeros to 0 (``e_sign``). ddcmh choices:
    mini-batches are a fresh permutation per epoch (the reference draws each batch independently),
    later ties of ``sign`` in ``B`` go to +1, the text mean is taken over the fitting rows, the
    epoch is chosen on a validation split carved from the training rows (mean MAP of both
    directions; the reference trains all epochs), networks are initialised by
    :func:`~ddcmh_core.engine.networks.build_network` (PyTorch defaults, where the reference
    draws N(0, 0.01^2) text weights and starts the image net from CNN-F), and training is
    single-process.

    With the reference learning rate the balance term overshoots for a few epochs while most rows
    of ``F``/``G`` are stale, so the objective rises before it falls; DCMH needs hundreds of
    epochs (BASELINES.md §d.1).
    """

    def __init__(self, config: DCMHConfig | None = None, **overrides: Any) -> None:
        base = config or DCMHConfig()
        try:
            self.config = DCMHConfig.model_validate(_merge(base.model_dump(), overrides))
        except Exception as error:
            raise InputError(f"DCMH: invalid configuration: {error}") from None

    # ------------------------------------------------------------------ training
    def fit(
        self,
        image: Any,
        text: Any,
        labels: Any,
        *,
        run_dir: str | Path | None = None,
        resume: bool = False,
        progress: ProgressCallback | None = None,
    ) -> DCMH:
        """Train both networks and the codes on paired, labelled training views.

        Parameters
        ----------
        image : ndarray, sparse matrix or BatchSource
            First view of the training pairs.
        text : ndarray, sparse matrix or BatchSource
            Second view, one row per image.
        labels : array-like of shape (n, c)
            {0,1} training labels (or class ids); ``S_ij = 1`` iff rows share a label.
        run_dir : path, optional
            Where a checkpoint is written after every epoch, for ``resume``.
        resume : bool
            Continue from the checkpoint in ``run_dir``.
        progress : callable, optional
            Receives one line per epoch.

        Returns
        -------
        DCMH
            ``self``.

        Raises
        ------
        InputError
            On different row counts, bad labels, unlabelled rows (unless ``drop_unlabelled``),
            fewer than two training rows, or a multi-process run.
        """
        config = self.config
        if distributed_context().active:
            raise InputError("DCMH: multi-process training is not supported; run it in one process")
        image_source, text_source = as_source(image), as_source(text)
        n_rows = len(image_source)
        if len(text_source) != n_rows:
            raise InputError(
                f"DCMH: argument 'text': expected {n_rows} rows (one per image), got {len(text_source)}"
            )
        label_matrix = check_labels(labels, owner="DCMH", n_samples=n_rows)
        empty = np.flatnonzero(label_matrix.sum(axis=1) == 0)
        if empty.size and not config.drop_unlabelled:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
            raise InputError(
                f"DCMH: argument 'labels': expected at least one label per training row, got {empty.size} "
                f"rows without any (rows {shown}). Set drop_unlabelled=True to drop them."
            )
        usable = np.setdiff1d(np.arange(n_rows), empty)
        fit_positions, validation_positions = split_validation(
            len(usable), config.validation_fraction, config.seed
        )
        fit_rows, validation_rows = usable[fit_positions], usable[validation_positions]
        if len(fit_rows) < 2:
            raise InputError(
                f"DCMH: argument 'labels': expected at least 2 labelled rows to fit on, got {len(fit_rows)}"
            )
        self.fit_rows_, self.validation_rows_, self.dropped_rows_ = fit_rows, validation_rows, empty
        device = resolve_device(config.device)
        mixed = config.mixed_precision if config.mixed_precision is not None else device.type == "cuda"
        self.device_ = device
        n_fit, n_bits = len(fit_rows), config.n_bits
        fit_labels, validation_labels = label_matrix[fit_rows], label_matrix[validation_rows]
        label_tensor = torch.as_tensor(fit_labels, dtype=torch.float32, device=device)

        torch.manual_seed(config.seed)
        n_fit = len(fit_rows)
        image_network = build_network(
            config.image_network, n_bits, image_source.n_features, n_training_rows=n_fit
        )
        fit_input_scaling(image_network, image_source, fit_rows, seed=config.seed)
        torch.manual_seed(config.seed + 1)
        text_network = build_network(
            config.text_network, n_bits, text_source.n_features, n_training_rows=n_fit
        )
        fit_input_scaling(text_network, text_source, fit_rows, seed=config.seed)
        if (
            config.center_text
            and config.text_network.input_scaling == "none"
            and text_source.n_features is not None
        ):
            mean = column_mean(rows_as_matrix(text_source, fit_rows))
            text_network = _CentredInput(text_network, mean, n_bits)
        image_network, text_network = image_network.to(device), text_network.to(device)
        self.image_network_, self.text_network_ = image_network, text_network
        optimizers = [make_optimizer(network, config.training) for network in (image_network, text_network)]
        schedulers = (
            [make_scheduler(optimizer, config.training) for optimizer in optimizers]
            if config.final_learning_rate is None
            else [None, None]
        )
        scaler = torch.amp.GradScaler("cuda", enabled=mixed and device.type == "cuda")

        if config.initialization == "gaussian":
            start = np.random.default_rng([config.seed, 11]).standard_normal((2, n_fit, n_bits))
        else:
            start = np.zeros((2, n_fit, n_bits))
        image_outputs = torch.as_tensor(start[0], dtype=torch.float32, device=device)
        text_outputs = torch.as_tensor(start[1], dtype=torch.float32, device=device)
        # The first B maps exact zeros to 0, as the reference e_sign (zero start: B = 0); afterwards
        # ties go to +1.
        codes = torch.sign(config.gamma * (image_outputs + text_outputs))
        self.initial_objective_: float | None = None
        if config.compute_objective and not resume:
            self.initial_objective_ = dcmh_objective(
                image_outputs,
                text_outputs,
                codes,
                label_tensor,
                config.gamma,
                config.eta,
                block_rows=config.training.batch_size,
            )

        def validate() -> tuple[float, float]:
            options: dict[str, Any] = {"device": device, "mixed_precision": mixed}
            query_image = encode_with(image_network, image_source, validation_rows, **options)
            query_text = encode_with(text_network, text_source, validation_rows, **options)
            database_image = encode_with(image_network, image_source, fit_rows, **options)
            database_text = encode_with(text_network, text_source, fit_rows, **options)
            return (
                validation_map(query_image, database_text, validation_labels, fit_labels),
                validation_map(query_text, database_image, validation_labels, fit_labels),
            )

        checkpoint = Path(run_dir) / "dcmh.ckpt" if run_dir is not None else None
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        start_epoch, best_epoch, epochs_without_gain = 0, 0, 0
        best_score: float | None = None
        best_maps: tuple[float, float] | None = None
        best_state: dict[str, Any] | None = None
        history: list[dict[str, Any]] = []
        torch.manual_seed(config.seed + 2)
        if resume and checkpoint is not None and checkpoint.exists():
            state = torch.load(checkpoint, map_location=device, weights_only=True)
            if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
                raise InputError(
                    f"DCMH: {checkpoint}: checkpoint format {state.get('format_version')} unsupported"
                )
            image_network.load_state_dict(state["image_network"])
            text_network.load_state_dict(state["text_network"])
            for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
                optimizer.load_state_dict(saved)
            for scheduler, saved in zip(schedulers, state["schedulers"], strict=True):
                if scheduler is not None and saved is not None:
                    scheduler.load_state_dict(saved)
            image_outputs, text_outputs, codes = state["F"], state["G"], state["B"]
            start_epoch, best_epoch = int(state["epoch"]), int(state["best_epoch"])
            best_score, best_state = state["best_score"], state["best_state"]
            saved_maps = state["best_maps"]
            best_maps = (float(saved_maps[0]), float(saved_maps[1])) if saved_maps is not None else None
            history, epochs_without_gain = list(state["history"]), int(state["epochs_without_gain"])
            torch.set_rng_state(state["torch_rng"].cpu())
            if progress:
                progress(f"[DCMH] resumed after epoch {start_epoch}")

        training = config.training
        has_validation = len(validation_rows) > 0
        started = time.perf_counter()
        stop = has_validation and epochs_without_gain >= training.patience
        for epoch in range(start_epoch, training.max_epochs):
            if stop:
                break
            epoch_started = time.perf_counter()
            rate = self._learning_rate(epoch, optimizers[0])
            if config.final_learning_rate is not None:
                for optimizer in optimizers:
                    for group in optimizer.param_groups:
                        group["lr"] = rate
            passes = (
                (image_network, optimizers[0], image_source, image_outputs, text_outputs),
                (text_network, optimizers[1], text_source, text_outputs, image_outputs),
            )
            pass_seconds = []
            for view, (network, optimizer, source, own, other) in enumerate(passes):
                pass_started = time.perf_counter()
                order = epoch_order(np.arange(n_fit), config.seed + view, epoch)
                self._train_pass(
                    network,
                    optimizer,
                    scaler,
                    source,
                    fit_rows,
                    order,
                    own,
                    other,
                    codes,
                    label_tensor,
                    mixed,
                )
                pass_seconds.append(time.perf_counter() - pass_started)
            codes_started = time.perf_counter()
            codes = _signs(config.gamma * (image_outputs + text_outputs))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            codes_seconds = time.perf_counter() - codes_started
            for scheduler in schedulers:
                if scheduler is not None:
                    scheduler.step()
            objective = None
            if config.compute_objective:
                objective = dcmh_objective(
                    image_outputs,
                    text_outputs,
                    codes,
                    label_tensor,
                    config.gamma,
                    config.eta,
                    block_rows=training.batch_size,
                )
            score = None
            maps = None
            if has_validation:
                maps = validate()
                score = float(np.mean(maps))
            if score is None or best_score is None or score > best_score:
                best_score, best_epoch, best_maps, epochs_without_gain = score, epoch + 1, maps, 0
                best_state = {
                    "image": copy.deepcopy(image_network.state_dict()),
                    "text": copy.deepcopy(text_network.state_dict()),
                }
            else:
                epochs_without_gain += 1
            stop = has_validation and epochs_without_gain >= training.patience
            entry = {
                "epoch": epoch + 1,
                "learning_rate": rate,
                "objective": objective,
                "validation": score,
                "validation_map": None if maps is None else {"image->text": maps[0], "text->image": maps[1]},
                "image_seconds": pass_seconds[0],
                "text_seconds": pass_seconds[1],
                "codes_seconds": codes_seconds,
                "training_seconds": pass_seconds[0] + pass_seconds[1] + codes_seconds,
                "seconds": time.perf_counter() - epoch_started,
            }
            history.append(entry)
            if checkpoint is not None:
                _atomic_torch_save(
                    {
                        "format_version": CHECKPOINT_FORMAT_VERSION,
                        "image_network": image_network.state_dict(),
                        "text_network": text_network.state_dict(),
                        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
                        "schedulers": [s.state_dict() if s is not None else None for s in schedulers],
                        "F": image_outputs,
                        "G": text_outputs,
                        "B": codes,
                        "epoch": epoch + 1,
                        "best_epoch": best_epoch,
                        "best_score": best_score,
                        "best_maps": list(best_maps) if best_maps is not None else None,
                        "best_state": best_state,
                        "history": history,
                        "epochs_without_gain": epochs_without_gain,
                        "torch_rng": torch.get_rng_state(),
                    },
                    checkpoint,
                )
            if progress is not None:
                progress(_progress_line(entry, training.max_epochs, best_score, best_epoch, stop))
        if best_state is not None:
            image_network.load_state_dict(best_state["image"])
            text_network.load_state_dict(best_state["text"])
        image_network.eval()
        text_network.eval()
        self.image_outputs_ = image_outputs.cpu().numpy()
        self.text_outputs_ = text_outputs.cpu().numpy()
        self.codes_ = (codes > 0).to(torch.uint8).cpu().numpy()
        self.history_ = history
        self.n_features_ = {"image": image_source.n_features, "text": text_source.n_features}
        self.report_ = self._report(best_epoch, best_maps, time.perf_counter() - started)
        return self

    def _learning_rate(self, epoch: int, optimizer: torch.optim.Optimizer) -> float:
        """Learning rate of ``epoch`` (0-based): log-linear decay, or the scheduler's current rate."""
        config = self.config
        if config.final_learning_rate is None:
            return float(optimizer.param_groups[0]["lr"])
        first, last = math.log10(config.training.learning_rate), math.log10(config.final_learning_rate)
        steps = config.training.max_epochs - 1
        return float(10 ** (first + (last - first) * (epoch / steps if steps > 0 else 0.0)))

    def _train_pass(
        self,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        source: BatchSource,
        fit_rows: np.ndarray,
        order: np.ndarray,
        own: torch.Tensor,
        other: torch.Tensor,
        codes: torch.Tensor,
        labels: torch.Tensor,
        mixed: bool,
    ) -> None:
        """One epoch of one network; updates ``own`` (F or G) in place, batch by batch."""
        config = self.config
        device = own.device
        batch_size = config.training.batch_size
        n_fit = len(order)
        network.train()
        for begin in range(0, n_fit, batch_size):
            positions = order[begin : begin + batch_size]
            if len(positions) < 2:
                continue  # a batch of one breaks batch normalisation
            inputs = source.batch(fit_rows[positions], train=True).to(device, non_blocking=True)
            rows = torch.from_numpy(positions).to(device)
            with autocast(device, mixed):
                outputs = network(inputs)
            outputs = outputs.float()
            with torch.no_grad():
                own[rows] = outputs.detach()
            loss = pairwise_batch_loss(outputs, rows, own, other, codes, labels, config.gamma, config.eta)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss / (n_fit * len(positions))).backward()
            scaler.step(optimizer)
            scaler.update()

    def _report(
        self, best_epoch: int, best_maps: tuple[float, float] | None, seconds: float
    ) -> dict[str, Any]:
        history = self.history_

        def mean_of(key: str) -> float | None:
            return float(np.mean([entry[key] for entry in history])) if history else None

        report: dict[str, Any] = {
            "n_fit": len(self.fit_rows_),
            "n_validation": len(self.validation_rows_),
            "n_dropped_unlabelled": len(self.dropped_rows_),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "seconds": {"training": seconds},
            "seconds_per_epoch": {
                "image": mean_of("image_seconds"),
                "text": mean_of("text_seconds"),
                "training": mean_of("training_seconds"),
                "epoch": mean_of("seconds"),
            },
            "seconds_to_best_epoch": float(sum(entry["seconds"] for entry in history[:best_epoch])),
        }
        if self.config.compute_objective:
            report["objective"] = {
                "initial": self.initial_objective_,
                "final": history[-1]["objective"] if history else None,
            }
        if best_maps is not None:
            report["validation_map"] = {"image->text": best_maps[0], "text->image": best_maps[1]}
        return report

    # ------------------------------------------------------------------ encoding
    def _require_fitted(self) -> None:
        if not hasattr(self, "report_"):
            raise NotFittedError("DCMH: call fit before encoding")

    def encode_image(self, image: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Codes of the first view, uint8 {0,1} of shape (n, n_bits): bit = 1 iff output > 0."""
        self._require_fitted()
        source = as_source(image)
        self._check_width(source, "image")
        return encode_with(self.image_network_, source, batch_size=batch_size, device=self.device_)

    def encode_text(self, text: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Codes of the second view, uint8 {0,1} of shape (n, n_bits): bit = 1 iff output > 0."""
        self._require_fitted()
        source = as_source(text)
        self._check_width(source, "text")
        return encode_with(self.text_network_, source, batch_size=batch_size, device=self.device_)

    def _check_width(self, source: BatchSource, view: str) -> None:
        expected = self.n_features_.get(view)
        if expected is not None and source.n_features != expected:
            raise InputError(
                f"DCMH: argument {view!r}: expected {expected} features per row (as in training), "
                f"got {source.n_features}"
            )


def _progress_line(
    entry: dict[str, Any], max_epochs: int, best: float | None, best_epoch: int, stop: bool
) -> str:
    objective = "" if entry["objective"] is None else f" objective {entry['objective']:.4g}"
    validation = ""
    if entry["validation"] is not None:
        validation = f" val MAP {entry['validation']:.4f} (best {best:.4f} @ {best_epoch})"
    ending = " (early stop)" if stop else ""
    return (
        f"[DCMH] epoch {entry['epoch']}/{max_epochs} lr {entry['learning_rate']:.3g}{objective}{validation} "
        f"{entry['seconds']:.1f}s{ending}"
    )


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


__all__ = ["DCMH", "DCMHConfig", "dcmh_objective", "pairwise_batch_loss", "similarity_block"]
