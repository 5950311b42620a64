"""Photos as feature vectors: a frozen pretrained backbone run once over every image, cached on disk.

A CNN trained end to end on photos is hours of work on a CPU. Its body with pretrained weights,
frozen, turns each photo into one feature vector (MobileNetV2: 1,280 numbers) in a single pass;
every method that reads feature vectors (DDCMH with an MLP, DCMH, the shallow cross-modal
baselines) can then train on photos like on any feature dataset, and DDCMH's MLP with no hidden
layer on these features is the "frozen backbone, hash layer only" variant, with its features
computed once instead of every epoch.

Features are computed at evaluation preprocessing (resize, centre crop, the backbone's
normalisation; no augmentation) and cached as one ``.npy`` file per image list in
:func:`features_cache_dir`, named by a key over the backbone, its weights, the input size, the
torch version and every file's path, size and modification time: editing, adding or removing a
photo gives another key, so a stale file is never read. The file is written under a temporary
name and renamed, so an interrupted pass leaves no half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..files import atomic_path
from .photo_decoding import file_stats

if TYPE_CHECKING:
    import torch

    from ..data.dataset import CrossModalDataset
    from .backbones import ImageHashNetwork

__all__ = [
    "FrozenFeatures",
    "backbone_features",
    "body_features",
    "features_cache_dir",
    "parse_frozen_features",
    "with_feature_stand_in",
    "with_frozen_image_features",
]

_SPEC = re.compile(r"^(?P<backbone>[a-z0-9_]+)(?::(?P<size>\d+))?$")


@dataclass(frozen=True)
class FrozenFeatures:
    """Which frozen backbone turns photos into features, and how.

    Attributes
    ----------
    backbone : str
        A backbone with registry weights (see :data:`~ddcmh_core.engine.backbones.BACKBONES`).
    image_size : int, optional
        Side of the centre crop fed to the backbone; default its pretraining input size.
    batch_size : int
        Photos per forward pass (memory is a few batches of decoded photos).
    """

    backbone: str = "mobilenet_v2"
    image_size: int | None = None
    batch_size: int = 64

    def describe(self) -> str:
        """``backbone`` or ``backbone:size``, as :func:`parse_frozen_features` reads it."""
        return self.backbone if self.image_size is None else f"{self.backbone}:{self.image_size}"


def parse_frozen_features(text: str, *, option: str = "--image-features") -> FrozenFeatures:
    """Read ``BACKBONE`` or ``BACKBONE:SIZE`` (e.g. ``mobilenet_v2:160``), checked against the backbones.

    Raises
    ------
    InputError
        Naming ``option`` for a malformed value, an unknown backbone, one without registry weights
        or a size below the backbone's smallest input.
    """
    from .backbones import BACKBONES, backbone_info

    match = _SPEC.match(text.strip())
    with_weights = sorted(info.name for info in BACKBONES if info.registry_weights)
    if match is None:
        raise InputError(
            f"{option}: expected BACKBONE or BACKBONE:SIZE (e.g. mobilenet_v2:160), got {text!r}"
        )
    name = match["backbone"]
    try:
        info = backbone_info(name)
    except InputError:
        raise InputError(
            f"{option}: unknown backbone {name!r}; with registry weights: {with_weights}"
        ) from None
    if not info.registry_weights:
        raise InputError(
            f"{option}: {name!r} has no registry weights, and random frozen features carry no "
            f"information; with registry weights: {with_weights}"
        )
    size = None if match["size"] is None else int(match["size"])
    if size is not None and size < info.min_input_size:
        raise InputError(f"{option}: {name} needs an input of at least {info.min_input_size} px, got {size}")
    return FrozenFeatures(info.name, size)


def features_cache_dir() -> Path:
    """Folder of cached feature files: ``features`` beside the weight cache (see ``weights_cache_dir``)."""
    from .weights import weights_cache_dir

    return weights_cache_dir().parent / "features"


def cache_key(paths: Sequence[Path], spec: FrozenFeatures) -> str:
    """The key of the feature file of ``paths`` under ``spec`` (see the module docstring)."""
    import torch

    from .weights import REGISTRY_WEIGHTS

    digest = hashlib.sha256()
    settings = {
        "backbone": spec.backbone,
        "image_size": spec.image_size,
        "weights": REGISTRY_WEIGHTS[spec.backbone].sha256,
        "torch": torch.__version__,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for entry in file_stats(paths, what="frozen features"):
        digest.update(json.dumps(entry).encode())
    return digest.hexdigest()


def body_features(
    network: ImageHashNetwork,
    source: Any,
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: Callable[[str], None] | None = None,
    label: str = "body features",
) -> np.ndarray:
    """The pooled features of the network's body for every row of ``source``, in evaluation mode.

    Parameters
    ----------
    network : ImageHashNetwork
        Its body runs in evaluation mode (batch-norm statistics fixed) and without gradients; the
        network's mode is restored afterwards.
    source : BatchSource
        Photos, read with evaluation preprocessing (``train=False``: no augmentation).
    batch_size : int
        Photos per forward pass.
    device : torch.device, optional
        Default: the device of the network's parameters.
    progress : callable, optional
        Receives a line per batch (photos done, photos per second, ETA).
    label : str
        Name of the pass in progress lines.

    Returns
    -------
    ndarray of shape (len(source), feature_dim), float32
    """
    from .inference import forward_in_batches

    features = forward_in_batches(
        network,
        source,
        np.arange(len(source)),
        function=network.features,
        batch_size=batch_size,
        device=device or next(network.parameters()).device,
        progress=progress,
        label=label,
        every_batch=True,
    )
    if not len(source):
        return np.zeros((0, network.info.feature_dim), dtype=np.float32)
    return features


def backbone_features(
    paths: Sequence[str | Path],
    spec: FrozenFeatures,
    *,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Features of every image in ``paths`` from the frozen pretrained ``spec.backbone``, cached.

    Parameters
    ----------
    paths : sequence of path
        One image file per row.
    spec : FrozenFeatures
        Backbone, input size and batch size.
    cache_dir : path, optional
        Where feature files are kept; default :func:`features_cache_dir`.
    progress : callable, optional
        Receives a line per batch (photos done, photos per second, ETA) and one on a cache hit.

    Returns
    -------
    ndarray of shape (len(paths), feature_dim), float32

    Raises
    ------
    InputError
        When image files are missing (all listed) or fail to decode (the file and row named), or
        the registry weights are not available.
    """
    from .backbones import build_image_network
    from .images import ImageFileSource

    files = [Path(p) for p in paths]
    if not files:
        raise InputError("frozen features: expected at least one image file, got none")
    folder = Path(cache_dir) if cache_dir is not None else features_cache_dir()
    target = folder / f"{spec.describe().replace(':', '-')}-{cache_key(files, spec)[:24]}.npy"
    cached = _read_cache(target, len(files))
    if cached is not None:
        if progress:
            progress(f"[{spec.describe()} features] {len(files)} photos read from {target}")
        return cached
    network = build_image_network(spec.backbone, 1, pretrained="registry", freeze=True).eval()
    options: dict[str, Any] = {} if spec.image_size is None else {"image_size": spec.image_size}
    source = ImageFileSource.for_backbone(files, spec.backbone, augment=False, **options)
    with source:
        label = f"{spec.describe()} features"
        features = body_features(network, source, batch_size=spec.batch_size, progress=progress, label=label)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary, open(temporary, "wb") as handle:
        np.save(handle, features)
    return features


