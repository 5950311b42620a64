"""Anchor RBF features: the kernel recipe of SDH and KSH, and the kernel lift of any hasher.

``phi(x) = [exp(-||x - a_j||^2 / (2 sigma^2))]_j`` for ``m`` anchors ``a_j`` sampled from the
training rows, optionally after L2-normalising the inputs, optionally centred by the training
mean of the features (KSH) and optionally with a bias column of ones (SDH). The width is either
fixed or chosen on the training data as ``sigma^2 = mean squared distance`` to the anchors
(KSH's rule).

The lift that composes with any hasher comes in two forms: :class:`AnchorRBFLift`, a
scikit-learn transformer for a ``Pipeline`` (scaler -> lift -> hasher), and :class:`KernelLifted`,
a hasher that lifts its input and then calls an inner hasher, saved in one hasher file. The options
``kernel_lift="rbf"`` and ``lift_anchors=N`` of ``get_hasher`` and ``--hasher-opt`` build the
latter (:func:`lift_options`, the one place that maps them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from . import linalg
from .errors import InputError, NotFittedError
from .hasher import KERNEL_LIFT_OPTIONS, Hasher, HasherParams, validated_model
from .validation import FeatureMatrix, check_features

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


class _LiftParams(BaseModel):
    """Validation of :class:`AnchorRBFLift`'s parameters (scikit-learn style: checked in ``fit``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_anchors: int = Field(1000, ge=2, description="Anchors sampled from the training rows (at most n).")
    seed: int = Field(0, ge=0, description="Seed of the anchor sample.")
    center: bool = Field(True, description="Subtract the training mean of the kernel features.")


