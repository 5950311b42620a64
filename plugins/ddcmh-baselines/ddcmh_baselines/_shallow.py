"""What the shallow baselines share: feature maps, linear hash functions, state, encoding.

Almost every classic cross-modal hashing method ends in the same out-of-sample hash function per
view: optionally centre the raw features, optionally map them on RBF kernels around anchor points
drawn from the training rows (and centre again), project linearly and threshold each bit::

    bits = (phi(x) @ projection - threshold) >= 0

:class:`FeatureMap` is ``phi`` (fitted on the training rows, stored as arrays), :class:`LinearHash`
is the whole function, and :class:`ShallowMethod` is a :class:`~ddcmh_core.CrossModalMethod`
whose fitted state is one ``LinearHash`` per view: subclasses implement only ``_fit`` (and set
``self.hash_functions_``); encoding, saving and loading come from here. A method whose query
encoder is not of this form (LSSH's sparse coding) overrides ``_encode``, ``get_state`` and
``set_state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ddcmh_core import CrossModalMethod, MethodState

VIEWS = ("image", "text")
KernelKind = Literal["none", "rbf"]


def dense(matrix: Any) -> np.ndarray:
    """A float64 numpy array of a dense or sparse matrix."""
    if sp.issparse(matrix):
        return np.asarray(matrix.toarray(), dtype=np.float64)
    return np.asarray(matrix, dtype=np.float64)


def squared_distances(rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between every row and every anchor, clipped at 0."""
    result = (rows**2).sum(axis=1)[:, None] + (anchors**2).sum(axis=1)[None, :] - 2.0 * rows @ anchors.T
    return np.maximum(result, 0.0)


def label_matrix(labels: np.ndarray) -> np.ndarray:
    """Labels as a float {0,1} matrix of shape (n, c) (the fit input checks already made them 2-D)."""
    return np.asarray(labels, dtype=np.float64)


