"""Anchor RBF features, the kernel recipe of SDH and KSH, and the kernel lift of any hasher.

``phi(x) = [exp(-||x - a_j||^2 / (2 sigma^2))]_j`` for ``m`` anchors ``a_j`` sampled from the
training rows, optionally after L2-normalising the inputs, optionally centred by the training
mean of the features (KSH) and optionally with a bias column of ones (SDH). The width is either
fixed or chosen on the training data as ``sigma^2 = mean squared distance`` to the anchors
(KSH's rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import linalg
from .errors import InputError
from .validation import FeatureMatrix

TRANSFORM_CHUNK_ROWS = 8192
"""Rows per block when computing features, to bound the memory of the distance matrix."""


def check_bits_within_anchors(owner: str, n_bits: int, n_anchors: int, n_samples: int) -> None:
    """Raise :class:`InputError` when ``n_bits`` exceeds the anchors a kernel hasher can use.

    Anchors are sampled from the training rows, so at most ``min(n_anchors, n_samples)`` exist;
    a projection of anchor features has no more independent directions than that.
    """
    anchors = min(n_anchors, n_samples)
    if n_bits > anchors:
        raise InputError(
            f"{owner}: argument 'n_bits': expected at most the number of anchors "
            f"(min(n_anchors={n_anchors}, n_samples={n_samples}) = {anchors}), got {n_bits}"
        )


@dataclass
class AnchorRBF:
    """Fitted anchor RBF feature map.

    Use :meth:`fit` to build one; :meth:`transform` maps new data.

    Attributes
    ----------
    anchors : ndarray of shape (m, d)
        The anchors (after normalisation when ``normalize`` is set).
    bandwidth : float
        ``sigma`` in ``exp(-D / (2 sigma^2))``.
    normalize : bool
        L2-normalise each input row before computing distances.
    feature_mean : ndarray of shape (m,) or None
        Training mean of the features, subtracted when not None (centring).
    bias : bool
        Append a column of ones.
    """

    anchors: np.ndarray
    bandwidth: float
    normalize: bool = False
    feature_mean: np.ndarray | None = None
    bias: bool = False

    @classmethod
    def fit(
        cls,
        features: FeatureMatrix,
        n_anchors: int,
        rng: np.random.Generator,
        *,
        bandwidth: float | None = None,
        normalize: bool = False,
        center: bool = False,
        bias: bool = False,
    ) -> AnchorRBF:
        """Sample anchors from the training rows and choose the width.

        Parameters
        ----------
        features : ndarray or sparse matrix of shape (n, d)
            Training data.
        n_anchors : int
            Number of anchors; at most ``n`` are used (distinct rows sampled without replacement).
        rng : numpy.random.Generator
            Source of the anchor sample.
        bandwidth : float, optional
            Fixed ``sigma``; by default ``sigma^2`` is the mean squared training-to-anchor distance.
        normalize, center, bias : bool
            See the class attributes.

        Returns
        -------
        AnchorRBF
        """
        if normalize:
            features = linalg.l2_normalize_rows(features)
        n_samples = features.shape[0]
        chosen = np.sort(rng.choice(n_samples, size=min(n_anchors, n_samples), replace=False))
        anchor_rows = features[chosen]
        anchors = np.asarray(
            anchor_rows.toarray() if hasattr(anchor_rows, "toarray") else anchor_rows,
            dtype=np.float64,
        )
        if bandwidth is None:
            total = 0.0
            for start in range(0, n_samples, TRANSFORM_CHUNK_ROWS):
                block = features[start : start + TRANSFORM_CHUNK_ROWS]
                total += float(linalg.squared_distances(block, anchors).sum())
            mean_squared = total / (n_samples * anchors.shape[0])
            bandwidth = float(np.sqrt(mean_squared)) if mean_squared > 0 else 1.0
        feature_map = cls(anchors=anchors, bandwidth=float(bandwidth), normalize=normalize, bias=bias)
        if center:
            feature_map.feature_mean = feature_map._kernel(features, already_normalized=True).mean(axis=0)
        return feature_map

    @property
    def n_output_features(self) -> int:
        """Width of the transformed data."""
        return self.anchors.shape[0] + int(self.bias)

    def _kernel(self, features: FeatureMatrix, *, already_normalized: bool = False) -> np.ndarray:
        if self.normalize and not already_normalized:
            features = linalg.l2_normalize_rows(features)
        blocks = []
        scale = 1.0 / (2.0 * self.bandwidth**2)
        for start in range(0, features.shape[0], TRANSFORM_CHUNK_ROWS):
            block = features[start : start + TRANSFORM_CHUNK_ROWS]
            blocks.append(np.exp(-scale * linalg.squared_distances(block, self.anchors)))
        return np.vstack(blocks) if blocks else np.zeros((0, self.anchors.shape[0]))

    def transform(self, features: FeatureMatrix) -> np.ndarray:
        """Kernel features of ``features``: dense array of shape (n, n_output_features)."""
        kernel = self._kernel(features)
        if self.feature_mean is not None:
            kernel -= self.feature_mean
        if self.bias:
            kernel = np.hstack([kernel, np.ones((kernel.shape[0], 1))])
        return kernel

    def to_state(self) -> dict[str, Any]:
        """Arrays and scalars that describe the map, for HDF5 files."""
        state: dict[str, Any] = {
            "anchors": self.anchors,
            "bandwidth": self.bandwidth,
            "normalize": self.normalize,
            "bias": self.bias,
        }
        if self.feature_mean is not None:
            state["feature_mean"] = self.feature_mean
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AnchorRBF:
        """Inverse of :meth:`to_state`."""
        return cls(
            anchors=np.asarray(state["anchors"], dtype=np.float64),
            bandwidth=float(state["bandwidth"]),
            normalize=bool(state["normalize"]),
            bias=bool(state["bias"]),
            feature_mean=(
                np.asarray(state["feature_mean"], dtype=np.float64)
                if "feature_mean" in state
                else None
            ),
        )
