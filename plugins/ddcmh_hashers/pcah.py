"""PCAH: signs of the top principal components of the centred data."""

from __future__ import annotations

import numpy as np

from ddcmh_core.hasher import Hasher
from ddcmh_core.linalg import PCA_MEMORY, centred_projection, column_mean, principal_components
from ddcmh_core.validation import FeatureMatrix


class PCAH(Hasher):
    """PCA hashing: ``bit_t = [(x - mu)^T p_t > 0]`` for the top ``n_bits`` principal directions.

    Eigenvectors come from ``eigh`` on the covariance, sorted by decreasing eigenvalue
    (HASHERS.md §2). Quality drops with more bits because low-variance directions get equal
    weight; that is the method, not a bug.
    """

    bits_bounded_by_features = True
    memory_model = PCA_MEMORY

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.mean_ = column_mean(X)
        self.eigenvalues_, self.projection_ = principal_components(X, self.n_bits, self.mean_)

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return centred_projection(X, self.mean_, self.projection_)