@dataclass
class FeatureMap:
    """``phi``: centre, optionally RBF-map on anchors, optionally centre again.

    Attributes
    ----------
    input_mean : ndarray or None
        Subtracted from the raw rows first (``None``: no centring).
    anchors : ndarray or None
        RBF centres, already centred like the rows (``None``: no kernel map).
    bandwidth : float
        ``k(x, a) = exp(-||x - a||^2 / bandwidth)``.
    kernel_mean : ndarray or None
        Subtracted from the kernel features (``None``: not centred).
    """

    input_mean: np.ndarray | None = None
    anchors: np.ndarray | None = None
    bandwidth: float = 1.0
    kernel_mean: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        rows: np.ndarray,
        *,
        center: bool = True,
        kernel: KernelKind = "none",
        n_anchors: int = 500,
        bandwidth: float | None = None,
        bandwidth_scale: float = 2.0,
        center_kernel: bool = True,
        rng: np.random.Generator | None = None,
    ) -> tuple[FeatureMap, np.ndarray]:
        """Fit the map on training rows; returns it and the mapped rows.

        Parameters
        ----------
        rows : ndarray of shape (n, d)
        center : bool
            Subtract the training mean first.
        kernel : {"none", "rbf"}
            Map on RBF kernels around ``n_anchors`` training rows drawn without replacement.
        bandwidth : float, optional
            Fixed ``exp(-d^2 / bandwidth)``; by default ``bandwidth_scale`` times the mean squared
            distance of the training rows to the anchors (SCRATCH's and BATCH's ``Kernelize``
            use scale 2, i.e. ``exp(-d^2 / (2 sigma))``).
        center_kernel : bool
            Subtract the mean kernel feature of the training rows.
        rng : numpy Generator
            Draws the anchors.
        """
        rows = dense(rows)
        feature_map = cls()
        if center:
            feature_map.input_mean = rows.mean(axis=0)
            rows = rows - feature_map.input_mean
        if kernel == "none":
            return feature_map, rows
        rng = rng if rng is not None else np.random.default_rng(0)
        chosen = rng.choice(len(rows), size=min(n_anchors, len(rows)), replace=False)
        feature_map.anchors = rows[chosen].copy()
        distances = squared_distances(rows, feature_map.anchors)
        if bandwidth is None:
            bandwidth = bandwidth_scale * float(distances.mean())
        feature_map.bandwidth = float(bandwidth) if bandwidth > 0 else 1.0
        mapped = np.exp(-distances / feature_map.bandwidth)
        if center_kernel:
            feature_map.kernel_mean = mapped.mean(axis=0)
            mapped = mapped - feature_map.kernel_mean
        return feature_map, mapped

    def transform(self, rows: Any) -> np.ndarray:
        """Map new rows as the training rows were mapped."""
        rows = dense(rows)
        if self.input_mean is not None:
            rows = rows - self.input_mean
        if self.anchors is None:
            return rows
        mapped = np.exp(-squared_distances(rows, self.anchors) / self.bandwidth)
        if self.kernel_mean is not None:
            mapped = mapped - self.kernel_mean
        return mapped

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The map as named arrays for a model file."""
        arrays = {f"{prefix}/bandwidth": np.asarray([self.bandwidth])}
        for name in ("input_mean", "anchors", "kernel_mean"):
            value = getattr(self, name)
            if value is not None:
                arrays[f"{prefix}/{name}"] = np.asarray(value)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> FeatureMap:
        """The map back from :meth:`arrays`."""
        return cls(
            input_mean=arrays.get(f"{prefix}/input_mean"),
            anchors=arrays.get(f"{prefix}/anchors"),
            bandwidth=float(np.asarray(arrays[f"{prefix}/bandwidth"]).ravel()[0]),
            kernel_mean=arrays.get(f"{prefix}/kernel_mean"),
        )


@dataclass
class LinearHash:
    """One view's hash function: ``bits = (phi(x) @ projection - threshold) >= 0``."""

    feature_map: FeatureMap
    projection: np.ndarray
    threshold: np.ndarray | None = None

    def real_values(self, rows: Any) -> np.ndarray:
        """``phi(x) @ projection - threshold``, before the sign."""
        values = self.feature_map.transform(rows) @ self.projection
        if self.threshold is not None:
            values = values - self.threshold
        return values

    def bits(self, rows: Any) -> np.ndarray:
        """{0,1} codes; a value of exactly 0 gives bit 1 (MATLAB's ``>= 0`` in the references)."""
        return (self.real_values(rows) >= 0).astype(np.uint8)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The function as named arrays for a model file."""
        arrays = self.feature_map.arrays(f"{prefix}/feature_map")
        arrays[f"{prefix}/projection"] = np.asarray(self.projection)
        if self.threshold is not None:
            arrays[f"{prefix}/threshold"] = np.asarray(self.threshold)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> LinearHash:
        """The function back from :meth:`arrays`."""
        return cls(
            feature_map=FeatureMap.from_arrays(arrays, f"{prefix}/feature_map"),
            projection=np.asarray(arrays[f"{prefix}/projection"]),
            threshold=arrays.get(f"{prefix}/threshold"),
        )


def iter_row_blocks(source: Any, batch_size: int) -> Iterator[Any]:
    """Rows of a checked batch source as numpy / CSR blocks of at most ``batch_size`` rows."""
    from ddcmh_core.engine.sources import rows_as_matrix

    n_rows = len(source)
    for start in range(0, n_rows, batch_size):
        yield rows_as_matrix(source, np.arange(start, min(start + batch_size, n_rows)))


class ShallowMethod(CrossModalMethod):
    """A method whose fitted state is one :class:`LinearHash` per view.

    Subclasses implement ``_fit`` and set ``self.hash_functions_ = {"image": ..., "text": ...}``
    (and ``self.report_`` with whatever the fit measured, e.g. the objective per iteration).
    """

    hash_functions_: dict[str, LinearHash]

    def rng(self) -> np.random.Generator:
        """The method's random generator, seeded by ``params.seed``."""
        return np.random.default_rng(self.params.seed)

    def training_rows(self, source: Any) -> np.ndarray:
        """Every training row of a checked batch source as a dense float64 array."""
        return dense(self.as_matrix(source))

    def _encode(self, view: Any, source: Any, *, batch_size: int) -> np.ndarray:
        function = self.hash_functions_[view]
        blocks = [function.bits(block) for block in iter_row_blocks(source, batch_size)]
        if not blocks:
            return np.zeros((0, self.n_bits), dtype=np.uint8)
        return np.concatenate(blocks)

    def get_state(self) -> MethodState:
        """Both views' feature maps, projections and thresholds; plus the fit report."""
        arrays: dict[str, np.ndarray] = {}
        for view in VIEWS:
            arrays.update(self.hash_functions_[view].arrays(view))
        return MethodState(meta={}, arrays=arrays)

    def set_state(self, state: MethodState, *, device: str = "auto") -> None:
        """Take back what :meth:`get_state` gave."""
        self.hash_functions_ = {view: LinearHash.from_arrays(state.arrays, view) for view in VIEWS}
