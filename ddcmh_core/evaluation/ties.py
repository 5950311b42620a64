"""Exact expected ranking statistics under a uniformly random order inside tie groups.

Hamming distances are small integers, so many database items tie. The ``"expected"`` tie
policy of :mod:`ddcmh_core.evaluation.metrics` reports the exact expectation over uniformly
random orders inside every group of tied items (McSherry & Najork, ECIR 2008). It only needs,
per query, the histogram of (items, relevant items) per distance that the ranking engines
(:mod:`ddcmh_core.evaluation.ranking`) count: :func:`expected_statistics` reduces those
histograms to the same :class:`~ddcmh_core.evaluation.ranking.RankStatistics` as the index-order
path, with MAP@all in closed form with harmonic numbers (METHOD.md §4.4), truncated MAP@k
through the hypergeometric number of relevant items the cut-off group contributes
(:func:`_expected_truncated_average_precision`), and precision@N by linearity.

This module is internal; the public API is :mod:`ddcmh_core.evaluation.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from ddcmh_core.evaluation.ranking import RankStatistics


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


def expected_statistics(
    counts: np.ndarray, relevant: np.ndarray, k: int | None, n_values: np.ndarray | None
) -> RankStatistics:
    """Exact expectations over random orders inside tie groups, from per-query histograms.

    Parameters
    ----------
    counts : numpy.ndarray
        Database items of each query at each distance, int64 ``(n_queries, n_bits + 1)``.
    relevant : numpy.ndarray
        Relevant items among them, same shape.
    k : int or None
        Cut-off of truncated AP@k; ``None`` for no truncated statistic.
    n_values : numpy.ndarray or None
        Cut-offs N of precision@N (int64); ``None`` for no hit counts.

    Returns
    -------
    RankStatistics
        Expected AP@all, AP@k (when ``k`` is given) and relevant items in the top N (when
        ``n_values`` is given), with each query's R.
    """
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
    return RankStatistics(n_relevant, average_precision, truncated, hits_at_n)


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
