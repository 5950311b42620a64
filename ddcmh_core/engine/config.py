"""Configuration of a DDCMH run: pydantic models shared by the Python API, the CLI and TOML files."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NetworkConfig(_Strict):
    """A Stage-2 or Stage-3 hash network: an MLP over feature vectors, or a CNN over images.

    The last layer is always a linear hash layer with ``n_bits`` outputs (logits).
    """

    architecture: Literal["mlp", "cnn"] = Field(
        "mlp", description="'mlp' for feature vectors (dense or sparse), 'cnn' for raw images."
    )
    hidden_sizes: list[int] = Field(
        default_factory=lambda: [1024],
        description="MLP hidden layer widths (an empty list gives a linear hash function).",
    )
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="MLP dropout after each hidden layer.")
    normalization: Literal["batch", "layer", "none"] = Field(
        "batch", description="MLP normalisation after each hidden linear layer."
    )
    input_scaling: Literal["standardize", "none"] = Field(
        "standardize",
        description=(
            "MLP input scaling fitted on the training rows: 'standardize' subtracts the mean and "
            "divides by the standard deviation of each feature (sparse input is only divided by its "
            "root mean square, so it stays sparse)."
        ),
    )
    kernel_lift: Literal["none", "rbf"] = Field(
        "none",
        description=(
            "MLP input lift: 'rbf' replaces each (scaled) input row by its RBF similarities to "
            "anchors drawn from the training rows, as a kernel machine sees it, before the hidden "
            "layers. Helps on small, noisy feature sets (e.g. bag-of-visual-words histograms)."
        ),
    )
    lift_anchors: int = Field(
        1000, ge=1, description="Anchors of the RBF lift (at most the number of training rows)."
    )
    lift_width_scale: float = Field(
        1.0,
        gt=0,
        description=(
            "RBF width of the lift as a multiple of the root-mean-square distance from training "
            "rows to anchors; below 1 makes the features more local."
        ),
    )
    backbone: str = Field("mobilenet_v2", description="CNN backbone name (architecture='cnn').")
    pretrained: str | None = Field(
        None,
        description=(
            "CNN weights: None (random init), a local state-dict file, 'registry' (weights shipped "
            "by a registry package) or 'torchvision' (needs internet)."
        ),
    )
    freeze_backbone: bool = Field(False, description="Train only the hash layer of a CNN.")


class TrainingConfig(_Strict):
    """Optimisation of one hash network (per-bit sigmoid cross-entropy)."""

    max_epochs: int = Field(60, ge=1, description="Upper bound on epochs (early stopping may end sooner).")
    patience: int = Field(
        10, ge=1, description="Stop after this many epochs without a better validation MAP."
    )
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(1e-5, ge=0)
    schedule: Literal["cosine", "step", "none"] = Field(
        "cosine", description="Learning-rate schedule over max_epochs."
    )


class DDCMHConfig(_Strict):
    """Everything that defines a DDCMH model and how it is trained.

    See METHOD.md §2 for the decisions behind ``training_codes``, ``reconstruction`` and
    ``drop_unlabelled``.
    """

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
