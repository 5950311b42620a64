"""The DDCMH pipeline: Stage 1, Stage 2, reconstruction, Stage 3.

Stage 1 runs the hasher on the texts, Stage 2 trains the image network on its codes, the image codes
are reconstructed from label overlap, and Stage 3 trains the text network on them. Nothing assumes
the two views are images and texts; any two labelled views work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..engine.config import NetworkConfig, TrainingConfig
from ..engine.device import distributed_context, resolve_device
from ..engine.holdout import split_validation, validation_map
from ..engine.networks import build_network, fit_input_scaling
from ..engine.sources import BatchSource, as_source, rows_as_matrix
from ..engine.trainer import TrainingResult, encode_with, train_hash_network
from ..errors import InputError, NotFittedError
from ..files import atomic_path
from ..hasher import Hasher
from ..plugins import hasher_registry
from ..validation import check_labels
from .reconstruction import reconstruct_codes

if TYPE_CHECKING:
    from ..tuning import TuningResult

ProgressCallback = Callable[[str], None]


class DDCMHConfig(BaseModel):
    """Everything that defines a DDCMH model and how it is trained.

    See METHOD.md §2 for the decisions behind ``training_codes``, ``reconstruction`` and
    ``drop_unlabelled``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_bits: int = Field(32, ge=1, le=4096, description="Code length.")
    hasher: str = Field("itq", description="Stage-1 hasher name (ddcmh-bench --list-hashers).")
    hasher_params: dict[str, Any] = Field(
        default_factory=dict, description="Stage-1 hyper-parameters (validated by the hasher)."
    )
    training_codes: Literal["optimised", "encoded"] = Field(
        "optimised",
        description="Stage-2 targets: the hasher's optimised training codes, or sgn(f(text)).",
    )
    reconstruction: Literal["soft", "binary"] = Field(
        "soft", description="Stage-3 targets: soft reconstructed codes, or re-binarised at 0.5."
    )
    drop_unlabelled: bool = Field(False, description="Drop training rows without labels instead of failing.")
    image_network: NetworkConfig = Field(default_factory=NetworkConfig)
    text_network: NetworkConfig = Field(default_factory=NetworkConfig)
    image_training: TrainingConfig = Field(default_factory=TrainingConfig)
    text_training: TrainingConfig = Field(default_factory=TrainingConfig)
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=0.5,
        description=(
            "Share of the training set held out to choose epochs (early stopping on validation "
            "MAP). 0 trains for max_epochs without selection."
        ),
    )
    refit: bool = Field(
        False,
        description=(
            "After choosing the epochs of both stages on the validation split, train again on all "
            "training rows for those epochs (twice the training time, a little more data)."
        ),
    )
    seed: int = Field(0, ge=0, description="Seed of the split, initialisation and shuffling.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' picks CUDA when present.")
    mixed_precision: bool | None = Field(
        None, description="Autocast on CUDA; None means on for CUDA, off for CPU."
    )

    @model_validator(mode="after")
    def _no_bits_in_hasher_params(self) -> DDCMHConfig:
        if "n_bits" in self.hasher_params:
            raise ValueError("set the code length with n_bits, not inside hasher_params")
        return self


