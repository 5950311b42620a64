"""The DDCMH pipeline: Stage 1, Stage 2, reconstruction, Stage 3.

Stage 1 runs the hasher on the texts, Stage 2 trains the image network on its codes, the image codes
are reconstructed from label overlap, and Stage 3 trains the text network on them. Nothing assumes
the two views are images and texts; any two labelled views work.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from ..engine.backbones import ImageHashNetwork
from ..engine.checkpoint import CheckpointError, load_stage_arrays, resume_advice, save_stage_arrays
from ..engine.config import NetworkConfig, TrainingConfig
from ..engine.device import distributed_context, resolve_device
from ..engine.epoch_loop import TrainingResult
from ..engine.fingerprint import run_fingerprint, training_data_digest
from ..engine.head_warmup import ValidatorFactory, warm_up_head
from ..engine.holdout import split_labelled_rows, validation_map
from ..engine.inference import encode_with
from ..engine.networks import (
    build_network,
    fit_input_scaling,
    lift_may_help,
    network_state_arrays,
    restore_network,
)
from ..engine.sources import BatchSource, rows_as_matrix
from ..engine.trainer import Validator, train_hash_network
from ..errors import DdcmhError, HasherFileError
from ..hasher import Hasher
from ..hasher_file import load_hasher
from ..plugins import hasher_registry
from .base import (
    VIEWS,
    DataShape,
    MethodParams,
    MethodState,
    MethodTags,
    ProgressCallback,
    View,
)
from .network_per_view import NetworkPerViewMethod
from .reconstruction import reconstruct_codes


class DDCMHConfig(MethodParams):
    """Everything that defines a DDCMH model and how it is trained.

    See METHOD.md §2 for the decisions behind ``training_codes``, ``reconstruction`` and
    ``drop_unlabelled``.
    """

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
        True,
        description=(
            "After choosing the epochs (and input lifts) of both stages on the validation split, train "
            "again on all training rows with those choices. When the database is the training set, as "
            "in the standard protocols, every database item is then one the networks were trained on; "
            "on Wikipedia this raised image->text MAP by about 0.01. False keeps the model of the "
            "selection fit (a little faster)."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' picks CUDA when present.")
    mixed_precision: bool | None = Field(
        None, description="Autocast on CUDA; None means on for CUDA, off for CPU."
    )

    @model_validator(mode="after")
    def _no_bits_in_hasher_params(self) -> DDCMHConfig:
        if "n_bits" in self.hasher_params:
            raise ValueError("set the code length with n_bits, not inside hasher_params")
        return self


@dataclass
class _Run:
    """What the stages of one DDCMH fit share: the views, the split, the device, the output folder."""

    image: BatchSource
    text: BatchSource
    fit_rows: np.ndarray
    validation_rows: np.ndarray
    fit_labels: np.ndarray
    validation_labels: np.ndarray
    device: torch.device
    mixed: bool
    folder: Path | None
    resume: bool
    say: ProgressCallback | None
    params: DDCMHConfig
    """The settings as resolved so far: a network's ``kernel_lift="auto"`` becomes its choice."""
    data_digest: str | None = None
    """The content digest of the training data (with a run folder only)."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def encode_options(self) -> dict[str, Any]:
        """Device options of :func:`~ddcmh_core.engine.inference.encode_with`, and the progress lines."""
        return {"device": self.device, "mixed_precision": self.mixed, "progress": self.say}

    def checkpoint(self, stage: str, suffix: str) -> Path | None:
        """The file of ``stage`` in the run folder, named by the stage's key (None without a folder)."""
        if self.folder is None:
            return None
        return self.folder / f"{stage}-{stage_keys(self.params)[stage]}{suffix}"

    def fingerprint(self, stage: str) -> dict[str, Any] | None:
        """The run fingerprint of ``stage``'s files: its settings, the data, the versions."""
        if self.folder is None:
            return None
        return run_fingerprint("ddcmh", stage_settings(self.params)[stage], data=self.data_digest)


STAGE_SETTINGS = {
    "stage1": ("n_bits", "seed", "hasher", "hasher_params", "training_codes", "validation_fraction",
               "drop_unlabelled"),
    "stage2": ("image_network", "image_training"),
    "stage3": ("reconstruction", "text_network", "text_training"),
}  # fmt: skip
"""The settings each stage's result depends on, besides those of the stages before it."""


