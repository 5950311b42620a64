"""SH: Spectral Hashing (Weiss, Torralba, Fergus, NIPS 2008) with analytic eigenfunctions.

The method follows the authors' ``trainSH.m`` / ``compressSH.m`` (HASHERS.md §4): PCA, a uniform
box fitted to the training projections, and the analytic 1-D Laplacian eigenfunctions
``sin(pi/2 + k pi z / R)`` of that box, taken in order of increasing frequency.
"""

from __future__ import annotations

import numpy as np

from ddcmh_core.errors import InputError
from ddcmh_core.hasher import Hasher
from ddcmh_core.linalg import PCA_MEMORY, centred_projection, column_mean, matmul, principal_components
from ddcmh_core.validation import FeatureMatrix

BOX_MARGIN = float(np.finfo(np.float64).eps)
"""Absolute margin added on both sides of the training box (MATLAB's ``eps``, as in trainSH.m)."""


def spectral_modes(ranges: np.ndarray, n_bits: int) -> np.ndarray:
    """Select the ``n_bits`` lowest-frequency single-dimension modes of a box (trainSH.m, step 3).

    For box side lengths ``R_j`` the candidate modes are the constant mode plus, for every
    dimension ``j`` alone, ``k = 1, ..., maxMode_j - 1`` with
    ``maxMode_j = ceil((n_bits + 1) R_j / max(R))``; there are no products across dimensions. They
    are listed in the reference's order (constant mode, then dimension 1's modes by increasing
    ``k``, then dimension 2's, ...) and stably sorted by ``sum_j (k_j pi / R_j)^2`` ascending. The
    first (constant) mode is dropped and the next ``n_bits`` are kept.

    The largest side always gets ``n_bits`` candidate modes, so ``n_bits`` modes exist for any
    number of dimensions: several bits can come from one direction at higher frequencies.

    Parameters
    ----------
    ranges : array-like of shape (n_dims,)
        Positive side lengths ``R_j`` of the box.
    n_bits : int
        Number of modes to select (>= 1).

    Returns
    -------
    ndarray of shape (n_bits, n_dims), int64
        Mode table: row ``t`` holds the mode numbers ``k_{tj}`` of bit ``t``; exactly one entry
        of each row is non-zero, and the frequencies ``sum_j (k_{tj} pi / R_j)^2`` do not decrease
        with ``t``.

    Examples
    --------
    A box with sides 2.5 : 1 and 4 bits (HASHERS.md §17.2): frequencies ``omega^2 / pi^2`` are
    0.16, 0.64, 1.0 and 1.44.

    >>> spectral_modes(np.array([2.5, 1.0]), 4).tolist()
    [[1, 0], [2, 0], [0, 1], [3, 0]]
    """
    side = np.asarray(ranges, dtype=np.float64).ravel()
    if side.size < 1 or not np.all(np.isfinite(side)) or np.any(side <= 0):
        raise InputError(
            "spectral_modes: argument 'ranges': expected positive finite side lengths, "
            f"got {side!r}"
        )
    if n_bits < 1:
        raise InputError(f"spectral_modes: argument 'n_bits': expected n_bits >= 1, got {n_bits}")
    max_mode = np.ceil((n_bits + 1) * side / side.max()).astype(np.int64)
    dims = np.repeat(np.arange(side.size), max_mode - 1)  # dimension of each non-constant mode
    # Mode numbers 1..maxMode_j - 1 per dimension, dimension after dimension.
    starts = np.concatenate([[0], np.cumsum(max_mode - 1)[:-1]])
    numbers = np.arange(dims.size) - np.repeat(starts, max_mode - 1) + 1
    table = np.zeros((dims.size + 1, side.size), dtype=np.int64)
    table[np.arange(1, dims.size + 1), dims] = numbers
    squared_frequency = np.sum((table * (np.pi / side)) ** 2, axis=1)
    order = np.argsort(squared_frequency, kind="stable")
    return table[order[1 : n_bits + 1]]


