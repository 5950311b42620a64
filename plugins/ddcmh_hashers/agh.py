"""AGH: one-layer Anchor Graph Hashing (Liu, Wang, Kumar, Chang, ICML 2011).

The method follows ``OneLayerAGH_Train.m`` / ``OneLayerAGH_Test.m`` (HASHERS.md §5): a sparse
data-to-anchor affinity ``Z`` over the ``s`` nearest K-means anchors, the spectrum of the
``m x m`` matrix ``Lambda^-1/2 Z^T Z Lambda^-1/2``, and ``bit = [z(x)^T W > 0]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from pydantic import Field

from ddcmh_core.errors import InputError
from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import dense_rows, fix_signs, squared_distances
from ddcmh_core.validation import FeatureMatrix, check_features

CHUNK_ROWS = 8192
"""Rows per block when computing data-to-anchor distances (bounds memory at CHUNK_ROWS x m)."""

EIGENVALUE_CEILING = 1.0 - 1e-3
"""Eigenvalues at or above this are treated as the trivial eigenvalue 1 (OneLayerAGH_Train.m)."""

EIGENVECTOR_NOISE = 1e-10
"""Eigenvector entries below this fraction of their column's largest entry are set to 0."""


def _distinct_rows(features: FeatureMatrix, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n_rows`` pairwise-distinct training rows, drawn in a random order (dense)."""
    n_samples = features.shape[0]
    order = rng.permutation(n_samples)
    chosen: list[np.ndarray] = []
    seen: set[bytes] = set()
    start = 0
    batch = max(2 * n_rows, 64)
    while len(chosen) < n_rows and start < n_samples:
        rows = dense_rows(features, order[start : start + batch])
        for row in rows:
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == n_rows:
                    break
        start += batch
    return np.asarray(chosen, dtype=np.float64).reshape(len(chosen), features.shape[1])


def kmeans_anchors(
    features: FeatureMatrix, n_anchors: int, n_iter: int, rng: np.random.Generator
) -> np.ndarray:
    """K-means centres by Lloyd's algorithm from distinct random training rows.

    Initialisation picks ``n_anchors`` pairwise-distinct training rows in a random order (the
    same kind of start as ``litekmeans``). Each of the at most ``n_iter`` iterations assigns every
    row to its nearest centre (ties to the lowest index) and moves every non-empty cluster's
    centre to its mean; an empty cluster keeps its centre. It stops early when no assignment
    changes. Sparse input stays sparse; only the centres are dense.

    Parameters
    ----------
    features : ndarray or sparse matrix of shape (n, d)
        Training data.
    n_anchors : int
        Number of centres ``m``.
    n_iter : int
        Largest number of Lloyd iterations (0 returns the initial rows).
    rng : numpy.random.Generator
        Source of the initial rows.

    Returns
    -------
    ndarray of shape (m', d)
        The centres; ``m' < m`` only when the data have fewer than ``m`` distinct rows.
    """
    n_samples = features.shape[0]
    centres = _distinct_rows(features, n_anchors, rng)
    previous: np.ndarray | None = None
    for _ in range(n_iter):
        assignment = np.empty(n_samples, dtype=np.int64)
        for start in range(0, n_samples, CHUNK_ROWS):
            block = features[start : start + CHUNK_ROWS]
            assignment[start : start + CHUNK_ROWS] = np.argmin(
                squared_distances(block, centres), axis=1
            )
        if previous is not None and np.array_equal(assignment, previous):
            break
        previous = assignment
        membership = sp.csr_matrix(
            (np.ones(n_samples), (assignment, np.arange(n_samples))),
            shape=(centres.shape[0], n_samples),
        )
        sums = membership @ features
        sums = np.asarray(sums.toarray() if sp.issparse(sums) else sums, dtype=np.float64)
        counts = np.bincount(assignment, minlength=centres.shape[0]).astype(np.float64)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def nearest_anchors(
    features: FeatureMatrix, anchors: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Find the ``s`` nearest anchors of every row and their squared distances.

    Parameters
    ----------
    features : ndarray or sparse matrix of shape (n, d)
        Data, processed in blocks of :data:`CHUNK_ROWS` rows.
    anchors : ndarray of shape (m, d)
        Anchors.
    n_neighbors : int
        ``s``.

    Returns
    -------
    indices : ndarray of shape (n, s), int64
        Anchor indices by increasing distance (ties to the lower index, as MATLAB's ``min``).
    distances : ndarray of shape (n, s)
        Squared Euclidean distances, increasing along each row.
    """
    n_samples = features.shape[0]
    indices = np.empty((n_samples, n_neighbors), dtype=np.int64)
    distances = np.empty((n_samples, n_neighbors), dtype=np.float64)
    for start in range(0, n_samples, CHUNK_ROWS):
        block = squared_distances(features[start : start + CHUNK_ROWS], anchors)
        order = np.argsort(block, axis=1, kind="stable")[:, :n_neighbors]
        indices[start : start + CHUNK_ROWS] = order
        distances[start : start + CHUNK_ROWS] = np.take_along_axis(block, order, axis=1)
    return indices, distances


def anchor_affinity(
    indices: np.ndarray, distances: np.ndarray, bandwidth: float, n_anchors: int
) -> sp.csr_matrix:
    """Build the truncated, row-normalised affinity ``Z`` (n x m, ``s`` non-zeros per row).

    ``Z_ij = exp(-D_ij / sigma^2) / sum_{j' in <i>} exp(-D_ij' / sigma^2)`` over the ``s`` nearest
    anchors ``<i>`` (no factor 2 in the exponent, as in OneLayerAGH_Train.m), computed with the
    log-sum-exp shift so that far-away points do not underflow to 0 / 0.
    """
    n_samples, n_neighbors = indices.shape
    logits = -(distances - distances[:, :1]) / bandwidth**2  # shift by the row's smallest distance
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    return sp.csr_matrix(
        (weights.ravel(), indices.ravel(), np.arange(0, n_samples * n_neighbors + 1, n_neighbors)),
        shape=(n_samples, n_anchors),
    )


class AGH(Hasher):
    """One-layer Anchor Graph Hashing: spectral hashing on a sparse anchor graph.

    Fitting (HASHERS.md §5, ``OneLayerAGH_Train.m``):

    1. Anchors ``U``: ``n_anchors`` K-means centres (:func:`kmeans_anchors`, seeded).
    2. ``D_ij = ||x_i - u_j||^2``, keeping the ``s = n_neighbors`` smallest per row.
    3. Width: ``sigma = mean_i sqrt(D_i,(s))`` (mean distance to the s-th nearest anchor) unless
       ``bandwidth`` is given.
    4. ``Z_ij = exp(-D_ij / sigma^2)`` normalised over the ``s`` nearest anchors (0 elsewhere), so
       each row of ``Z`` sums to 1.
    5. ``Lambda = diag(1^T Z)``, ``M = Lambda^-1/2 Z^T Z Lambda^-1/2``; eigenpairs sorted by
       decreasing eigenvalue, keeping ``0 < sigma_k < 1 - 1e-3`` (this drops the trivial
       eigenvalue 1); the top ``n_bits`` give ``W = Lambda^-1/2 V_r Sigma_r^-1/2``. The paper's
       extra factor ``sqrt(n)`` does not change any sign and is left out.
    6. ``B = [Z W > 0]``; new data are encoded the same way, ``[z(x)^T W > 0]``, with the stored
       anchors and width, so the training codes equal ``encode(X_train)``.

    Parameters
    ----------
    n_bits : int
        Code length; must be smaller than the number of anchors (at most ``m - 1`` non-trivial
        eigenvectors exist).
    seed : int
        Seed of the K-means initialisation.
    n_anchors : int, default 300
        Number of anchors ``m``. 300 is the Columbia demo's value (``demo_AGH.m``; its README:
        "fix m=300 and tune s"); the ZJU wrapper ``AGH1_learn.m`` uses 1500.
    n_neighbors : int, default 2
        Number of nearest anchors ``s`` per point. 2 is the Columbia demo's value (README:
        ``2 <= s <= m/10``); the ZJU wrapper uses 50. ``s = 1`` is not allowed: it makes ``M`` the
        identity, whose eigenvalues are all trivial.
    bandwidth : float, optional
        Kernel width ``sigma`` in ``exp(-D / sigma^2)``; by default (the reference's
        ``sigma = 0``) the mean distance to the ``s``-th nearest anchor over the training set.
    kmeans_iter : int, default 5
        Largest number of Lloyd iterations of the anchor K-means. 5 is the ZJU wrapper's
        ``litekmeans`` setting; the Columbia demo ships precomputed anchors.

    Attributes
    ----------
    anchors_ : ndarray of shape (m', n_features)
        The anchors actually used (see Notes).
    bandwidth_ : float
        ``sigma``.
    projection_ : ndarray of shape (m', n_bits)
        ``W``.
    eigenvalues_ : ndarray of shape (n_bits,)
        The kept eigenvalues ``sigma_1 >= ... >= sigma_r`` of ``M`` (all in ``(0, 1 - 1e-3)``).

    Notes
    -----
    An anchor that is not among the ``s`` nearest anchors of any training row has
    ``Lambda_jj = 0``, which makes the reference divide by zero. Such anchors are removed before
    the eigenproblem; this leaves every training row's neighbours, ``sigma`` and ``Z`` unchanged.
    Anchors are also distinct by construction, so ``m' <= m`` with equality in the usual case.

    Eigenvector signs are fixed (first entry of largest magnitude positive), and eigenvector
    entries below ``1e-10`` times their column's largest entry are set to exactly 0. When the
    anchor graph has several (near-)disconnected parts, an eigenvector lives on one part and the
    reference's projections elsewhere are rounding noise whose sign is arbitrary; here they are 0,
    so those points get bit 0 whatever the input format (dense or sparse).

    Bits are often far from balanced: on sparse tag vectors the leading eigenvectors tend to be
    localised on small groups of anchors, so a bit is 1 on a few items only. The reference (and
    the ``aghasher`` package, compared bit by bit) does the same; it is the method, not a bug.
    """

    class Params(HasherParams):
        """Hyper-parameters of :class:`AGH` (see the class docstring)."""

        n_anchors: int = Field(
            300, ge=2, description="Number of K-means anchors m (Columbia demo: 300)."
        )
        n_neighbors: int = Field(
            2, ge=2, description="Nearest anchors s per point (Columbia demo: 2)."
        )
        bandwidth: float | None = Field(
            None,
            gt=0,
            description=(
                "Kernel width sigma in exp(-D / sigma^2); None: mean distance to the s-th "
                "nearest anchor."
            ),
        )
        kmeans_iter: int = Field(
            5, ge=0, le=1000, description="Lloyd iterations of the anchor K-means (ZJU: 5)."
        )

    params: Params

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        n_anchors = self.params.n_anchors
        if n_anchors > n_samples:
            raise InputError(
                f"{self.name}: argument 'n_anchors': expected at most n_samples ({n_samples}) "
                f"anchors, got n_anchors={n_anchors}"
            )
        if self.n_bits >= n_anchors:
            raise InputError(
                f"{self.name}: argument 'n_bits': expected n_bits < n_anchors ({n_anchors}) "
                f"because the anchor graph has at most n_anchors - 1 non-trivial eigenvectors, "
                f"got n_bits={self.n_bits}"
            )
        if self.params.n_neighbors > n_anchors:
            raise InputError(
                f"{self.name}: argument 'n_neighbors': expected n_neighbors <= n_anchors "
                f"({n_anchors}), got n_neighbors={self.params.n_neighbors}"
            )

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        s = self.params.n_neighbors
        anchors = kmeans_anchors(X, self.params.n_anchors, self.params.kmeans_iter, rng)
        if anchors.shape[0] < max(s, self.n_bits + 1):
            raise InputError(
                f"{self.name}: argument 'X': expected at least {max(s, self.n_bits + 1)} "
                f"distinct rows for the anchors, got {anchors.shape[0]}"
            )
        indices, distances = nearest_anchors(X, anchors, s)
        used = np.bincount(indices.ravel(), minlength=anchors.shape[0]) > 0
        if not used.all():
            remap = np.cumsum(used) - 1
            anchors = anchors[used]
            indices = remap[indices]
        if self.params.bandwidth is None:
            bandwidth = float(np.mean(np.sqrt(distances[:, -1])))
            if not bandwidth > 0:
                raise InputError(
                    f"{self.name}: argument 'bandwidth': expected a positive width, got 0 from "
                    f"the training data (every row lies on its {s} nearest anchors); pass "
                    "bandwidth explicitly"
                )
        else:
            bandwidth = float(self.params.bandwidth)
        affinity = anchor_affinity(indices, distances, bandwidth, anchors.shape[0])
        degree = np.asarray(affinity.sum(axis=0), dtype=np.float64).ravel()
        scale = 1.0 / np.sqrt(degree)
        gram = np.asarray((affinity.T @ affinity).toarray(), dtype=np.float64)
        normalised = scale[:, None] * gram * scale[None, :]
        normalised = (normalised + normalised.T) / 2.0
        values, vectors = scipy.linalg.eigh(normalised)
        order = np.argsort(values, kind="stable")[::-1]
        values, vectors = values[order], vectors[:, order]
        keep = (values > 0) & (values < EIGENVALUE_CEILING)
        if keep.sum() < self.n_bits:
            raise InputError(
                f"{self.name}: argument 'n_bits': expected at most {int(keep.sum())} bits, the "
                f"number of non-trivial eigenvalues (in (0, 1 - 1e-3)) of the anchor graph with "
                f"{anchors.shape[0]} anchors and n_neighbors={s}, got n_bits={self.n_bits}; use "
                "fewer bits or more anchors / neighbours"
            )
        values = values[keep][: self.n_bits]
        vectors = fix_signs(vectors[:, keep][:, : self.n_bits])
        # Entries at rounding level are set to exactly 0, so that a point whose anchors all lie
        # off an eigenvector's support gets projection 0 (bit 0) instead of the sign of noise.
        column_max = np.abs(vectors).max(axis=0, keepdims=True)
        vectors[np.abs(vectors) <= EIGENVECTOR_NOISE * column_max] = 0.0
        self.anchors_ = anchors
        self.bandwidth_ = bandwidth
        self.eigenvalues_ = values
        self.projection_ = scale[:, None] * vectors / np.sqrt(values)[None, :]

    def affinity(self, X: Any) -> sp.csr_matrix:
        """Compute the row-normalised anchor affinity ``Z`` of new data.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
            Data of the training width.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_samples, m')
            ``n_neighbors`` non-zeros per row, each row summing to 1.
        """
        self._require_fitted("affinity")
        features = check_features(X, owner=self.name, argument="X", n_features=self.n_features_in_)
        return self._affinity(features)

    def _affinity(self, X: FeatureMatrix) -> sp.csr_matrix:
        indices, distances = nearest_anchors(X, self.anchors_, self.params.n_neighbors)
        return anchor_affinity(indices, distances, self.bandwidth_, self.anchors_.shape[0])

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return np.asarray(self._affinity(X) @ self.projection_, dtype=np.float64)
