"""PCA-RR: the top principal components of the centred data, randomly rotated."""

# --8<-- [start:imports]
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ddcmh_core import Hasher, HasherParams
from ddcmh_core.linalg import centred_projection, column_mean, principal_components, random_orthogonal
from ddcmh_core.validation import FeatureMatrix

# --8<-- [end:imports]


# --8<-- [start:class]
class PCARR(Hasher):
    """PCA-RR: ``bit_t = [(x - mu)^T (P R)_t > 0]``, principal directions under a random rotation.

    PCA hashing (PCAH) gives each bit one principal direction, so the first bits carry most of
    the variance and the last ones little. A random orthogonal rotation ``R`` of the ``n_bits``
    top directions ``P`` spreads the variance over all bits. This is the "PCA-RR" baseline of
    Gong & Lazebnik (ITQ, CVPR 2011); ``R`` is the left singular vectors of a standard-normal
    ``n_bits x n_bits`` matrix, as in willard-yuan's ``Method-RR/trainRR.m``. ITQ learns the
    rotation instead of drawing it.

    Parameters
    ----------
    n_bits : int, default 32
        Code length; at most the number of features (``KernelLifted(PCARR(...))`` lifts the bound).
    seed : int, default 0
        Seed of the rotation.
    rotation : {"random", "none"}, default "random"
        ``"none"`` keeps the principal directions unrotated, which is PCAH (for comparison).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Training mean, subtracted before projecting.
    eigenvalues_ : ndarray of shape (n_bits,)
        Variances along the top principal directions, decreasing.
    rotation_ : ndarray of shape (n_bits, n_bits)
        The orthogonal rotation ``R`` (the identity for ``rotation="none"``).
    projection_ : ndarray of shape (n_features, n_bits)
        The rotated directions ``P R``.
    """

    bits_bounded_by_features = True  # P has at most n_features columns
    # --8<-- [end:class]

    # --8<-- [start:params]
    class Params(HasherParams):
        """PCA-RR's hyper-parameters (``n_bits``, ``seed`` and the kernel lift are inherited)."""

        rotation: Literal["random", "none"] = Field(
            "random", description="'random': PCA-RR; 'none': unrotated principal directions (PCAH)."
        )

    params: Params
    # --8<-- [end:params]

    # --8<-- [start:fit]
    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.mean_ = column_mean(X)
        self.eigenvalues_, directions = principal_components(X, self.n_bits, self.mean_)
        if self.params.rotation == "random":
            self.rotation_ = random_orthogonal(self.n_bits, rng)
        else:
            self.rotation_ = np.eye(self.n_bits)
        self.projection_ = directions @ self.rotation_
    # --8<-- [end:fit]

    # --8<-- [start:project]
    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return centred_projection(X, self.mean_, self.projection_)
    # --8<-- [end:project]
