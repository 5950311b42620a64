"""Views: one modality of a dataset, addressed by row.

A :class:`View` is what the engine reads an image or text modality through. Every view has a
``shape`` (rows first), a ``dtype`` and a ``kind``, and gives a block of rows with
:meth:`View.take` (a dense :class:`numpy.ndarray` or a :class:`scipy.sparse.csr_matrix`) without
loading more than it needs:

======================  ==========================================================================
kind                    storage
======================  ==========================================================================
``"dense"``             a numpy array in memory (features, or raw images ``(n, H, W, C)``)
``"sparse"``            a scipy CSR matrix in memory (bag-of-words)
``"hdf5"``              a dataset inside an HDF5 / MATLAB v7.3 file, read lazily in row windows,
                        so that a file larger than memory works (:mod:`.hdf5_view`)
``"image-files"``       image files decoded (and optionally resized) on the fly with Pillow
                        (:mod:`.image_file_view`)
======================  ==========================================================================

:meth:`View.select` returns a view of some rows (lazy for lazy views), :meth:`View.iter_blocks`
streams the view in row blocks of bounded memory, and :meth:`View.update_hash` feeds the content
to a hash for the dataset fingerprint.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, TypeAlias

import numpy as np
import scipy.sparse as sp

from ..validation import MAX_MAGNITUDE, out_of_range
from .errors import DatasetError

Block: TypeAlias = np.ndarray | sp.csr_matrix
"""What :meth:`View.take` returns: a dense array or a CSR matrix, rows first."""

BLOCK_BYTES = 64 * 2**20
"""Target size of one block read from a lazy view (64 MiB)."""


def row_indices(rows: Any, n_rows: int, *, source: str = "view") -> np.ndarray:
    """Turn a row selection into a 1-D int64 index array, checking its bounds.

    Parameters
    ----------
    rows : None, slice, int array-like or boolean mask
        ``None`` selects every row. Negative indices are rejected (they are a common symptom of
        an off-by-one error in split files).
    n_rows : int
        Number of rows of the view.
    source : str
        Names the view in error messages.
    """
    if rows is None:
        return np.arange(n_rows, dtype=np.int64)
    if isinstance(rows, slice):
        return np.arange(n_rows, dtype=np.int64)[rows]
    array = np.asarray(rows)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise DatasetError(f"{source}: row selection: expected a 1-D index array, got shape {array.shape}")
    if array.dtype == np.bool_:
        if array.shape[0] != n_rows:
            raise DatasetError(
                f"{source}: row selection: expected a boolean mask of length {n_rows}, "
                f"got length {array.shape[0]}"
            )
        return np.flatnonzero(array).astype(np.int64)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{source}: row selection: expected integer indices, got dtype {array.dtype}")
    index = array.astype(np.int64, copy=False)
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= n_rows:
        bad = low if low < 0 else high
        raise DatasetError(f"{source}: row index {bad} is out of range for {n_rows} rows")
    return index


def check_finite(block: Block, *, source: str, rows: np.ndarray | None = None, offset: int = 0) -> None:
    """Raise :class:`DatasetError` naming the row and column of the first NaN, infinite or huge value.

    Huge means beyond :data:`~ddcmh_core.validation.MAX_MAGNITUDE`: such values overflow the
    computations of every method.

    Parameters
    ----------
    block : ndarray or csr_matrix
        Rows of a view; integer blocks are always finite.
    source : str
        ``"file:key"`` of the view, for the message.
    rows : ndarray, optional
        The view's row index of each block row (default ``offset + arange``).
    offset : int
        Row index of the block's first row when ``rows`` is not given.
    """
    values = np.asarray(block.data) if sp.issparse(block) else np.asarray(block)
    if not np.issubdtype(values.dtype, np.floating) and not np.issubdtype(values.dtype, np.complexfloating):
        return
    finite = ~out_of_range(values)
    if finite.all():
        return
    if sp.issparse(block):
        csr = sp.csr_matrix(block)
        entry = int(np.flatnonzero(out_of_range(csr.data))[0])
        local_row = int(np.searchsorted(csr.indptr, entry, side="right") - 1)
        column: Any = int(csr.indices[entry])
        value = csr.data[entry]
    else:
        position = np.unravel_index(int(np.flatnonzero(~finite.reshape(-1))[0]), finite.shape)
        local_row = int(position[0])
        column = tuple(int(p) for p in position[1:])
        column = column[0] if len(column) == 1 else column
        value = block[position]
    row = int(rows[local_row]) if rows is not None else offset + local_row
    limit = f" of magnitude at most {MAX_MAGNITUDE:g}" if np.isfinite(value) else ""
    raise DatasetError(
        f"{source}: row {row}, column {column}: expected finite feature values{limit}, got {value}"
    )


def _hash_block(digest: Any, block: Block) -> None:
    if sp.issparse(block):
        csr = sp.csr_matrix(block)
        csr.sort_indices()
        digest.update(np.diff(csr.indptr).astype(np.int64).tobytes())
        digest.update(csr.indices.astype(np.int64).tobytes())
        digest.update(np.ascontiguousarray(csr.data).tobytes())
    else:
        digest.update(np.ascontiguousarray(block).tobytes())


class View(abc.ABC):
    """One modality of a dataset: rows are items, addressed by index arrays.

    Parameters
    ----------
    source : str
        Where the data comes from (``"file.mat:YAll"``), used in every error message.
    """

    kind: ClassVar[str] = "view"
    """Storage kind (``"dense"``, ``"sparse"``, ``"hdf5"``, ``"image-files"``)."""

    def __init__(self, source: str = "") -> None:
        self.source = source or type(self).__name__

    # ------------------------------------------------------------------ shape and type
    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """``(n_rows, ...)``: rows first, then the shape of one item."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype:
        """Dtype of the blocks :meth:`take` returns."""

    @property
    def n_rows(self) -> int:
        """Number of items."""
        return int(self.shape[0])

    @property
    def n_features(self) -> int:
        """Number of values per item (the product of the item shape)."""
        return int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1

    @property
    def is_sparse(self) -> bool:
        """Whether :meth:`take` returns CSR matrices."""
        return False

    @property
    def is_lazy(self) -> bool:
        """Whether the data stays on disk until rows are asked for."""
        return False

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, source={self.source!r})"

    # ------------------------------------------------------------------ reading
    @abc.abstractmethod
    def _take(self, rows: np.ndarray) -> Block:
        """Rows ``rows`` (validated int64 indices, any order, repeats allowed)."""

    def take(self, rows: Any = None) -> Block:
        """Read some rows as one block.

        Parameters
        ----------
        rows : None, slice, int array-like or boolean mask
            The rows, in the order wanted; ``None`` reads everything.

        Returns
        -------
        numpy.ndarray or scipy.sparse.csr_matrix
            ``(len(rows), ...)``; sparse exactly when :attr:`is_sparse`.
        """
        return self._take(row_indices(rows, self.n_rows, source=self.source))

    def __getitem__(self, rows: Any) -> Block:
        return self.take(rows)

    def to_numpy(self) -> Block:
        """The whole view as one block (a dense array, or CSR for sparse views)."""
        return self.take(None)

    def select(self, rows: Any) -> View:
        """A view of some rows (lazy for lazy views, a copy for in-memory ones)."""
        index = row_indices(rows, self.n_rows, source=self.source)
        return IndexedView(self, index)

    def default_block_rows(self) -> int:
        """Rows per block so that one block is about :data:`BLOCK_BYTES`."""
        row_bytes = max(1, self.n_features * self.dtype.itemsize)
        return int(max(1, min(self.n_rows, BLOCK_BYTES // row_bytes)))

    def iter_blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, Block]]:
        """Stream the view in consecutive row blocks.

        Parameters
        ----------
        block_rows : int, optional
            Rows per block (default: about 64 MiB per block).

        Yields
        ------
        (start, block)
            The first row index of the block, and the block.
        """
        step = block_rows or self.default_block_rows()
        for start in range(0, self.n_rows, step):
            stop = min(self.n_rows, start + step)
            yield start, self._take(np.arange(start, stop, dtype=np.int64))

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: kind, shape, dtype, source."""
        return {
            "kind": self.kind,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "sparse": self.is_sparse,
            "source": self.source,
        }

    def update_hash(self, digest: Any) -> None:
        """Feed the view's content (shape, dtype and every value) to a hashlib object.

        The same values give the same digest whatever the storage (memory or HDF5).
        """
        header = f"{'sparse' if self.is_sparse else 'dense'}|{self.dtype.str}|{self.shape}"
        digest.update(header.encode())
        for _, block in self.iter_blocks():
            _hash_block(digest, block)

    def content_hash(self) -> str:
        """sha256 of the content (see :meth:`update_hash`)."""
        digest = hashlib.sha256()
        self.update_hash(digest)
        return digest.hexdigest()


class DenseView(View):
    """A numpy array in memory, rows first (features ``(n, d)`` or images ``(n, H, W, C)``).

    Parameters
    ----------
    array : array-like
        At least 1-D; a 1-D array becomes one column.
    source : str
        Origin, for error messages.
    check : bool, default True
        Reject NaN and infinite values (naming the row and column).
    """

    kind = "dense"

    def __init__(self, array: Any, source: str = "", *, check: bool = True) -> None:
        super().__init__(source)
        data = np.asarray(array)
        if data.dtype == object or not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
            raise DatasetError(f"{self.source}: expected a numeric array, got dtype {data.dtype}")
        if data.ndim == 0:
            raise DatasetError(f"{self.source}: expected an array with one row per item, got a scalar")
        if data.ndim == 1:
            data = data.reshape(-1, 1)
        if check:
            check_finite(data, source=self.source)
        self.array = data

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        return tuple(int(s) for s in self.array.shape)

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return self.array.dtype

    def _take(self, rows: np.ndarray) -> Block:
        return self.array[rows]

    def select(self, rows: Any) -> View:  # noqa: D102
        index = row_indices(rows, self.n_rows, source=self.source)
        return DenseView(self.array[index], self.source, check=False)

    def iter_blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, Block]]:  # noqa: D102
        step = block_rows or self.default_block_rows()
        for start in range(0, self.n_rows, step):
            yield start, self.array[start : start + step]


class SparseView(View):
    """A scipy sparse matrix in memory, kept in canonical CSR form (bag-of-words text).

    Parameters
    ----------
    matrix : scipy.sparse matrix or array
        ``(n_items, n_features)``; duplicates are summed and indices sorted.
    source : str
        Origin, for error messages.
    check : bool, default True
        Reject NaN and infinite values (naming the row and column).
    """

    kind = "sparse"

    def __init__(self, matrix: Any, source: str = "", *, check: bool = True) -> None:
        super().__init__(source)
        csr = sp.csr_matrix(matrix)
        if csr.dtype == object or not (np.issubdtype(csr.dtype, np.number) or csr.dtype == np.bool_):
            raise DatasetError(f"{self.source}: expected a numeric sparse matrix, got dtype {csr.dtype}")
        csr.sum_duplicates()
        csr.sort_indices()
        if check:
            check_finite(csr, source=self.source)
        self.matrix = csr

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        return (int(self.matrix.shape[0]), int(self.matrix.shape[1]))

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return self.matrix.dtype

    @property
    def is_sparse(self) -> bool:  # noqa: D102
        return True

    def default_block_rows(self) -> int:  # noqa: D102
        mean_nnz = max(1.0, self.matrix.nnz / max(1, self.n_rows))
        row_bytes = mean_nnz * (self.dtype.itemsize + self.matrix.indices.dtype.itemsize)
        return int(max(1, min(self.n_rows, BLOCK_BYTES // row_bytes)))

    def _take(self, rows: np.ndarray) -> Block:
        return self.matrix[rows]

    def select(self, rows: Any) -> View:  # noqa: D102
        index = row_indices(rows, self.n_rows, source=self.source)
        return SparseView(self.matrix[index], self.source, check=False)

    def iter_blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, Block]]:  # noqa: D102
        step = block_rows or self.default_block_rows()
        for start in range(0, self.n_rows, step):
            yield start, self.matrix[start : start + step]


class IndexedView(View):
    """Some rows of another view, in a given order, read lazily through the base view."""

    def __init__(self, base: View, rows: np.ndarray) -> None:
        super().__init__(base.source)
        self.base = base
        self.rows = row_indices(rows, base.n_rows, source=base.source)

    @property
    def kind(self) -> str:  # type: ignore[override]  # noqa: D102
        return self.base.kind

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        return (int(self.rows.shape[0]), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return self.base.dtype

    @property
    def is_sparse(self) -> bool:  # noqa: D102
        return self.base.is_sparse

    @property
    def is_lazy(self) -> bool:  # noqa: D102
        return self.base.is_lazy

    def default_block_rows(self) -> int:  # noqa: D102
        return self.base.default_block_rows()

    def _take(self, rows: np.ndarray) -> Block:
        return self.base._take(self.rows[rows])

    def select(self, rows: Any) -> View:  # noqa: D102
        index = row_indices(rows, self.n_rows, source=self.source)
        return IndexedView(self.base, self.rows[index])


class ConcatView(View):
    """Several views with the same item shape, stacked by rows (pre-split files: train, test, db).

    Parameters
    ----------
    parts : sequence of View
        All dense or all sparse, with equal item shapes.
    source : str
        Origin, for messages.
    """

    def __init__(self, parts: Sequence[View], source: str = "") -> None:
        super().__init__(source or " + ".join(p.source for p in parts))
        if not parts:
            raise DatasetError(f"{self.source}: expected at least one part to concatenate")
        item_shape = parts[0].shape[1:]
        for part in parts[1:]:
            if part.shape[1:] != item_shape:
                raise DatasetError(
                    f"{self.source}: parts disagree on the item shape: {parts[0].source} has "
                    f"{item_shape}, {part.source} has {part.shape[1:]}"
                )
            if part.is_sparse != parts[0].is_sparse:
                raise DatasetError(f"{self.source}: cannot stack sparse and dense parts")
        self.parts = tuple(parts)
        self._offsets = np.cumsum([0] + [p.n_rows for p in parts])
        dtypes = [p.dtype for p in parts]
        self._dtype = np.result_type(*dtypes)

    @property
    def kind(self) -> str:  # type: ignore[override]  # noqa: D102
        kinds = {p.kind for p in self.parts}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        return (int(self._offsets[-1]), *self.parts[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return self._dtype

    @property
    def is_sparse(self) -> bool:  # noqa: D102
        return self.parts[0].is_sparse

    @property
    def is_lazy(self) -> bool:  # noqa: D102
        return any(p.is_lazy for p in self.parts)

    def describe(self) -> dict[str, Any]:  # noqa: D102
        info = super().describe()
        info["parts"] = [p.describe() for p in self.parts]
        return info

    def _take(self, rows: np.ndarray) -> Block:
        part_of = np.searchsorted(self._offsets, rows, side="right") - 1
        pieces: list[Block] = []
        positions: list[np.ndarray] = []
        for number, part in enumerate(self.parts):
            where = np.flatnonzero(part_of == number)
            if where.size == 0:
                continue
            pieces.append(part._take(rows[where] - self._offsets[number]))
            positions.append(where)
        if not pieces:
            return self.parts[0]._take(rows)
        order = np.argsort(np.concatenate(positions), kind="stable")
        if self.is_sparse:
            stacked = sp.vstack(pieces, format="csr")
            return sp.csr_matrix(stacked[order], dtype=self._dtype)
        stacked_dense = np.concatenate([np.asarray(p, dtype=self._dtype) for p in pieces])
        return stacked_dense[order]


def as_view(data: Any, source: str = "") -> View:
    """Wrap an array, a sparse matrix or a view as a :class:`View` (views pass through)."""
    if isinstance(data, View):
        return data
    if sp.issparse(data):
        return SparseView(data, source)
    return DenseView(data, source)


_MOVED = {"HDF5View": "hdf5_view", "ImageFileView": "image_file_view"}


def __getattr__(name: str) -> Any:
    """The two file-backed views moved to modules of their own; their old import path still works."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f".{_MOVED[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
