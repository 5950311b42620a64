"""Exact Hamming search over packed binary codes, and adapters to faiss binary indexes.

:class:`HammingIndex` keeps packed codes (``np.packbits`` layout, see :mod:`ddcmh_core.evaluation.codes`)
with user ids, and answers exact top-k and radius queries by a blocked linear scan: XOR +
popcount on 64-bit words, one query block against one cache-sized database block at a time,
threads over query blocks. Top-k selection counts instead of sorting, since distances are small
integers (:mod:`ddcmh_core.evaluation.top_k`).

For collections too large for a linear scan, :meth:`HammingIndex.to_faiss` builds a faiss
binary index (flat, HNSW, IVF or multi-hash) from the same codes and ids, and
:func:`recall_at_k` measures its recall against the exact index.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ddcmh_core.errors import DdcmhError, InputError
from ddcmh_core.evaluation.codes import (
    ScratchBuffers,
    as_words,
    available_cpus,
    check_codes,
    check_packed,
    distance_dtype,
    hamming_distances_words,
    n_packed_bytes,
    nonzero_2d,
    pack_codes,
    unpack_codes,
)
from ddcmh_core.evaluation.top_k import TopKSelector

__all__ = [
    "MISSING_DISTANCE",
    "MISSING_ID",
    "FaissBinaryIndex",
    "HammingIndex",
    "IndexFileError",
    "recall_at_k",
]

MISSING_ID = -1
"""The id of an empty result slot (``k`` larger than the index, or nothing found): faiss's ``-1``."""
MISSING_DISTANCE = int(np.iinfo(np.int32).max)
"""The distance of an empty result slot: faiss's binary indexes put ``2**31 - 1`` there."""

# Database items per scan block (64 KiB of 64-bit codes): the block stays in L1/L2 while a
# block of queries runs over it.
_DATABASE_BLOCK = 8192
# Queries scanned together against one database block.
_QUERY_BLOCK = 32


class IndexFileError(DdcmhError, ValueError):
    """A file that should hold a saved :class:`HammingIndex` is corrupted, foreign or too new."""


