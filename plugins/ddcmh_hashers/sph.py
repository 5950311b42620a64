"""SpH: Spherical Hashing (Heo, Lee, He, Chang & Yoon, CVPR 2012)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ddcmh_core.errors import InputError
from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import dense_rows, matmul, row_squared_norms
from ddcmh_core.validation import FeatureMatrix


def shifted_squared_distances(features: FeatureMatrix, pivots: np.ndarray) -> np.ndarray:
    """``||x - p_k||^2 - ||p_k||^2 = ||x||^2 - 2 x^T p_k`` for every row and pivot, shape (n, r).

    For each pivot this orders the items exactly as their distances do, without the rounding
    of ``||x||^2 + ||p||^2 - 2 x^T p`` once a pivot lies far from the data (pivots drift far
    on sparse text, where ``||p||^2`` would swamp the other terms).
    """
    return row_squared_norms(features)[:, None] - 2.0 * matmul(features, pivots.T)


def median_thresholds(distances: np.ndarray) -> np.ndarray:
    """The ``floor(n/2)``-th smallest entry of each column (1-based, as ``SphericalHashing.m``)."""
    kth = distances.shape[0] // 2 - 1
    return np.partition(distances, kth, axis=0)[kth]


def overlap_statistics(inside: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Pairwise overlaps of the spheres and how far they are from ``n/4``.

    Parameters
    ----------
    inside : ndarray of shape (n, r), bool
        ``inside[x, k]``: item ``x`` lies in sphere ``k``.

    Returns
    -------
    overlaps : ndarray of shape (r, r)
        ``O = M^T M``: items inside both spheres ``i`` and ``j``.
    mean_deviation : float
        Mean over the pairs ``i < j`` of ``|O_ij - n/4|`` (0 with one sphere).
    spread : float
        Standard deviation (population) of ``O_ij`` over the pairs ``i < j`` (0 with one sphere).
    """
    indicator = inside.astype(np.float64)
    overlaps = indicator.T @ indicator
    pairs = overlaps[np.triu_indices(overlaps.shape[0], k=1)]
    if pairs.size == 0:
        return overlaps, 0.0, 0.0
    quarter = inside.shape[0] / 4.0
    return overlaps, float(np.mean(np.abs(pairs - quarter))), float(np.std(pairs))