def lift_candidates(
    network: NetworkConfig, source: BatchSource, *, has_validation: bool
) -> list[NetworkConfig]:
    """The network settings to train for a view: ``kernel_lift="auto"`` resolved to its candidates.

    ``"auto"`` tries the RBF lift beside the plain input when the view is dense feature vectors of
    at most ``auto_lift_max_features`` columns, an MLP reads them and there is a validation split
    to choose on; otherwise it means ``"none"``. Other settings are returned as they are.
    """
    if network.kernel_lift != "auto":
        return [network]
    plain = network.model_copy(update={"kernel_lift": "none"})
    if not has_validation or not lift_may_help(network, source):
        return [plain]
    return [plain, network.model_copy(update={"kernel_lift": "rbf"})]


def stage_settings(params: DDCMHConfig) -> dict[str, dict[str, Any]]:
    """Per stage, every setting its result depends on (its own and the earlier stages'), as JSON.

    Defaults are filled in, the hasher's included (:meth:`DDCMH.resolved_settings`), so a stage
    saved under one default is never picked up under another.
    """
    settings = DDCMH.resolved_settings(params)
    stages: dict[str, dict[str, Any]] = {}
    seen: dict[str, Any] = {}
    for stage, names in STAGE_SETTINGS.items():
        seen.update({name: settings[name] for name in names})
        stages[stage] = dict(seen)
    return stages


def stage_keys(params: DDCMHConfig) -> dict[str, str]:
    """A digest per stage of :func:`stage_settings`.

    Stage files in a run folder are named by these keys, so a run with other settings never picks
    up a stale stage, and runs that differ only in later stages (tuning candidates of the text
    network, say) share the Stage-1 codes and the Stage-2 network.
    """
    return {
        stage: hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:12]
        for stage, seen in stage_settings(params).items()
    }


