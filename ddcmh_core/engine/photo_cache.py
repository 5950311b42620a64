"""Decoded photos kept in one memory-mapped ``uint8`` file, so that only the first epoch decodes.

Decoding a JPEG and resizing it costs far more than the network's work on the small input a
CPU run uses. :class:`DecodedPhotoCache` keeps every photo of a file list once, decoded, its
shorter side resized to ``side`` and its centre ``side x side`` square kept, in one array file of
shape ``(n, side, side, 3)``. :class:`~ddcmh_core.engine.images.ImageFileSource` fills it during
the first pass over the photos and afterwards crops, resizes and flips the stored squares
instead of decoding (the evaluation centre crop is then exactly the region it was before; a
training crop is drawn inside the centre square rather than the whole photo).

The file lives in :func:`photo_cache_dir` and is named by a key over the side, the cache format
and every file's resolved path, size and modification time: a photo edited, added or removed
gives another key, so a stale file is never read. It is filled under a temporary name private to
the process and renamed into place only when every row is stored, so an interrupted run leaves
no half-filled cache for the next one; a complete file of the wrong size is filled again.

Memory stays bounded: the array is a memory map, and a batch reads only its own rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import FileWriteError
from .photo_decoding import file_stats

__all__ = ["DecodedPhotoCache", "photo_cache_dir"]

_FORMAT = "ddcmh decoded photos v1: uint8 (n, side, side, 3), shorter side resized to side, centre square"


def photo_cache_dir() -> Path:
    """Folder of decoded-photo files.

    ``$DDCMH_PHOTO_CACHE_DIR`` when set, else ``photos`` beside the weight cache (see
    :func:`~ddcmh_core.engine.weights.weights_cache_dir`).
    """
    from .weights import weights_cache_dir

    chosen = os.environ.get("DDCMH_PHOTO_CACHE_DIR")
    return Path(chosen).expanduser() if chosen else weights_cache_dir().parent / "photos"


def photo_cache_key(paths: Sequence[Path], side: int) -> str:
    """The key of the cache file of ``paths`` stored at ``side`` (see the module docstring)."""
    digest = hashlib.sha256(json.dumps({"format": _FORMAT, "side": side}).encode())
    for entry in file_stats(paths, what="photo cache"):
        digest.update(json.dumps(entry).encode())
    return digest.hexdigest()


class DecodedPhotoCache:
    """Every photo of a file list, decoded to a ``side x side`` RGB square, in one memory-mapped file.

    Parameters
    ----------
    paths : sequence of Path
        One photo per row; their sizes and modification times are part of the key.
    side : int
        Side of the stored squares (the source's ``resize_size``).
    directory : path, optional
        Where the file is kept; default :func:`photo_cache_dir`.

    Attributes
    ----------
    path : Path
        The complete cache file (present once every row is stored).
    complete : bool
        Whether every row is stored (read from ``path``) rather than being filled.

    Raises
    ------
    InputError
        When photos are missing (all listed, from the key computation).
    """

    def __init__(self, paths: Sequence[Path], side: int, *, directory: str | Path | None = None) -> None:
        self.n_rows, self.side = len(paths), int(side)
        folder = Path(directory) if directory is not None else photo_cache_dir()
        key = photo_cache_key(paths, self.side)
        self.path = folder / f"photos-{self.n_rows}x{self.side}-{key[:24]}.u8"
        self._lock = threading.Lock()
        self._array: np.ndarray | None = None
        self._filled: np.ndarray | None = None
        self._partial: Path | None = None
        self.complete = self._open_complete()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(n, side, side, 3)``."""
        return (self.n_rows, self.side, self.side, 3)

    @property
    def n_bytes(self) -> int:
        """Size of the cache file in bytes."""
        return int(np.prod(self.shape))

    def _open_complete(self) -> bool:
        try:
            if self.path.stat().st_size != self.n_bytes:
                return False  # damaged or of another layout: filled again and replaced
            self._array = np.memmap(self.path, dtype=np.uint8, mode="r", shape=self.shape)
        except (OSError, ValueError):
            return False
        return True

    def _start_filling(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            self._array = np.memmap(self._partial, dtype=np.uint8, mode="w+", shape=self.shape)
        except OSError as error:
            raise FileWriteError(
                f"photo cache: cannot create {self._partial} ({self.n_bytes / 2**20:.0f} MiB): "
                f"{error.strerror or error} (set photo_cache = false, or DDCMH_CACHE_DIR to a "
                "writable folder with room)"
            ) from error
        self._filled = np.zeros(self.n_rows, dtype=bool)

    def missing(self, rows: np.ndarray) -> np.ndarray:
        """The rows among ``rows`` not stored yet (none once the cache is complete)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.complete:
            return rows[:0]
        if self._filled is None:
            return rows
        return rows[~self._filled[rows]]

    def store(self, row: int, square: np.ndarray) -> None:
        """Store row ``row`` (a ``(side, side, 3)`` uint8 array); safe to call from several threads."""
        if self.complete:
            return
        with self._lock:
            if self._array is None or self._filled is None:
                self._start_filling()
        assert self._array is not None and self._filled is not None
        self._array[row] = square
        self._filled[row] = True

    def read(self, row: int) -> np.ndarray:
        """Row ``row`` as a ``(side, side, 3)`` uint8 array (it must be stored)."""
        assert self._array is not None
        return np.array(self._array[row])

    def publish_if_full(self) -> bool:
        """Rename the filled file into place once every row is stored; return whether complete.

        A failed rename (e.g. a read-only folder) leaves the cache working from its private
        file for this process.
        """
        if self.complete or self._filled is None or not self._filled.all():
            return self.complete
        assert self._array is not None and self._partial is not None
        array = self._array
        if isinstance(array, np.memmap):
            array.flush()
        try:
            os.replace(self._partial, self.path)
        except OSError:
            return False
        self.complete = True
        return True

    def discard(self) -> None:
        """Remove this process's unfinished file (nothing is lost: a complete file stays)."""
        self._array = None
        self._filled = None
        if self._partial is not None and not self.complete:
            self._partial.unlink(missing_ok=True)
        self._partial = None

    def __getstate__(self) -> dict[str, Any]:
        # A copy in another process (a data-loader worker) reads a complete file itself and does
        # not share a file being filled: it decodes.
        state = self.__dict__.copy()
        state.update(_lock=None, _array=None, _filled=None, _partial=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.complete = self._open_complete()

    def __del__(self) -> None:
        try:
            self.discard()
        except Exception:
            pass
