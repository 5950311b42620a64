"""The HDF5 view: a numeric dataset inside an HDF5 or MATLAB v7.3 file, read lazily in row windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import DatasetError
from .views import Block, View, check_finite


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
