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
                        so that a file larger than memory works
``"image-files"``       image files decoded (and optionally resized) on the fly with Pillow
======================  ==========================================================================

:meth:`View.select` returns a view of some rows (lazy for lazy views), :meth:`View.iter_blocks`
streams the view in row blocks of bounded memory, and :meth:`View.update_hash` feeds the content
to a hash for the dataset fingerprint.
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import h5py
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


class HDF5View(View):
    """A numeric dataset inside an HDF5 file (plain HDF5 or MATLAB v7.3), read lazily.

    Nothing is read at construction except the dataset's shape and dtype. :meth:`take` sorts the
    requested rows and reads them window by window (each window at most ``block_rows`` rows
    along the item axis), so memory stays bounded by one window plus the result, and the file is
    opened per call (safe with forked data-loader workers).

    Parameters
    ----------
    path : path
        The file.
    key : str
        Path of the dataset inside the file (``"YAll"``, ``"data/text"``).
    row_axis : int, default 0
        The stored axis that indexes items. MATLAB v7.3 stores an ``n × d`` matrix as ``(d, n)``,
        so its rows are on the last stored axis.
    reverse_item_axes : bool, default False
        Reverse the remaining axes of each item, which turns MATLAB's column-major layout back
        into MATLAB's own axis order (a v7.3 image array ``H × W × 3 × n`` is stored as
        ``(n, 3, W, H)`` and read as ``(n, H, W, 3)``).
    source : str, optional
        Origin for messages (default ``"<file>:<key>"``).
    block_rows : int, optional
        Rows per read window (default: about 64 MiB).
    check : bool, default True
        Reject NaN and infinite values in every block read (naming file, key, row and column).
    """

    kind = "hdf5"

    def __init__(
        self,
        path: str | Path,
        key: str,
        *,
        row_axis: int = 0,
        reverse_item_axes: bool = False,
        source: str = "",
        block_rows: int | None = None,
        check: bool = True,
    ) -> None:
        self.path = Path(path)
        self.key = key
        super().__init__(source or f"{self.path}:{key}")
        try:
            with h5py.File(self.path, "r") as handle:
                dataset = handle.get(key)
                if not isinstance(dataset, h5py.Dataset):
                    raise DatasetError(
                        f"{self.path}: key {key!r}: expected a numeric HDF5 dataset, "
                        f"got {'nothing' if dataset is None else type(dataset).__name__}"
                    )
                stored_shape = tuple(int(s) for s in dataset.shape)
                stored_dtype = dataset.dtype
        except OSError as exc:
            raise DatasetError(f"{self.path}: cannot open as HDF5: {exc}") from exc
        if not (np.issubdtype(stored_dtype, np.number) or stored_dtype == np.bool_):
            raise DatasetError(
                f"{self.path}: key {key!r}: expected a numeric dataset, got dtype {stored_dtype}"
            )
        if len(stored_shape) == 0:
            raise DatasetError(f"{self.path}: key {key!r}: expected an array, got a scalar")
        if not -len(stored_shape) <= row_axis < len(stored_shape):
            raise DatasetError(f"{self.path}: key {key!r}: row axis {row_axis} out of range")
        self.row_axis = row_axis % len(stored_shape)
        self.reverse_item_axes = reverse_item_axes
        self.stored_shape = stored_shape
        self._dtype = np.dtype(stored_dtype)
        rest = [s for axis, s in enumerate(stored_shape) if axis != self.row_axis]
        if reverse_item_axes:
            rest = rest[::-1]
        self._shape = (stored_shape[self.row_axis], *rest)
        if len(self._shape) == 1:
            self._shape = (self._shape[0], 1)
        self.block_rows = block_rows
        self.check = check

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        return self._shape

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return self._dtype

    @property
    def is_lazy(self) -> bool:  # noqa: D102
        return True

    def describe(self) -> dict[str, Any]:  # noqa: D102
        info = super().describe()
        info.update(file=str(self.path), key=self.key, stored_shape=list(self.stored_shape))
        return info

    def _arrange(self, raw: np.ndarray) -> np.ndarray:
        block = np.moveaxis(raw, self.row_axis, 0)
        if self.reverse_item_axes and block.ndim > 2:
            block = block.transpose((0, *range(block.ndim - 1, 0, -1)))
        return np.ascontiguousarray(block).reshape((block.shape[0], *self._shape[1:]))

    def _read(self, dataset: h5py.Dataset, rows: slice | np.ndarray) -> np.ndarray:
        selection: list[Any] = [slice(None)] * len(self.stored_shape)
        selection[self.row_axis] = rows
        return self._arrange(dataset[tuple(selection)])

    def _window(self) -> int:
        return self.block_rows or self.default_block_rows()

    def _take(self, rows: np.ndarray) -> Block:
        if rows.shape[0] and rows[-1] - rows[0] == rows.shape[0] - 1 and np.all(np.diff(rows) == 1):
            # one consecutive range: read it straight (in windows), no gather copy
            with h5py.File(self.path, "r") as handle:
                dataset = handle[self.key]
                window = self._window()
                first, last = int(rows[0]), int(rows[-1]) + 1
                if last - first <= window:
                    out = self._read(dataset, slice(first, last))
                else:
                    out = np.empty((rows.shape[0], *self._shape[1:]), dtype=self._dtype)
                    for start in range(first, last, window):
                        stop = min(last, start + window)
                        out[start - first : stop - first] = self._read(dataset, slice(start, stop))
            if self.check:
                check_finite(out, source=self.source, offset=first)
            return out
        out = np.empty((rows.shape[0], *self._shape[1:]), dtype=self._dtype)
        if rows.shape[0] == 0:
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        window = self._window()
        with h5py.File(self.path, "r") as handle:
            dataset = handle[self.key]
            start = 0
            while start < ordered.shape[0]:
                low = int(ordered[start])
                stop = int(np.searchsorted(ordered, low + window, side="left"))
                high = int(ordered[stop - 1]) + 1
                wanted = ordered[start:stop]
                unique = np.unique(wanted)
                if unique.shape[0] * 4 < high - low:
                    # few rows spread over a wide window: read just those (increasing) rows
                    block = self._read(dataset, unique)
                    out[order[start:stop]] = block[np.searchsorted(unique, wanted)]
                else:
                    block = self._read(dataset, slice(low, high))
                    out[order[start:stop]] = block[wanted - low]
                start = stop
        if self.check:
            check_finite(out, source=self.source, rows=rows)
        return out

    def iter_blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, Block]]:  # noqa: D102
        step = block_rows or self._window()
        with h5py.File(self.path, "r") as handle:
            dataset = handle[self.key]
            for start in range(0, self.n_rows, step):
                stop = min(self.n_rows, start + step)
                block = self._read(dataset, slice(start, stop))
                if self.check:
                    check_finite(block, source=self.source, offset=start)
                yield start, block


