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

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field, field_validator, model_validator
from torch import nn

from ..engine.config import NetworkConfig, TrainingConfig
from ..engine.device import distributed_context, resolve_device
from ..engine.epoch_loop import run_epochs
from ..engine.fingerprint import run_fingerprint, training_data_digest
from ..engine.holdout import split_labelled_rows
from ..engine.networks import network_state_arrays, restore_network
from ..engine.sources import BatchSource
from ..errors import InputError
from .base import VIEWS, MethodParams, MethodState, MethodTags, ProgressCallback
from .dcmh_training import (
    CentredInput,
    DCMHEpochs,
    build_dcmh_networks,
    dcmh_objective,
    pairwise_batch_loss,
    similarity_block,
)
from .network_per_view import NetworkPerViewMethod

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
            "kernel_lift": "none",
        }
    )


def feature_network(kernel_lift: str = "none") -> NetworkConfig:
    """The default network of a feature view: DDCMH's MLP, standardised input.

    One hidden layer of 1,024 units with batch norm and dropout 0.3. The reference feeds raw
    features into an 8192-unit layer. On feature vectors of small
    magnitude (a SIFT bag-of-words histogram sums to 1: per-feature spread about 0.01) the
    input-dependent part of that layer's pre-activation is a few hundredths of its bias, its
    gradient is as small, and the network's outputs never depend on the input: the codes are
    constant or random and DCMH scores at the random floor. Standardising each feature on the
    training rows, as DDCMH does, cures that; on Wikipedia's training split DDCMH's MLP then beat
    the reference shape on validation MAP (0.32-0.34 against 0.23-0.30, mean of both directions).
    """
    return NetworkConfig.model_validate({"kernel_lift": kernel_lift})


def default_training() -> TrainingConfig:
    """The reference optimisation over 150 epochs, patience 30 (chosen on Wikipedia's validation split).

    With the reference's 500 epochs from 10^-1.5 the rate stays high long after the codes settle;
    on Wikipedia validation MAP preferred 150 epochs decaying slowly, to 10^-2
    (``DCMHConfig.final_learning_rate``), over faster decays (to 10^-2.5 or 10^-3) and over rates
    of 10^-2 and 10^-1 from the start.
    """
    return reference_training().model_copy(update={"max_epochs": 150, "patience": 30})


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


