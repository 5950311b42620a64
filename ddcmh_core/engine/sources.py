"""Batch sources: how the trainer reads rows of a view as torch tensors.

A view may be a dense array, a scipy sparse matrix (bag-of-words; batches become torch sparse
tensors and are never densified as a whole), image files decoded on the fly, or a lazily read
HDF5 dataset. The trainer only needs :class:`BatchSource`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch


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
        rows = self.data[indices]
        if self.sparse:
            coo = rows.tocoo()
            index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
            values = torch.from_numpy(coo.data).to(self.dtype)
            return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=False).coalesce()
        return torch.from_numpy(np.ascontiguousarray(rows)).to(self.dtype)