class AnchorRBFLift(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Anchor RBF features as a scikit-learn transformer: ``x -> [exp(-||x - a_j||^2 / 2 sigma^2)]_j``.

    ``fit`` samples ``n_anchors`` distinct training rows as anchors (seeded), sets ``sigma^2`` to
    the mean squared training-to-anchor distance and, with ``center``, the training mean of the
    features, which ``transform`` subtracts. Low-dimensional data lifted this way can get more
    bits than it has features; put it before a hasher in a ``Pipeline``, or use
    :class:`KernelLifted` for a hasher that carries its lift into its hasher file.

    Parameters
    ----------
    n_anchors : int, default 1000
        Number of anchors (at least 2; at most the number of training rows are used).
    seed : int, default 0
        Seed of the anchor sample.
    center : bool, default True
        Centre the features on their training mean.

    Attributes
    ----------
    map_ : AnchorRBF
        The fitted feature map (anchors, width, mean).
    n_features_in_ : int
        Width of the training data.
    """

    def __init__(self, n_anchors: int = 1000, seed: int = 0, center: bool = True) -> None:
        self.n_anchors = n_anchors
        self.seed = seed
        self.center = center

    def fit(self, X: Any, y: Any = None) -> AnchorRBFLift:
        """Sample the anchors and choose the width (and the mean) on ``X``.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
            Training data (at least 2 rows, finite).
        y : ignored
            Accepted for scikit-learn.

        Returns
        -------
        AnchorRBFLift
            ``self``.
        """
        params = validated_model(_LiftParams, self.get_params(), type(self).__name__)
        features = check_features(X, owner=type(self).__name__, argument="X", min_samples=2)
        rng = np.random.default_rng(params.seed)
        self.map_ = AnchorRBF.fit(features, params.n_anchors, rng, center=params.center)
        self.n_features_in_ = features.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The centred RBF features of ``X``, a dense float64 array of shape (n, number of anchors)."""
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"{type(self).__name__}: call fit before transform")
        features = check_features(
            X, owner=type(self).__name__, argument="X", n_features=self.n_features_in_
        )
        return self.map_.transform(features)

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once :meth:`fit` has run (``map_`` exists)."""
        return hasattr(self, "map_")

    @property
    def _n_features_out(self) -> int:
        """Output width, for ``get_feature_names_out`` (``anchorrbflift0``, ...)."""
        return self.map_.n_output_features


class KernelLifted(Hasher):
    """A hasher on anchor RBF features: :class:`AnchorRBFLift`, then an inner hasher.

    ``fit`` fits the lift (``n_anchors`` anchors, centred features, seeded with the inner
    hasher's seed) and a clone of ``hasher`` on the lifted training data; ``encode`` lifts, then
    encodes. Its tags are the inner hasher's, except ``bits_bounded_by_features``: the lifted data
    has one feature per anchor, and the inner hasher checks its own bound on it. Its name is
    ``"rbf+<inner name>"`` (``rbf+itq``), what its messages start with.

    ``get_hasher(name, kernel_lift="rbf", lift_anchors=N)`` and ``--hasher-opt
    NAME:kernel_lift=rbf`` build one (:func:`lift_options`). Its hasher file records the inner
    hasher's registered name, its parameters with ``kernel_lift="rbf"`` and ``lift_anchors``
    (:meth:`build_params`) and its fitted state with the feature map as ``lift_``: the layout of
    files saved before the lift became a wrapper, which therefore still load.

    Parameters
    ----------
    hasher : Hasher
        The inner hasher (not modified; ``fit`` fits a clone).
    n_anchors : int, default 1000
        Number of anchors of the lift (at least 2; at most the number of training rows).

    Attributes
    ----------
    lift_ : AnchorRBFLift
        The fitted lift.
    hasher_ : Hasher
        The fitted clone of ``hasher``.
    n_features_in_ : int
        Width of the training data before the lift.
    """

    class Params(HasherParams):
        n_anchors: int = Field(1000, ge=2, description="Anchors of the lift (at most n_samples).")

    params: Params

    def __init__(self, hasher: Hasher, n_anchors: int = 1000) -> None:
        if not isinstance(hasher, Hasher):
            raise InputError(
                f"KernelLifted: argument 'hasher': expected a ddcmh Hasher, got {type(hasher).__name__}"
            )
        self.hasher = hasher
        self.n_anchors = n_anchors
        self._registry_name = None
        self.params = self._lift_params(n_anchors)

    def _lift_params(self, n_anchors: int) -> Params:
        """The validated parameters; ``n_bits`` and ``seed`` are the inner hasher's."""
        inner = self.hasher.params
        return validated_model(
            self.Params, {"n_bits": inner.n_bits, "seed": inner.seed, "n_anchors": n_anchors}, "KernelLifted"
        )

    @property
    def name(self) -> str:
        """``"rbf+"`` and the inner hasher's name."""
        return f"rbf+{self.hasher.name}"

    @property
    def n_bits(self) -> int:
        """The inner hasher's code length."""
        return self.hasher.n_bits

    def fit(self, X: Any, labels: Any = None) -> KernelLifted:
        """Fit the lift, then a clone of the inner hasher on the lifted rows (see :meth:`Hasher.fit`).

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
            Training features.
        labels : array-like, optional
            Labels, passed to the inner hasher when its tags say it uses them.

        Returns
        -------
        KernelLifted
            ``self``.
        """
        current = self._lift_params(self.n_anchors)  # the inner hasher's n_bits and seed, as they are now
        if current != self.params:
            self.params = current
        super().fit(X, labels)
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``hasher`` and ``n_anchors``; with ``deep``, also the inner hasher's as ``hasher__<name>``.

        Parameters
        ----------
        deep : bool, default True
            Include the inner hasher's parameters (scikit-learn's nested-parameter convention).

        Returns
        -------
        dict
        """
        params: dict[str, Any] = {"hasher": self.hasher, "n_anchors": self.n_anchors}
        if deep:
            params.update({f"hasher__{key}": value for key, value in self.hasher.get_params().items()})
        return params

    def set_params(self, **params: Any) -> KernelLifted:
        """Set ``hasher``, ``n_anchors`` or the inner hasher's ``hasher__<name>`` parameters.

        Nothing changes when a value is invalid.

        Raises
        ------
        InputError
            An unknown name or an invalid value.
        """
        inner = params.pop("hasher", self.hasher)
        prefix = "hasher__"
        nested = {key[len(prefix) :]: params.pop(key) for key in list(params) if key.startswith(prefix)}
        unknown = sorted(set(params) - {"n_anchors"})
        if unknown:
            raise InputError(
                f"KernelLifted: argument {unknown[0]!r}: unknown parameter (expected hasher, n_anchors or "
                "hasher__<parameter of the inner hasher>)"
            )
        if nested:
            inner = inner.clone(**nested)
        candidate = KernelLifted(inner, params.get("n_anchors", self.n_anchors))
        self.hasher, self.n_anchors, self.params = candidate.hasher, candidate.n_anchors, candidate.params
        return self

    def clone(self, **overrides: Any) -> KernelLifted:
        """A new, unfitted wrapper around a clone of the inner hasher; ``overrides`` as in set_params."""
        other = KernelLifted(self.hasher.clone(), self.n_anchors)
        return other.set_params(**overrides) if overrides else other

    def build_params(self) -> dict[str, Any]:
        """The inner hasher's :meth:`~Hasher.build_params` with ``kernel_lift="rbf"`` and ``lift_anchors``."""
        return {**self.hasher.build_params(), "kernel_lift": "rbf", "lift_anchors": self.n_anchors}

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        problems = self.shape_problems(n_samples, n_features)
        if problems:
            raise InputError(problems[0])

    def shape_problems(self, n_samples: int, n_features: int) -> list[str]:
        """The inner hasher's problems on the lifted features: one column per anchor.

        The lift samples ``min(n_anchors, n_samples)`` anchors, so a hasher with at most one bit per
        feature still cannot give more bits than that.
        """
        width = min(self.params.n_anchors, n_samples)
        if self.hasher.bits_exceed_features(width):
            return [
                f"{self.name}: argument 'n_bits': the kernel lift gives {width} features "
                f"(min(lift_anchors={self.params.n_anchors}, n_samples={n_samples})) and this hasher at "
                f"most one bit per feature, got n_bits={self.n_bits}; use fewer bits or more anchors "
                f"(--hasher-opt {self.hasher.name}:lift_anchors=N, at most the training rows)"
            ]
        return self.hasher.shape_problems(n_samples, width)

    def tags(self) -> dict[str, bool]:
        """The inner hasher's tags, with ``bits_bounded_by_features`` False (the lift removes it)."""
        return {**self.hasher.tags(), "bits_bounded_by_features": False}

    def __repr__(self) -> str:
        anchors = f", n_anchors={self.n_anchors}" if self.n_anchors != 1000 else ""
        return f"KernelLifted({self.hasher!r}{anchors})"

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.lift_ = AnchorRBFLift(n_anchors=self.params.n_anchors, seed=self.params.seed).fit(X)
        self.hasher_ = self.hasher.clone().fit(self.lift_.transform(X), labels)

    def _training_codes(self) -> np.ndarray | None:
        return self.hasher_.training_codes_ if self.hasher_._training_codes() is not None else None

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return self.hasher_._project(self.lift_.transform(X))

    def fitted_state(self) -> dict[str, Any]:
        """The inner hasher's state, with the feature map as ``lift_`` and this hasher's input width."""
        state = self.hasher_.fitted_state()
        return {**state, "lift_": self.lift_.map_, "n_features_in_": self.n_features_in_}

    def set_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`fitted_state` (the feature map under ``lift_``).

        Raises
        ------
        InputError
            ``lift_`` or ``n_features_in_`` is missing or of the wrong type.
        """
        inner_state = dict(state)
        feature_map = inner_state.pop("lift_", None)
        width = inner_state.pop("n_features_in_", None)
        if not isinstance(feature_map, AnchorRBF) or type(width) is not int:
            raise InputError(
                "KernelLifted: argument 'state': expected an AnchorRBF 'lift_' and an integer "
                f"'n_features_in_', got {type(feature_map).__name__} and {type(width).__name__}"
            )
        lift = AnchorRBFLift(n_anchors=self.params.n_anchors, seed=self.params.seed)
        lift.map_, lift.n_features_in_ = feature_map, width
        inner = self.hasher.clone()
        inner.set_fitted_state({**inner_state, "n_features_in_": feature_map.n_output_features})
        self.lift_, self.hasher_, self.n_features_in_ = lift, inner, width


class _LiftOptions(BaseModel):
    """The ``kernel_lift``/``lift_anchors`` options of building a hasher by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kernel_lift: Literal["none", "rbf"] = Field("none", description="'rbf' wraps the hasher in KernelLifted.")
    lift_anchors: int = Field(1000, ge=2, description="Anchors of the lift.")