def _check_ids(ids: Any, n: int, name: str = "ids") -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1 or array.shape[0] != n:
        raise InputError(f"{name}: expected a 1-D array of {n} integer ids, found shape {array.shape}")
    if n and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name}: expected integer ids, found dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class HammingIndex:
    """Exact Hamming-distance search over binary codes, with user ids.

    Parameters
    ----------
    n_bits : int
        Code length in bits.

    Notes
    -----
    * Codes are given as {0,1} arrays of shape ``(n, n_bits)``, or packed bytes with
      ``packed=True`` (``np.packbits`` layout).
    * Ids are int64 and unique. Without ids, :meth:`add` assigns consecutive ids starting after
      the largest id ever assigned.
    * Ties are broken by insertion order: among items at the same distance, the one added
      earlier comes first (removal keeps the relative order of the others). faiss's
      ``IndexBinaryFlat`` orders ties the same way.
    * :meth:`search` and :meth:`range_search` follow faiss's conventions, so that results can be
      compared with a faiss binary index: ``k`` larger than the index pads with id
      :data:`MISSING_ID` and distance :data:`MISSING_DISTANCE`, and a radius is exclusive
      (distance ``< radius``) unless ``inclusive=True``.
    * Not thread-safe for concurrent modification; concurrent searches are fine.

    Examples
    --------
    >>> import numpy as np
    >>> index = HammingIndex(8)
    >>> index.add(np.eye(8, dtype=np.uint8), ids=np.arange(100, 108))
    array([100, 101, 102, 103, 104, 105, 106, 107])
    >>> distances, ids = index.search(np.eye(8, dtype=np.uint8)[:1], k=2)
    >>> distances.tolist(), ids.tolist()
    ([[0, 2]], [[100, 101]])
    """

    FORMAT: ClassVar[str] = "ddcmh.HammingIndex"
    FORMAT_VERSION: ClassVar[int] = 1

    def __init__(self, n_bits: int) -> None:
        if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or n_bits <= 0:
            raise InputError(f"n_bits: expected a positive integer, found {n_bits!r}")
        self.n_bits = int(n_bits)
        self._storage = np.empty((0, n_packed_bytes(self.n_bits)), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)
        self._size = 0
        self._next_id = 0
        self._words_cache: np.ndarray | None = None

    # -- contents ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}, n_items={self._size})"

    @property
    def ids(self) -> np.ndarray:
        """The ids in insertion order (a read-only view)."""
        view = self._ids[: self._size]
        view.flags.writeable = False
        return view

    @property
    def packed_codes(self) -> np.ndarray:
        """The packed codes in insertion order, shape ``(n, ceil(n_bits/8))`` (read-only view)."""
        view = self._storage[: self._size]
        view.flags.writeable = False
        return view

    def _packed_input(self, codes: Any, packed: bool, name: str) -> np.ndarray:
        if packed:
            return check_packed(codes, self.n_bits, name=name)
        return pack_codes(check_codes(codes, name=name, n_bits=self.n_bits), name=name)

    def _words(self) -> np.ndarray:
        if self._words_cache is None:
            self._words_cache = as_words(self._storage[: self._size])
        return self._words_cache

    def _rows_of(self, ids: np.ndarray, name: str) -> np.ndarray:
        """Storage rows of ``ids``; raises when one is absent."""
        order = np.argsort(self._ids[: self._size], kind="stable")
        sorted_ids = self._ids[: self._size][order]
        slots = np.searchsorted(sorted_ids, ids)
        slots_clipped = np.minimum(slots, max(self._size - 1, 0))
        found = (
            (slots < self._size) & (sorted_ids[slots_clipped] == ids)
            if self._size
            else np.zeros(len(ids), bool)
        )
        if not np.all(found):
            missing = ids[~found]
            raise InputError(
                f"{name}: expected ids present in the index, found {missing.size} unknown id(s), "
                f"e.g. {missing[:5].tolist()}"
            )
        return order[slots_clipped]

    def add(self, codes: Any, ids: Any = None, *, packed: bool = False) -> np.ndarray:
        """Append codes, with optional user ids.

        Parameters
        ----------
        codes : array_like
            {0,1} codes of shape ``(n, n_bits)``, or packed bytes when ``packed=True``.
        ids : array_like of int, optional
            One unique int64 id per code, not already in the index. By default consecutive ids
            after the largest id assigned so far.
        packed : bool, default False
            Whether ``codes`` are packed bytes.

        Returns
        -------
        numpy.ndarray
            The ids of the added items.

        Raises
        ------
        InvalidCodesError
            Codes of the wrong width or with values other than 0 and 1.
        InputError
            Ids of the wrong shape or dtype, repeated, or already present.
        """
        new_codes = self._packed_input(codes, packed, "codes")
        n_new = new_codes.shape[0]
        if ids is None:
            new_ids = np.arange(self._next_id, self._next_id + n_new, dtype=np.int64)
        else:
            new_ids = _check_ids(ids, n_new)
            unique = np.unique(new_ids)
            if unique.size != n_new:
                raise InputError("ids: expected unique ids, found repeated ids within the call")
            clash = np.isin(new_ids, self._ids[: self._size])
            if clash.any():
                raise InputError(
                    f"ids: expected ids not already in the index, found {int(clash.sum())} "
                    f"present, e.g. {new_ids[clash][:5].tolist()}"
                )
        needed = self._size + n_new
        if needed > self._storage.shape[0]:
            capacity = max(needed, 2 * self._storage.shape[0], 1024)
            storage = np.empty((capacity, self._storage.shape[1]), dtype=np.uint8)
            storage[: self._size] = self._storage[: self._size]
            id_storage = np.empty(capacity, dtype=np.int64)
            id_storage[: self._size] = self._ids[: self._size]
            self._storage, self._ids = storage, id_storage
        self._storage[self._size : needed] = new_codes
        self._ids[self._size : needed] = new_ids
        self._size = needed
        if n_new:
            self._next_id = max(self._next_id, int(new_ids.max()) + 1)
        self._words_cache = None
        return new_ids

    def remove(self, ids: Any) -> int:
        """Remove items by id, keeping the insertion order of the others.

        Parameters
        ----------
        ids : array_like of int
            Ids to remove; each must be present.

        Returns
        -------
        int
            The number of items removed.
        """
        to_remove = np.unique(_check_ids(np.atleast_1d(ids), np.atleast_1d(ids).shape[0]))
        rows = self._rows_of(to_remove, "ids")
        keep = np.ones(self._size, dtype=bool)
        keep[rows] = False
        kept = int(keep.sum())
        self._storage[:kept] = self._storage[: self._size][keep]
        self._ids[:kept] = self._ids[: self._size][keep]
        self._size = kept
        self._words_cache = None
        return int(rows.size)

    def reconstruct(self, ids: Any) -> np.ndarray:
        """Return the {0,1} codes of the given ids, shape ``(len(ids), n_bits)``."""
        wanted = _check_ids(np.atleast_1d(ids), np.atleast_1d(ids).shape[0])
        rows = self._rows_of(wanted, "ids")
        return unpack_codes(self._storage[rows], self.n_bits)

    # -- search --------------------------------------------------------------------------------

    def _query_words(self, queries: Any, packed: bool) -> np.ndarray:
        return as_words(self._packed_input(queries, packed, "queries"))

    def _map_query_blocks(
        self,
        work: Callable[[np.ndarray, ScratchBuffers], Any],
        query_words: np.ndarray,
        n_threads: int | None,
    ) -> list[Any]:
        threads = available_cpus() if n_threads is None else int(n_threads)
        if threads <= 0:
            raise InputError(f"n_threads: expected a positive integer, found {n_threads!r}")
        blocks = [
            query_words[start : start + _QUERY_BLOCK] for start in range(0, len(query_words), _QUERY_BLOCK)
        ]
        scratch = ScratchBuffers()
        if threads == 1 or len(blocks) <= 1:
            return [work(block, scratch) for block in blocks]
        with ThreadPoolExecutor(max_workers=threads) as executor:
            return list(executor.map(lambda block: work(block, scratch), blocks))

    def _scan(
        self,
        query_words: np.ndarray,
        scratch: ScratchBuffers,
        visit: Callable[[int, np.ndarray], None],
    ) -> None:
        """Compute distances database block by block and hand each to ``visit(block_start, distances)``."""
        database_words = self._words()
        n_queries = len(query_words)
        for start in range(0, self._size, _DATABASE_BLOCK):
            stop = min(start + _DATABASE_BLOCK, self._size)
            shape = (n_queries, stop - start)
            distances = hamming_distances_words(
                query_words,
                database_words[start:stop],
                out=scratch.get("distances", shape, distance_dtype(self.n_bits)),
                xor_scratch=scratch.get("xor", shape, database_words.dtype),
                count_scratch=scratch.get("count", shape, np.uint8),
            )
            visit(start, distances)

    def search(
        self, queries: Any, k: int, *, packed: bool = False, n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest neighbours of each query by Hamming distance.

        Parameters
        ----------
        queries : array_like
            {0,1} codes of shape ``(n_queries, n_bits)``, or packed bytes when ``packed=True``.
        k : int
            Number of neighbours (>= 1). When the index holds fewer items, every item is returned
            and the remaining slots are padded, as faiss does.
        packed : bool, default False
            Whether ``queries`` are packed bytes.
        n_threads : int, optional
            Threads over query blocks; defaults to the CPUs available to the process.

        Returns
        -------
        distances : numpy.ndarray
            int32, shape ``(n_queries, k)``, ascending per row; :data:`MISSING_DISTANCE` in the
            slots beyond ``len(self)``.
        ids : numpy.ndarray
            int64 ids, same shape; ties in insertion order; :data:`MISSING_ID` (-1) in the
            slots beyond ``len(self)``.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise InputError(f"k: expected a positive integer, found {k!r}")
        query_words = self._query_words(queries, packed)
        n_queries, n_kept = len(query_words), min(int(k), self._size)
        distances = np.full((n_queries, int(k)), MISSING_DISTANCE, np.int32)
        ids = np.full((n_queries, int(k)), MISSING_ID, np.int64)
        if n_kept == 0 or n_queries == 0:
            return distances, ids
        results = self._map_query_blocks(
            lambda block, scratch: self._top_k_block(block, n_kept, scratch), query_words, n_threads
        )
        distances[:, :n_kept] = np.concatenate([result[0] for result in results])
        ids[:, :n_kept] = self._ids[np.concatenate([result[1] for result in results])]
        return distances, ids

    def _top_k_block(
        self, query_words: np.ndarray, k: int, scratch: ScratchBuffers
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of one query block: returns (distances int32, storage rows int64)."""
        selector = TopKSelector(len(query_words), k, self.n_bits)

        def visit(start: int, distances: np.ndarray) -> None:
            selector.add_block(start, distances, scratch.get("mask", distances.shape, np.bool_))

        self._scan(query_words, scratch, visit)
        return selector.result()

    def range_search(
        self,
        queries: Any,
        radius: int,
        *,
        inclusive: bool = False,
        packed: bool = False,
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All items closer than Hamming distance ``radius`` to each query.

        The boundary is faiss's: ``IndexBinaryFlat.range_search(x, radius)`` returns the items
        at distance strictly below ``radius``, and so does this method by default. Pass
        ``inclusive=True`` for the Hamming ball of radius ``radius`` (distance ``<= radius``),
        the "lookup within radius r" of the hashing literature.

        Parameters
        ----------
        queries : array_like
            {0,1} codes of shape ``(n_queries, n_bits)``, or packed bytes when ``packed=True``.
        radius : int
            Hamming radius, ``>= 0``. With the default exclusive boundary, ``radius=0`` finds
            nothing, as in faiss.
        inclusive : bool, default False
            Also return the items at distance exactly ``radius``.
        packed : bool, default False
            Whether ``queries`` are packed bytes.
        n_threads : int, optional
            Threads over query blocks.

        Returns
        -------
        lims : numpy.ndarray
            int64 of length ``n_queries + 1``: the results of query ``i`` are
            ``distances[lims[i]:lims[i+1]]`` and ``ids[lims[i]:lims[i+1]]`` (faiss layout).
        distances : numpy.ndarray
            int32 distances, ascending per query, ties in insertion order (faiss returns each
            query's items in insertion order instead, whatever their distance).
        ids : numpy.ndarray
            int64 ids.
        """
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise InputError(f"radius: expected a non-negative integer, found {radius!r}")
        if not isinstance(inclusive, (bool, np.bool_)):
            raise InputError(f"inclusive: expected True or False, found {inclusive!r}")
        limit = min(int(radius) + 1 if inclusive else int(radius), self.n_bits + 1)
        query_words = self._query_words(queries, packed)

        def work(block: np.ndarray, scratch: ScratchBuffers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

            def visit(start: int, distances: np.ndarray) -> None:
                mask = scratch.get("mask", distances.shape, np.bool_)
                np.less(distances, limit, out=mask)
                rows, columns = nonzero_2d(mask)
                found.append((rows, columns + start, distances[rows, columns].astype(np.int32)))

            self._scan(block, scratch, visit)
            if not found:
                return np.zeros(len(block), np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
            rows = np.concatenate([part[0] for part in found])
            positions = np.concatenate([part[1] for part in found])
            distances = np.concatenate([part[2] for part in found])
            order = np.lexsort((positions, distances, rows))
            return np.bincount(rows, minlength=len(block)), distances[order], positions[order]

        results = self._map_query_blocks(work, query_words, n_threads)
        counts = np.concatenate([result[0] for result in results]) if results else np.zeros(0, np.int64)
        lims = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        distances = np.concatenate([result[1] for result in results]) if results else np.zeros(0, np.int32)
        rows = np.concatenate([result[2] for result in results]) if results else np.zeros(0, np.int64)
        return lims, distances, self._ids[rows]

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to one HDF5 file (no pickle), atomically.

        The file is written to a temporary name in the same folder and renamed over ``path``,
        so a failed save never leaves a half-written index behind.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file.
        """
        import h5py

        from ddcmh_core._version import __version__
        from ddcmh_core.files import atomic_path

        with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
            file.attrs["format"] = self.FORMAT
            file.attrs["format_version"] = self.FORMAT_VERSION
            file.attrs["n_bits"] = self.n_bits
            file.attrs["next_id"] = self._next_id
            file.attrs["ddcmh_version"] = __version__
            file.create_dataset("packed_codes", data=self._storage[: self._size])
            file.create_dataset("ids", data=self._ids[: self._size])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HammingIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.

        Returns
        -------
        HammingIndex
            The index, with the same codes, ids and insertion order.

        Raises
        ------
        FileNotFoundError
            When the file does not exist.
        IndexFileError
            When the file is not HDF5, not a ddcmh Hamming index, from a newer format version,
            or internally inconsistent.
        """
        import h5py

        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file")
        try:
            file = h5py.File(source, "r")
        except OSError as error:
            raise IndexFileError(
                f"{source}: expected an HDF5 file written by HammingIndex.save, found a file that "
                f"is not readable as HDF5 ({error})"
            ) from error
        with file:
            found_format = file.attrs.get("format")
            if isinstance(found_format, bytes):
                found_format = found_format.decode()
            if found_format != cls.FORMAT:
                raise IndexFileError(f"{source}: expected format {cls.FORMAT!r}, found {found_format!r}")
            version = int(file.attrs.get("format_version", -1))
            if not 1 <= version <= cls.FORMAT_VERSION:
                raise IndexFileError(
                    f"{source}: expected format version <= {cls.FORMAT_VERSION}, found {version}; "
                    "upgrade ddcmh to read it"
                )
            try:
                n_bits = int(file.attrs["n_bits"])
                next_id = int(file.attrs["next_id"])
                packed = np.asarray(file["packed_codes"][()])
                ids = np.asarray(file["ids"][()])
            except (KeyError, ValueError, TypeError) as error:
                raise IndexFileError(
                    f"{source}: expected attributes n_bits, next_id and datasets packed_codes, ids: {error}"
                ) from error
        index = cls(n_bits)
        try:
            index.add(packed, ids=ids, packed=True)
        except InputError as error:
            raise IndexFileError(f"{source}: inconsistent index contents: {error}") from error
        index._next_id = max(index._next_id, next_id)
        return index

    # -- faiss ---------------------------------------------------------------------------------

    def to_faiss(self, kind: str = "flat", **options: Any) -> FaissBinaryIndex:
        """Build a faiss binary index over the same codes and ids; see :class:`FaissBinaryIndex`."""
        return FaissBinaryIndex.build(self, kind, **options)


# ------------------------------------------------------------------------------------------------
# faiss
# ------------------------------------------------------------------------------------------------


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "faiss is needed for faiss binary indexes: pip install faiss-cpu (or pip install 'ddcmh[faiss]')"
        ) from error
    return faiss


class FaissBinaryIndex:
    """A faiss binary index built from a :class:`HammingIndex`, answering with the same ids.

    Build it with :meth:`HammingIndex.to_faiss` (or :meth:`build`). Kinds and options:

    ``"flat"``
        ``IndexBinaryFlat``: exact brute force.
    ``"hnsw"``
        ``IndexBinaryHNSW``; options ``m`` (graph degree, default 32), ``ef_construction``
        (default 40), ``ef_search`` (default 64).
    ``"ivf"``
        ``IndexBinaryIVF`` over a flat quantizer; options ``n_lists`` (default
        ``~4 sqrt(n)``), ``n_probe`` (default 8). Trained on the index's codes.
    ``"multihash"``
        ``IndexBinaryMultiHash``; options ``n_hashes`` (default 4), ``hash_bits`` (default
        ``min(24, n_bits // n_hashes)``), ``n_flips`` (default 1). Only items that collide in a
        hash table (up to ``n_flips`` bit flips) are found, so fewer than k may come back; the
        missing slots hold id :data:`MISSING_ID` and distance :data:`MISSING_DISTANCE`, as in
        :meth:`HammingIndex.search`.

    The faiss index is wrapped in ``IndexBinaryIDMap``, so faiss itself returns the user ids
    (``faiss_index`` can be saved with ``faiss.write_index_binary``). faiss needs ``n_bits`` to
    be a multiple of 8.
    """

    _OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "flat": (),
        "hnsw": ("m", "ef_construction", "ef_search"),
        "ivf": ("n_lists", "n_probe"),
        "multihash": ("n_hashes", "hash_bits", "n_flips"),
    }

    def __init__(self, faiss_index: Any, kind: str, n_bits: int) -> None:
        self.faiss_index = faiss_index
        self.kind = kind
        self.n_bits = n_bits

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def __repr__(self) -> str:
        return f"FaissBinaryIndex(kind={self.kind!r}, n_bits={self.n_bits}, n_items={len(self)})"

    @classmethod
    def build(cls, index: HammingIndex, kind: str = "flat", **options: Any) -> FaissBinaryIndex:
        """Build a faiss binary index of ``kind`` over ``index``'s codes and ids.

        Parameters
        ----------
        index : HammingIndex
            The exact index whose codes and ids are copied.
        kind : {"flat", "hnsw", "ivf", "multihash"}, default "flat"
            The faiss index type (see the class docstring).
        **options
            Kind-specific options (see the class docstring).

        Returns
        -------
        FaissBinaryIndex
            The adapter.
        """
        faiss = _import_faiss()
        if kind not in cls._OPTIONS:
            raise InputError(f"kind: expected one of {', '.join(map(repr, cls._OPTIONS))}, found {kind!r}")
        unknown = sorted(set(options) - set(cls._OPTIONS[kind]))
        if unknown:
            accepted = ", ".join(cls._OPTIONS[kind]) or "none"
            raise InputError(f"options: {kind!r} accepts {accepted}; found unknown {', '.join(unknown)}")
        n_bits = index.n_bits
        if n_bits % 8:
            raise InputError(f"n_bits: faiss binary indexes need a multiple of 8 bits, found {n_bits}")
        codes = np.ascontiguousarray(index.packed_codes)
        if kind == "flat":
            inner = faiss.IndexBinaryFlat(n_bits)
        elif kind == "hnsw":
            inner = faiss.IndexBinaryHNSW(n_bits, int(options.get("m", 32)))
            inner.hnsw.efConstruction = int(options.get("ef_construction", 40))
            inner.hnsw.efSearch = int(options.get("ef_search", 64))
        elif kind == "ivf":
            n_lists = int(options.get("n_lists", max(1, int(4 * np.sqrt(max(len(index), 1))))))
            quantizer = faiss.IndexBinaryFlat(n_bits)
            inner = faiss.IndexBinaryIVF(quantizer, n_bits, n_lists)
            inner.own_fields = True
            quantizer.this.disown()
            inner.train(codes)
            inner.nprobe = int(options.get("n_probe", 8))
        else:
            n_hashes = int(options.get("n_hashes", 4))
            hash_bits = int(options.get("hash_bits", min(24, n_bits // n_hashes)))
            inner = faiss.IndexBinaryMultiHash(n_bits, n_hashes, hash_bits)
            inner.nflip = int(options.get("n_flips", 1))
        wrapped = faiss.IndexBinaryIDMap(inner)
        wrapped.own_fields = True
        inner.this.disown()
        wrapped.add_with_ids(codes, np.ascontiguousarray(index.ids, dtype=np.int64))
        return cls(wrapped, kind, n_bits)

    def search(self, queries: Any, k: int, *, packed: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Approximate (exact for ``"flat"``) k nearest neighbours, with the index's ids.

        Parameters
        ----------
        queries : array_like
            {0,1} codes of shape ``(n_queries, n_bits)``, or packed bytes when ``packed=True``.
        k : int
            Number of neighbours.
        packed : bool, default False
            Whether ``queries`` are packed bytes.

        Returns
        -------
        distances : numpy.ndarray
            int32, shape ``(n_queries, k)``; :data:`MISSING_DISTANCE` where nothing was found.
        ids : numpy.ndarray
            int64, shape ``(n_queries, k)``; -1 where nothing was found.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise InputError(f"k: expected a positive integer, found {k!r}")
        if packed:
            query_bytes = check_packed(queries, self.n_bits, name="queries")
        else:
            query_bytes = pack_codes(check_codes(queries, name="queries", n_bits=self.n_bits))
        distances, ids = self.faiss_index.search(query_bytes, int(k))
        distances = np.where(ids < 0, MISSING_DISTANCE, distances).astype(np.int32)
        return distances, ids.astype(np.int64)


def recall_at_k(
    approximate: FaissBinaryIndex | HammingIndex, exact: HammingIndex, queries: Any, k: int
) -> float:
    """Tie-aware recall@k of an approximate index against the exact one.

    With integer distances the exact top-k is not unique when ties straddle the k-th place, so
    a returned item counts as correct when some valid exact answer contains it: every item
    strictly closer than the exact k-th distance counts, and items at exactly the k-th distance
    count up to the number of such places in the exact answer. True distances are recomputed
    from the exact index, and ids -1 (nothing found) count as misses.

    Parameters
    ----------
    approximate : FaissBinaryIndex or HammingIndex
        The index under test (built over the same ids).
    exact : HammingIndex
        The reference.
    queries : array_like
        {0,1} codes of shape ``(n_queries, n_bits)``.
    k : int
        Number of neighbours.

    Returns
    -------
    float
        Mean over queries of (correct results) / min(k, len(exact)).
    """
    exact_distances, _ = exact.search(queries, k)
    k_effective = min(int(k), len(exact))
    exact_distances = exact_distances[:, :k_effective]
    if k_effective == 0 or len(exact_distances) == 0:
        return 1.0
    _, found_ids = approximate.search(queries, k)
    found_ids = found_ids[:, :k_effective]
    valid = found_ids >= 0
    true_distances = np.full(found_ids.shape, exact.n_bits + 1, dtype=np.int64)
    if valid.any():
        found_codes = exact.reconstruct(found_ids[valid])
        query_codes = check_codes(queries, name="queries", n_bits=exact.n_bits)
        query_rows = np.nonzero(valid)[0]
        true_distances[valid] = (found_codes != query_codes[query_rows]).sum(axis=1)
    kth = exact_distances[:, -1:].astype(np.int64)
    closer = (true_distances < kth).sum(axis=1)
    tied_slots = (exact_distances == kth).sum(axis=1)
    tied_found = (true_distances == kth).sum(axis=1)
    correct = closer + np.minimum(tied_found, tied_slots)
    return float(np.mean(correct / k_effective))
