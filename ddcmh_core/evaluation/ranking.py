"""Ranking engines: per-query distance histograms and ranks of relevant items, for the metrics.

The retrieval metrics of :mod:`ddcmh_core.evaluation.metrics` need, for every query, either its
histogram of (items, relevant items) per Hamming distance (enough for the ``"expected"`` tie
policy and for radius-based metrics) or the ranks of its relevant items when ties are ordered by
database index (the ``"index"`` policy). Two engines compute both from codes and prepared
relevance (:class:`~ddcmh_core.evaluation.relevance.Relevance`): :class:`NumpyEngine` on packed
codes (XOR + popcount), blocked under a memory budget and threaded over query chunks, and
:class:`TorchEngine` with torch tensors on any device. Ranks are reduced to per-query
:class:`RankStatistics` here; histograms are reduced by :mod:`ddcmh_core.evaluation.ties`.

This module is internal; the public API is :mod:`ddcmh_core.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ddcmh_core.evaluation.codes import (
    ScratchBuffers,
    as_words,
    distance_dtype,
    hamming_distances_torch,
    hamming_distances_words,
)
from ddcmh_core.evaluation.relevance import Relevance, dense_labels_torch

if TYPE_CHECKING:
    import torch

# Pairs per (query block x database block) tile: small enough to keep a tile's scratch in cache.
_TILE_PAIRS = 1 << 17
# Rows ranked at once by the index-order path: a few rows keep the sort buffers in cache.
_INDEX_ROWS_CAP = 4


@dataclass(frozen=True)
class RankStatistics:
    """Per-query sufficient statistics of a ranking, under one tie policy.

    Attributes
    ----------
    n_relevant : numpy.ndarray
        R, the relevant database items of each query (int64, shape ``(n_queries,)``).
    average_precision : numpy.ndarray
        AP@all of each query.
    truncated_average_precision : numpy.ndarray or None
        AP@k of each query, when a cut-off ``k`` was asked for.
    hits_at_n : numpy.ndarray or None
        Relevant items in the top N, shape ``(n_queries, len(n_values))``, when cut-offs were
        asked for.
    """

    n_relevant: np.ndarray  # R, int64 (n_queries,)
    average_precision: np.ndarray  # AP@all
    truncated_average_precision: np.ndarray | None  # AP@k
    hits_at_n: np.ndarray | None  # (n_queries, len(n_values)): relevant items in the top N


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------


class NumpyEngine:
    """CPU kernels over packed codes, threaded over query chunks.

    Parameters
    ----------
    query_codes : numpy.ndarray
        Checked {0,1} codes of shape ``(n_queries, n_bits)``.
    database_codes : numpy.ndarray
        Checked {0,1} codes of shape ``(n_database, n_bits)``.
    relevance : Relevance
        The prepared labels of the queries and the database.
    memory_budget_bytes : int
        Bound on the scratch memory of all threads together.
    n_threads : int
        Threads over query chunks.
    """

    def __init__(
        self,
        query_codes: np.ndarray,
        database_codes: np.ndarray,
        relevance: Relevance,
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

    def index_order_statistics(self, k: int | None, n_values: np.ndarray | None) -> RankStatistics:
        """Rank the database by (distance, index) per query and reduce to statistics."""
        # full rows: distances, relevance, sort order (int64), sorted relevance + tile scratch
        row_bytes = self.n_database * (self.distance_dtype.itemsize + 1 + 8 + 1)
        tile_bytes = min(_TILE_PAIRS, self.n_database) * self._tile_bytes_per_pair()
        per_thread = max(1, self.memory_budget_bytes // self.n_threads - tile_bytes)
        rows_per_chunk = max(1, min(per_thread // row_bytes, _INDEX_ROWS_CAP))
        block = max(1, min(self.n_database, _TILE_PAIRS))

        def work(queries: slice) -> RankStatistics:
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


class TorchEngine:
    """The same algorithms with torch tensors on any device (CUDA when present).

    Parameters
    ----------
    query_codes : torch.Tensor
        {0,1} codes of shape ``(n_queries, n_bits)`` on ``device``.
    database_codes : torch.Tensor
        {0,1} codes of shape ``(n_database, n_bits)`` on ``device``.
    relevance : Relevance
        The prepared labels, moved to ``device`` as dense tensors.
    memory_budget_bytes : int
        Bound on the scratch memory of one chunk of queries.
    device : torch.device
        Where the kernels run.
    """

    def __init__(
        self,
        query_codes: torch.Tensor,
        database_codes: torch.Tensor,
        relevance: Relevance,
        memory_budget_bytes: int,
        device: torch.device,
    ) -> None:
        import torch

        self.query_codes = query_codes.to(torch.float32)
        self.database_codes = database_codes.to(torch.float32)
        self.query_labels, self.database_labels = dense_labels_torch(relevance, device)
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

    def index_order_statistics(self, k: int | None, n_values: np.ndarray | None) -> RankStatistics:
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
# Index order: statistics from the ranks of relevant items
# --------------------------------------------------------------------------------------------


def _statistics_from_ranks(
    rows: np.ndarray,
    ranks: np.ndarray,
    n_rows: int,
    n_database: int,
    k: int | None,
    n_values: np.ndarray | None,
) -> RankStatistics:
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
    return RankStatistics(n_relevant, mean_over_hits(None), truncated, hits_at_n)


def _concatenate_statistics(parts: Sequence[RankStatistics]) -> RankStatistics:
    def join(field: str) -> Any:
        values = [getattr(part, field) for part in parts]
        return None if values[0] is None else np.concatenate(values, axis=0)

    return RankStatistics(
        join("n_relevant"),
        join("average_precision"),
        join("truncated_average_precision"),
        join("hits_at_n"),
    )