def _read_cache(path: Path, n_rows: int) -> np.ndarray | None:
    """The cached features, or None when the file is absent, unreadable or of another shape."""
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # absent or damaged: computed again and rewritten
    if features.ndim != 2 or features.shape[0] != n_rows or not np.isfinite(features).all():
        return None
    return np.asarray(features, dtype=np.float32)


def with_frozen_image_features(
    dataset: CrossModalDataset,
    spec: FrozenFeatures,
    *,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> CrossModalDataset:
    """``dataset`` with its view of image files replaced by the frozen backbone's features.

    The new view's source names the backbone, and ``dataset.source["image_features"]`` records it
    (so it is part of a run's provenance); the content fingerprint changes with the features.

    Raises
    ------
    InputError
        When the image view is not a view of image files, and as :func:`backbone_features`.
    """
    from ..data.views import DenseView

    features = backbone_features(_photos(dataset).paths, spec, cache_dir=cache_dir, progress=progress)
    image = DenseView(features, f"{dataset.name}: image ({spec.describe()} frozen features)")
    result = replace(dataset, image=image, source={**dataset.source, "image_features": spec.describe()})
    result.__dict__.pop("fingerprint", None)
    return result


def with_feature_stand_in(dataset: CrossModalDataset, spec: FrozenFeatures) -> CrossModalDataset:
    """``dataset`` with its photos replaced by zeros of the features' shape, for plan checks only.

    The plan of a run (every cell's constraints against the number of rows and each view's width)
    can be checked before the feature pass, so a bad plan is refused in seconds instead of after
    minutes of photos. The zeros take no memory (one row, broadcast); nothing may train on them.

    Raises
    ------
    InputError
        As :func:`with_frozen_image_features` for a dataset without a view of image files.
    """
    from ..data.views import DenseView
    from .backbones import backbone_info

    _photos(dataset)
    width = backbone_info(spec.backbone).feature_dim
    zeros = np.broadcast_to(np.zeros((1, width), dtype=np.float32), (dataset.n_items, width))
    image = DenseView(zeros, f"{dataset.name}: image (stand-in for {spec.describe()} features)", check=False)
    result = replace(dataset, image=image)
    result.__dict__.pop("fingerprint", None)
    return result


def _photos(dataset: CrossModalDataset) -> Any:
    """The dataset's view of image files; an error naming what it has instead."""
    from ..data.image_file_view import ImageFileView

    if not isinstance(dataset.image, ImageFileView):
        kind = "no image view" if dataset.image is None else f"an image view of {dataset.image.kind}"
        raise InputError(
            f"{dataset.name}: frozen image features need a view of image files, but the dataset has {kind}"
        )
    return dataset.image