class DDCMH:
    """Dual Deep Neural Networks Cross-Modal Hashing.

    Parameters
    ----------
    config : DDCMHConfig, optional
        The whole configuration; keyword arguments override its fields
        (``DDCMH(hasher="sdh", n_bits=64)``).

    Attributes
    ----------
    hasher_ : Hasher
        The fitted Stage-1 hasher.
    image_network_, text_network_ : torch.nn.Module
        The trained hash networks (Stage 2 and Stage 3).
    stage1_codes_ : ndarray (n_fit, n_bits) uint8
        Stage-1 text codes of the fitting rows (targets of Stage 2).
    image_codes_ : ndarray (n_fit, n_bits) uint8
        Stage-2 training image codes ``B_x``.
    reconstructed_ : ndarray (n_fit, n_bits) float
        Stage-3 targets.
    fit_rows_, validation_rows_ : ndarray of int
        Positions (within the training rows passed to :meth:`fit`) used to fit and to validate.
    report_ : dict
        Validation MAP in both directions, epochs chosen, time per stage, rows dropped (and the
        candidates compared, for a model returned by :meth:`tune`).
    tuning_ : TuningResult
        Only on a model returned by :meth:`tune`: every candidate's validation score.
    """

    hasher_: Hasher | None
    extras_: dict[str, Any]
    tuning_: TuningResult
    hasher_record_: dict[str, Any]

    def __init__(self, config: DDCMHConfig | None = None, **overrides: Any) -> None:
        base = config or DDCMHConfig()
        try:
            self.config = DDCMHConfig.model_validate({**base.model_dump(), **overrides})
        except Exception as error:
            raise InputError(f"DDCMH: invalid configuration: {error}") from None

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
    ) -> DDCMH:
        """Train the three stages on paired training views.

        Parameters
        ----------
        image : ndarray, sparse matrix or BatchSource
            First view of the training pairs (images or image features).
        text : ndarray, sparse matrix or BatchSource
            Second view (texts); Stage 1 hashes it.
        labels : array-like of shape (n, c)
            {0,1} training labels (or class ids).
        run_dir : path, optional
            Where stage results and per-epoch checkpoints go, for ``resume``.
        resume : bool
            Continue from the files in ``run_dir``.
        progress : callable, optional
            Receives progress lines.

        Returns
        -------
        DDCMH
            ``self``.
        """
        config = self.config
        context = distributed_context()
        image_source = as_source(image, config.image_network)
        text_source = as_source(text, config.text_network)
        n_rows = len(image_source)
        if len(text_source) != n_rows:
            raise InputError(
                f"DDCMH: argument 'text': expected {n_rows} rows (one per image), got {len(text_source)}"
            )
        label_matrix = check_labels(labels, owner="DDCMH", n_samples=n_rows)
        empty = np.flatnonzero(label_matrix.sum(axis=1) == 0)
        if empty.size and not config.drop_unlabelled:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
            raise InputError(
                f"DDCMH: argument 'labels': {empty.size} training rows have no label (rows {shown}); "
                "reconstruction is undefined for them. Set drop_unlabelled=True to drop them."
            )
        usable = np.setdiff1d(np.arange(n_rows), empty)
        fit_positions, validation_positions = split_validation(
            len(usable), config.validation_fraction, config.seed
        )
        self.fit_rows_ = usable[fit_positions]
        self.validation_rows_ = usable[validation_positions]
        self.dropped_rows_ = empty
        device = resolve_device(config.device)
        mixed = config.mixed_precision if config.mixed_precision is not None else device.type == "cuda"
        self.device_ = device
        folder = Path(run_dir) if run_dir is not None else None
        if folder is not None and context.is_main:
            folder.mkdir(parents=True, exist_ok=True)
        say = progress if (progress is not None and context.is_main) else None
        timings: dict[str, float] = {}
        fit_rows, validation_rows = self.fit_rows_, self.validation_rows_
        fit_labels = label_matrix[fit_rows]
        validation_labels = label_matrix[validation_rows]

        # Stage 1: the single-modal hasher on the training texts.
        started = time.perf_counter()
        hasher = self.hasher_ = hasher_registry().create(
            config.hasher, n_bits=config.n_bits, **{"seed": config.seed, **config.hasher_params}
        )
        stage1_file = folder / "stage1_codes.npz" if folder is not None else None
        codes = validation_codes = None
        # Rank 0 alone reads or computes the Stage-1 codes and every rank receives them, so all
        # ranks take part in the same broadcasts whatever files exist when each one looks.
        if context.is_main:
            if resume and stage1_file is not None and stage1_file.exists():
                with np.load(stage1_file) as stored:
                    codes, validation_codes = stored["codes"], stored["validation_codes"]
                if say:
                    say(f"[stage 1 {config.hasher}] reused codes from {stage1_file}")
            else:
                if say:
                    say(f"[stage 1 {config.hasher}] fitting on {len(fit_rows)} training texts")
                codes = self._stage1(hasher, rows_as_matrix(text_source, fit_rows), fit_labels)
                validation_codes = np.zeros((0, config.n_bits), dtype=np.uint8)
                if len(validation_rows) and hasher.supports_encode:
                    validation_codes = hasher.encode(rows_as_matrix(text_source, validation_rows))
                if stage1_file is not None:
                    _save_stage1(stage1_file, codes, validation_codes)
        self.stage1_codes_ = _broadcast_array(codes)
        validation_text_codes = _broadcast_array(validation_codes)
        timings["stage1"] = time.perf_counter() - started

        # Stage 2: the image network learns the text codes.
        torch.manual_seed(config.seed)
        self.image_network_ = build_network(
            config.image_network, config.n_bits, image_source.n_features, n_training_rows=len(fit_rows)
        )
        fit_input_scaling(self.image_network_, image_source, fit_rows, seed=config.seed)
        self.image_network_.to(device)
        stage2_targets = _scatter_targets(n_rows, fit_rows, self.stage1_codes_)

        def validate_image(network: torch.nn.Module) -> float:
            # Both directions, with the database on the fitting rows as in retrieval:
            # validation images -> Stage-1 text codes, and (when the hasher can encode new texts)
            # validation Stage-1 text codes -> the network's codes of the fitting images.
            options = {"device": device, "mixed_precision": mixed}
            query_images = encode_with(network, image_source, validation_rows, **options)
            image_to_text = validation_map(query_images, self.stage1_codes_, validation_labels, fit_labels)
            if len(validation_text_codes) == 0:
                return image_to_text
            database_images = encode_with(network, image_source, fit_rows, **options)
            text_to_image = validation_map(
                validation_text_codes, database_images, validation_labels, fit_labels
            )
            return (image_to_text + text_to_image) / 2

        started = time.perf_counter()
        self.image_training_ = train_hash_network(
            self.image_network_,
            image_source,
            stage2_targets,
            fit_rows,
            config.image_training,
            validate=validate_image if len(validation_rows) else None,
            seed=config.seed,
            device=device,
            mixed_precision=mixed,
            checkpoint_path=folder / "stage2.ckpt" if folder is not None else None,
            resume=resume,
            progress=say,
            label=f"stage 2 image net, {config.hasher}, {config.n_bits} bits",
        )
        timings["stage2"] = time.perf_counter() - started
        self.image_codes_ = encode_with(
            self.image_network_, image_source, fit_rows, device=device, mixed_precision=mixed
        )

        # Reconstruction in O(n c k), then Stage 3: the text network learns the reconstructed codes.
        started = time.perf_counter()
        targets = None
        if context.is_main:
            targets = reconstruct_codes(
                fit_labels, self.image_codes_, binarise=config.reconstruction == "binary"
            ).targets
        self.reconstructed_ = _broadcast_array(targets)
        timings["reconstruction"] = time.perf_counter() - started
        torch.manual_seed(config.seed + 1)
        self.text_network_ = build_network(
            config.text_network, config.n_bits, text_source.n_features, n_training_rows=len(fit_rows)
        )
        fit_input_scaling(self.text_network_, text_source, fit_rows, seed=config.seed)
        self.text_network_.to(device)
        stage3_targets = _scatter_targets(n_rows, fit_rows, self.reconstructed_)

        validation_image_codes = encode_with(
            self.image_network_, image_source, validation_rows, device=device, mixed_precision=mixed
        )

        def validate_text(network: torch.nn.Module) -> float:
            # Mean of text->image (validation texts vs fitting-image codes) and image->text
            # (validation-image codes vs the network's codes of the fitting texts).
            options = {"device": device, "mixed_precision": mixed}
            query_texts = encode_with(network, text_source, validation_rows, **options)
            database_texts = encode_with(network, text_source, fit_rows, **options)
            text_to_image = validation_map(query_texts, self.image_codes_, validation_labels, fit_labels)
            image_to_text = validation_map(
                validation_image_codes, database_texts, validation_labels, fit_labels
            )
            return (image_to_text + text_to_image) / 2

        started = time.perf_counter()
        self.text_training_ = train_hash_network(
            self.text_network_,
            text_source,
            stage3_targets,
            fit_rows,
            config.text_training,
            validate=validate_text if len(validation_rows) else None,
            seed=config.seed + 1,
            device=device,
            mixed_precision=mixed,
            checkpoint_path=folder / "stage3.ckpt" if folder is not None else None,
            resume=resume,
            progress=say,
            label=f"stage 3 text net, {config.hasher}, {config.n_bits} bits",
        )
        timings["stage3"] = time.perf_counter() - started
        self.n_features_ = {"image": image_source.n_features, "text": text_source.n_features}
        self.report_ = self._validation_report(
            image_source, text_source, fit_labels, validation_labels, timings, device, mixed
        )
        if config.refit and len(validation_rows):
            self._refit_on_all_rows(image, text, labels, folder, resume, progress)
        return self

    @classmethod
    def tune(cls, image: Any, text: Any, labels: Any, grid: dict[str, Any], **options: Any) -> DDCMH:
        """Choose hyper-parameters on the validation split and return the chosen model.

        Every combination of ``grid`` (dotted setting paths to candidate values, e.g.
        ``{"image_network.dropout": [0.3, 0.5]}``) is trained on the fitting rows and scored by its
        validation MAP; the query set plays no part. ``options`` (``config``, ``repeats``,
        ``objective``, ``run_dir``, ``resume``, ``progress``) are those of
        :func:`ddcmh_core.tuning.tune`; the comparison is in ``model.tuning_`` and
        ``model.report_["tuning"]``.

        Returns
        -------
        DDCMH
            The chosen candidate's fitted model.
        """
        from ..tuning import tune

        model, _ = tune(image, text, labels, grid, **options)
        return model

    def _refit_on_all_rows(
        self,
        image: Any,
        text: Any,
        labels: Any,
        folder: Path | None,
        resume: bool,
        progress: ProgressCallback | None,
    ) -> None:
        """Train again on every training row for the epochs chosen on the validation split."""
        config = self.config
        chosen = {
            "image_training": config.image_training.model_copy(
                update={"max_epochs": max(self.image_training_.best_epoch, 1)}
            ),
            "text_training": config.text_training.model_copy(
                update={"max_epochs": max(self.text_training_.best_epoch, 1)}
            ),
        }
        if progress is not None and distributed_context().is_main:
            epochs = (chosen["image_training"].max_epochs, chosen["text_training"].max_epochs)
            progress(
                "[refit] training again on all training rows for the chosen epochs "
                f"(stage 2: {epochs[0]}, stage 3: {epochs[1]})"
            )
        final = DDCMH(config.model_copy(update={**chosen, "validation_fraction": 0.0, "refit": False})).fit(
            image,
            text,
            labels,
            run_dir=folder / "refit" if folder is not None else None,
            resume=resume,
            progress=progress,
        )
        selection = self.report_
        for attribute in (
            "hasher_",
            "stage1_codes_",
            "image_network_",
            "text_network_",
            "image_codes_",
            "reconstructed_",
            "fit_rows_",
            "image_training_",
            "text_training_",
        ):
            setattr(self, attribute, getattr(final, attribute))
        self.report_ = {**final.report_, "refit": True, "selection": selection}
        self.report_["validation_map"] = selection.get("validation_map", {})

    def _stage1(self, hasher: Hasher, texts: Any, labels: np.ndarray) -> np.ndarray:
        supervised = hasher.tags()["uses_labels"]
        return hasher.fit_encode(
            texts, labels if supervised else None, training_codes=self.config.training_codes
        )

    def _validation_report(
        self,
        image_source: BatchSource,
        text_source: BatchSource,
        fit_labels: np.ndarray,
        validation_labels: np.ndarray,
        timings: dict[str, float],
        device: torch.device,
        mixed: bool,
    ) -> dict[str, Any]:
        report: dict[str, Any] = {
            "n_fit": len(self.fit_rows_),
            "n_validation": len(self.validation_rows_),
            "n_dropped_unlabelled": len(self.dropped_rows_),
            "stage2_best_epoch": self.image_training_.best_epoch,
            "stage3_best_epoch": self.text_training_.best_epoch,
            "seconds": timings,
            "seconds_per_epoch": {
                "stage2": _per_epoch(self.image_training_),
                "stage3": _per_epoch(self.text_training_),
            },
        }
        if len(self.validation_rows_):
            options = {"device": device, "mixed_precision": mixed}
            val_image = encode_with(self.image_network_, image_source, self.validation_rows_, **options)
            val_text = encode_with(self.text_network_, text_source, self.validation_rows_, **options)
            fit_text = encode_with(self.text_network_, text_source, self.fit_rows_, **options)
            report["validation_map"] = {
                "image->text": validation_map(val_image, fit_text, validation_labels, fit_labels),
                "text->image": validation_map(val_text, self.image_codes_, validation_labels, fit_labels),
            }
        return report

    # ------------------------------------------------------------------ encoding
    def _require_fitted(self) -> None:
        if not hasattr(self, "text_network_"):
            raise NotFittedError("DDCMH: call fit (or DDCMH.load) before encoding")

    def encode_image(self, image: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Codes of the first view (images), uint8 {0,1} of shape (n, n_bits)."""
        self._require_fitted()
        source = as_source(image, self.config.image_network)
        self._check_width(source, "image")
        return encode_with(self.image_network_, source, batch_size=batch_size, device=self._device())

    def encode_text(self, text: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Codes of the second view (texts), uint8 {0,1} of shape (n, n_bits)."""
        self._require_fitted()
        source = as_source(text, self.config.text_network)
        self._check_width(source, "text")
        return encode_with(self.text_network_, source, batch_size=batch_size, device=self._device())

    def _device(self) -> torch.device:
        return next(self.image_network_.parameters()).device

    def _check_width(self, source: BatchSource, view: str) -> None:
        expected = self.n_features_.get(view)
        if expected is not None and source.n_features != expected:
            raise InputError(
                f"DDCMH: argument {view!r}: expected {expected} features per row (as in training), "
                f"got {source.n_features}"
            )

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, **extras: Any) -> Path:
        """Write the model to one self-describing HDF5 file (see :mod:`ddcmh_core.model_file`)."""
        from ..model_file import save_model

        self._require_fitted()
        return save_model(self, path, **extras)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> DDCMH:
        """Load a model written by :meth:`save`; no pickled code is executed."""
        from ..model_file import load_model

        return load_model(path, device=device)

    def summary(self) -> str:
        """One paragraph describing the trained model."""
        report = getattr(self, "report_", {})
        return json.dumps({"config": self.config.model_dump(mode="json"), "report": report}, indent=2)


def _scatter_targets(n_rows: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    targets = np.zeros((n_rows, values.shape[1]), dtype=np.float32)
    targets[rows] = values
    return targets


def _per_epoch(result: TrainingResult) -> float | None:
    if not result.history:
        return None
    return float(np.mean([entry["seconds"] for entry in result.history]))


def _save_stage1(path: Path, codes: np.ndarray, validation_codes: np.ndarray) -> None:
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez(handle, codes=codes, validation_codes=validation_codes)


def _broadcast_array(array: np.ndarray | None) -> np.ndarray:
    """Rank 0's array on every rank (computed once, broadcast)."""
    if not distributed_context().active:
        assert array is not None
        return array
    import torch.distributed as dist

    holder = [array if distributed_context().is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return np.asarray(holder[0])


__all__ = ["DDCMH", "DDCMHConfig", "Hasher"]
