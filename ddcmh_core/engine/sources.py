"""Batch sources: how the trainer reads rows of a view as torch tensors.

A view may be a dense array, a scipy sparse matrix (bag-of-words; batches become torch sparse
tensors and are never densified as a whole), image files decoded on the fly, or a lazily read
HDF5 dataset. The trainer only needs :class:`BatchSource`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

if TYPE_CHECKING:
    from .config import NetworkConfig


@runtime_checkable
class BatchSource(Protocol):
    """Rows of one view, delivered as tensors.

    Attributes
    ----------
    n_features : int or None
        Width of a row for vector views (the MLP input size); None for images.
    """

    n_features: int | None

    def __len__(self) -> int:
        """Number of rows."""
        ...

    def batch(self, indices: np.ndarray, *, train: bool) -> torch.Tensor:
        """Rows ``indices`` as a tensor (augmented when ``train`` for image sources)."""
        ...


def block_to_tensor(block: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A dense block as a dense tensor, a scipy sparse block as a sparse COO tensor."""
    if sp.issparse(block):
        coo = block.tocoo()
        index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.from_numpy(coo.data).to(dtype)
        return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=False).coalesce()
    return torch.from_numpy(np.ascontiguousarray(block)).to(dtype)


class ArraySource:
    """A dense array or scipy sparse matrix as a :class:`BatchSource`.

    Parameters
    ----------
    data : ndarray or scipy sparse matrix of shape (n, d)
        Features; sparse data yields sparse COO tensors per batch.
    dtype : torch.dtype, default torch.float32
    """

    def __init__(self, data: Any, dtype: torch.dtype = torch.float32) -> None:
        self.sparse = sp.issparse(data)
        if self.sparse:
            self.data: Any = sp.csr_matrix(data)
        else:
            self.data = np.asarray(data)
        if self.data.ndim != 2:
            raise ValueError(f"ArraySource: expected a 2-D matrix, got shape {self.data.shape}")
        self.dtype = dtype
        self.n_features: int | None = int(self.data.shape[1])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def batch(self, indices: np.ndarray, *, train: bool) -> torch.Tensor:
        """Rows ``indices`` as a dense or sparse COO tensor (``train`` is ignored)."""
        return block_to_tensor(self.data[indices], self.dtype)

    def rows(self, indices: np.ndarray) -> Any:
        """Rows ``indices`` as a numpy array or scipy CSR matrix."""
        return self.data[indices]


class ViewSource:
    """A vector :class:`~ddcmh_core.data.View` (dense, sparse or lazy HDF5) as a BatchSource.

    Rows are read per batch, so a lazily read HDF5 view is never loaded whole.
    """

    def __init__(self, view: Any, dtype: torch.dtype = torch.float32) -> None:
        self.view = view
        self.dtype = dtype
        self.n_features: int | None = int(view.n_features)

    def __len__(self) -> int:
        return int(self.view.n_rows)

    def batch(self, indices: np.ndarray, *, train: bool) -> torch.Tensor:
        """Rows ``indices`` as a dense or sparse COO tensor (``train`` is ignored)."""
        return block_to_tensor(self.view.take(np.asarray(indices)), self.dtype)

    def rows(self, indices: np.ndarray) -> Any:
        """Rows ``indices`` as a numpy array or scipy CSR matrix."""
        return self.view.take(np.asarray(indices))


def source_for_view(
    view: Any,
    *,
    backbone: str | None = None,
    augment: bool = True,
    image_options: dict[str, Any] | None = None,
) -> BatchSource:
    """The BatchSource for a dataset view: image files become an ImageFileSource for ``backbone``.

    Parameters
    ----------
    view : ddcmh_core.data.View, ndarray or scipy sparse matrix
    backbone : str, optional
        CNN backbone that consumes an image-file view (its input size and normalisation).
    augment : bool, default True
        Augment training batches of image files.
    image_options : dict, optional
        Further :class:`~ddcmh_core.engine.images.ImageFileSource` arguments for an image-file
        view (``image_size``, ``scale``, ``cache``, ``n_workers``; see :func:`image_source_options`).
    """
    if isinstance(view, BatchSource) and not isinstance(view, np.ndarray):
        return view
    if getattr(view, "kind", None) == "image-files":
        from .images import ImageFileSource

        if backbone is None:
            raise ValueError("image files need a CNN image network (architecture='cnn')")
        return ImageFileSource.for_backbone(view.paths, backbone, augment=augment, **(image_options or {}))
    if hasattr(view, "take") and hasattr(view, "n_rows"):
        return ViewSource(view)
    return ArraySource(view)


def image_source_options(network: NetworkConfig, *, training: bool = True) -> dict[str, Any]:
    """The ImageFileSource arguments a CNN network's settings give (size, crops, photo cache, workers).

    The photo cache serves training only: photos read once (encoding) are not stored.
    """
    options: dict[str, Any] = {"cache": network.photo_cache and training}
    options["scale"] = (network.crop_min_area, 1.0)
    if network.image_size is not None:
        options["image_size"] = network.image_size
    if network.decode_workers is not None:
        options["n_workers"] = network.decode_workers
    if network.decode_processes:
        options["worker_processes"] = True
    return options


def as_source(view: Any, network: NetworkConfig | None = None, *, training: bool = True) -> BatchSource:
    """The :class:`BatchSource` of a view (array, sparse matrix, dataset View or a source).

    ``training=False`` (a view only encoded) keeps photos out of the decoded-photo cache.
    """
    if network is not None and network.architecture == "cnn":
        options = image_source_options(network, training=training)
        return source_for_view(view, backbone=network.backbone, image_options=options)
    return source_for_view(view)


def rows_as_matrix(source: BatchSource, rows: np.ndarray) -> Any:
    """Rows of a vector view as a numpy array or scipy CSR matrix (for the Stage-1 hasher)."""
    if hasattr(source, "rows"):
        return source.rows(rows)
    batch = source.batch(rows, train=False)
    if batch.is_sparse:
        coo = batch.coalesce()
        indices = coo.indices().numpy()
        return sp.csr_matrix((coo.values().numpy(), (indices[0], indices[1])), shape=tuple(coo.shape))
    return batch.numpy()
