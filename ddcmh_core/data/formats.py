"""Array files: MATLAB v5 and v7.3 ``.mat``, plain HDF5 and NumPy ``.npz``, behind one interface.

:func:`open_array_file` detects the format from the file's first bytes (never from its suffix
alone) and returns an :class:`ArrayFile`, which lists the named arrays, gives their shapes, and
turns one into a :class:`~ddcmh_core.data.views.View` with items as rows.

Orientation
-----------
Shapes are given as the file's author sees them: MATLAB's order for ``.mat`` files, the stored
order for HDF5 and npz. MATLAB v7.3 files are HDF5 files whose datasets are stored with the axes
reversed (column-major), so an ``n × d`` MATLAB matrix is an HDF5 dataset of shape ``(d, n)``;
:meth:`ArrayFile.view` undoes that lazily (the rows of a v7.3 matrix are read straight from the
file in windows, without loading the whole array). The item axis is the first axis, or the last
one when only the last axis matches the number of items (MATLAB image stacks ``H × W × 3 × n``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
import scipy.sparse as sp

from .errors import DatasetError, MissingFilesError
from .hdf5_view import HDF5View
from .views import DenseView, SparseView, View

FORMAT_DESCRIPTIONS = {
    "mat-v5": "MATLAB v5 .mat",
    "mat-v7.3": "MATLAB v7.3 .mat (HDF5)",
    "hdf5": "HDF5",
    "npz": "NumPy .npz",
}
EXPECTED_FORMATS = "a MATLAB .mat file (v5 or v7.3), an HDF5 file (.h5/.hdf5) or a NumPy .npz file"


@dataclass(frozen=True)
class ArrayEntry:
    """One named array of an :class:`ArrayFile`.

    Attributes
    ----------
    key : str
        Its name (a path inside the file for nested HDF5 groups).
    shape : tuple of int
        Shape as the author sees it (MATLAB order for .mat files).
    dtype : str
        Element type (``"double"``, ``"uint8"``, ``"char"``, ``"cell"``...).
    kind : str
        ``"numeric"``, ``"sparse"``, ``"strings"`` or ``"other"``.
    """

    key: str
    shape: tuple[int, ...]
    dtype: str
    kind: str


def detect_format(path: str | Path) -> str:
    """``"mat-v5"``, ``"mat-v7.3"``, ``"hdf5"`` or ``"npz"``, from the file's first bytes.

    Raises
    ------
    MissingFilesError
        If the file does not exist.
    DatasetError
        If it is none of these formats (the message shows what the file starts with).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFilesError(f"{path}: file not found", searched=path.parent, missing=[path.name])
    with path.open("rb") as stream:
        head = stream.read(128)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if h5py.is_hdf5(str(path)):
        return "mat-v7.3" if head.startswith(b"MATLAB 7.3") else "hdf5"
    if head.startswith(b"MATLAB 5.0") or (
        len(head) == 128 and head[124:126] in (b"\x00\x01", b"\x01\x00") and head[126:128] in (b"IM", b"MI")
    ):
        return "mat-v5"
    if path.suffix.lower() == ".mat":
        try:  # MATLAB v4 has no text header; scipy reads it
            scipy.io.whosmat(str(path))
            return "mat-v5"
        except Exception:
            pass
    shown = head[:24].decode("latin-1").encode("unicode_escape").decode()
    raise DatasetError(f"{path}: expected {EXPECTED_FORMATS}, got a file starting with {shown!r}")


def _decode_chars(codes: np.ndarray) -> str:
    return "".join(chr(int(c)) for c in codes.ravel() if int(c) != 0).rstrip()


def _strings_from_array(array: np.ndarray, source: str) -> list[str]:
    if array.dtype.kind == "U":
        return [str(s).rstrip() for s in array.ravel()]
    if array.dtype.kind == "S":
        return [bytes(s).decode("utf-8").rstrip() for s in array.ravel()]
    if array.dtype == object:
        result = []
        for element in array.ravel():
            if isinstance(element, bytes):
                result.append(element.decode("utf-8").rstrip())
            elif isinstance(element, str):
                result.append(element.rstrip())
            else:
                inner = np.asarray(element)
                if inner.dtype.kind in "US" or inner.dtype == object:
                    result.append("".join(_strings_from_array(inner, source)))
                else:
                    raise DatasetError(f"{source}: expected strings, got an element of dtype {inner.dtype}")
        return result
    raise DatasetError(f"{source}: expected strings (text or file names), got dtype {array.dtype}")


