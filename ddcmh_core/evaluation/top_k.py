"""Exact top-k selection over Hamming distances that arrive one database block at a time.

Distances are small integers (``0..n_bits``), so selection counts instead of sorting. Each query
keeps a strict distance bound (its current k-th smallest distance): after the first blocks only
the few items that beat the bound are extracted from a block, and per-query distance histograms
tighten the bound. Ties are broken by database position, as an exact index promises.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ddcmh_core.evaluation.codes import distance_dtype, nonzero_2d

__all__ = ["TopKSelector"]


class TopKSelector:
    """The k nearest database positions of a block of queries, fed distances block by block.

    Feed every database block in order with :meth:`add_block`, then read :meth:`result`.

    Parameters
    ----------
    n_queries : int
        Queries in the block (rows of every distance block).
    k : int
        Neighbours kept per query; at most the number of database items that will be fed.
    n_bits : int
        Code length: distances lie in ``0..n_bits``.
    """

    def __init__(self, n_queries: int, k: int, n_bits: int) -> None:
        self.n_queries = n_queries
        self.k = k
        self.n_buckets = n_bits + 1
        self._bound_dtype = distance_dtype(n_bits + 1)
        # keep a pair iff distance < bound[row]; n_buckets means "keep everything"
        self.bound = np.full((n_queries, 1), self.n_buckets, dtype=self._bound_dtype)
        self._rows: list[np.ndarray] = []
        self._positions: list[np.ndarray] = []
        self._distances: list[np.ndarray] = []
        self._pending = 0  # pairs kept since the last prune

    def add_block(self, start: int, distances: np.ndarray, mask: np.ndarray) -> None:
        """Take the distances from every query to database positions ``start, start + 1, ...``.

        Parameters
        ----------
        start : int
            Database position of the block's first column.
        distances : numpy.ndarray
            Non-negative integer distances, shape ``(n_queries, block_size)``.
        mask : numpy.ndarray
            Boolean scratch of the same shape (overwritten).
        """
        relaxed_pass = bool(self.bound.max() >= self.n_buckets)  # some rows have not seen k items yet
        if relaxed_pass:
            self._relax_unsaturated_bounds(distances)
        np.less(distances, self.bound, out=mask)
        rows, columns = nonzero_2d(mask)
        if not rows.size:
            return
        self._rows.append(rows)
        self._positions.append(columns + start)
        self._distances.append(distances[rows, columns].astype(np.int64))
        self._pending += rows.size
        if relaxed_pass or self._pending > 2 * self.n_queries * self.k:
            self._prune()

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest of every query, nearest first, ties by database position.

        Returns
        -------
        distances : numpy.ndarray
            int32, shape ``(n_queries, k)``.
        positions : numpy.ndarray
            int64 database positions, same shape.
        """
        rows, positions, distances = self._kept()
        order = np.lexsort((positions, distances, rows))
        rows, positions, distances = rows[order], positions[order], distances[order]
        starts = np.searchsorted(rows, np.arange(self.n_queries))
        take = starts[:, None] + np.arange(self.k)[None, :]
        return distances[take].astype(np.int32), positions[take]

    def _kept(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, positions and distances of every pair kept so far."""
        if not self._rows:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        return np.concatenate(self._rows), np.concatenate(self._positions), np.concatenate(self._distances)

    def _kth_distance(
        self, rows: np.ndarray, distances: np.ndarray, extra: Any = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query: the k-th smallest distance (counting ``extra`` histogram too), and whether k exist."""
        n_buckets = self.n_buckets
        histogram = np.bincount(rows * n_buckets + distances, minlength=self.n_queries * n_buckets)
        cumulative = np.cumsum(histogram.reshape(self.n_queries, n_buckets) + extra, axis=1)
        return np.argmax(cumulative >= self.k, axis=1), cumulative[:, -1] >= self.k

    def _relax_unsaturated_bounds(self, distances: np.ndarray) -> None:
        """Bound the queries that have not seen k items by the k-th distance including this block.

        The block may hold items tied with the k-th that precede later ones, so the bound keeps
        ties (k-th distance + 1) until :meth:`_prune` makes it strict.
        """
        n_buckets = self.n_buckets
        block_rows = np.repeat(np.arange(self.n_queries), distances.shape[1])
        block_histogram = np.bincount(
            block_rows * n_buckets + distances.reshape(-1), minlength=self.n_queries * n_buckets
        ).reshape(self.n_queries, n_buckets)
        kept_rows, _, kept_distances = self._kept()
        kth, saturated = self._kth_distance(kept_rows, kept_distances, block_histogram)
        unsaturated_rows = self.bound[:, 0] >= n_buckets
        relaxed = np.where(saturated, kth + 1, n_buckets).astype(self._bound_dtype)
        self.bound[unsaturated_rows, 0] = relaxed[unsaturated_rows]

    def _prune(self) -> None:
        """Drop the kept pairs beyond each query's k-th distance and make the bounds strict."""
        rows, positions, distances = self._kept()
        kth, saturated = self._kth_distance(rows, distances)
        limit = np.where(saturated, kth, self.n_buckets)
        keep = distances <= limit[rows]
        self._rows = [rows[keep]]
        self._positions = [positions[keep]]
        self._distances = [distances[keep]]
        # later items tie with the k-th at best, and lose on database position: strict bound
        np.minimum(self.bound[:, 0], limit.astype(self._bound_dtype), out=self.bound[:, 0])
        self._pending = 0
