"""DSH: Density Sensitive Hashing (Jin, Li, Lin & Cai, IEEE Trans. Cybernetics 2014)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ddcmh_core.errors import InputError
from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import matmul, squared_distances
from ddcmh_core.validation import FeatureMatrix
from ddcmh_hashers.agh import CHUNK_ROWS, kmeans_anchors


def candidate_pairs(centres: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Pairs of each centre with its ``n_neighbors`` nearest other centres, by increasing distance.

    Parameters
    ----------
    centres : ndarray of shape (k, d)
    n_neighbors : int
        ``r_nn``; at most ``k - 1`` are used.

    Returns
    -------
    ndarray of shape (n_pairs, 2), int64
        Unique pairs ``(larger index, smaller index)`` (the order in which ``DSH_learn.m``'s
        column-major ``find`` reports them), sorted by the distance between the two centres
        (ties by pair).
    """
    distances = squared_distances(centres, centres)
    np.fill_diagonal(distances, np.inf)
    n_nearest = min(n_neighbors, centres.shape[0] - 1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :n_nearest]
    rows = np.repeat(np.arange(centres.shape[0]), n_nearest)
    pairs = np.unique(
        np.stack([np.maximum(rows, nearest.ravel()), np.minimum(rows, nearest.ravel())], axis=1), axis=0
    )
    order = np.argsort(distances[pairs[:, 0], pairs[:, 1]], kind="stable")
    return pairs[order]


def bisector_balance(
    centres: np.ndarray, weights: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Perpendicular bisectors of centre pairs and how evenly they split the cluster mass.

    For the pair ``(i, j)``: ``w = mu_i - mu_j``, ``t = w^T (mu_i + mu_j) / 2``, ``p`` = total
    weight of the clusters whose centre has ``w^T mu_c > t``, and the balance is
    ``min(p, 1 - p) / max(p, 1 - p)`` (1 for an even split).

    Returns
    -------
    directions : ndarray of shape (d, n_pairs)
    intercepts : ndarray of shape (n_pairs,)
    balance : ndarray of shape (n_pairs,)
    """
    first, second = centres[pairs[:, 0]], centres[pairs[:, 1]]
    directions = (first - second).T
    intercepts = np.einsum("pd,dp->p", (first + second) / 2.0, directions)
    above = (centres @ directions) > intercepts
    mass = weights @ above
    balance = np.minimum(mass, 1.0 - mass) / np.maximum(mass, 1.0 - mass)
    return directions, intercepts, balance


def nearest_centre_weights(features: FeatureMatrix, centres: np.ndarray) -> np.ndarray:
    """Fraction of the rows whose nearest centre is each centre (ties to the lower index)."""
    counts = np.zeros(centres.shape[0])
    for start in range(0, features.shape[0], CHUNK_ROWS):
        block = squared_distances(features[start : start + CHUNK_ROWS], centres)
        counts += np.bincount(np.argmin(block, axis=1), minlength=centres.shape[0])
    return counts / features.shape[0]


class DSH(Hasher):
    """Density Sensitive Hashing: bisectors of neighbouring K-means centres that split the data evenly.

    Follows ``DSH_learn.m`` / ``DSH_compress.m`` (HASHERS.md §8):

    1. K-means with ``k = round(alpha r)`` clusters for only ``kmeans_iter`` iterations gives
       centres ``mu_c`` and cluster proportions ``pi_c`` (the share of rows nearest to each);
    2. candidate pairs: each centre with its ``n_neighbors`` nearest other centres, each pair
       once (:func:`candidate_pairs`);
    3. each pair's perpendicular bisector ``w = mu_i - mu_j``, ``t = w^T (mu_i + mu_j) / 2`` is
       scored by how evenly it splits the cluster mass (:func:`bisector_balance`), a monotone
       function of the paper's entropy criterion;
    4. the ``r`` best-balanced pairs become the bits (ties: the closer pair first, as the
       reference's order of distances does): ``bit = [w^T x > t]``.

    The data are used as given (the reference asks callers to normalise them; the method is
    invariant to translation, so centring changes nothing).

    Departures from the reference's ``litekmeans``: the initial centres are distinct training
    rows (duplicate rows, common in tag data, would give identical centres), an empty cluster
    keeps its centre instead of taking the farthest row, and the proportions ``pi_c`` come from
    assigning the rows to the final centres (the reference counts its last assignment, made
    before the final centre update).

    Parameters
    ----------
    n_bits : int
        Code length ``r``.
    seed : int
        Seed of the K-means start.
    alpha : float, default 1.5
        Clusters per bit.
    n_neighbors : int, default 3
        ``r_nn``: nearest centres that each centre is paired with.
    kmeans_iter : int, default 3
        K-means iterations (only 3 in the reference: rough clusters suffice).

    Attributes
    ----------
    centres_ : ndarray of shape (k, n_features)
        K-means centres.
    cluster_weights_ : ndarray of shape (k,)
        ``pi_c``.
    pairs_ : ndarray of shape (n_bits, 2), int64
        The centre pair of each bit.
    balance_ : ndarray of shape (n_bits,)
        Balance score of each bit's bisector, decreasing.
    projection_ : ndarray of shape (n_features, n_bits)
        Normals ``w``.
    intercept_ : ndarray of shape (n_bits,)
        Thresholds ``t``.
    """

    class Params(HasherParams):
        alpha: float = Field(1.5, gt=0, le=100, description="K-means clusters per bit.")
        n_neighbors: int = Field(3, ge=1, description="Nearest centres each centre is paired with (r_nn).")
        kmeans_iter: int = Field(3, ge=0, le=1000, description="K-means iterations (litekmeans MaxIter).")

    params: Params

    def cluster_count(self) -> int:
        """``round(alpha * n_bits)`` (halves rounded up, as MATLAB's ``round``), at least 2."""
        return max(2, math.floor(self.params.alpha * self.n_bits + 0.5))

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        if self.cluster_count() > n_samples:
            raise InputError(
                f"{self.name}: argument 'X': expected at least round(alpha * n_bits) = "
                f"{self.cluster_count()} training rows for K-means, got {n_samples}"
            )

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        params = self.params
        centres = kmeans_anchors(X, self.cluster_count(), params.kmeans_iter, rng)
        pairs = candidate_pairs(centres, params.n_neighbors)
        if pairs.shape[0] < self.n_bits:
            raise InputError(
                f"{self.name}: argument 'n_bits': expected at most {pairs.shape[0]} bits (the "
                f"distinct centre pairs among {centres.shape[0]} K-means centres of the data), got "
                f"{self.n_bits}; raise alpha or n_neighbors, or pass more distinct rows"
            )
        weights = nearest_centre_weights(X, centres)
        directions, intercepts, balance = bisector_balance(centres, weights, pairs)
        chosen = np.argsort(-balance, kind="stable")[: self.n_bits]
        self.centres_ = centres
        self.cluster_weights_ = weights
        self.pairs_ = pairs[chosen]
        self.balance_ = balance[chosen]
        self.projection_ = directions[:, chosen]
        self.intercept_ = intercepts[chosen]

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return matmul(X, self.projection_) - self.intercept_