class ArrayFile(abc.ABC):
    """A file of named arrays. Use :func:`open_array_file` to get one."""

    format: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, keys={self.keys()})"

    @abc.abstractmethod
    def entries(self) -> dict[str, ArrayEntry]:
        """Every named array, by key."""

    def keys(self) -> list[str]:
        """Names of the arrays."""
        return list(self.entries())

    def entry(self, key: str) -> ArrayEntry:
        """The :class:`ArrayEntry` of ``key``.

        Raises
        ------
        DatasetError
            If there is no such key; the message lists the keys the file holds.
        """
        entries = self.entries()
        if key not in entries:
            raise DatasetError(
                f"{self.path}: key {key!r} not found; the file holds: {', '.join(entries) or 'nothing'}"
            )
        return entries[key]

    def row_axis(self, key: str, n_items: int | None) -> int:
        """The axis (in the author's order) that indexes items: 0, or the last when only it matches."""
        shape = self.entry(key).shape
        if n_items is None or (shape and shape[0] == n_items):
            return 0
        if shape and shape[-1] == n_items:
            return len(shape) - 1
        raise DatasetError(
            f"{self.path}: key {key!r}: expected {n_items} items along the first (or last) axis, "
            f"got shape {shape}"
        )

    @abc.abstractmethod
    def array(self, key: str) -> np.ndarray | sp.csr_matrix:
        """The whole array in the author's orientation (CSR for sparse matrices)."""

    def strings(self, key: str) -> list[str]:
        """A string array (char matrix, cell of strings, string dataset) as a list."""
        data = self.array(key)
        if sp.issparse(data):
            raise DatasetError(f"{self.path}: key {key!r}: expected strings, got a sparse matrix")
        return _strings_from_array(np.asarray(data), f"{self.path}: key {key!r}")

    def view(self, key: str, n_items: int | None = None) -> View:
        """The array as a :class:`View` with items as rows.

        Parameters
        ----------
        key : str
            The array.
        n_items : int, optional
            Number of items; picks the item axis (first, else last). Without it, the first axis.
        """
        entry = self.entry(key)
        source = f"{self.path}:{key}"
        if entry.kind not in ("numeric", "sparse"):
            raise DatasetError(f"{source}: expected a numeric array, got {entry.dtype} {entry.shape}")
        axis = self.row_axis(key, n_items)
        data = self.array(key)
        if sp.issparse(data):
            matrix = sp.csr_matrix(data)
            return SparseView(matrix if axis == 0 else matrix.T, source)
        return DenseView(np.moveaxis(np.asarray(data), axis, 0), source)


class MatV5File(ArrayFile):
    """MATLAB v4/v5/v7 ``.mat`` (read with ``scipy.io``; arrays are loaded when asked for)."""

    format = "mat-v5"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            listing = scipy.io.whosmat(str(path))
        except Exception as exc:
            raise DatasetError(f"{path}: cannot read as a MATLAB v5 .mat file: {exc}") from exc
        self._entries = {}
        for name, shape, mclass in listing:
            if mclass == "sparse":
                kind = "sparse"
            elif mclass in ("char", "cell"):
                kind = "strings"
            elif mclass in ("struct", "object", "function_handle", "opaque"):
                kind = "other"
            else:
                kind = "numeric"
            self._entries[name] = ArrayEntry(name, tuple(int(s) for s in shape), mclass, kind)
        self._cache: dict[str, Any] = {}

    def entries(self) -> dict[str, ArrayEntry]:  # noqa: D102
        return self._entries

    def array(self, key: str) -> np.ndarray | sp.csr_matrix:  # noqa: D102
        self.entry(key)
        if key not in self._cache:
            try:
                loaded = scipy.io.loadmat(str(self.path), variable_names=[key])
            except Exception as exc:
                raise DatasetError(f"{self.path}: key {key!r}: cannot be read: {exc}") from exc
            value = loaded[key]
            self._cache[key] = sp.csr_matrix(value) if sp.issparse(value) else value
        return self._cache[key]

    def forget(self) -> None:
        """Drop the arrays loaded so far (they are cached after the first read)."""
        self._cache.clear()