class ImageFileView(View):
    """Image files decoded on the fly (Pillow), optionally resized to a fixed size.

    Parameters
    ----------
    paths : sequence of path
        One image file per item.
    size : (height, width), optional
        Resize every image to this size (bilinear). Without a size, :meth:`take` works only when
        all requested images have the same size; :meth:`read` always works.
    mode : str, default "RGB"
        Pillow mode every image is converted to (``"RGB"`` gives 3 channels, ``"L"`` one).
    source : str
        Origin, for messages.

    Notes
    -----
    :meth:`take` returns ``uint8`` arrays ``(n, H, W, C)``. A file that is missing or fails to
    decode raises :class:`DatasetError` naming the file and the row. The content hash covers the
    relative file names and sizes (decoding every image to hash it would be far too slow for
    large collections).
    """

    kind = "image-files"

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        size: tuple[int, int] | None = None,
        mode: str = "RGB",
        source: str = "",
    ) -> None:
        super().__init__(source or "image files")
        self.paths = tuple(Path(p) for p in paths)
        if size is not None:
            if len(size) != 2 or min(int(s) for s in size) < 1:
                raise DatasetError(f"{self.source}: size: expected (height, width) > 0, got {size!r}")
            size = (int(size[0]), int(size[1]))
        self.size = size
        self.mode = mode
        self._channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "I": 1, "F": 1}.get(mode, 3)

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        if self.size is None:
            return (len(self.paths),)
        return (len(self.paths), self.size[0], self.size[1], self._channels)

    @property
    def n_features(self) -> int:  # noqa: D102
        return int(np.prod(self.shape[1:])) if self.size else 1

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return np.dtype(np.uint8)

    @property
    def is_lazy(self) -> bool:  # noqa: D102
        return True

    def resized(self, size: tuple[int, int] | None) -> ImageFileView:
        """The same files, resized to ``size`` = (height, width) when read."""
        return ImageFileView(self.paths, size=size, mode=self.mode, source=self.source)

    def default_block_rows(self) -> int:  # noqa: D102
        return 256

    def read(self, row: int) -> Any:
        """Decode image ``row`` as a ``PIL.Image.Image`` in :attr:`mode` (not resized).

        Raises
        ------
        DatasetError
            If the file is missing or cannot be decoded; the message names the file and the row.
        """
        from PIL import Image

        path = self.paths[int(row)]
        if not path.is_file():
            raise DatasetError(f"{path}: row {row}: image file is missing")
        try:
            with Image.open(path) as image:
                image.load()
                return image.convert(self.mode)
        except Exception as exc:
            raise DatasetError(
                f"{path}: row {row}: expected a decodable image file, got {type(exc).__name__}: {exc}"
            ) from exc

    def array(self, row: int) -> np.ndarray:
        """Image ``row`` as a ``uint8`` array ``(H, W, C)``, resized when :attr:`size` is set."""
        from PIL import Image

        image = self.read(row)
        if self.size is not None and (image.height, image.width) != self.size:
            image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        data = np.asarray(image, dtype=np.uint8)
        return data.reshape(data.shape[0], data.shape[1], -1)

    def _take(self, rows: np.ndarray) -> Block:
        images = [self.array(int(r)) for r in rows]
        if not images:
            shape = self.shape[1:] if self.size else (0, 0, self._channels)
            return np.zeros((0, *shape), dtype=np.uint8)
        first = images[0].shape
        for position, image in enumerate(images):
            if image.shape != first:
                raise DatasetError(
                    f"{self.source}: images of different sizes: row {int(rows[0])} "
                    f"({self.paths[int(rows[0])]}) is {first[0]}x{first[1]}, row "
                    f"{int(rows[position])} ({self.paths[int(rows[position])]}) is "
                    f"{image.shape[0]}x{image.shape[1]}; give the view a size, e.g. "
                    "view.resized((224, 224))"
                )
        return np.stack(images)

    def verify(
        self, rows: Any = None, *, n_workers: int | None = None, max_pixels: int | None = None
    ) -> list[tuple[int, str, str]]:
        """Decode the given images (all by default); ``(row, path, reason)`` for each that fails.

        Every file is checked as the CNN image pipeline reads it
        (:func:`ddcmh_core.engine.images.unreadable_rows`): missing, undecodable (corrupt or
        truncated) and too large (more than ``max_pixels`` pixels to decode, default
        :data:`ddcmh_core.engine.images.MAX_DECODED_PIXELS`) files are reported, each with its
        reason; grey-scale, CMYK and 16-bit photos decode (converted to RGB). ``n_workers``
        threads decode (default ``min(8, cpu_count)``).
        """
        from ..engine.images import MAX_DECODED_PIXELS, unreadable_rows

        index = row_indices(rows, self.n_rows, source=self.source)
        found = unreadable_rows(
            [self.paths[int(row)] for row in index],
            n_workers=n_workers,
            max_pixels=MAX_DECODED_PIXELS if max_pixels is None else max_pixels,
        )
        return [(int(index[position]), str(path), reason) for position, path, reason in found]

    def select(self, rows: Any) -> View:  # noqa: D102
        index = row_indices(rows, self.n_rows, source=self.source)
        return ImageFileView(
            [self.paths[i] for i in index], size=self.size, mode=self.mode, source=self.source
        )

    def describe(self) -> dict[str, Any]:  # noqa: D102
        info = super().describe()
        info.update(size=None if self.size is None else list(self.size), mode=self.mode)
        return info

    def update_hash(self, digest: Any) -> None:  # noqa: D102
        digest.update(f"image-files|{self.mode}|{self.size}|{len(self.paths)}".encode())
        if not self.paths:
            return
        root = os.path.commonpath([str(p.parent) for p in self.paths])
        for path in self.paths:
            size = path.stat().st_size if path.is_file() else -1
            digest.update(f"{Path(os.path.relpath(path, root)).as_posix()}|{size}\n".encode())


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
