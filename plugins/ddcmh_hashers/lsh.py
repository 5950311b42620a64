"""LSH: signs of Gaussian random projections of the centred data (Charikar 2002)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.linalg import centred_projection, column_mean
from ddcmh_core.validation import FeatureMatrix


class LSH(Hasher):
    """Sign random projections, ``bit_t = [(x - mu)^T w_t > 0]`` with ``w_t ~ N(0, I)``.

    The data-independent baseline: only the training mean is learned (HASHERS.md §1).

    Parameters
    ----------
    n_bits : int
        Code length.
    seed : int
        Seed of the projection matrix.
    center : bool, default True
        Subtract the training mean first (the references do not; centring is standard practice
        and gives balanced bits on non-negative bag-of-words data).
    """

    class Params(HasherParams):
        center: bool = Field(True, description="Subtract the training mean before projecting.")

    params: Params

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        n_features = X.shape[1]
        self.mean_ = column_mean(X) if self.params.center else np.zeros(n_features)
        self.projection_ = rng.standard_normal((n_features, self.n_bits))

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return centred_projection(X, self.mean_, self.projection_)
