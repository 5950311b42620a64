"""Retrieval metrics over Hamming ranking: MAP@all, MAP@k, precision@N and precision-recall curves.

Protocol (METHOD.md §4): a query and a database item are relevant iff they share at least one
label (multi-label {0,1} matrices, dense or scipy sparse), or iff their class ids are equal
(single-label data given as 1-D integer vectors). The database is ranked by Hamming distance.
Any pair of views works (image→text, text→image, image→image, ...): the functions only see codes
and labels.

Ties
----
Hamming distances are integers in ``[0, n_bits]``, so many database items share a distance. Every
rank-based metric takes ``tie_policy``:

``"expected"`` (default)
    The exact expectation over a uniformly random order inside every group of tied items
    (McSherry & Najork, ECIR 2008). It does not depend on the database order. MAP@all uses the
    closed form with harmonic numbers of METHOD.md §4.4; truncated MAP@k conditions on the
    hypergeometric number of relevant items that the cut-off group contributes (derivation in
    :func:`_expected_truncated_average_precision`); precision@N is linear, so its expectation
    is immediate.
``"index"``
    Ties ordered by database index (a stable sort by distance), what most published code
    computes (DCMH ``calc_map`` with a stable sort).

Queries without any relevant database item (R = 0) contribute AP = 0 and still count in the
mean, as in the reference code (DCMH); their number is reported in every result
(``n_queries_without_relevant``). No metric returns NaN.

Cost
----
Distances are computed from packed codes (XOR + popcount on 64-bit words), and no per-query
sort is needed for the ``"expected"`` policy: each query only needs its histogram of
(items, relevant items) per distance, counted with one ``bincount`` per block. Queries and the
database are processed in blocks whose scratch memory stays under ``memory_budget_mb``, on
``n_threads`` threads (numpy releases the GIL inside its kernels). The ``"index"`` policy needs
the order inside tie groups, which a stable radix sort of the small-integer distances gives in
linear time. Nothing ever allocates an n_queries x n_database float matrix.

The same algorithms run in torch when ``device`` is given (``"cuda"``, ``"cuda:1"``, or
``"cpu"`` to use torch on the CPU) or when the codes are CUDA tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse
from scipy.special import gammaln

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.codes import (
    InvalidCodesError,
    ScratchBuffers,
    as_words,
    available_cpus,
    check_codes,
    distance_dtype,
    hamming_distances_torch,
    hamming_distances_words,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "TIE_POLICIES",
    "InvalidLabelsError",
    "MetricValue",
    "PrecisionAtN",
    "PrecisionRecallCurve",
    "TiePolicy",
    "mean_average_precision",
    "precision_at_n",
    "precision_recall_by_radius",
    "precision_within_radius",
    "random_code_floor",
]

TiePolicy = Literal["expected", "index"]
TIE_POLICIES: tuple[str, ...] = ("expected", "index")

# Label matrices with up to this many columns are packed into bit masks (one AND + test per
# 64 labels and pair); wider ones use a matrix product per block.
_MAX_PACKED_LABEL_COLUMNS = 256
# Pairs per (query block x database block) tile: small enough to keep a tile's scratch in cache.
_TILE_PAIRS = 1 << 17
# Rows ranked at once by the index-order path: a few rows keep the sort buffers in cache.
_INDEX_ROWS_CAP = 4


class InvalidLabelsError(InputError):
    """Label arrays that do not have the documented format or do not match the codes."""


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


def _rebuild_metric_value(
    value: float,
    name: str,
    tie_policy: str | None,
    per_query: np.ndarray,
    n_queries_without_relevant: int,
) -> MetricValue:
    return MetricValue(
        value,
        name=name,
        tie_policy=tie_policy,
        per_query=per_query,
        n_queries_without_relevant=n_queries_without_relevant,
    )


class MetricValue(float):
    """A metric's value that also says what it is and how ties were handled.

    It behaves as a plain ``float`` (arithmetic, comparison, formatting, ``np.isclose``), and
    carries the metric's name, the tie policy, the per-query values and the number of queries
    that have no relevant item in the database. Instances are immutable.

    Attributes
    ----------
    name : str
        The metric, e.g. ``"MAP@all"``, ``"MAP@50"`` or ``"precision within Hamming radius 2"``.
    tie_policy : str or None
        ``"expected"`` or ``"index"``; ``None`` for radius-based metrics, which ties do not affect.
    per_query : numpy.ndarray
        The value of each query (float64); their mean is the value.
    n_queries_without_relevant : int
        Queries with no relevant database item; each contributes 0 to the mean.
    """

    __slots__ = ("n_queries_without_relevant", "name", "per_query", "tie_policy")

    name: str
    tie_policy: str | None
    per_query: np.ndarray
    n_queries_without_relevant: int

    def __new__(
        cls,
        value: float,
        *,
        name: str,
        tie_policy: str | None,
        per_query: np.ndarray,
        n_queries_without_relevant: int,
    ) -> MetricValue:
        """Create the value; see the class docstring for the fields."""
        instance = super().__new__(cls, value)
        per_query = np.asarray(per_query, dtype=np.float64)
        per_query.flags.writeable = False
        object.__setattr__(instance, "name", name)
        object.__setattr__(instance, "tie_policy", tie_policy)
        object.__setattr__(instance, "per_query", per_query)
        object.__setattr__(instance, "n_queries_without_relevant", int(n_queries_without_relevant))
        return instance

    def __setattr__(self, attribute: str, value: Any) -> None:
        raise AttributeError(f"MetricValue is immutable; cannot set {attribute!r}")

    def __delattr__(self, attribute: str) -> None:
        raise AttributeError(f"MetricValue is immutable; cannot delete {attribute!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_metric_value,
            (
                float(self),
                self.name,
                self.tie_policy,
                self.per_query,
                self.n_queries_without_relevant,
            ),
        )

    @property
    def n_queries(self) -> int:
        """Number of queries averaged."""
        return int(self.per_query.shape[0])

    @property
    def value(self) -> float:
        """The value as a plain ``float``."""
        return float(self)

    def __repr__(self) -> str:
        return (
            f"MetricValue({float(self)!r}, name={self.name!r}, tie_policy={self.tie_policy!r}, "
            f"n_queries={self.n_queries}, "
            f"n_queries_without_relevant={self.n_queries_without_relevant})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (without the per-query values)."""
        return {
            "name": self.name,
            "value": float(self),
            "tie_policy": self.tie_policy,
            "n_queries": self.n_queries,
            "n_queries_without_relevant": self.n_queries_without_relevant,
        }