def lift_options(
    params: dict[str, Any], owner: str = "hasher"
) -> tuple[dict[str, Any], Callable[[Hasher], Hasher]]:
    """Split the kernel-lift options off a hasher's options: the one place they are mapped.

    ``get_hasher``, ``--hasher-opt`` (through the registry) and :func:`~ddcmh_core.load_hasher`
    call this, so ``kernel_lift="rbf"`` (with ``lift_anchors``) means :class:`KernelLifted`
    everywhere.

    Parameters
    ----------
    params : dict
        Options by name, possibly with ``kernel_lift`` (``"none"`` or ``"rbf"``) and
        ``lift_anchors``.
    owner : str
        Who the options are for, first in error messages.

    Returns
    -------
    options : dict
        ``params`` without the lift options: the hyper-parameters of the hasher class.
    wrap : callable
        ``wrap(hasher)`` is ``KernelLifted(hasher, n_anchors=lift_anchors)`` for
        ``kernel_lift="rbf"``, else ``hasher`` itself.

    Raises
    ------
    InputError
        An invalid ``kernel_lift`` or ``lift_anchors``.
    """
    chosen = {key: params[key] for key in KERNEL_LIFT_OPTIONS if key in params}
    lift = validated_model(_LiftOptions, chosen, owner)
    options = {key: value for key, value in params.items() if key not in KERNEL_LIFT_OPTIONS}
    if lift.kernel_lift == "none":
        return options, _unchanged
    return options, lambda hasher: KernelLifted(hasher, n_anchors=lift.lift_anchors)


def _unchanged(hasher: Hasher) -> Hasher:
    return hasher