class HDF5File(ArrayFile):
    """Plain HDF5 (rows on the first stored axis) or MATLAB v7.3 (axes stored reversed)."""

    def __init__(self, path: Path, *, matlab: bool) -> None:
        super().__init__(path)
        self.matlab = matlab
        self.format = "mat-v7.3" if matlab else "hdf5"
        entries: dict[str, ArrayEntry] = {}
        try:
            with h5py.File(path, "r") as handle:

                def visit(name: str, item: Any) -> None:
                    if name.split("/")[0].startswith("#"):
                        return
                    entry = self._describe(name, item)
                    if entry is not None:
                        entries[name] = entry

                if matlab:
                    for name in handle:
                        visit(name, handle[name])
                else:
                    handle.visititems(visit)
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read as HDF5: {exc}") from exc
        self._entries = entries

    def _describe(self, name: str, item: Any) -> ArrayEntry | None:
        if self.matlab:
            mclass = item.attrs.get("MATLAB_class", b"")
            mclass = mclass.decode() if isinstance(mclass, bytes) else str(mclass)
            if isinstance(item, h5py.Group):
                if "MATLAB_sparse" in item.attrs:
                    n_rows = int(item.attrs["MATLAB_sparse"])
                    n_cols = int(item["jc"].shape[0]) - 1
                    return ArrayEntry(name, (n_rows, n_cols), mclass or "sparse", "sparse")
                return ArrayEntry(name, (), mclass or "struct", "other")
            shape = tuple(int(s) for s in item.shape[::-1])
            if mclass in ("char", "cell"):
                return ArrayEntry(name, shape, mclass, "strings")
            if item.dtype.kind in "biuf":
                return ArrayEntry(name, shape, mclass or str(item.dtype), "numeric")
            return ArrayEntry(name, shape, mclass or str(item.dtype), "other")
        if not isinstance(item, h5py.Dataset):
            return None
        shape = tuple(int(s) for s in item.shape)
        if item.dtype.kind in "biuf":
            return ArrayEntry(name, shape, str(item.dtype), "numeric")
        if item.dtype.kind in "SUO" or h5py.check_string_dtype(item.dtype) is not None:
            return ArrayEntry(name, shape, str(item.dtype), "strings")
        return ArrayEntry(name, shape, str(item.dtype), "other")

    def entries(self) -> dict[str, ArrayEntry]:  # noqa: D102
        return self._entries

    def array(self, key: str) -> np.ndarray | sp.csr_matrix:  # noqa: D102
        entry = self.entry(key)
        with h5py.File(self.path, "r") as handle:
            item = handle[key]
            if entry.kind == "sparse":
                data = item["data"][()] if "data" in item else np.ones(item["ir"].shape[0])
                matrix = sp.csc_matrix((data, item["ir"][()], item["jc"][()]), shape=entry.shape)
                return sp.csr_matrix(matrix)
            if self.matlab and entry.dtype == "cell":
                return np.array(
                    [_decode_chars(handle[ref][()]) for ref in item[()].T.ravel()], dtype=object
                ).reshape(entry.shape)
            value = item[()]
            if self.matlab:
                value = np.asarray(value).T
                if entry.dtype == "char":
                    chars = np.asarray(value)
                    if chars.ndim == 1:
                        chars = chars.reshape(1, -1)
                    return np.array([_decode_chars(row) for row in chars], dtype=object)
            return np.asarray(value)

    def view(self, key: str, n_items: int | None = None) -> View:  # noqa: D102
        entry = self.entry(key)
        if entry.kind != "numeric":
            return super().view(key, n_items)
        axis = self.row_axis(key, n_items)
        ndim = len(entry.shape)
        if self.matlab:
            return HDF5View(self.path, key, row_axis=ndim - 1 - axis, reverse_item_axes=True)
        return HDF5View(self.path, key, row_axis=axis)