class DDCMH(NetworkPerViewMethod):
    """Dual Deep Neural Networks Cross-Modal Hashing.

    Parameters
    ----------
    params : DDCMHConfig, optional
        The whole configuration; keyword arguments override its fields, nested tables merged
        (``DDCMH(hasher="sdh", n_bits=64)``).

    Attributes
    ----------
    hasher_ : Hasher
        The fitted Stage-1 hasher (an unfitted one with the recorded parameters after loading a
        model file; None when its plugin is no longer installed).
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
        candidates compared, for a model chosen by :func:`ddcmh_core.tuning.tune`).
    """

    Params = DDCMHConfig
    tags = MethodTags(supervised=True, needs_paired=True, deep=True, uses_hasher=True)
    display_name = "DDCMH"

    params: DDCMHConfig
    hasher_: Hasher | None
    hasher_record_: dict[str, Any]

    @classmethod
    def working_memory(cls, params: MethodParams, data: DataShape) -> tuple[int, str] | None:
        """The Stage-1 hasher's estimate on the text rows it fits (the networks train in batches)."""
        assert isinstance(params, DDCMHConfig)
        width = data.n_features.get("text")
        if width is None:
            return None
        try:
            hasher = _make_hasher(params)
        except (DdcmhError, ValueError):
            return None  # data_problems reports it
        estimate = hasher.working_memory(_stage1_rows(params, data), width)
        if estimate is None:
            return None
        return estimate[0], f"{estimate[1]} in Stage 1 ({params.hasher})"

    @classmethod
    def resolved_settings(cls, params: MethodParams) -> dict[str, Any]:
        """The base settings with ``hasher_params`` resolved by the hasher, its defaults included.

        ``n_bits`` and ``seed`` stay DDCMH's own fields. A hasher that cannot be built (not
        installed, invalid parameters) leaves ``hasher_params`` as written: the fit reports why.
        """
        assert isinstance(params, DDCMHConfig)
        settings = super().resolved_settings(params)
        try:
            hasher = _make_hasher(params)
        except (DdcmhError, ValueError):
            return settings
        own = ("n_bits", "seed")
        settings["hasher_params"] = {
            key: value for key, value in hasher.build_params().items() if key not in own
        }
        return settings

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus the Stage-1 hasher's name and parameters."""
        problems = super().data_problems(params, data)
        assert isinstance(params, DDCMHConfig)
        problems.extend(_warmup_problems(params, data))
        try:
            hasher = _make_hasher(params)
        except (DdcmhError, ValueError) as error:
            problems.append(f"hasher {params.hasher!r}: {error}")
            return problems
        width = data.n_features.get("text")
        if width is None:
            return problems
        if hasher.bits_exceed_features(width):
            problems.append(
                f"hasher {params.hasher!r}: {params.n_bits} bits from a text view of {width} features; "
                "this hasher gives at most one bit per feature: lift it "
                f"(--hasher-opt {params.hasher}:kernel_lift=rbf) or use fewer bits"
            )
            return problems
        owner = f"hasher {params.hasher!r}"
        stage1_rows = _stage1_rows(params, data)
        problems.extend(f"{owner}: {text}" for text in hasher.shape_problems(stage1_rows, width))
        return problems

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
        """Stage 1, Stage 2, reconstruction, Stage 3; then the optional refit on all rows."""
        assert labels is not None  # supervised: the base class refuses a fit without labels
        run = self._prepare_run(image, text, labels, run_dir, resume, progress)
        self._fit_stage1(run)
        self._fit_stage2(run)
        self._reconstruct(run)
        self._fit_stage3(run)
        self.n_features_ = {"image": image.n_features, "text": text.n_features}
        self.resolved_params_ = run.params
        self.report_ = self._validation_report(run)
        if self.params.refit and len(run.validation_rows):
            self.refit_on_all_rows(image, text, labels, run_dir, resume, progress)

    def _prepare_run(
        self,
        image: BatchSource,
        text: BatchSource,
        labels: np.ndarray,
        run_dir: Path | None,
        resume: bool,
        progress: ProgressCallback | None,
    ) -> _Run:
        """Drop or refuse unlabelled rows, carve the validation split, pick the device."""
        params = self.params
        rows = split_labelled_rows(
            labels,
            fraction=params.validation_fraction,
            seed=params.seed,
            drop_unlabelled=params.drop_unlabelled,
            owner="DDCMH",
            why_labels="reconstruction is undefined for them",
        )
        self.fit_rows_, self.validation_rows_, self.dropped_rows_ = rows.fit, rows.validation, rows.dropped
        self.lift_choice_: dict[str, dict[str, Any]] = {}
        self.head_warmup_: TrainingResult | None = None
        device = self.device_ = resolve_device(params.device)
        context = distributed_context()
        if run_dir is not None and context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        return _Run(
            image=image,
            text=text,
            fit_rows=self.fit_rows_,
            validation_rows=self.validation_rows_,
            fit_labels=labels[self.fit_rows_],
            validation_labels=labels[self.validation_rows_],
            device=device,
            mixed=params.mixed_precision if params.mixed_precision is not None else device.type == "cuda",
            folder=run_dir,
            resume=resume,
            say=progress if (progress is not None and context.is_main) else None,
            params=params,
            data_digest=training_data_digest(labels, image, text) if run_dir is not None else None,
        )

    def _fit_stage1(self, run: _Run) -> None:
        """Stage 1: the single-modal hasher on the training texts (reused from the run folder)."""
        params = self.params
        started = time.perf_counter()
        hasher = self.hasher_ = _make_hasher(params)
        stage1_file = run.checkpoint("stage1", ".npz")
        hasher_file = run.checkpoint("stage1", ".hasher.h5")
        codes = validation_codes = None
        # Rank 0 alone reads or computes the Stage-1 codes and every rank receives them, so all
        # ranks take part in the same broadcasts whatever files exist when each one looks.
        if distributed_context().is_main:
            stored_files = [file for file in (stage1_file, hasher_file) if file is not None and file.exists()]
            if run.resume and len(stored_files) == 2:
                assert stage1_file is not None and hasher_file is not None
                codes, validation_codes = load_stage_arrays(
                    stage1_file, ("codes", "validation_codes"), fingerprint=run.fingerprint("stage1")
                )
                try:
                    self.hasher_ = load_hasher(hasher_file)  # fitted: it encodes new texts as before
                except HasherFileError as error:
                    raise CheckpointError(f"{error}; {resume_advice(hasher_file)}") from None
                if run.say:
                    run.say(f"[stage 1 {params.hasher}] reused codes from {stage1_file}")
            else:
                if run.say:
                    run.say(f"[stage 1 {params.hasher}] fitting on {len(run.fit_rows)} training texts")
                supervised = hasher.tags()["uses_labels"]
                codes = hasher.fit_encode(
                    rows_as_matrix(run.text, run.fit_rows),
                    run.fit_labels if supervised else None,
                    training_codes=params.training_codes,
                )
                validation_codes = np.zeros((0, params.n_bits), dtype=np.uint8)
                if len(run.validation_rows) and hasher.tags()["supports_encode"]:
                    validation_codes = hasher.encode(rows_as_matrix(run.text, run.validation_rows))
                if stage1_file is not None and hasher_file is not None:
                    hasher.save(hasher_file)
                    # Last: it marks Stage 1 done.
                    save_stage_arrays(
                        stage1_file,
                        {"codes": codes, "validation_codes": validation_codes},
                        fingerprint=run.fingerprint("stage1"),
                    )
        self.stage1_codes_ = _broadcast_array(codes)
        self.stage1_validation_codes_ = _broadcast_array(validation_codes)
        run.timings["stage1"] = time.perf_counter() - started

    def _fit_stage2(self, run: _Run) -> None:
        """Stage 2: the image network learns the Stage-1 text codes."""
        validation_text_codes = self.stage1_validation_codes_

        def validate_on(source: BatchSource) -> Validator:
            def validate(candidate: torch.nn.Module) -> float:
                # Both directions, with the database on the fitting rows as in retrieval:
                # validation images -> Stage-1 text codes, and (when the hasher can encode new
                # texts) validation Stage-1 text codes -> the network's codes of the fitting images.
                options = {**run.encode_options, "label": "stage 2 validation: image codes"}
                queries = encode_with(candidate, source, run.validation_rows, **options)
                image_to_text = validation_map(
                    queries, self.stage1_codes_, run.validation_labels, run.fit_labels
                )
                if len(validation_text_codes) == 0:
                    return image_to_text
                database = encode_with(candidate, source, run.fit_rows, **options)
                text_to_image = validation_map(
                    validation_text_codes, database, run.validation_labels, run.fit_labels
                )
                return (image_to_text + text_to_image) / 2

            return validate

        self.image_network_, self.image_training_ = self._train_stage(
            run, "image", self.stage1_codes_, validate_on
        )
        self.image_codes_ = encode_with(
            self.image_network_, run.image, run.fit_rows, **run.encode_options, label="stage 2: image codes"
        )

    def _reconstruct(self, run: _Run) -> None:
        """The Stage-3 targets from label overlap, in O(n c k) (rank 0 computes, all receive)."""
        started = time.perf_counter()
        targets = None
        if distributed_context().is_main:
            targets = reconstruct_codes(
                run.fit_labels, self.image_codes_, binarise=self.params.reconstruction == "binary"
            ).targets
        self.reconstructed_ = _broadcast_array(targets)
        run.timings["reconstruction"] = time.perf_counter() - started

    def _fit_stage3(self, run: _Run) -> None:
        """Stage 3: the text network learns the reconstructed image codes."""
        validation_images = encode_with(
            self.image_network_,
            run.image,
            run.validation_rows,
            **run.encode_options,
            label="stage 3 validation: image codes",
        )

        def validate_on(source: BatchSource) -> Validator:
            def validate(candidate: torch.nn.Module) -> float:
                # Mean of text->image (validation texts vs fitting-image codes) and image->text
                # (validation-image codes vs the network's codes of the fitting texts).
                queries = encode_with(candidate, source, run.validation_rows, **run.encode_options)
                database = encode_with(candidate, source, run.fit_rows, **run.encode_options)
                text_to_image = validation_map(
                    queries, self.image_codes_, run.validation_labels, run.fit_labels
                )
                image_to_text = validation_map(
                    validation_images, database, run.validation_labels, run.fit_labels
                )
                return (image_to_text + text_to_image) / 2

            return validate

        self.text_network_, self.text_training_ = self._train_stage(
            run, "text", self.reconstructed_, validate_on
        )

    def _train_stage(
        self,
        run: _Run,
        view: View,
        targets: np.ndarray,
        validate_on: ValidatorFactory,
    ) -> tuple[torch.nn.Module, TrainingResult]:
        """Train the hash network of ``view`` (Stage 2: image, Stage 3: text) with the shared loop.

        ``validate_on(source)`` is the stage's validation of a network reading ``source``. With
        ``kernel_lift="auto"`` both inputs that :func:`lift_candidates` offers are trained and the
        one with the better validation score is kept; the choice and both scores go to
        ``lift_choice_`` and the report. A fine-tuned CNN with ``head_warmup_epochs`` first has
        its head trained on its body's features (:func:`~ddcmh_core.engine.head_warmup.warm_up_head`).
        """
        params = self.params
        stage = "stage2" if view == "image" else "stage3"
        source = run.image if view == "image" else run.text
        validate = validate_on(source) if len(run.validation_rows) else None
        configured: NetworkConfig = getattr(params, f"{view}_network")
        candidates = lift_candidates(configured, source, has_validation=len(run.validation_rows) > 0)
        trained: list[tuple[torch.nn.Module, TrainingResult, NetworkConfig]] = []
        scores: dict[str, float | None] = {}
        started = time.perf_counter()
        for network_config in candidates:
            run.params = run.params.model_copy(update={f"{view}_network": network_config})
            lift = f", input lift {network_config.kernel_lift}" if len(candidates) > 1 else ""
            network, result = self._train_network(
                run, view, stage, source, network_config, targets, validate, validate_on, lift
            )
            scores[network_config.kernel_lift] = result.best_score
            trained.append((network, result, network_config))
        # The first of the best scores; rank 0 decides for every rank (only it validates).
        chosen = max(range(len(trained)), key=lambda index: (trained[index][1].best_score or 0.0, -index))
        best = trained[_from_rank_zero(chosen)]
        run.params = run.params.model_copy(update={f"{view}_network": best[2]})
        run.timings[stage] = time.perf_counter() - started
        if len(candidates) > 1:
            self.lift_choice_[view] = {"chosen": best[2].kernel_lift, "validation": scores}
            if run.say:
                shown = ", ".join(f"{name} {score:.4f}" for name, score in scores.items() if score)
                chosen = best[2].kernel_lift
                run.say(f"[{stage}] input lift of the {view} network: {chosen} (validation {shown})")
        return best[0], best[1]

    def _train_network(
        self,
        run: _Run,
        view: View,
        stage: str,
        source: BatchSource,
        network_config: NetworkConfig,
        targets: np.ndarray,
        validate: Validator | None,
        validate_on: ValidatorFactory,
        lift: str,
    ) -> tuple[torch.nn.Module, TrainingResult]:
        """Build, scale and train one hash network of ``view`` (warming up a CNN's head first).

        ``stage`` and ``source`` are :meth:`_train_stage`'s; ``validate`` is the stage's validator
        (None without validation rows); a head warm-up makes its own with ``validate_on`` from the
        body's features.
        """
        params = self.params
        seed = params.seed if view == "image" else params.seed + 1
        training: TrainingConfig = params.image_training if view == "image" else params.text_training
        torch.manual_seed(seed)
        network = build_network(
            network_config, params.n_bits, source.n_features, n_training_rows=len(run.fit_rows)
        )
        fit_input_scaling(network, source, run.fit_rows, seed=params.seed)
        network.to(run.device)
        label = f"stage {stage[-1]} {view} net, {params.hasher}, {params.n_bits} bits{lift}"
        scattered = _scatter_targets(len(source), run.fit_rows, targets)
        if training.head_warmup_epochs:
            assert isinstance(network, ImageHashNetwork)  # data_problems refuses anything else
            self.head_warmup_ = warm_up_head(
                network,
                source,
                scattered,
                run.fit_rows,
                training,
                validate_on=validate_on if validate is not None else None,
                seed=seed,
                device=run.device,
                progress=run.say,
                label=f"{label}, head warm-up",
            )
        result = train_hash_network(
            network,
            source,
            scattered,
            run.fit_rows,
            training,
            validate=validate,
            seed=seed,
            device=run.device,
            mixed_precision=run.mixed,
            checkpoint_path=run.checkpoint(stage, ".ckpt"),
            resume=run.resume,
            progress=run.say,
            label=label,
            curve=f"{stage} {view} network, input lift {network_config.kernel_lift}",
            fingerprint=run.fingerprint(stage),
        )
        return network, result

    def refit_on_all_rows(
        self,
        image: Any,
        text: Any,
        labels: Any,
        folder: Path | None,
        resume: bool,
        progress: ProgressCallback | None,
    ) -> None:
        """Train again on every training row for the epochs chosen on the validation split.

        The fitted attributes become those of the new fit; ``report_["selection"]`` keeps the
        report of the fit that chose the epochs.
        """
        params = self.params
        epochs = _from_rank_zero((self.image_training_.best_epoch, self.text_training_.best_epoch))
        image_epochs: dict[str, Any] = {"max_epochs": max(epochs[0], 1)}
        if self.head_warmup_ is not None:
            image_epochs["head_warmup_epochs"] = max(_from_rank_zero(self.head_warmup_.best_epoch), 1)
        chosen = {
            "image_training": params.image_training.model_copy(update=image_epochs),
            "text_training": params.text_training.model_copy(update={"max_epochs": max(epochs[1], 1)}),
        }
        if progress is not None and distributed_context().is_main:
            epochs = (chosen["image_training"].max_epochs, chosen["text_training"].max_epochs)
            warmups = chosen["image_training"].head_warmup_epochs
            warmup = f" after {warmups} of head warm-up" if warmups else ""
            progress(
                "[refit] training again on all training rows for the chosen epochs "
                f"(stage 2: {epochs[0]}{warmup}, stage 3: {epochs[1]})"
            )
        resolved = getattr(self, "resolved_params_", params)  # the input lifts chosen on validation
        networks = {"image_network": resolved.image_network, "text_network": resolved.text_network}
        update = {**chosen, **networks, "validation_fraction": 0.0, "refit": False}
        final = DDCMH(params.model_copy(update=update)).fit(
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
            "head_warmup_",
        ):
            setattr(self, attribute, getattr(final, attribute))
        self.report_ = {**final.report_, "refit": True, "selection": selection}
        self.report_["input_lift"] = selection.get("input_lift", {})
        self.report_["validation_map"] = selection.get("validation_map", {})

    def _validation_report(self, run: _Run) -> dict[str, Any]:
        report: dict[str, Any] = {
            "n_fit": len(self.fit_rows_),
            "n_validation": len(self.validation_rows_),
            "n_dropped_unlabelled": len(self.dropped_rows_),
            "stage2_best_epoch": self.image_training_.best_epoch,
            "stage3_best_epoch": self.text_training_.best_epoch,
            "input_lift": self.lift_choice_,
            "stage2_head_warmup": _warmup_report(self.head_warmup_),
            "seconds": run.timings,
            "seconds_per_epoch": {
                "stage2": _per_epoch(self.image_training_),
                "stage3": _per_epoch(self.text_training_),
            },
        }
        if len(self.validation_rows_):
            options = run.encode_options
            val_image = encode_with(
                self.image_network_, run.image, self.validation_rows_, **options, label="validation report"
            )
            val_text = encode_with(self.text_network_, run.text, self.validation_rows_, **options)
            fit_text = encode_with(self.text_network_, run.text, self.fit_rows_, **options)
            report["validation_map"] = {
                "image->text": validation_map(val_image, fit_text, run.validation_labels, run.fit_labels),
                "text->image": validation_map(
                    val_text, self.image_codes_, run.validation_labels, run.fit_labels
                ),
            }
        return report

    # ------------------------------------------------------------------ state
    def get_state(self) -> MethodState:
        """Both networks' weights, and the Stage-1 hasher's name, provider and parameters."""
        arrays = network_state_arrays({"image": self.image_network_, "text": self.text_network_})
        return MethodState(meta={"hasher": self._hasher_record()}, arrays=arrays)

    def _hasher_record(self) -> dict[str, Any]:
        if self.hasher_ is None:
            return dict(getattr(self, "hasher_record_", {}))
        entry = hasher_registry().get(self.params.hasher)
        return {
            "name": entry.spec.name,
            "class": entry.spec.target,
            "provider": entry.plugin.distribution,
            "provider_version": entry.plugin.version,
            "params": self.hasher_.build_params(),  # JSON; kernel_lift="rbf" for a KernelLifted
        }

    def set_state(self, state: MethodState, *, device: str = "auto") -> None:
        """Rebuild both networks from their weights; the Stage-1 hasher comes back unfitted."""
        params = self.params
        target_device = resolve_device(device)
        for view in VIEWS:
            network = restore_network(
                state.arrays, view, getattr(params, f"{view}_network"), params.n_bits, self.n_features_[view]
            )
            setattr(self, f"{view}_network_", network.to(target_device))
        self.hasher_record_ = dict(state.meta.get("hasher", {}))
        try:
            self.hasher_ = hasher_registry().create(
                self.hasher_record_["name"],
                n_bits=params.n_bits,
                **{k: v for k, v in self.hasher_record_["params"].items() if k != "n_bits"},
            )
        except Exception:  # the Stage-1 plugin may be gone; the model still encodes
            self.hasher_ = None

    def summary(self) -> str:
        """The configuration and the training report, as indented JSON."""
        report = getattr(self, "report_", {})
        return json.dumps({"config": self.params.model_dump(mode="json"), "report": report}, indent=2)