@dataclass(frozen=True)
class PrecisionAtN:
    """Precision and recall of the top-N retrieved items, for several N.

    Attributes
    ----------
    n_values : numpy.ndarray
        The cut-offs N (int64), as given.
    precision : numpy.ndarray
        Mean over queries of (relevant items in the top N) / N.
    recall : numpy.ndarray
        Mean over queries of (relevant items in the top N) / R; a query with R = 0 counts 0.
    tie_policy : str
        ``"expected"`` or ``"index"``.
    per_query_precision : numpy.ndarray
        Shape ``(n_queries, len(n_values))``.
    n_queries_without_relevant : int
        Queries with R = 0.
    """

    n_values: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    tie_policy: str
    per_query_precision: np.ndarray
    n_queries_without_relevant: int


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Precision and recall of Hamming-ball retrieval for every radius 0..n_bits.

    Attributes
    ----------
    radii : numpy.ndarray
        ``0, 1, ..., n_bits``.
    precision : numpy.ndarray
        Precision at each radius (see ``average``). Empty retrieval counts as precision 0.
    recall : numpy.ndarray
        Recall at each radius (see ``average``). No relevant item counts as recall 0.
    average : str
        ``"micro"``: pooled over all query-item pairs (DCMH ``calcPreRecRadiusLabel.m``);
        ``"macro"``: the mean of the per-query values.
    n_queries_without_relevant : int
        Queries with R = 0.
    """

    radii: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    average: str
    n_queries_without_relevant: int


# --------------------------------------------------------------------------------------------
# Input checking and relevance
# --------------------------------------------------------------------------------------------


def _check_tie_policy(tie_policy: str) -> str:
    if tie_policy not in TIE_POLICIES:
        raise InputError(
            f"tie_policy: expected one of {', '.join(map(repr, TIE_POLICIES))}, found {tie_policy!r}"
        )
    return tie_policy


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name}: expected a positive integer, found {value!r}")
    return int(value)


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def _binary_label_matrix(labels: Any, name: str, n_rows: int) -> np.ndarray | scipy.sparse.csr_matrix:
    """Validate a {0,1} label matrix (dense or sparse) with ``n_rows`` rows."""
    if scipy.sparse.issparse(labels):
        matrix = scipy.sparse.csr_matrix(labels)
        matrix.eliminate_zeros()
        if matrix.nnz and not np.all(matrix.data == 1):
            raise InvalidLabelsError(
                f"{name}: expected a {{0,1}} label matrix, found stored values other than 0 "
                f"and 1, e.g. {matrix.data[matrix.data != 1][0]!r}"
            )
    else:
        matrix = np.asarray(labels)
        if matrix.dtype != np.bool_ and not (
            np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)
        ):
            raise InvalidLabelsError(f"{name}: expected a numeric {{0,1}} matrix, found dtype {matrix.dtype}")
        if matrix.dtype != np.bool_ and matrix.size and not np.all((matrix == 0) | (matrix == 1)):
            raise InvalidLabelsError(
                f"{name}: expected a {{0,1}} label matrix (or a 1-D vector of class ids), "
                f"found values other than 0 and 1"
            )
    if matrix.shape[0] != n_rows:
        raise InvalidLabelsError(
            f"{name}: expected {n_rows} rows (one per code), found {matrix.shape[0]} rows "
            f"(shape {matrix.shape})"
        )
    return matrix


@dataclass(frozen=True)
class _Relevance:
    """Prepared labels that answer "is query i relevant to database item j" block by block.

    ``kind`` is ``"classes"`` (1-D class ids, relevant iff equal), ``"bitmask"`` (label sets
    packed into unsigned words, relevant iff the AND is non-zero) or ``"matrix"`` (relevant iff
    the label product is positive).
    """

    kind: str
    query: Any
    database: Any

    def block(self, queries: slice, items: slice, out: np.ndarray, scratch: np.ndarray) -> None:
        """Write the relevance of ``queries x items`` into the boolean ``out``."""
        if self.kind == "classes":
            np.equal(self.query[queries, None], self.database[None, items], out=out)
        elif self.kind == "bitmask":
            n_words = self.query.shape[1]
            np.bitwise_and(self.query[queries, 0, None], self.database[None, items, 0], out=scratch)
            for word in range(1, n_words):
                any_shared = np.bitwise_and(self.query[queries, word, None], self.database[None, items, word])
                np.bitwise_or(scratch, any_shared, out=scratch)
            np.not_equal(scratch, 0, out=out)
        else:
            product = self.query[queries] @ self.database[items].T
            if scipy.sparse.issparse(product):
                product = product.toarray()
            np.greater(product, 0, out=out)

    @property
    def scratch_dtype(self) -> np.dtype[Any]:
        """Dtype of the scratch buffer :meth:`block` needs."""
        return self.query.dtype if self.kind == "bitmask" else np.dtype(np.uint8)


def _prepare_relevance(
    query_labels: Any, database_labels: Any, n_queries: int, n_database: int
) -> _Relevance:
    """Validate the label arrays against the codes and pick the fastest relevance test."""
    if _is_torch_tensor(query_labels):
        query_labels = query_labels.detach().cpu().numpy()
    if _is_torch_tensor(database_labels):
        database_labels = database_labels.detach().cpu().numpy()
    query_ndim = len(query_labels.shape) if hasattr(query_labels, "shape") else np.ndim(query_labels)
    database_ndim = (
        len(database_labels.shape) if hasattr(database_labels, "shape") else np.ndim(database_labels)
    )
    if query_ndim == 1 or database_ndim == 1:
        if query_ndim != 1 or database_ndim != 1:
            raise InvalidLabelsError(
                "query_labels, database_labels: expected both 1-D class-id vectors or both 2-D "
                f"{{0,1}} label matrices, found {query_ndim}-D and {database_ndim}-D"
            )
        classes = []
        for labels, name, n_rows in (
            (query_labels, "query_labels", n_queries),
            (database_labels, "database_labels", n_database),
        ):
            vector = np.asarray(labels)
            if not np.issubdtype(vector.dtype, np.integer):
                raise InvalidLabelsError(f"{name}: expected integer class ids, found dtype {vector.dtype}")
            if vector.shape[0] != n_rows:
                raise InvalidLabelsError(
                    f"{name}: expected {n_rows} class ids (one per code), found {vector.shape[0]}"
                )
            classes.append(np.ascontiguousarray(vector, dtype=np.int64))
        return _Relevance("classes", classes[0], classes[1])
    if query_ndim != 2 or database_ndim != 2:
        raise InvalidLabelsError(
            f"query_labels, database_labels: expected 2-D {{0,1}} label matrices (or 1-D class ids), "
            f"found {query_ndim}-D and {database_ndim}-D"
        )
    query_matrix = _binary_label_matrix(query_labels, "query_labels", n_queries)
    database_matrix = _binary_label_matrix(database_labels, "database_labels", n_database)
    if query_matrix.shape[1] != database_matrix.shape[1]:
        raise InvalidLabelsError(
            f"database_labels: expected {query_matrix.shape[1]} label columns like query_labels, "
            f"found {database_matrix.shape[1]}"
        )
    if query_matrix.shape[1] <= _MAX_PACKED_LABEL_COLUMNS:
        packed = []
        for matrix in (query_matrix, database_matrix):
            dense = matrix.toarray() if isinstance(matrix, scipy.sparse.csr_matrix) else matrix
            packed.append(as_words(np.packbits(dense.astype(bool, copy=False), axis=1)))
        return _Relevance("bitmask", packed[0], packed[1])
    as_float = [
        matrix.astype(np.float32) if scipy.sparse.issparse(matrix) else np.asarray(matrix, np.float32)
        for matrix in (query_matrix, database_matrix)
    ]
    return _Relevance("matrix", as_float[0], as_float[1])


def _dense_labels_torch(relevance: _Relevance, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Move prepared labels to torch: class ids as int64, label sets as dense float32."""
    import torch

    if relevance.kind == "classes":
        return (
            torch.as_tensor(relevance.query, device=device),
            torch.as_tensor(relevance.database, device=device),
        )
    tensors = []
    for prepared in (relevance.query, relevance.database):
        if relevance.kind == "bitmask":
            as_bytes = np.ascontiguousarray(prepared).view(np.uint8)
            dense = np.unpackbits(as_bytes, axis=1).astype(np.float32)
        else:
            dense = prepared.toarray() if scipy.sparse.issparse(prepared) else prepared
        tensors.append(torch.as_tensor(dense, dtype=torch.float32, device=device))
    return tensors[0], tensors[1]