class DCMHConfig(MethodParams):
    """Everything that defines a DCMH model and how it is trained.

    The objective, its weights, the optimiser, batch size and first learning rate follow the
    authors' code ``jiangqy/DCMH-CVPR2017`` (MATLAB release, the recommended version, and the
    TensorFlow demo). The networks' input and shape and the epochs do not: with the reference's raw
    inputs DCMH scores at the random floor on feature vectors of small magnitude (see
    :func:`feature_network`), so the defaults are DDCMH's standardised MLPs, and those and the
    schedule were chosen on the validation split of Wikipedia's training pairs.
    ``reference_network()`` and ``reference_training()`` give the authors' settings exactly; each
    field says where its default comes from.
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
        default_factory=lambda: feature_network("auto"),
        description=(
            "Image network. The reference fine-tunes CNN-F on raw images (architecture='cnn' here); for "
            "image feature vectors the default is DDCMH's MLP with standardised input, and "
            "kernel_lift='auto' lifts a small dense view (at most auto_lift_max_features features) to "
            "RBF similarities to 2,000 training anchors (DCMH decides by the view's shape alone: "
            "training it both ways would double its cost; on Wikipedia validation MAP preferred the "
            "lifted image network). reference_network() is the reference text network exactly."
        ),
    )
    text_network: NetworkConfig = Field(
        default_factory=feature_network,
        description=(
            "Text network; default: DDCMH's MLP with standardised input, no lift (lifting the text "
            "too lowered validation MAP on Wikipedia). reference_network() is the reference's "
            "BoW -> 8192 ReLU -> k MLP."
        ),
    )
    training: TrainingConfig = Field(
        default_factory=default_training,
        description=(
            "Optimisation shared by both networks (the reference uses the same schedule for both): "
            "epochs, patience, batch size, optimiser, first learning rate, momentum, weight decay."
        ),
    )
    final_learning_rate: float | None = Field(
        default=1e-2,
        gt=0.0,
        description=(
            "Learning rate of the last epoch: the rate decays log-linearly from training.learning_rate "
            "(the reference: logspace(-1.5, -3, 500) in DCMH_demo.m; the default 10^-2 over 150 "
            "epochs was chosen on Wikipedia's validation split). None (\"none\" in a TOML file or "
            "--method-opt, which have no null) uses training.schedule instead."
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
            "batch at a time only. Applies when text_network.input_scaling is 'none', and to sparse text "
            "whatever the scaling ('standardize' only divides sparse input by its root mean square); "
            "dense text under 'standardize' is centred inside the network."
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

    @field_validator("final_learning_rate", mode="before")
    @classmethod
    def _none_in_toml(cls, value: Any) -> Any:
        """TOML has no null: the string ``"none"`` stands for None."""
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    @field_validator("image_network", mode="after")
    @classmethod
    def _normalised_cnn_features(cls, network: NetworkConfig) -> NetworkConfig:
        """A CNN image network's ``feature_normalization="auto"`` means ``"batch"`` for DCMH.

        Under the reference SGD schedule (10^-1.5 from the first epoch) a hash layer fed the raw
        pooled features of a pretrained CNN diverges, as one fed unstandardised MLP input does: on
        Web News, MobileNetV2's features at 64 px took the objective from 1.2e6 to 2.2e8 with the
        body frozen and kept DCMH at the random floor fine-tuned. The batch norm plays the part
        of the MLP's input standardisation.
        """
        if network.architecture == "cnn" and network.feature_normalization == "auto":
            return network.model_copy(update={"feature_normalization": "batch"})
        return network

    @model_validator(mode="after")
    def _one_schedule(self) -> DCMHConfig:
        if self.final_learning_rate is not None and self.training.schedule != "none":
            raise ValueError(
                "final_learning_rate sets the reference log-linear decay; set training.schedule='none' "
                f"(got {self.training.schedule!r}) or final_learning_rate=None (\"none\" in TOML) to use "
                "the schedule"
            )
        if self.training.head_warmup_epochs:
            raise ValueError(
                f"training.head_warmup_epochs={self.training.head_warmup_epochs}: DCMH trains both "
                "networks together from the first epoch and has no head warm-up; set it to 0"
            )
        return self


class DCMH(NetworkPerViewMethod):
    """Deep Cross-Modal Hashing (Jiang & Li, CVPR 2017): the pairwise baseline.

    A :class:`~ddcmh_core.methods.base.CrossModalMethod`, like DDCMH: ``fit`` on paired,
    labelled training views, then ``encode_image`` / ``encode_text``; ``report_`` holds the
    validation MAP and the seconds per epoch.

    Parameters
    ----------
    params : DCMHConfig, optional
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

    Params = DCMHConfig
    tags = MethodTags(supervised=True, needs_paired=True, deep=True, uses_hasher=False)
    display_name = "DCMH"

    params: DCMHConfig

    # ------------------------------------------------------------------ training
    def _fit(
        self,
        image: BatchSource,
        text: BatchSource,
        labels: np.ndarray | None,
        *,
        run_dir: Path | None,
        resume: bool,
        progress: ProgressCallback | None,
    ) -> None:
        """Train both networks and the codes on checked, paired, labelled training views.

        ``run_dir`` receives a checkpoint after every epoch, for ``resume``; ``progress`` one line
        per epoch.

        Raises
        ------
        InputError
            On unlabelled rows (unless ``drop_unlabelled``), fewer than two labelled rows to fit
            on, or a multi-process run; on ``resume``, a checkpoint that is unreadable or of
            another format version (:class:`~ddcmh_core.engine.checkpoint.CheckpointError`).
        """
        config = self.params
        assert labels is not None  # supervised: the base class refuses a fit without labels
        if distributed_context().active:
            raise InputError("DCMH: multi-process training is not supported; run it in one process")
        image_source, text_source = image, text
        label_matrix = self._split_rows(config, labels)
        device = resolve_device(config.device)
        mixed = config.mixed_precision if config.mixed_precision is not None else device.type == "cuda"
        self.device_ = device
        self.image_network_, self.text_network_ = build_dcmh_networks(
            config, image_source, text_source, self.fit_rows_, device
        )
        task = DCMHEpochs(
            config,
            (self.image_network_, self.text_network_),
            (image_source, text_source),
            self.fit_rows_,
            self.validation_rows_,
            label_matrix,
            learning_rate=self._learning_rate,
            device=device,
            mixed=mixed,
            progress=progress,
        )
        self.initial_objective_: float | None = None
        if config.compute_objective and not resume:
            self.initial_objective_ = task.objective()
        checkpoint = Path(run_dir) / "dcmh.ckpt" if run_dir is not None else None
        fingerprint = None
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            data = training_data_digest(labels, image_source, text_source)
            fingerprint = run_fingerprint("dcmh", self.resolved_settings(config), data=data)
        result = run_epochs(
            task,
            max_epochs=config.training.max_epochs,
            patience=config.training.patience,
            seed=config.seed + 2,
            checkpoint_path=checkpoint,
            resume=resume,
            progress=progress,
            label="DCMH",
            map_location=device,
            fingerprint=fingerprint,
        )
        self.image_outputs_ = task.image_outputs.cpu().numpy()
        self.text_outputs_ = task.text_outputs.cpu().numpy()
        self.codes_ = (task.codes > 0).to(torch.uint8).cpu().numpy()
        self.history_ = result.history
        self.n_features_ = {"image": image_source.n_features, "text": text_source.n_features}
        self.report_ = self._report(result.best_epoch, result.best_detail, result.seconds)

    def _split_rows(self, config: DCMHConfig, label_matrix: np.ndarray) -> np.ndarray:
        """Set ``fit_rows_``, ``validation_rows_``, ``dropped_rows_``; return the label matrix."""
        rows = split_labelled_rows(
            label_matrix,
            fraction=config.validation_fraction,
            seed=config.seed,
            drop_unlabelled=config.drop_unlabelled,
            owner="DCMH",
            why_labels="the pairwise similarity needs a label on every row",
            min_fit_rows=2,
        )
        self.fit_rows_, self.validation_rows_, self.dropped_rows_ = rows.fit, rows.validation, rows.dropped
        return label_matrix

    def _learning_rate(self, epoch: int, optimizer: torch.optim.Optimizer) -> float:
        """Learning rate of ``epoch`` (0-based): log-linear decay, or the scheduler's current rate."""
        config = self.params
        if config.final_learning_rate is None:
            return float(optimizer.param_groups[0]["lr"])
        first, last = math.log10(config.training.learning_rate), math.log10(config.final_learning_rate)
        steps = config.training.max_epochs - 1
        return float(10 ** (first + (last - first) * (epoch / steps if steps > 0 else 0.0)))

    def _report(self, best_epoch: int, best_maps: dict[str, float] | None, seconds: float) -> dict[str, Any]:
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
        if self.params.compute_objective:
            report["objective"] = {
                "initial": self.initial_objective_,
                "final": history[-1]["objective"] if history else None,
            }
        if best_maps is not None:
            report["validation_map"] = {
                "image->text": best_maps["image->text"],
                "text->image": best_maps["text->image"],
            }
        return report

    # ------------------------------------------------------------------ state
    def get_state(self) -> MethodState:
        """Both networks' weights (the text mean, when subtracted, is a buffer of the text network)."""
        networks = {"image": self.image_network_, "text": self.text_network_}
        return MethodState(arrays=network_state_arrays(networks))

    def set_state(self, state: MethodState, *, device: str = "auto") -> None:
        """Rebuild both networks (the same structure ``fit`` builds) and load their weights."""
        config = self.params
        target_device = self.device_ = resolve_device(device)

        def centred(network: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
            if "mean" not in weights:
                return network
            return CentredInput(network, np.zeros(weights["mean"].shape), config.n_bits)

        for view in VIEWS:
            network = restore_network(
                state.arrays,
                view,
                getattr(config, f"{view}_network"),
                config.n_bits,
                self.n_features_[view],
                wrap=centred,
            )
            setattr(self, f"{view}_network_", network.to(target_device))


__all__ = ["DCMH", "DCMHConfig", "dcmh_objective", "pairwise_batch_loss", "similarity_block"]