class SH(Hasher):
    """Spectral Hashing: analytic Laplacian eigenfunctions of a uniform box on the PCA axes.

    Fitting (HASHERS.md §4, ``trainSH.m``):

    1. PCA onto ``n_pca = min(n_bits, n_features)`` directions ``P`` (the top eigenvectors of the
       covariance). The reference projects ``X`` without removing the mean; here the training
       mean is subtracted, which only shifts each coordinate by a constant that the box minimum
       absorbs, so the codes are the same.
    2. Box: ``mn_j = min_i z_ij - eps``, ``R_j = max_i z_ij + eps - mn_j`` on the *training*
       projections ``z = P^T (x - mu)`` (``eps`` = machine epsilon; the reference computes the
       5th/95th percentiles and then overwrites them with min/max).
    3. Modes: :func:`spectral_modes` of the ranges ``R`` — the ``n_bits`` lowest-frequency
       single-dimension modes, constant mode dropped.

    Encoding (``compressSH.m``): with ``z = P^T (x - mu) - mn`` and mode row ``k_t``,
    ``u_t = prod_j sin(pi/2 + k_tj (pi / R_j) z_j)``; each row has one non-zero ``k_tj``, so this
    is a single cosine along one PCA direction. ``bit_t = [u_t > 0]``. Points outside the training
    box are extrapolated periodically.

    Parameters
    ----------
    n_bits : int
        Code length. SH has no other hyper-parameter (the reference has none either).
    seed : int
        Unused (SH is deterministic); kept for the common interface.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Training mean.
    projection_ : ndarray of shape (n_features, n_pca)
        PCA directions ``P``.
    eigenvalues_ : ndarray of shape (n_pca,)
        Variances along the directions.
    box_min_ : ndarray of shape (n_pca,)
        ``mn``, the lower corner of the box in the centred PCA coordinates.
    box_range_ : ndarray of shape (n_pca,)
        ``R = mx - mn``; the base frequencies are ``omega0 = pi / R``.
    modes_ : ndarray of shape (n_bits, n_pca), int64
        Mode table; row ``t`` is the mode of bit ``t`` (one non-zero entry per row).

    Notes
    -----
    ``bits_bounded_by_features`` is False: unlike PCAH or ITQ, SH takes several bits from one
    principal direction (at increasing frequencies), so ``n_bits`` may exceed the number of
    features, exactly as in the reference (``npca = min(nbits, Ndim)`` and the mode enumeration
    always offers ``n_bits`` modes on the widest direction).

    The box comes from the training minimum and maximum, so on skewed data (sparse tag vectors,
    where a few items have large projections) most items fall in a small part of the box and a
    low-frequency bit can be nearly constant (e.g. 97 % ones). That is the reference's behaviour.
    """

    memory_model = PCA_MEMORY

    bits_bounded_by_features = False
    balanced_bits = False  # the min/max box of skewed data leaves low-frequency bits nearly constant

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        n_pca = min(self.n_bits, X.shape[1])
        self.mean_ = column_mean(X)
        self.eigenvalues_, self.projection_ = principal_components(X, n_pca, self.mean_)
        raw = matmul(X, self.projection_)
        offset = self.mean_ @ self.projection_
        projected = raw - offset  # = centred_projection(X, mean_, projection_)
        low = projected.min(axis=0) - BOX_MARGIN
        high = projected.max(axis=0) + BOX_MARGIN
        ranges = high - low
        # Identical rows leave only rounding noise (relative to the uncentred projections).
        scale = float(np.abs(offset).max() + np.abs(projected).max())
        if ranges.max() - 2 * BOX_MARGIN <= 1e-10 * scale:
            raise InputError(
                f"{self.name}: argument 'X': expected training rows that are not all identical, "
                "got data with no spread along any principal direction"
            )
        self.box_min_ = low
        self.box_range_ = ranges
        self.modes_ = spectral_modes(ranges, self.n_bits)

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        shifted = centred_projection(X, self.mean_, self.projection_) - self.box_min_
        modes = np.asarray(self.modes_)
        dims = np.argmax(modes != 0, axis=1)  # the single non-zero entry of each mode row
        frequencies = modes[np.arange(modes.shape[0]), dims] * (np.pi / self.box_range_[dims])
        return np.sin(shifted[:, dims] * frequencies + np.pi / 2)
