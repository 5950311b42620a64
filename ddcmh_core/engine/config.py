"""Configuration of a DDCMH run: pydantic models shared by the Python API, the CLI and TOML files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NetworkConfig(_Strict):
    """A Stage-2 or Stage-3 hash network: an MLP over feature vectors, or a CNN over images.

    The last layer is always a linear hash layer with ``n_bits`` outputs (logits).
    """

    architecture: Literal["mlp", "cnn"] = Field(
        "mlp", description="'mlp' for feature vectors (dense or sparse), 'cnn' for raw images."
    )
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1024],
        description="MLP hidden layer widths (an empty list gives a linear hash function).",
    )
    dropout: float = Field(
        0.3, ge=0.0, lt=1.0, description="Dropout after each hidden layer (of an MLP, or of a CNN's head)."
    )
    normalization: Literal["batch", "layer", "none"] = Field(
        "batch", description="Normalisation after each hidden linear layer (of an MLP, or of a CNN's head)."
    )
    input_scaling: Literal["standardize", "none"] = Field(
        "standardize",
        description=(
            "MLP input scaling fitted on the training rows: 'standardize' subtracts the mean and "
            "divides by the standard deviation of each feature (sparse input is only divided by its "
            "root mean square, so it stays sparse)."
        ),
    )
    kernel_lift: Literal["auto", "none", "rbf"] = Field(
        "auto",
        description=(
            "MLP input lift: 'rbf' replaces each (scaled) input row by its RBF similarities to "
            "anchors drawn from the training rows, as a kernel machine sees it, before the hidden "
            "layers; it helps on small, noisy feature sets (e.g. bag-of-visual-words histograms). "
            "'auto' (DDCMH) trains the network both ways on a dense view of at most "
            "auto_lift_max_features features and keeps the one with the better validation MAP; "
            "other views get 'none'."
        ),
    )
    auto_lift_max_features: int = Field(
        1024,
        ge=1,
        description="Widest dense view for which kernel_lift='auto' tries the lift.",
    )
    lift_anchors: int = Field(
        2000,
        ge=1,
        description=(
            "Anchors of the RBF lift (at most the number of training rows); 2,000 and a width of 0.35 "
            "were chosen on the validation split of Wikipedia's training pairs."
        ),
    )
    lift_width_scale: float = Field(
        0.35,
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
    feature_normalization: Literal["auto", "none", "batch"] = Field(
        "auto",
        description=(
            "CNN: 'batch' puts a batch norm between the backbone's pooled features and the hash "
            "layer, trained with the hash layer. 'auto': the method decides: DCMH 'batch' (its "
            "plain-SGD schedule diverges on the raw pooled features), DDCMH 'none' (its Stage 2 "
            "trains with Adam)."
        ),
    )
    head_hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description=(
            "CNN: widths of hidden layers between the pooled features (after feature_normalization) "
            "and the hash layer, each a linear layer, then normalization, ReLU and dropout, as in an "
            "MLP; like the fully connected layers that CNN-F, the papers' network, keeps before its "
            "hash layer. [] (default): the hash layer reads the pooled features."
        ),
    )
    image_size: int | None = Field(
        None,
        ge=32,
        description=(
            "CNN input side in pixels: photos are resized and cropped to it. None: the backbone's "
            "own (224 for MobileNetV2); 128 trains about three times faster on a CPU."
        ),
    )
    crop_min_area: float = Field(
        0.08,
        gt=0,
        le=1,
        description=(
            "CNN on photos: smallest share of a photo's area that a training crop keeps (random "
            "resized crops with areas between this and the whole photo, aspect ratio 3/4 to 4/3, "
            "then a horizontal flip half the time). 0.08, ImageNet's usual value, by default; 1 "
            "trains on the whole (centre-square) photo, flipped half the time."
        ),
    )
    photo_cache: bool = Field(
        True,
        description=(
            "CNN on photos: keep every photo decoded and resized in one memory-mapped uint8 file "
            "(in the 'photos' folder beside the weight cache), so that no epoch after the first "
            "decodes a file. Training crops are then drawn inside each photo's centre square."
        ),
    )
    decode_workers: int | None = Field(
        None,
        ge=1,
        description=(
            "CNN on photos: threads (or processes) that decode and augment; None: one per usable core, "
            "at most 8."
        ),
    )
    decode_processes: bool = Field(
        False,
        description=(
            "CNN on photos: decode and augment in decode_workers worker processes instead of threads "
            "(for many cores feeding a GPU; the photos come out identical)."
        ),
    )


PHOTO_NETWORK: dict[str, Any] = {"architecture": "cnn", "backbone": "mobilenet_v2", "pretrained": "registry"}
"""The image network ``ddcmh-bench`` and ``ddcmh train`` give DDCMH when the image view is photos
and the settings choose no architecture: MobileNetV2 with the registry ImageNet weights, fine-tuned."""


def network_for_photos(chosen: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The image-network settings DDCMH gets for a view of photos, from the ones the user wrote.

    :data:`PHOTO_NETWORK` under the user's own keys (``image_size``, ``freeze_backbone``, even
    ``backbone`` stay as written); ``None`` when the user chose an ``architecture``, which is then
    theirs to keep.
    """
    chosen = dict(chosen or {})
    if "architecture" in chosen:
        return None
    return {**PHOTO_NETWORK, **chosen}


def describe_photo_network(network: Mapping[str, Any]) -> str:
    """``a CNN (backbone, weights, frozen|fine-tuned)`` for the line that tells the user."""
    state = "frozen" if network.get("freeze_backbone") else "fine-tuned"
    return f"a CNN ({network['backbone']}, {network['pretrained']} weights, {state})"


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
    backbone_rate_scale: float = Field(
        1.0,
        gt=0,
        le=1,
        description=(
            "CNN: the backbone body's learning rate as a share of learning_rate (the hash layer, "
            "head and feature norm take learning_rate itself); below 1 moves pretrained weights less "
            "than the new layers, in every epoch and under every schedule."
        ),
    )
    schedule: Literal["cosine", "step", "none"] = Field(
        "cosine", description="Learning-rate schedule over max_epochs."
    )
    head_warmup_epochs: int = Field(
        0,
        ge=0,
        description=(
            "Fine-tuned CNN (DDCMH's image network): before fine-tuning, train the feature norm, head "
            "and hash layer alone on the body's features, computed once, for this many epochs (cheap: "
            "no early stop; the best validation epoch is kept, and the refit repeats it), with these "
            "settings otherwise. The whole network is then fine-tuned from that head for max_epochs. "
            "0: none."
        ),
    )
