"""IsoHash: Isotropic Hashing (Kong & Li, NIPS 2012), solved by lift and projection."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from pydantic import Field

from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import (
    PCA_MEMORY,
    centred_projection,
    column_mean,
    fix_signs,
    principal_components,
    random_orthogonal,
)
from ddcmh_core.validation import FeatureMatrix


def isotropic_rotation(
    variances: np.ndarray, start: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """An orthogonal ``Q`` with ``diag(Q^T Lambda Q) = mean(Lambda)``, by alternating projections.

    Starting from ``Z = Q0^T Lambda Q0``, each iteration lifts ``Z`` onto the matrices with the
    constant diagonal ``a = tr(Lambda) / r`` (``T = Z`` with its diagonal set to ``a``), then
    projects ``T`` back onto the matrices with spectrum ``Lambda``: with ``T = V D V^T`` (the
    eigenvalues ``D`` in decreasing order, eigenvector signs fixed), the nearest such matrix in
    Frobenius norm is ``Z = V Lambda V^T`` (``Lambda`` decreasing too), i.e. ``Q = V^T``.

    Parameters
    ----------
    variances : ndarray of shape (r,)
        ``Lambda``, decreasing (the PCA variances).
    start : ndarray of shape (r, r)
        Orthogonal ``Q0``.
    max_iter : int
        Most lift-and-projection iterations.
    tol : float
        Stop once ``max_k |Z_kk - a| <= tol * a``.

    Returns
    -------
    rotation : ndarray of shape (r, r)
        ``Q``: the projected variances are ``diag(Q^T Lambda Q)``.
    errors : ndarray of shape (n_iter,)
        ``max_k |Z_kk - a| / a`` after each iteration.
    """
    target = float(np.mean(variances))
    rotation = start
    errors: list[float] = []
    for _ in range(max_iter):
        lifted = (rotation.T * variances) @ rotation
        np.fill_diagonal(lifted, target)
        _, vectors = scipy.linalg.eigh(lifted)
        vectors = fix_signs(vectors[:, ::-1])  # decreasing eigenvalues, like Lambda
        rotation = vectors.T
        diagonal = np.einsum("ij,j,ij->i", vectors, variances, vectors)
        errors.append(float(np.max(np.abs(diagonal - target))) / max(target, np.finfo(float).tiny))
        if errors[-1] <= tol:
            break
    return rotation, np.asarray(errors)


class IsoHash(Hasher):
    """Isotropic Hashing: rotate the top principal directions so that all have equal variance.

    After PCA to ``r = n_bits`` directions with variances ``Lambda = diag(lambda_1..lambda_r)``,
    IsoHash looks for an orthogonal ``Q`` with ``diag(Q^T Lambda Q) = a 1``, ``a = tr(Lambda) / r``,
    so that every bit carries the same variance (HASHERS.md §7). It is found by the paper's
    lift-and-projection (LP) method (:func:`isotropic_rotation`) from a random orthogonal start.
    The hash is ``bit = [(x - mu)^T P Q > 0]``.

    The ZJU wrapper ``IsoH_learn.m`` differs in ways that matter: it takes the eigenvectors of
    the uncentred ``A^T A`` (ddcmh centres, as the method assumes), and its loop sets
    ``Z = R^T Lambda R`` with ``R`` the eigenvectors of ``T`` in increasing order. That is not
    the projection onto the isospectral matrices (which is ``R Lambda R^T`` with matching
    orders); taken literally it does not equalise the variances, while the LP step above
    reaches ``max |Z_kk - a| < 1e-12 a`` within a few dozen iterations.

    Parameters
    ----------
    n_bits : int
        Code length (at most the number of features).
    seed : int
        Seed of the random orthogonal start.
    max_iter : int, default 100
        Most LP iterations (``n_iter`` of the ZJU wrapper).
    tol : float, default 1e-12
        Stop once every projected variance is within ``tol * a`` of ``a``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    eigenvalues_ : ndarray of shape (n_bits,)
        PCA variances ``Lambda``, decreasing.
    projection_ : ndarray of shape (n_features, n_bits)
        ``P Q``: principal directions times the isotropic rotation.
    rotation_ : ndarray of shape (n_bits, n_bits)
        ``Q``.
    isotropy_error_ : ndarray of shape (n_iter_,)
        ``max_k |(Q^T Lambda Q)_kk - a| / a`` after each iteration.
    n_iter_ : int
        LP iterations run.
    """

    class Params(HasherParams):
        max_iter: int = Field(100, ge=1, le=100_000, description="Most lift-and-projection iterations.")
        tol: float = Field(
            1e-12, ge=0, description="Stop once every projected variance is within tol * a of a."
        )

    params: Params
    bits_bounded_by_features = True
    memory_model = PCA_MEMORY

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.mean_ = column_mean(X)
        self.eigenvalues_, directions = principal_components(X, self.n_bits, self.mean_)
        start = random_orthogonal(self.n_bits, rng)
        self.rotation_, self.isotropy_error_ = isotropic_rotation(
            self.eigenvalues_, start, self.params.max_iter, self.params.tol
        )
        self.projection_ = directions @ self.rotation_
        self.n_iter_ = len(self.isotropy_error_)

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return centred_projection(X, self.mean_, self.projection_)