# --------------------------------------------------------------------------------------------
# Engines: per-query distance histograms and ranks of relevant items
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RankStatistics:
    """Per-query sufficient statistics of a ranking, under one tie policy."""

    n_relevant: np.ndarray  # R, int64 (n_queries,)
    average_precision: np.ndarray  # AP@all
    truncated_average_precision: np.ndarray | None  # AP@k
    hits_at_n: np.ndarray | None  # (n_queries, len(n_values)): relevant items in the top N


class _NumpyEngine:
    """CPU kernels over packed codes, threaded over query chunks."""

    def __init__(
        self,
        query_codes: np.ndarray,
        database_codes: np.ndarray,
        relevance: _Relevance,
        memory_budget_bytes: int,
        n_threads: int,
    ) -> None:
        self.n_bits = query_codes.shape[1]
        self.query_words = as_words(np.packbits(query_codes, axis=1))
        self.database_words = as_words(np.packbits(database_codes, axis=1))
        self.relevance = relevance
        self.n_queries = query_codes.shape[0]
        self.n_database = database_codes.shape[0]
        self.memory_budget_bytes = memory_budget_bytes
        self.n_threads = n_threads
        self.distance_dtype = distance_dtype(self.n_bits)
        self.scratch = ScratchBuffers()  # freed with the engine, at the end of the metric call

    # -- planning -----------------------------------------------------------------------------

    def _tile_bytes_per_pair(self) -> int:
        word_bytes = self.query_words.dtype.itemsize
        label_bytes = self.relevance.scratch_dtype.itemsize
        # xor scratch, popcount scratch, distances, relevance, label scratch, key
        return word_bytes + 1 + self.distance_dtype.itemsize + 1 + label_bytes + 8

    def _chunks(self, rows_per_chunk: int) -> list[slice]:
        return [
            slice(start, min(start + rows_per_chunk, self.n_queries))
            for start in range(0, self.n_queries, rows_per_chunk)
        ]

    def _map_chunks(self, work: Callable[[slice], Any], chunks: Sequence[slice]) -> list[Any]:
        if self.n_threads == 1 or len(chunks) == 1:
            return [work(chunk) for chunk in chunks]
        with ThreadPoolExecutor(max_workers=self.n_threads) as executor:
            return list(executor.map(work, chunks))

    # -- shared tile kernel --------------------------------------------------------------------

    def _distances_and_relevance(self, queries: slice, items: slice) -> tuple[np.ndarray, np.ndarray]:
        shape = (queries.stop - queries.start, items.stop - items.start)
        distances = self.scratch.get("distances", shape, self.distance_dtype)
        hamming_distances_words(
            self.query_words[queries],
            self.database_words[items],
            out=distances,
            xor_scratch=self.scratch.get("xor", shape, self.query_words.dtype),
            count_scratch=self.scratch.get("count", shape, np.uint8),
        )
        relevant = self.scratch.get("relevant", shape, np.bool_)
        self.relevance.block(
            queries, items, relevant, self.scratch.get("labels", shape, self.relevance.scratch_dtype)
        )
        return distances, relevant

    # -- expected policy: histograms ----------------------------------------------------------

    def bucket_histograms(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(counts, relevant_counts)``, each ``(n_queries, n_bits + 1)`` int64."""
        n_buckets = self.n_bits + 1
        budget_pairs = max(1, self.memory_budget_bytes // (self._tile_bytes_per_pair() * self.n_threads))
        tile_pairs = max(1, min(budget_pairs, _TILE_PAIRS))
        block = max(1, min(self.n_database, tile_pairs))
        rows_per_chunk = max(1, min(tile_pairs // block, np.iinfo(np.uint16).max // (2 * n_buckets)))
        key_dtype = np.uint16 if rows_per_chunk * 2 * n_buckets <= np.iinfo(np.uint16).max else np.int64
        histograms = np.zeros((self.n_queries, n_buckets, 2), dtype=np.int64)

        def work(queries: slice) -> None:
            n_rows = queries.stop - queries.start
            offsets = (np.arange(n_rows, dtype=key_dtype) * (2 * n_buckets))[:, None]
            chunk_histogram = np.zeros(n_rows * 2 * n_buckets, dtype=np.int64)
            for start in range(0, self.n_database, block):
                items = slice(start, min(start + block, self.n_database))
                distances, relevant = self._distances_and_relevance(queries, items)
                keys = self.scratch.get("keys", distances.shape, key_dtype)
                np.multiply(distances, 2, out=keys, dtype=key_dtype)
                np.add(keys, relevant, out=keys, dtype=key_dtype)
                np.add(keys, offsets, out=keys)
                chunk_histogram += np.bincount(keys.reshape(-1), minlength=chunk_histogram.size)
            histograms[queries] = chunk_histogram.reshape(n_rows, n_buckets, 2)

        self._map_chunks(work, self._chunks(rows_per_chunk))
        counts = histograms.sum(axis=2)
        return counts, np.ascontiguousarray(histograms[:, :, 1])

    # -- index policy: ranks of relevant items ------------------------------------------------

    def index_order_statistics(self, k: int | None, n_values: np.ndarray | None) -> _RankStatistics:
        """Rank the database by (distance, index) per query and reduce to statistics."""
        # full rows: distances, relevance, sort order (int64), sorted relevance + tile scratch
        row_bytes = self.n_database * (self.distance_dtype.itemsize + 1 + 8 + 1)
        tile_bytes = min(_TILE_PAIRS, self.n_database) * self._tile_bytes_per_pair()
        per_thread = max(1, self.memory_budget_bytes // self.n_threads - tile_bytes)
        rows_per_chunk = max(1, min(per_thread // row_bytes, _INDEX_ROWS_CAP))
        block = max(1, min(self.n_database, _TILE_PAIRS))

        def work(queries: slice) -> _RankStatistics:
            n_rows = queries.stop - queries.start
            shape = (n_rows, self.n_database)
            distances = self.scratch.get("row_distances", shape, self.distance_dtype)
            relevant = self.scratch.get("row_relevant", shape, np.bool_)
            for start in range(0, self.n_database, block):
                items = slice(start, min(start + block, self.n_database))
                block_distances, block_relevant = self._distances_and_relevance(queries, items)
                distances[:, items] = block_distances
                relevant[:, items] = block_relevant
            order = np.argsort(distances, axis=1, kind="stable")
            relevant_sorted = np.take_along_axis(relevant, order, axis=1)
            rows, positions = np.nonzero(relevant_sorted)
            return _statistics_from_ranks(rows, positions + 1, n_rows, self.n_database, k, n_values)

        return _concatenate_statistics(self._map_chunks(work, self._chunks(rows_per_chunk)))


class _TorchEngine:
    """The same algorithms with torch tensors on any device (CUDA when present)."""

    def __init__(
        self,
        query_codes: torch.Tensor,
        database_codes: torch.Tensor,
        relevance: _Relevance,
        memory_budget_bytes: int,
        device: torch.device,
    ) -> None:
        import torch

        self.query_codes = query_codes.to(torch.float32)
        self.database_codes = database_codes.to(torch.float32)
        self.query_labels, self.database_labels = _dense_labels_torch(relevance, device)
        self.classes = relevance.kind == "classes"
        self.n_bits = int(query_codes.shape[1])
        self.n_queries = int(query_codes.shape[0])
        self.n_database = int(database_codes.shape[0])
        # int32 distances, float32 product, bool relevance, int64 keys / sort indices
        self.rows_per_chunk = max(1, memory_budget_bytes // (max(1, self.n_database) * 24))

    def _chunks(self) -> Iterable[slice]:
        for start in range(0, self.n_queries, self.rows_per_chunk):
            yield slice(start, min(start + self.rows_per_chunk, self.n_queries))

    def _distances_and_relevance(self, queries: slice) -> tuple[torch.Tensor, torch.Tensor]:
        distances = hamming_distances_torch(self.query_codes[queries], self.database_codes)
        if self.classes:
            relevant = self.query_labels[queries, None] == self.database_labels[None, :]
        else:
            relevant = (self.query_labels[queries] @ self.database_labels.T) > 0
        return distances, relevant

    def bucket_histograms(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(counts, relevant_counts)``, each ``(n_queries, n_bits + 1)`` int64."""
        import torch

        n_buckets = self.n_bits + 1
        histograms = np.zeros((self.n_queries, n_buckets, 2), dtype=np.int64)
        for queries in self._chunks():
            distances, relevant = self._distances_and_relevance(queries)
            n_rows = distances.shape[0]
            offsets = torch.arange(n_rows, device=distances.device)[:, None] * (2 * n_buckets)
            keys = distances.long() * 2 + relevant.long() + offsets
            counts = torch.bincount(keys.reshape(-1), minlength=n_rows * 2 * n_buckets)
            histograms[queries] = counts.cpu().numpy().reshape(n_rows, n_buckets, 2)
        return histograms.sum(axis=2), np.ascontiguousarray(histograms[:, :, 1])

    def index_order_statistics(self, k: int | None, n_values: np.ndarray | None) -> _RankStatistics:
        """Rank the database by (distance, index) per query and reduce to statistics."""
        import torch

        parts = []
        for queries in self._chunks():
            distances, relevant = self._distances_and_relevance(queries)
            order = torch.sort(distances, dim=1, stable=True).indices
            rows, positions = torch.gather(relevant, 1, order).nonzero(as_tuple=True)
            parts.append(
                _statistics_from_ranks(
                    rows.cpu().numpy(),
                    positions.cpu().numpy() + 1,
                    distances.shape[0],
                    self.n_database,
                    k,
                    n_values,
                )
            )
        return _concatenate_statistics(parts)


# --------------------------------------------------------------------------------------------
# Statistics: index order (from ranks) and expected (from histograms)
# --------------------------------------------------------------------------------------------


def _statistics_from_ranks(
    rows: np.ndarray,
    ranks: np.ndarray,
    n_rows: int,
    n_database: int,
    k: int | None,
    n_values: np.ndarray | None,
) -> _RankStatistics:
    """Reduce the 1-based ranks of relevant items (grouped by row, ascending) to statistics."""
    rows = rows.astype(np.int64, copy=False)
    ranks = ranks.astype(np.int64, copy=False)
    n_relevant = np.bincount(rows, minlength=n_rows)
    row_starts = np.concatenate(([0], np.cumsum(n_relevant)[:-1]))
    ordinal = np.arange(rows.size, dtype=np.int64) - row_starts[rows] + 1  # t-th relevant item
    precision_at_hit = ordinal / ranks

    def mean_over_hits(mask: np.ndarray | None) -> np.ndarray:
        hits_rows = rows if mask is None else rows[mask]
        weights = precision_at_hit if mask is None else precision_at_hit[mask]
        total = np.bincount(hits_rows, weights=weights, minlength=n_rows)
        count = np.bincount(hits_rows, minlength=n_rows)
        return np.divide(total, count, out=np.zeros(n_rows), where=count > 0)

    truncated = mean_over_hits(ranks <= k) if k is not None else None
    hits_at_n = None
    if n_values is not None:
        # rows ascending, ranks ascending inside a row: one global sorted key per relevant item
        keys = rows * (n_database + 1) + ranks
        cut_keys = np.arange(n_rows)[:, None] * (n_database + 1) + n_values[None, :]
        hits_at_n = (np.searchsorted(keys, cut_keys, side="right") - row_starts[:, None]).astype(np.float64)
    return _RankStatistics(n_relevant, mean_over_hits(None), truncated, hits_at_n)


def _concatenate_statistics(parts: Sequence[_RankStatistics]) -> _RankStatistics:
    def join(field: str) -> Any:
        values = [getattr(part, field) for part in parts]
        return None if values[0] is None else np.concatenate(values, axis=0)

    return _RankStatistics(
        join("n_relevant"),
        join("average_precision"),
        join("truncated_average_precision"),
        join("hits_at_n"),
    )


def _harmonic_numbers(n: int) -> np.ndarray:
    """``H[m] = sum_{i=1..m} 1/i`` for ``m = 0..n``."""
    harmonic = np.zeros(n + 1, dtype=np.float64)
    np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64), out=harmonic[1:])
    return harmonic