class NpzFile(ArrayFile):
    """NumPy ``.npz`` archive (object arrays are refused: no pickle)."""

    format = "npz"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._entries: dict[str, ArrayEntry] = {}
        self._cache: dict[str, np.ndarray] = {}
        try:
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.files)
        except Exception as exc:
            raise DatasetError(f"{path}: cannot read as a NumPy .npz archive: {exc}") from exc
        for key in keys:
            array = self._load(key)
            if array.dtype.kind in "biuf":
                kind = "numeric"
            elif array.dtype.kind in "SU":
                kind = "strings"
            else:
                kind = "other"
            self._entries[key] = ArrayEntry(key, tuple(int(s) for s in array.shape), str(array.dtype), kind)

    def _load(self, key: str) -> np.ndarray:
        if key not in self._cache:
            try:
                with np.load(self.path, allow_pickle=False) as archive:
                    self._cache[key] = archive[key]
            except ValueError as exc:
                raise DatasetError(
                    f"{self.path}: key {key!r}: expected a numeric or string array, got an object "
                    f"array (pickled data is not read): {exc}"
                ) from exc
        return self._cache[key]

    def entries(self) -> dict[str, ArrayEntry]:  # noqa: D102
        return self._entries

    def array(self, key: str) -> np.ndarray | sp.csr_matrix:  # noqa: D102
        self.entry(key)
        return self._load(key)


def open_array_file(path: str | Path) -> ArrayFile:
    """Open an array file: ``.mat`` (v5 or v7.3), HDF5, ``.npz``, or a ``.txt`` list.

    The format of binary files is detected from their content; ``.txt`` files are read as a
    :class:`TextListFile`.

    Raises
    ------
    MissingFilesError
        If the file does not exist.
    DatasetError
        If the file has another format or is corrupted; the message names the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise MissingFilesError(f"{path}: file not found", searched=path.parent, missing=[path.name])
        return TextListFile(path)
    file_format = detect_format(path)
    if file_format == "npz":
        return NpzFile(path)
    if file_format == "mat-v5":
        return MatV5File(path)
    return HDF5File(path, matlab=file_format == "mat-v7.3")


class TextListFile(ArrayFile):
    """A text file with one item per line, exposed as one array named after the file's stem.

    Lines of numbers (separated by spaces, tabs or commas) give a numeric matrix
    (``all_labels.txt``); any other lines give strings (``all_tags.txt``, ``all_imgs.txt``).
    Empty lines are items too (an item without tags). The kind is decided from the first 50
    lines; the whole file is parsed on first use.
    """

    format = "text"

    def __init__(self, path: Path, *, encoding: str = "utf-8") -> None:
        super().__init__(path)
        try:
            text = path.read_text(encoding=encoding)
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path}: expected {encoding} text, got undecodable bytes at offset {exc.start}"
            ) from exc
        except OSError as exc:
            raise MissingFilesError(f"{path}: cannot read: {exc}", missing=[path.name]) from exc
        self.key = path.stem
        self._lines = text.splitlines()
        self._value: np.ndarray | None = None
        head = self._lines[:50]
        widths = set()
        numeric = bool(head)
        for line in head:
            fields = line.replace(",", " ").split()
            try:
                np.array(fields, dtype=np.float64)
            except ValueError:
                numeric = False
                break
            widths.add(len(fields))
        if numeric and len(widths) == 1 and 0 not in widths:
            self._entry = ArrayEntry(self.key, (len(self._lines), widths.pop()), "number", "numeric")
        else:
            self._entry = ArrayEntry(self.key, (len(self._lines),), "text", "strings")

    def entries(self) -> dict[str, ArrayEntry]:  # noqa: D102
        return {self.key: self._entry}

    def array(self, key: str) -> np.ndarray | sp.csr_matrix:  # noqa: D102
        self.entry(key)
        if self._value is None:
            if self._entry.kind == "strings":
                self._value = np.array(self._lines, dtype=object)
            else:
                width = self._entry.shape[1]
                rows = []
                for number, line in enumerate(self._lines, start=1):
                    fields = line.replace(",", " ").split()
                    try:
                        row = np.array(fields, dtype=np.float64)
                    except ValueError as exc:
                        raise DatasetError(
                            f"{self.path}: line {number}: expected numbers, got {line[:60]!r}"
                        ) from exc
                    if row.shape[0] != width:
                        raise DatasetError(
                            f"{self.path}: line {number}: expected {width} values, got {row.shape[0]}"
                        )
                    rows.append(row)
                value = np.vstack(rows) if rows else np.zeros((0, width))
                if (
                    np.all(value == np.round(value))
                    and value.min(initial=0) >= 0
                    and value.max(initial=0) < 256
                ):
                    value = value.astype(np.uint8)
                self._value = value
        return self._value

    def strings(self, key: str) -> list[str]:  # noqa: D102
        self.entry(key)
        if self._entry.kind != "strings":
            raise DatasetError(f"{self.path}: expected text lines, got a numeric matrix")
        return list(self._lines)
