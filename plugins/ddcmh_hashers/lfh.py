"""LFH: Supervised Hashing with Latent Factor Models (Zhang, Zhang, Li & Guo, SIGIR 2014)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from pydantic import Field

from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import matmul, ridge_solve, sign_ties_positive
from ddcmh_core.memory import MemoryModel
from ddcmh_core.validation import FeatureMatrix


def sampled_similarity(labels: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Columns of ``S = [Y Y^T > 0]`` (share at least one label), without forming the n x n matrix."""
    label_matrix = labels.astype(np.float64)
    return (label_matrix @ label_matrix[columns].T > 0).astype(np.float64)


def log_likelihood(factors: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """``sum_ij [S_ij Theta_ij - log(1 + e^Theta_ij)] - ||U||^2 / (2 beta)``, ``Theta = U U^T / 2``.

    Dense in ``n``: for tests and small problems.
    """
    theta = factors @ factors.T / 2.0
    similarity = sampled_similarity(labels, np.arange(labels.shape[0]))
    return float(
        np.sum(similarity * theta - np.logaddexp(0.0, theta)) - np.sum(factors**2) / (2.0 * beta)
    )


def lfh_step(factors: np.ndarray, labels: np.ndarray, columns: np.ndarray, beta: float) -> np.ndarray:
    """One stochastic LFH update of every row of ``U`` from the sampled columns ``Omega``.

    Gradient ``G = (S_Omega - sigma(U U_Omega^T / 2)) U_Omega - U / beta`` and the fixed lower
    bound of the Hessian ``H = -U_Omega^T U_Omega / 8 - I / beta`` (negative definite); the
    Newton-like step is ``U - G H^-1``.

    Returns
    -------
    ndarray of shape (n, r)
        The updated ``U``.
    """
    sampled = factors[columns]
    probabilities = 0.5 * (1.0 + np.tanh(factors @ sampled.T / 4.0))  # sigma(Theta), overflow-free
    gradient = (sampled_similarity(labels, columns) - probabilities) @ sampled - factors / beta
    curvature = sampled.T @ sampled / 8.0
    curvature[np.diag_indices_from(curvature)] += 1.0 / beta
    # U - G H^-1 with H = -curvature (symmetric positive definite): U + G curvature^-1.
    return factors + scipy.linalg.solve(curvature, gradient.T, assume_a="pos").T


class LFH(Hasher):
    """Latent factor hashing: codes are the signs of latent factors that explain label overlap.

    Model (HASHERS.md §12): ``S_ij = [items i and j share a label]``,
    ``p(S_ij = 1) = sigma(Theta_ij)`` with ``Theta_ij = u_i^T u_j / 2``, a Gaussian prior
    ``N(0, beta I)`` on the rows of ``U``. The log-posterior is maximised by the stochastic
    version of the paper, as in TreezzZ/LFH_PyTorch: ``U0 ~ N(0, 1)``, then ``n_iter`` times
    sample ``n_samples`` columns ``Omega`` and update all rows at once with the lower-bound
    Hessian (:func:`lfh_step`). Only the sampled columns of ``S`` are ever formed.

    The training codes are ``B = sgn(U)`` (ties to +1). The hash function is the ridge
    regression ``W = (X^T X + lambda I)^-1 X^T B`` on the raw features (no centring or bias,
    as the reference), ``bit = [x^T W > 0]``.

    Parameters
    ----------
    n_bits : int
        Code length ``r``.
    seed : int
        Seed of ``U0`` and of the column samples.
    n_iter : int, default 50
        Stochastic updates (``max_iter`` of the reference).
    beta : float, default 30.0
        Prior variance before scaling: the model uses ``beta / n_bits`` (the reference's run).
    ridge : float, default 1.0
        Ridge of the hash function before scaling: ``lambda = ridge * n_samples / n_features``.
    n_samples : int or None, default None
        Columns sampled per update; None uses ``n_bits`` (the reference's run; its README says 64).

    Attributes
    ----------
    projection_ : ndarray of shape (n_features, n_bits)
        ``W``.
    codes_ : ndarray of shape (n_samples, n_bits), int8
        ``sgn(U)`` (kept in memory after fit, not saved).
    """

    class Params(HasherParams):
        n_iter: int = Field(50, ge=1, le=100_000, description="Stochastic updates of U (max_iter).")
        beta: float = Field(30.0, gt=0, description="Prior variance before division by n_bits.")
        ridge: float = Field(
            1.0, gt=0, description="Hash-function ridge before scaling by n_samples / n_features."
        )
        n_samples: int | None = Field(
            None, ge=1, description="Columns of S sampled per update (None: n_bits)."
        )

    params: Params
    memory_model = MemoryModel(feature_squares=2, dense_copies=1)  # the d x d ridge system
    requires_labels = True
    balanced_bits = False  # codes follow the labels: a bit may single out a rare label combination
    training_only_attributes = (*Hasher.training_only_attributes, "codes_")

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        assert labels is not None  # requires_labels: the base class guarantees it
        params = self.params
        n_samples, n_features = X.shape
        beta = params.beta / self.n_bits
        n_columns = min(params.n_samples or self.n_bits, n_samples)
        factors = rng.standard_normal((n_samples, self.n_bits))
        for _ in range(params.n_iter):
            columns = rng.permutation(n_samples)[:n_columns]
            factors = lfh_step(factors, labels, columns, beta)
        codes = sign_ties_positive(factors)
        self.codes_ = codes.astype(np.int8)
        ridge = params.ridge * n_samples / n_features
        self.projection_ = self._regress(X, codes, ridge)

    @staticmethod
    def _regress(X: FeatureMatrix, codes: np.ndarray, ridge: float) -> np.ndarray:
        """``(X^T X + ridge I)^-1 X^T B`` for dense or sparse ``X`` (sparse: the normal equations)."""
        if isinstance(X, np.ndarray):
            return ridge_solve(X, codes, ridge)
        gram = (X.T @ X).toarray()
        gram[np.diag_indices_from(gram)] += ridge
        return scipy.linalg.solve(gram, matmul(X.T, codes), assume_a="pos")

    def _training_codes(self) -> np.ndarray:
        return self.codes_

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return matmul(X, self.projection_)