def _stage1_rows(params: DDCMHConfig, data: DataShape) -> int:
    """Rows the Stage-1 hasher fits on: the training pairs less the validation split."""
    return data.n_rows - round(params.validation_fraction * data.n_rows)


def _make_hasher(params: DDCMHConfig) -> Hasher:
    """The Stage-1 hasher a configuration names, with its seed and parameters."""
    return hasher_registry().create(
        params.hasher, n_bits=params.n_bits, **{"seed": params.seed, **params.hasher_params}
    )


def _scatter_targets(n_rows: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    targets = np.zeros((n_rows, values.shape[1]), dtype=np.float32)
    targets[rows] = values
    return targets


def _warmup_problems(params: DDCMHConfig, data: DataShape) -> list[str]:
    """Why ``head_warmup_epochs`` cannot apply: only a fine-tuned CNN on photos has a body to warm up on."""
    problems = []
    if params.text_training.head_warmup_epochs:
        problems.append(
            f"text_training.head_warmup_epochs={params.text_training.head_warmup_epochs}: the text "
            "network has no pretrained body to train its head on first; a head warm-up is for a "
            "fine-tuned CNN image network (image_training.head_warmup_epochs)"
        )
    network = params.image_network
    on_photos = "image" in data.n_features and data.n_features["image"] is None
    fine_tuned_cnn = on_photos and network.architecture == "cnn" and not network.freeze_backbone
    if params.image_training.head_warmup_epochs and not fine_tuned_cnn:
        what = (
            "the image view is feature vectors" if not on_photos
            else "the image network is not a CNN" if network.architecture != "cnn"
            else "the CNN's body is frozen (freeze_backbone=true), so only its head trains anyway"
        )  # fmt: skip
        problems.append(
            f"image_training.head_warmup_epochs={params.image_training.head_warmup_epochs}: a head "
            f"warm-up needs a fine-tuned CNN on photos, but {what}; set it to 0"
        )
    return problems


def _warmup_report(result: TrainingResult | None) -> dict[str, Any] | None:
    """The Stage-2 head warm-up in a report: its epochs, the one kept, its validation score, its time."""
    if result is None:
        return None
    return {
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "seconds": result.seconds,
    }


def _per_epoch(result: TrainingResult) -> float | None:
    if not result.history:
        return None
    return float(np.mean([entry["seconds"] for entry in result.history]))


def _broadcast_array(array: np.ndarray | None) -> np.ndarray:
    """Rank 0's array on every rank (computed once, broadcast)."""
    if not distributed_context().active:
        assert array is not None
        return array
    return np.asarray(_from_rank_zero(array))


def _from_rank_zero(value: Any) -> Any:
    """Rank 0's value on every rank, so that decisions taken on validation scores agree."""
    if not distributed_context().active:
        return value
    import torch.distributed as dist

    holder = [value if distributed_context().is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


__all__ = ["DDCMH", "DDCMHConfig", "Hasher"]
