"""ITQ: Iterative Quantization (Gong & Lazebnik, CVPR 2011), PCA-ITQ and CCA-ITQ."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.linalg
from pydantic import Field

from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import (
    PCA_MEMORY,
    centred_projection,
    column_mean,
    covariance,
    fix_signs,
    matmul,
    principal_components,
    random_orthogonal,
    sign_ties_positive,
)
from ddcmh_core.memory import MemoryModel
from ddcmh_core.validation import FeatureMatrix

CCA_MEMORY = MemoryModel(feature_squares=4.5, dense_copies=1)
"""CCA-ITQ's peak: the d x d covariance, the between-class matrix and the generalised eigensolver's copies."""


class ITQ(Hasher):
    """Iterative Quantization: rotate the centred PCA (or CCA) projection to fit binary codes.

    Minimises ``||B - V R||_F^2`` over ``B in {-1,+1}^{n x r}`` and orthogonal ``R``, where ``V`` is
    the centred projection of the data onto ``r = n_bits`` directions (HASHERS.md §3). Each
    iteration sets ``B = sgn(V R)`` (ties to +1), then ``R = S_hat S^T`` from the SVD
    ``B^T V = S Omega S_hat^T``. The training codes are computed with the final ``R``.

    Parameters
    ----------
    n_bits : int
        Code length (at most the number of features; :class:`ddcmh_core.kernels.KernelLifted` lifts the
        bound).
    seed : int
        Seed of the random orthogonal initial rotation.
    n_iter : int, default 50
        Iterations after the first (the reference runs ``0:n_iter``, i.e. 51 sweeps).
    projection : {"pca", "cca"}, default "pca"
        "cca" makes CCA-ITQ: the directions are the canonical directions of ``X`` against the
        label matrix, each scaled by its canonical correlation (Gong et al., PAMI 2013, §4.2;
        the scaling is unverified against reference code). It needs labels.
    cca_ridge : float, default 1e-4
        Ridge added to both covariance matrices in CCA, relative to their mean diagonal.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    projection_ : ndarray of shape (n_features, n_bits)
        PCA or (scaled) CCA directions.
    rotation_ : ndarray of shape (n_bits, n_bits)
    quantization_loss_ : ndarray of shape (n_iter + 1,)
        ``||B_t - V R_t||_F^2`` after each iteration; never increases.
    """

    class Params(HasherParams):
        n_iter: int = Field(50, ge=0, le=10_000, description="ITQ iterations.")
        projection: Literal["pca", "cca"] = Field("pca", description="PCA-ITQ or CCA-ITQ.")
        cca_ridge: float = Field(1e-4, gt=0, description="Relative ridge of CCA covariances.")

    params: Params
    bits_bounded_by_features = True
    memory_model = PCA_MEMORY

    def tags(self) -> dict[str, bool]:
        """CCA-ITQ needs labels; PCA-ITQ does not use them (the class attributes declare PCA-ITQ)."""
        cca = self.params.projection == "cca"
        return {**super().tags(), "requires_labels": cca, "uses_labels": cca}

    def working_memory(self, n_samples: int, n_features: int) -> tuple[int, str] | None:
        """PCA-ITQ: the covariance up to 4,096 columns. CCA-ITQ always forms the d x d covariances."""
        if self.params.projection != "cca":
            return super().working_memory(n_samples, n_features)
        return CCA_MEMORY.estimate(n_samples, [n_features])

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.mean_ = column_mean(X)
        if self.params.projection == "cca":
            assert labels is not None  # guaranteed by tags()['requires_labels']
            self.projection_ = self._cca_directions(X, labels)
        else:
            _, self.projection_ = principal_components(X, self.n_bits, self.mean_)
        projected = centred_projection(X, self.mean_, self.projection_)
        rotation = random_orthogonal(self.n_bits, rng)
        losses = []
        for _ in range(self.params.n_iter + 1):
            codes = sign_ties_positive(projected @ rotation)
            left, _, right_t = np.linalg.svd(codes.T @ projected)
            rotation = right_t.T @ left.T
            losses.append(float(np.sum((codes - projected @ rotation) ** 2)))
        self.rotation_ = rotation
        self.quantization_loss_ = np.asarray(losses)

    def _cca_directions(self, X: FeatureMatrix, labels: np.ndarray) -> np.ndarray:
        label_matrix = labels.astype(np.float64)
        label_mean = label_matrix.mean(axis=0)
        cov_xx = covariance(X, self.mean_)
        cov_yy = covariance(label_matrix, label_mean)
        n_samples = X.shape[0]
        cross = (matmul(X.T, label_matrix) if hasattr(X, "tocsc") else X.T @ label_matrix)
        cov_xy = (cross - n_samples * np.outer(self.mean_, label_mean)) / max(n_samples - 1, 1)
        ridge = self.params.cca_ridge
        cov_xx[np.diag_indices_from(cov_xx)] += ridge * max(np.trace(cov_xx) / len(cov_xx), 1e-12)
        cov_yy[np.diag_indices_from(cov_yy)] += ridge * max(np.trace(cov_yy) / len(cov_yy), 1e-12)
        # Cxy Cyy^-1 Cyx w = rho^2 Cxx w: a symmetric-definite generalised eigenproblem.
        between = cov_xy @ scipy.linalg.solve(cov_yy, cov_xy.T, assume_a="pos")
        between = (between + between.T) / 2
        size = between.shape[0]
        values, vectors = scipy.linalg.eigh(
            between, cov_xx, subset_by_index=[size - self.n_bits, size - 1]
        )
        order = np.argsort(values)[::-1]
        correlations = np.sqrt(np.clip(values[order], 0.0, None))
        return fix_signs(vectors[:, order]) * correlations

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return centred_projection(X, self.mean_, self.projection_) @ self.rotation_