class SpH(Hasher):
    """Spherical Hashing: each bit says whether an item lies inside a learned hypersphere.

    Bit ``k`` of ``x`` is 1 iff ``||x - p_k|| <= t_k`` (inside = 1, as willard-yuan's
    ``compressSpH.m``; ZJU's ``SpH_compress.m`` stores the complement, which gives the same
    Hamming distances). Training follows the authors' ``SphericalHashing.m`` (HASHERS.md §6):

    1. each pivot ``p_k`` is the mean of ``n_init_points`` distinct random training rows;
    2. each radius ``t_k`` is the ``floor(n/2)``-th smallest distance from ``p_k``, so every
       sphere holds about half of the items;
    3. with the overlaps ``o_ij`` (items inside both spheres) and the forces
       ``f_ij = (o_ij - n/4) / (n/2) (p_i - p_j)``, each pivot moves by
       ``(1/r) sum_j f_ij`` (pushed away from spheres it overlaps too much, pulled towards the
       others), all pivots at once; then the radii and overlaps are recomputed;
    4. step 3 repeats until ``mean|o_ij - n/4| <= mean_tol n/4`` and
       ``std(o_ij) <= std_tol n/4`` over the pairs ``i < j``, or ``max_iter`` updates have run.
       The reference has no cap (it only prints a message after 100 iterations).

    The data are used as given: no centring or normalisation (the method is invariant to
    translation and scale anyway). Distances are compared as ``||x||^2 - 2 x^T p_k``, which
    orders the items as ``||x - p_k||`` does but stays exact when a pivot drifts far from the
    data: on sparse text the spheres start almost identical (every pivot is nearest to the
    items with the fewest words), and the forces then push the pivots away geometrically.

    Parameters
    ----------
    n_bits : int
        Number of spheres.
    seed : int
        Seed of the initial pivots (and of the subsample).
    max_iter : int, default 100
        Most pivot updates; at least one always runs, as in the reference.
    n_init_points : int, default 5
        Training rows averaged into each initial pivot (``random_center``).
    mean_tol : float, default 0.1
        Stop when the mean ``|o_ij - n/4|`` is at most ``mean_tol * n/4``.
    std_tol : float, default 0.15
        ... and the standard deviation of ``o_ij`` is at most ``std_tol * n/4``.
    max_samples : int or None, default None
        Learn the spheres on a random subset of this many training rows (the paper trains on a
        subset of large sets); None uses every row, as the reference code does.

    Attributes
    ----------
    pivots_ : ndarray of shape (n_bits, n_features)
        Sphere centres ``p_k``.
    thresholds_ : ndarray of shape (n_bits,)
        ``t_k^2 - ||p_k||^2`` moved up by one floating-point step, so that the projection
        ``thresholds_[k] - (||x||^2 - 2 x^T p_k)`` is > 0 exactly when ``||x - p_k|| <= t_k``
        (see :func:`shifted_squared_distances`).
    radii_ : ndarray of shape (n_bits,)
        The radii ``t_k`` themselves (for inspection; encoding uses ``thresholds_``).
    overlap_deviation_ : ndarray of shape (n_iter_,)
        Mean ``|o_ij - n/4| / (n/4)`` after each update.
    overlap_spread_ : ndarray of shape (n_iter_,)
        Standard deviation of ``o_ij / (n/4)`` after each update.
    n_iter_ : int
        Updates run.
    converged_ : bool
        Whether both stopping rules held before ``max_iter`` was reached.
    """

    class Params(HasherParams):
        max_iter: int = Field(100, ge=1, le=1000, description="Most pivot updates (hard cap).")
        n_init_points: int = Field(5, ge=1, description="Training rows averaged into each initial pivot.")
        mean_tol: float = Field(0.1, ge=0, description="Stopping rule on mean |o_ij - n/4|, relative to n/4.")
        std_tol: float = Field(0.15, ge=0, description="Stopping rule on std(o_ij), relative to n/4.")
        max_samples: int | None = Field(
            None, ge=4, description="Learn on a random subset of this many rows (None: all rows)."
        )

    params: Params

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        if n_samples < max(self.params.n_init_points, 4):
            raise InputError(
                f"{self.name}: argument 'X': expected at least {max(self.params.n_init_points, 4)} "
                f"training rows (n_init_points={self.params.n_init_points} distinct rows per initial "
                f"pivot, and spheres that hold half of the items), got {n_samples}"
            )

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        params = self.params
        n_samples = X.shape[0]
        if params.max_samples is not None and params.max_samples < n_samples:
            X = X[np.sort(rng.choice(n_samples, params.max_samples, replace=False))]
            n_samples = X.shape[0]
        starts = np.stack(
            [rng.choice(n_samples, params.n_init_points, replace=False) for _ in range(self.n_bits)]
        )
        pivots = dense_rows(X, starts.ravel()).reshape(self.n_bits, params.n_init_points, -1).mean(axis=1)
        quarter = n_samples / 4.0
        distances = shifted_squared_distances(X, pivots)
        thresholds = median_thresholds(distances)
        overlaps, _, _ = overlap_statistics(distances <= thresholds)
        deviations: list[float] = []
        spreads: list[float] = []
        converged = False
        while len(deviations) < params.max_iter:
            pivots = pivots + self._forces(pivots, overlaps, n_samples)
            distances = shifted_squared_distances(X, pivots)
            thresholds = median_thresholds(distances)
            overlaps, deviation, spread = overlap_statistics(distances <= thresholds)
            deviations.append(deviation / quarter)
            spreads.append(spread / quarter)
            if deviation <= params.mean_tol * quarter and spread <= params.std_tol * quarter:
                converged = True
                break
        self.pivots_ = pivots
        self.thresholds_ = np.nextafter(thresholds, np.inf)
        self.radii_ = np.sqrt(np.maximum(thresholds + np.sum(pivots**2, axis=1), 0.0))
        self.overlap_deviation_ = np.asarray(deviations)
        self.overlap_spread_ = np.asarray(spreads)
        self.n_iter_ = len(deviations)
        self.converged_ = converged

    def _forces(self, pivots: np.ndarray, overlaps: np.ndarray, n_samples: int) -> np.ndarray:
        """Summed forces ``(1/r) sum_j f_ij`` on every pivot, shape (r, d)."""
        quarter = n_samples / 4.0
        weights = 0.5 * (overlaps - quarter) / quarter
        np.fill_diagonal(weights, 0.0)
        # sum_j w_ij (p_i - p_j) = (sum_j w_ij) p_i - (W P)_i
        return (weights.sum(axis=1)[:, None] * pivots - weights @ pivots) / self.n_bits

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return self.thresholds_ - shifted_squared_distances(X, self.pivots_)