@dataclass(frozen=True)
class _GroupTotals:
    """Tie groups of every query: sizes n_g, relevant r_g, and the totals before each group."""

    counts: np.ndarray
    relevant: np.ndarray
    items_before: np.ndarray  # N_g
    relevant_before: np.ndarray  # R_g
    harmonic: np.ndarray

    @classmethod
    def from_histograms(cls, counts: np.ndarray, relevant: np.ndarray) -> _GroupTotals:
        items_before = np.cumsum(counts, axis=1) - counts
        relevant_before = np.cumsum(relevant, axis=1) - relevant
        n_database = int(counts[0].sum()) if counts.shape[0] else 0
        return cls(counts, relevant, items_before, relevant_before, _harmonic_numbers(n_database))

    def expected_group_numerators(self) -> np.ndarray:
        """E[sum of P@i over the relevant positions i of each group], shape of ``counts``.

        Position p of a group is relevant with probability r/n and then has, on average,
        ``(p - 1) c`` relevant items before it in the group, ``c = (r - 1) / (n - 1)``; the sum
        over p has the closed form ``(R + 1) h + c (n - (N + 1) h)``, ``h = H[N + n] - H[N]``.
        """
        n, r = self.counts.astype(np.float64), self.relevant.astype(np.float64)
        h = self.harmonic[self.items_before + self.counts] - self.harmonic[self.items_before]
        c = np.divide(r - 1, n - 1, out=np.zeros_like(n), where=n > 1)
        inner = (self.relevant_before + 1) * h + c * (n - (self.items_before + 1) * h)
        return np.divide(r * inner, n, out=np.zeros_like(n), where=n > 0)

    def cut(self, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For cut-offs ``top`` (n_queries, n_cuts): the group the cut falls in, and how deep.

        Returns ``(group, depth)``: the cut keeps ``depth`` (>= 1) items of group ``group``.
        """
        ends = self.items_before + self.counts  # N_g + n_g, non-decreasing per row
        group = np.empty(top.shape, dtype=np.int64)
        for row in range(ends.shape[0]):
            group[row] = np.searchsorted(ends[row], top[row], side="left")
        depth = top - np.take_along_axis(self.items_before, group, axis=1)
        return group, depth


def _expected_statistics(
    counts: np.ndarray, relevant: np.ndarray, k: int | None, n_values: np.ndarray | None
) -> _RankStatistics:
    """Exact expectations over random orders inside tie groups, from per-query histograms."""
    groups = _GroupTotals.from_histograms(counts, relevant)
    n_relevant = relevant.sum(axis=1)
    numerators = groups.expected_group_numerators()
    average_precision = np.divide(
        numerators.sum(axis=1), n_relevant, out=np.zeros(len(n_relevant)), where=n_relevant > 0
    )
    truncated = None
    if k is not None:
        truncated = _expected_truncated_average_precision(groups, numerators, k)
    hits_at_n = None
    if n_values is not None:
        top = np.broadcast_to(n_values[None, :], (counts.shape[0], n_values.size))
        group, depth = groups.cut(top)
        group_size = np.take_along_axis(counts, group, axis=1)
        group_relevant = np.take_along_axis(relevant, group, axis=1)
        hits_at_n = np.take_along_axis(groups.relevant_before, group, axis=1) + depth * (
            group_relevant / group_size
        )
    return _RankStatistics(n_relevant, average_precision, truncated, hits_at_n)


def _expected_truncated_average_precision(groups: _GroupTotals, numerators: np.ndarray, k: int) -> np.ndarray:
    r"""Exact E[AP@k] under random orders inside tie groups.

    ``AP@k = S / R_k`` with ``S = sum_{i<=k} rel_i P@i`` and ``R_k`` the relevant items in the top
    k (0 when ``R_k = 0``). Let the cut-off fall in group ``g`` (``N < k <= N + n``), keeping its
    first ``m = k - N`` positions, and let ``X`` be the relevant items among them:
    ``X ~ Hypergeometric(n, r, m)``. The groups before ``g`` are complete, so their part of
    ``S`` (``S_before``) is independent of ``X`` and has expectation ``sum_{g' < g}`` of the
    MAP@all group terms; ``R_k = R + X``. Given ``X = x``, the ``x`` relevant positions are a
    uniform x-subset of the ``m`` kept positions, so the cut group adds in expectation
    ``T(x) = (x / m) [(R + 1) h + c_x (m - (N + 1) h)]`` with ``h = H[N + m] - H[N]`` and
    ``c_x = (x - 1) / (m - 1)``. Hence

    .. math:: E[AP@k] = \sum_x P(X = x)\,\frac{E[S_{before}] + T(x)}{R + x},

    terms with ``R + x = 0`` being 0 (then ``S = 0`` as well).
    """
    n_queries = groups.counts.shape[0]
    if n_queries == 0:
        return np.zeros(0)
    n_database = int(groups.counts[0].sum())
    top = np.full((n_queries, 1), min(k, n_database), dtype=np.int64)
    group_index, depth = groups.cut(top)
    group_index, depth = group_index[:, 0], depth[:, 0]

    def at_group(matrix: np.ndarray) -> np.ndarray:
        return np.take_along_axis(matrix, group_index[:, None], axis=1)[:, 0].astype(np.int64)

    size, relevant = at_group(groups.counts), at_group(groups.relevant)
    before, relevant_before = at_group(groups.items_before), at_group(groups.relevant_before)
    numerator_before = (np.cumsum(numerators, axis=1) - numerators)[np.arange(n_queries), group_index]
    low = np.maximum(0, depth - (size - relevant))
    high = np.minimum(depth, relevant)
    n_terms = high - low + 1

    result = np.zeros(n_queries)
    # bound the flattened (query, x) arrays to a few million entries at a time
    query_starts = np.concatenate(([0], np.cumsum(n_terms)))
    piece = 0
    while piece < n_queries:
        end = int(np.searchsorted(query_starts, query_starts[piece] + 4_000_000, side="right")) - 1
        end = max(end, piece + 1)
        queries = np.arange(piece, end)
        owner = np.repeat(queries, n_terms[queries])
        x = np.arange(owner.size) - (query_starts[owner] - query_starts[piece]) + low[owner]
        n, r, m = size[owner], relevant[owner], depth[owner]
        log_pmf = _log_binomial(r, x) + _log_binomial(n - r, m - x) - _log_binomial(n, m)
        h = groups.harmonic[before[owner] + m] - groups.harmonic[before[owner]]
        c = np.divide(x - 1, m - 1, out=np.zeros(owner.size), where=m > 1)
        cut_part = x / m * ((relevant_before[owner] + 1) * h + c * (m - (before[owner] + 1) * h))
        denominator = relevant_before[owner] + x
        value = np.divide(
            numerator_before[owner] + cut_part,
            denominator,
            out=np.zeros(owner.size),
            where=denominator > 0,
        )
        result[piece:end] = np.bincount(owner - piece, weights=np.exp(log_pmf) * value, minlength=end - piece)
        piece = end
    return result


def _log_binomial(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.asarray(gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0))


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluation:
    engine: _NumpyEngine | _TorchEngine
    n_queries: int
    n_database: int
    n_bits: int


def _check_torch_codes(codes: torch.Tensor, name: str, n_bits: int | None) -> torch.Tensor:
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise InvalidCodesError(
            f"{name}: expected a 2-D tensor of shape (n, n_bits), found shape {tuple(codes.shape)}"
        )
    if n_bits is not None and codes.shape[1] != n_bits:
        raise InvalidCodesError(f"{name}: expected {n_bits} bits per code, found {codes.shape[1]}")
    if codes.numel() and not bool(((codes == 0) | (codes == 1)).all()):
        raise InvalidCodesError(f"{name}: expected only 0 and 1, found other values")
    return codes


def _prepare(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    device: Any,
    memory_budget_mb: float,
    n_threads: int | None,
) -> _Evaluation:
    """Validate inputs and build the engine (numpy, or torch on ``device``)."""
    if not memory_budget_mb > 0:
        raise InputError(f"memory_budget_mb: expected a positive number, found {memory_budget_mb!r}")
    threads = available_cpus() if n_threads is None else _check_positive_int(n_threads, "n_threads")
    budget = int(memory_budget_mb * 2**20)
    on_cuda = any(
        _is_torch_tensor(codes) and codes.device.type == "cuda" for codes in (query_codes, database_codes)
    )
    if device is None and on_cuda:
        device = next(codes.device for codes in (query_codes, database_codes) if _is_torch_tensor(codes))
    if device is None:
        queries = check_codes(query_codes, name="query_codes")
        database = check_codes(database_codes, name="database_codes")
        _check_same_bits(queries.shape[1], database.shape[1])
        relevance = _prepare_relevance(query_labels, database_labels, len(queries), len(database))
        engine: _NumpyEngine | _TorchEngine = _NumpyEngine(queries, database, relevance, budget, threads)
        return _Evaluation(engine, len(queries), len(database), queries.shape[1])

    import torch

    target = torch.device(device)
    tensors = []
    for codes, name in ((query_codes, "query_codes"), (database_codes, "database_codes")):
        if _is_torch_tensor(codes):
            tensors.append(_check_torch_codes(codes, name, None).to(target))
        else:
            tensors.append(torch.as_tensor(check_codes(codes, name=name), device=target))
    _check_same_bits(int(tensors[0].shape[1]), int(tensors[1].shape[1]))
    relevance = _prepare_relevance(query_labels, database_labels, len(tensors[0]), len(tensors[1]))
    engine = _TorchEngine(tensors[0], tensors[1], relevance, budget, target)
    return _Evaluation(engine, len(tensors[0]), len(tensors[1]), int(tensors[0].shape[1]))


def _check_same_bits(query_bits: int, database_bits: int) -> None:
    if query_bits != database_bits:
        raise InvalidCodesError(
            f"database_codes: expected {query_bits} bits per code like query_codes, found {database_bits}"
        )


def _statistics(
    evaluation: _Evaluation, tie_policy: str, k: int | None, n_values: np.ndarray | None
) -> _RankStatistics:
    if evaluation.n_database == 0 or evaluation.n_queries == 0:
        zeros = np.zeros(evaluation.n_queries)
        hits = None if n_values is None else np.zeros((evaluation.n_queries, n_values.size))
        return _RankStatistics(np.zeros(evaluation.n_queries, np.int64), zeros, zeros, hits)
    if tie_policy == "index":
        return evaluation.engine.index_order_statistics(k, n_values)
    counts, relevant = evaluation.engine.bucket_histograms()
    return _expected_statistics(counts, relevant, k, n_values)


def mean_average_precision(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    k: int | None = None,
    tie_policy: TiePolicy = "expected",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> MetricValue:
    """Mean average precision of Hamming ranking: MAP@all, or truncated MAP@k.

    Parameters
    ----------
    query_codes : array_like or torch.Tensor
        {0,1} codes of shape ``(n_queries, n_bits)``.
    database_codes : array_like or torch.Tensor
        {0,1} codes of shape ``(n_database, n_bits)``.
    query_labels : array_like or scipy.sparse matrix
        {0,1} label matrix of shape ``(n_queries, n_labels)`` (relevant = share a label), or a
        1-D vector of integer class ids (relevant = same class).
    database_labels : array_like or scipy.sparse matrix
        Same form as ``query_labels``, with ``n_database`` rows.
    k : int, optional
        When given, truncated MAP@k (METHOD.md §4.5): ``AP@k = (1/R_k) sum_{i<=k} rel_i P@i``
        with ``R_k`` the relevant items in the top k, and ``AP@k = 0`` when ``R_k = 0`` (DJSRH
        ``calculate_top_map``). ``k`` larger than the database ranks it all.
    tie_policy : {"expected", "index"}, default "expected"
        ``"expected"``: exact expectation over random orders inside tie groups; ``"index"``:
        ties in database-index order. See the module docstring.
    device : str or torch.device, optional
        Run the torch kernels on this device (``"cuda"``, ``"cpu"``, ...). By default numpy
        kernels run on the CPU, unless the codes are CUDA tensors.
    memory_budget_mb : float, default 256
        Bound on the scratch memory of the blocked computation.
    n_threads : int, optional
        CPU threads for the numpy kernels; defaults to the CPUs available to the process.

    Returns
    -------
    MetricValue
        A float (the MAP) that also carries ``name`` (``"MAP@all"`` or ``"MAP@<k>"``),
        ``tie_policy``, ``per_query`` APs and ``n_queries_without_relevant`` (queries with R = 0,
        which count as AP = 0).

    Raises
    ------
    InvalidCodesError
        Codes that are not {0,1} matrices, or bit lengths that differ.
    InvalidLabelsError
        Labels with the wrong number of rows or columns, or values other than 0 and 1.
    InputError
        ``k <= 0``, an unknown ``tie_policy``, or a non-positive budget.

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.array([[0, 0], [0, 1], [1, 1]], dtype=np.uint8)
    >>> labels = np.array([[1, 0], [1, 0], [0, 1]])
    >>> result = mean_average_precision(codes[:1], codes, labels[:1], labels)
    >>> float(result), result.name, result.tie_policy
    (1.0, 'MAP@all', 'expected')
    """
    _check_tie_policy(tie_policy)
    if k is not None:
        k = _check_positive_int(k, "k")
    evaluation = _prepare(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    statistics = _statistics(evaluation, tie_policy, k, None)
    per_query = statistics.average_precision if k is None else statistics.truncated_average_precision
    assert per_query is not None
    return MetricValue(
        float(per_query.mean()) if per_query.size else 0.0,
        name="MAP@all" if k is None else f"MAP@{k}",
        tie_policy=tie_policy,
        per_query=per_query,
        n_queries_without_relevant=int(np.count_nonzero(statistics.n_relevant == 0)),
    )


def precision_at_n(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    n_values: Sequence[int] | np.ndarray,
    *,
    tie_policy: TiePolicy = "expected",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> PrecisionAtN:
    """Precision@N and recall@N curves of Hamming ranking.

    Parameters
    ----------
    query_codes, database_codes, query_labels, database_labels
        As in :func:`mean_average_precision`.
    n_values : sequence of int
        Cut-offs N, each in ``[1, n_database]``.
    tie_policy : {"expected", "index"}, default "expected"
        How ties at the cut-off are ordered; ``"expected"`` gives the exact expectation.
    device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    PrecisionAtN
        Mean precision and recall per cut-off, per-query precision, and the tie policy.
    """
    _check_tie_policy(tie_policy)
    evaluation = _prepare(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    cutoffs = np.asarray(n_values)
    if (
        cutoffs.ndim != 1
        or cutoffs.size == 0
        or not np.issubdtype(cutoffs.dtype, np.integer)
        or cutoffs.min() < 1
        or cutoffs.max() > evaluation.n_database
    ):
        raise InputError(
            f"n_values: expected a non-empty 1-D sequence of integers in [1, n_database="
            f"{evaluation.n_database}], found {np.asarray(n_values)!r}"
        )
    cutoffs = cutoffs.astype(np.int64)
    statistics = _statistics(evaluation, tie_policy, None, cutoffs)
    assert statistics.hits_at_n is not None
    per_query_precision = statistics.hits_at_n / cutoffs[None, :]
    n_relevant = statistics.n_relevant[:, None].astype(np.float64)
    per_query_recall = np.divide(
        statistics.hits_at_n, n_relevant, out=np.zeros_like(per_query_precision), where=n_relevant > 0
    )
    return PrecisionAtN(
        n_values=cutoffs,
        precision=per_query_precision.mean(axis=0),
        recall=per_query_recall.mean(axis=0),
        tie_policy=tie_policy,
        per_query_precision=per_query_precision,
        n_queries_without_relevant=int(np.count_nonzero(statistics.n_relevant == 0)),
    )


def _radius_cumulative_counts(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    device: Any,
    memory_budget_mb: float,
    n_threads: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query and radius: items and relevant items within the radius, and R."""
    evaluation = _prepare(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    if evaluation.n_database == 0 or evaluation.n_queries == 0:
        empty = np.zeros((evaluation.n_queries, evaluation.n_bits + 1), dtype=np.int64)
        return empty, empty, np.zeros(evaluation.n_queries, dtype=np.int64)
    counts, relevant = evaluation.engine.bucket_histograms()
    return np.cumsum(counts, axis=1), np.cumsum(relevant, axis=1), relevant.sum(axis=1)


def precision_recall_by_radius(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    average: Literal["micro", "macro"] = "micro",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> PrecisionRecallCurve:
    """Precision and recall of Hamming-ball retrieval for every radius ``0..n_bits``.

    Ties do not matter here: a ball includes all items at distance ``<= radius``.

    Parameters
    ----------
    query_codes, database_codes, query_labels, database_labels
        As in :func:`mean_average_precision`.
    average : {"micro", "macro"}, default "micro"
        ``"micro"`` pools all query-item pairs (DCMH ``calcPreRecRadiusLabel.m``): precision =
        relevant retrieved pairs / retrieved pairs. ``"macro"`` averages per-query precision and
        recall. An empty retrieval has precision 0; no relevant item means recall 0.
    device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    PrecisionRecallCurve
        Radii, precision, recall and the averaging rule.
    """
    if average not in ("micro", "macro"):
        raise InputError(f"average: expected 'micro' or 'macro', found {average!r}")
    retrieved, retrieved_relevant, n_relevant = _radius_cumulative_counts(
        query_codes, database_codes, query_labels, database_labels, device, memory_budget_mb, n_threads
    )
    if average == "micro":
        pooled_retrieved = retrieved.sum(axis=0).astype(np.float64)
        pooled_hits = retrieved_relevant.sum(axis=0).astype(np.float64)
        total_relevant = float(n_relevant.sum())
        precision = np.divide(
            pooled_hits, pooled_retrieved, out=np.zeros_like(pooled_hits), where=pooled_retrieved > 0
        )
        recall = pooled_hits / total_relevant if total_relevant > 0 else np.zeros_like(pooled_hits)
    else:
        hits = retrieved_relevant.astype(np.float64)
        per_query_precision = np.divide(hits, retrieved, out=np.zeros_like(hits), where=retrieved > 0)
        relevant_column = n_relevant[:, None]
        per_query_recall = np.divide(
            hits, relevant_column, out=np.zeros_like(hits), where=relevant_column > 0
        )
        precision = per_query_precision.mean(axis=0) if len(hits) else np.zeros(hits.shape[1])
        recall = per_query_recall.mean(axis=0) if len(hits) else np.zeros(hits.shape[1])
    return PrecisionRecallCurve(
        radii=np.arange(retrieved.shape[1]),
        precision=precision,
        recall=recall,
        average=average,
        n_queries_without_relevant=int(np.count_nonzero(n_relevant == 0)),
    )


def precision_within_radius(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    radius: int = 2,
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> MetricValue:
    """Mean precision of the items within Hamming distance ``radius`` of each query.

    A query that retrieves nothing within the radius counts as precision 0 (the common rule in
    hashing evaluation code); so do queries without relevant items. Ties do not matter.

    Parameters
    ----------
    query_codes, database_codes, query_labels, database_labels
        As in :func:`mean_average_precision`.
    radius : int, default 2
        Hamming radius (inclusive), ``>= 0``.
    device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    MetricValue
        Named ``"precision within Hamming radius <radius>"``, ``tie_policy=None``.
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise InputError(f"radius: expected a non-negative integer, found {radius!r}")
    retrieved, retrieved_relevant, n_relevant = _radius_cumulative_counts(
        query_codes, database_codes, query_labels, database_labels, device, memory_budget_mb, n_threads
    )
    column = min(int(radius), retrieved.shape[1] - 1)
    within = retrieved[:, column]
    hits = retrieved_relevant[:, column].astype(np.float64)
    per_query = np.divide(hits, within, out=np.zeros_like(hits), where=within > 0)
    return MetricValue(
        float(per_query.mean()) if per_query.size else 0.0,
        name=f"precision within Hamming radius {radius}",
        tie_policy=None,
        per_query=per_query,
        n_queries_without_relevant=int(np.count_nonzero(n_relevant == 0)),
    )


def random_code_floor(
    query_labels: Any,
    database_labels: Any,
    n_bits: int,
    *,
    seed: int = 0,
    k: int | None = None,
    tie_policy: TiePolicy = "expected",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> MetricValue:
    """MAP of uniformly random codes on the same split: the chance level to report beside MAP.

    On densely labelled data the floor is far above 0 (about 0.55 on MIRFLICKR-25K), so every
    report shows it next to the model's MAP (METHOD.md §4.7).

    Parameters
    ----------
    query_labels, database_labels
        As in :func:`mean_average_precision`; they fix the numbers of queries and items.
    n_bits : int
        Code length of the random codes.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` that draws the codes (queries first).
    k, tie_policy, device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    MetricValue
        Named like ``"MAP@all of random 64-bit codes (seed 0)"``.
    """
    n_bits = _check_positive_int(n_bits, "n_bits")
    rng = np.random.default_rng(seed)
    query_codes = rng.integers(0, 2, size=(query_labels.shape[0], n_bits), dtype=np.uint8)
    database_codes = rng.integers(0, 2, size=(database_labels.shape[0], n_bits), dtype=np.uint8)
    result = mean_average_precision(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        k=k,
        tie_policy=tie_policy,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    return MetricValue(
        float(result),
        name=f"{result.name} of random {n_bits}-bit codes (seed {seed})",
        tie_policy=result.tie_policy,
        per_query=result.per_query,
        n_queries_without_relevant=result.n_queries_without_relevant,
    )
