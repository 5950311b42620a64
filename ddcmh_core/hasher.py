"""The :class:`Hasher` interface of Stage-1 single-modal hashers, and their HDF5 files.

A hasher learns binary codes from training features (the text view in DDCMH), optionally with a
{0,1} label matrix. Subclasses declare a nested pydantic ``Params`` model and implement
``_fit`` plus either ``_project`` (bit = 1 iff projection > 0) or ``_training_codes``::

    class MyLSH(Hasher):
        class Params(HasherParams):
            scale: float = 1.0

        def _fit(self, X, labels, rng):
            self.mean_ = column_mean(X)
            self.projection_ = rng.standard_normal((X.shape[1], self.params.n_bits))

        def _project(self, X):
            return centred_projection(X, self.mean_, self.projection_)
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, TransformerMixin

from .errors import (
    InputError,
    NotFittedError,
    NumericalError,
    UnsupportedOperationError,
)
from .memory import MemoryModel
from .validation import FeatureMatrix, check_features, check_labels, check_not_constant


class HasherParams(BaseModel):
    """Hyper-parameters every hasher has. Subclasses of :class:`Hasher` extend this model.

    Unknown keys are rejected (``extra="forbid"``) and the model is frozen.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    n_bits: int = Field(32, ge=1, le=4096, description="Code length in bits.")
    seed: int = Field(0, ge=0, description="Seed of every random choice the hasher makes.")


KERNEL_LIFT_OPTIONS = ("kernel_lift", "lift_anchors")
"""Options that :func:`ddcmh_core.kernels.lift_options` turns into a
:class:`~ddcmh_core.kernels.KernelLifted` wrapper (``get_hasher``, ``--hasher-opt``, hasher files);
they are not hyper-parameters of any hasher class."""


ModelT = TypeVar("ModelT", bound=BaseModel)


def validated_model(model_class: type[ModelT], params: dict[str, Any], owner: str) -> ModelT:
    """``model_class(**params)``, with pydantic's validation errors as one :class:`InputError`.

    Parameters
    ----------
    model_class : type of pydantic.BaseModel
        The parameter model (a hasher's ``Params``, the anchor lift's parameters).
    params : dict
        Values by name.
    owner : str
        Who takes the parameters, first in the message.

    Raises
    ------
    InputError
        Naming each bad argument, what was expected and what was found; an unknown name lists the
        valid ones (and, for ``kernel_lift``/``lift_anchors``, says how to lift a hasher now).
    """
    try:
        return model_class(**params)
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors():
            location = ".".join(str(part) for part in item["loc"]) or "params"
            if item["type"] != "extra_forbidden":
                problems.append(f"argument {location!r}: {item['msg']} (got {item.get('input')!r})")
                continue
            problem = (
                f"argument {location!r}: unknown hyper-parameter "
                f"(expected one of {', '.join(model_class.model_fields)})"
            )
            if location in KERNEL_LIFT_OPTIONS:
                problem += (
                    "; the kernel lift is a wrapper: ddcmh_core.kernels.KernelLifted(hasher, n_anchors=...), "
                    "or get_hasher(name, kernel_lift='rbf', lift_anchors=...)"
                )
            problems.append(problem)
        raise InputError(f"{owner}: " + "; ".join(problems)) from None


def _validated_params(hasher_class: type[Hasher], params: dict[str, Any]) -> HasherParams:
    """``hasher_class.Params(**params)``, with validation errors as :class:`InputError`."""
    return validated_model(hasher_class.Params, params, hasher_class.__name__)


def _init_with_signature(hasher_class: type[Hasher]) -> Any:
    """An ``__init__`` for ``hasher_class`` whose signature lists its ``Params`` fields.

    scikit-learn reads hyper-parameter names and defaults from the signature of ``__init__``
    (``repr`` inside a Pipeline, the HTML display, ``estimator_checks``); the fields of the
    pydantic model stay the one declaration of them.
    """

    def __init__(self: Hasher, **params: Any) -> None:
        Hasher.__init__(self, **params)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for name, field in hasher_class.Params.model_fields.items():
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.get_default(call_default_factory=True),
                annotation=field.annotation,
            )
        )
    __init__.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{hasher_class.__qualname__}.__init__"
    __init__.__doc__ = Hasher.__init__.__doc__
    return __init__


class Hasher(TransformerMixin, BaseEstimator):
    """Base class of all Stage-1 hashers, a scikit-learn transformer that outputs codes.

    Parameters
    ----------
    **params
        Hyper-parameters, validated by the nested ``Params`` model; the validated values are
        ``self.params``. ``Hasher(n_bits=64, seed=0)``. Each subclass gets an ``__init__`` whose
        signature lists the fields of its ``Params`` (keyword-only).

    Attributes
    ----------
    params : HasherParams
        The validated, frozen hyper-parameters.
    n_features_in_ : int
        Width of the training data (after fit).
    training_codes_ : ndarray of shape (n_samples, n_bits), uint8
        Codes of the training set (after fit): the optimised codes for discrete methods,
        otherwise the training set encoded by the learned function. Kept in memory only: like
        every attribute named in ``training_only_attributes`` it is not written by :meth:`save`.

    Notes
    -----
    A hasher follows scikit-learn's estimator conventions: ``get_params``/``set_params`` (both
    validated by the ``Params`` model), ``sklearn.base.clone``, ``transform`` (= :meth:`encode`)
    and ``fit_transform``, so it can be the last step of a ``Pipeline`` and be tuned by
    ``GridSearchCV`` with :func:`ddcmh_core.evaluation.scorers.make_map_scorer`.

    Tags describe a hasher to the engine, the CLI listing and the conformance kit, and all of
    them read :meth:`tags` (never the class attributes, which are only the declaration): a
    subclass declares its tags as class attributes, and a subclass whose tags depend on its
    hyper-parameters (CCA-ITQ needs labels, PCA-ITQ does not) refines them by overriding
    :meth:`tags` (start from ``super().tags()``). The tags are:

    ``requires_labels``
        ``fit`` needs a label matrix (supervised hashers).
    ``uses_labels``
        ``fit`` uses labels when given (implied by ``requires_labels``).
    ``supports_encode``
        ``encode`` exists (the method has an out-of-sample function).
    ``bits_bounded_by_features``
        ``n_bits`` cannot exceed the number of input features (PCA-based methods); the kernel
        lift (:class:`ddcmh_core.kernels.KernelLifted`) removes the bound.
    ``balanced_bits``
        The method aims at bits that are 1 on about half of the items (the conformance kit then
        checks bit balance). Spectral Hashing, for one, does not on skewed data.
    """

    Params: ClassVar[type[HasherParams]] = HasherParams
    requires_labels: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = False
    supports_encode: ClassVar[bool] = True
    bits_bounded_by_features: ClassVar[bool] = False
    balanced_bits: ClassVar[bool] = True
    training_only_attributes: ClassVar[tuple[str, ...]] = ("training_codes_", "encoded_training_codes_")
    """Fitted attributes with one row per training item: available after :meth:`fit`, never saved,
    so that a hasher file holds only what encoding needs. Subclasses extend the tuple."""
    memory_model: ClassVar[MemoryModel | None] = None
    """How :meth:`fit`'s peak memory grows with the training shape (see :meth:`working_memory`);
    None: not estimated (the hasher's largest arrays are no larger than its input)."""

    def __init__(self, **params: Any) -> None:
        """Validate ``params`` with the ``Params`` model (:class:`InputError` on a bad value)."""
        self.params = _validated_params(type(self), params)
        self._registry_name: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in vars(cls):
            cls.__init__ = _init_with_signature(cls)  # type: ignore[method-assign]

    # ----------------------------------------------------------------- introspection
    @classmethod
    def registered(cls, name: str | None, **params: Any) -> Hasher:
        """Build a hasher that knows the plugin-registry name it is built under.

        The registry's factory (:func:`~ddcmh_core.get_hasher`) and
        :func:`~ddcmh_core.load_hasher` build hashers this way, so that :attr:`name`, listings
        and hasher files say ``"cca-itq"`` rather than the class name; the name cannot be changed
        afterwards, and :meth:`clone` keeps it.

        Parameters
        ----------
        name : str or None
            The registered name (None or empty: none).
        **params
            Hyper-parameters, validated by ``Params``.

        Returns
        -------
        Hasher
            The new, unfitted hasher.
        """
        hasher = cls(**params)
        hasher._registry_name = name or None
        return hasher

    @property
    def registered_name(self) -> str | None:
        """The plugin-registry name the hasher was built under (see :meth:`registered`), else None."""
        return self._registry_name

    @property
    def name(self) -> str:
        """Registered name when known, else the class name."""
        return self._registry_name or type(self).__name__

    @property
    def n_bits(self) -> int:
        """Code length."""
        return self.params.n_bits

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters as a plain dictionary (JSON-compatible).

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn; a hasher holds no nested estimators, so it changes nothing.

        Returns
        -------
        dict
            Every field of ``Params``, defaults included.
        """
        return self.params.model_dump(mode="json")

    def set_params(self, **params: Any) -> Hasher:
        """Replace some hyper-parameters, validated together with the others by ``Params``.

        Nothing changes when a value is invalid. Fitted attributes are kept: refit afterwards,
        as with any scikit-learn estimator.

        Parameters
        ----------
        **params
            New values by name.

        Returns
        -------
        Hasher
            ``self``.

        Raises
        ------
        InputError
            An unknown name (the message lists the valid ones) or an invalid value.
        """
        if params:
            self.params = _validated_params(type(self), {**self.get_params(), **params})
        return self

    def clone(self, **overrides: Any) -> Hasher:
        """A new, unfitted hasher with the same hyper-parameters, some of them replaced."""
        other = type(self)(**{**self.get_params(), **overrides})
        other._registry_name = self._registry_name
        return other

    def __sklearn_clone__(self) -> Hasher:
        """``sklearn.base.clone``: the same as :meth:`clone` (keeps the registered name)."""
        return self.clone()

    def __sklearn_is_fitted__(self) -> bool:
        """``sklearn.utils.validation.check_is_fitted`` reads :attr:`is_fitted`."""
        return self.is_fitted

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags, from :meth:`tags`: sparse input, labels as ``y``, uint8 output."""
        sklearn_tags = super().__sklearn_tags__()
        own = self.tags()
        sklearn_tags.input_tags.sparse = True
        sklearn_tags.target_tags.required = own["requires_labels"]
        sklearn_tags.requires_fit = True
        if sklearn_tags.transformer_tags is not None:
            sklearn_tags.transformer_tags.preserves_dtype = []
        return sklearn_tags

    def labels_required(self) -> bool:
        """Whether ``fit`` needs labels with these hyper-parameters: ``tags()["requires_labels"]``."""
        return self.tags()["requires_labels"]

    def tags(self) -> dict[str, bool]:
        """The tags of this hasher: the one source that the engine, the listing and the kit read.

        The base class reads the class attributes; override this (starting from
        ``super().tags()``) when a tag depends on the hyper-parameters.

        Returns
        -------
        dict of str to bool
            ``requires_labels``, ``uses_labels`` (True whenever ``requires_labels`` is),
            ``supports_encode``, ``bits_bounded_by_features`` and ``balanced_bits``.
        """
        return {
            "requires_labels": self.requires_labels,
            "uses_labels": self.uses_labels or self.requires_labels,
            "supports_encode": self.supports_encode,
            "bits_bounded_by_features": self.bits_bounded_by_features,
            "balanced_bits": self.balanced_bits,
        }

    @classmethod
    def accepted_options(cls) -> frozenset[str]:
        """Names that building this hasher by name accepts: its ``Params`` fields and the lift options.

        ``get_hasher(name, **options)`` and ``--hasher-opt`` take ``kernel_lift``/``lift_anchors``
        too (:data:`KERNEL_LIFT_OPTIONS`), which wrap the hasher in
        :class:`~ddcmh_core.kernels.KernelLifted`.
        """
        return frozenset(cls.Params.model_fields) | frozenset(KERNEL_LIFT_OPTIONS)

    def build_params(self) -> dict[str, Any]:
        """JSON-compatible options that rebuild this hasher by name: ``create(name, **build_params())``.

        :meth:`get_params` for a plain hasher; a :class:`~ddcmh_core.kernels.KernelLifted`
        adds its lift options to its inner hasher's. Hasher files and model files record these.
        """
        return self.get_params()

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run (or the state was loaded)."""
        return hasattr(self, "n_features_in_")

    def __repr__(self) -> str:
        defaults = self.Params.model_construct().model_dump(mode="json")
        changed = {key: value for key, value in self.get_params().items() if defaults.get(key) != value}
        arguments = ", ".join(f"{key}={value!r}" for key, value in changed.items())
        return f"{type(self).__name__}({arguments})"

    # ----------------------------------------------------------------- to implement
    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        """Learn the fitted state (attributes ending in ``_``) from validated data."""
        raise NotImplementedError

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        """Real-valued projections of shape (n, n_bits); bit = 1 iff projection > 0."""
        raise UnsupportedOperationError(
            f"{self.name} has no out-of-sample hash function; use fit_encode for training codes"
        )

    def _training_codes(self) -> np.ndarray | None:
        """The optimised training codes of a discrete method ({0,1} or ±1), or None."""
        return None

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        """Raise :class:`InputError` when the data cannot give ``n_bits`` bits (hook for subclasses)."""

    # ----------------------------------------------------------------- public API
    def fit(self, X: Any, labels: Any = None) -> Hasher:
        """Learn the hash function and the training codes.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
            Training features (float32 or float64, dense or sparse); not modified.
        labels : array-like of shape (n_samples, n_classes), optional
            {0,1} label matrix (or a vector of class ids) for supervised hashers.

        Returns
        -------
        Hasher
            ``self``.
        """
        features = check_features(X, owner=self.name, argument="X", min_samples=2)
        check_not_constant([features], owner=self.name, argument="X")
        label_matrix = None
        if labels is not None:
            label_matrix = check_labels(
                labels, owner=self.name, n_samples=features.shape[0], supervised=self.labels_required()
            )
        elif self.labels_required():
            raise InputError(
                f"{self.name}: argument 'labels': expected a {{0,1}} label matrix with "
                f"{features.shape[0]} rows (this hasher is supervised), got None"
            )
        tags = self.tags()
        if not tags["uses_labels"]:
            label_matrix = None
        rng = np.random.default_rng(self.params.seed)
        for attribute in [key for key in vars(self) if key.endswith("_")]:
            delattr(self, attribute)  # refitting starts from scratch
        n_features = features.shape[1]
        self._check_bits(features.shape[0], features.shape[1])
        self._check_problem(features.shape[0], features.shape[1])
        self._fit(features, label_matrix, rng)
        codes = self._training_codes()
        if codes is None:
            codes = self._bits(features)
        self.training_codes_ = np.ascontiguousarray(np.asarray(codes) > 0, dtype=np.uint8)
        if tags["supports_encode"]:
            # Only set when the method has a hash function, so that encode(train) can be compared.
            self.encoded_training_codes_ = self._bits(features)
        self.n_features_in_ = n_features
        return self

    def fit_encode(
        self,
        X: Any,
        labels: Any = None,
        *,
        training_codes: Literal["optimised", "encoded"] = "optimised",
    ) -> np.ndarray:
        """Fit, then return the codes of the training set.

        Parameters
        ----------
        X, labels
            As in :meth:`fit`.
        training_codes : {"optimised", "encoded"}, default "optimised"
            For discrete methods (SDH, KSH, COSDISH) the optimised codes ``B`` and the training
            set re-encoded by the learned function can differ; "optimised" returns ``B``. For the
            other methods both are the same.

        Returns
        -------
        ndarray of shape (n_samples, n_bits), uint8 in {0,1}
        """
        self.fit(X, labels)
        if training_codes == "encoded":
            if not self.tags()["supports_encode"]:
                raise UnsupportedOperationError(
                    f"{self.name}: training_codes='encoded' needs an out-of-sample function"
                )
            return self.encoded_training_codes_.copy()
        if training_codes != "optimised":
            raise InputError(
                f"{self.name}: argument 'training_codes': expected 'optimised' or 'encoded', "
                f"got {training_codes!r}"
            )
        return self.training_codes_.copy()

    def encode(self, X: Any) -> np.ndarray:
        """Hash new data with the learned function.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_bits), uint8 in {0,1}
        """
        if not self.tags()["supports_encode"]:
            raise UnsupportedOperationError(
                f"{self.name} has no out-of-sample hash function; use fit_encode for training codes"
            )
        self._require_fitted("encode")
        features = check_features(X, owner=self.name, argument="X", n_features=self.n_features_in_)
        return self._bits(features)

    def _bits(self, features: FeatureMatrix) -> np.ndarray:
        """Codes ``[projection > 0]``; NaN or infinite projections are an error, not bits."""
        projections = np.asarray(self._project(features))
        if not np.all(np.isfinite(projections)):
            raise NumericalError(
                f"{self.name}: the hash function gives NaN or infinite projections; its fitted state is "
                "not finite (a degenerate fit or a damaged hasher file)"
            )
        return np.ascontiguousarray(projections > 0, dtype=np.uint8)

    def transform(self, X: Any) -> np.ndarray:
        """scikit-learn's name for :meth:`encode`: the {0,1} codes of ``X``, shape (n, n_bits)."""
        return self.encode(X)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X`` (and labels ``y``), then return the codes of ``X``.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
        y : array-like, optional
            Labels, as ``labels`` in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_bits), uint8 in {0,1}
            ``fit(X, y).transform(X)``; for a hasher without an out-of-sample function
            (``supports_encode`` False), its optimised training codes.
        """
        encoded = self.tags()["supports_encode"]
        return self.fit_encode(X, y, training_codes="encoded" if encoded else "optimised")

    def _require_fitted(self, action: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: call fit before {action}")

    def bits_exceed_features(self, n_features: int) -> bool:
        """Whether ``n_bits`` is more than this hasher can give from ``n_features`` features.

        True only for a hasher tagged ``bits_bounded_by_features`` (PCA-like: one bit per
        direction); :class:`~ddcmh_core.kernels.KernelLifted` removes the bound.
        """
        return bool(self.tags()["bits_bounded_by_features"]) and self.n_bits > n_features

    def shape_problems(self, n_samples: int, n_features: int) -> list[str]:
        """Every problem :meth:`fit` would raise on training data of this shape, found without data.

        The checks of the code length against the rows and the features, and the hasher's own
        (:meth:`_check_problem`, e.g. at most one bit per anchor). Plan checks call this for every
        cell before any work starts.

        Parameters
        ----------
        n_samples, n_features : int
            Shape of the training matrix ``fit`` would get.

        Returns
        -------
        list of str
            One message per problem, as ``fit`` would word it; empty when the shape is fine.
        """
        problems = []
        for check in (self._check_bits, self._check_problem):
            try:
                check(n_samples, n_features)
            except InputError as error:
                problems.append(str(error))
        return problems

    def working_memory(self, n_samples: int, n_features: int) -> tuple[int, str] | None:
        """Estimated peak bytes of :meth:`fit` on an ``n_samples x n_features`` matrix, and why.

        From :attr:`memory_model`; a hasher whose algorithm changes with the shape (PCA's
        implicit covariance above :data:`~ddcmh_core.linalg.DENSE_COVARIANCE_MAX_FEATURES`
        columns) overrides it. Plan checks compare it with the memory free before any work.

        Returns
        -------
        (int, str) or None
            Bytes and what dominates them; None when not estimated.
        """
        model = self.memory_model
        return None if model is None else model.estimate(n_samples, [n_features])

    def _check_bits(self, n_samples: int, n_features: int) -> None:
        bounded = self.tags()["bits_bounded_by_features"]
        if self.bits_exceed_features(n_features):
            raise InputError(
                f"{self.name}: argument 'n_bits': expected n_bits <= n_features ({n_features}) "
                f"because {type(self).__name__} projects onto principal directions, got "
                f"n_bits={self.n_bits}; to hash low-dimensional data with more bits, lift it to anchor RBF "
                "features first: ddcmh_core.kernels.KernelLifted(hasher, n_anchors=1000), "
                "get_hasher(name, kernel_lift='rbf') or --hasher-opt NAME:kernel_lift=rbf"
            )
        if self.n_bits >= n_samples and bounded:
            raise InputError(
                f"{self.name}: argument 'X': expected more training rows than n_bits "
                f"({self.n_bits}), got {n_samples}"
            )

    # ----------------------------------------------------------------- persistence
    def fitted_state(self) -> dict[str, Any]:
        """The fitted attributes that :meth:`save` writes, by name.

        Every attribute whose name ends in ``_`` except ``training_only_attributes`` (one row per
        training item), so that the file does not grow with the training set.
        """
        skipped = set(self.training_only_attributes)
        return {key: value for key, value in vars(self).items() if key.endswith("_") and key not in skipped}

    def set_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`fitted_state` returned (used by :func:`~ddcmh_core.load_hasher`).

        Parameters
        ----------
        state : dict
            Fitted attributes by name; the base class sets each one.
        """
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the hasher (hyper-parameters, fitted state, provenance) to one HDF5 file.

        The file is written to a temporary name beside ``path`` and renamed, so a failure never
        leaves a half-written file. No pickle is used.

        Parameters
        ----------
        path : str or path-like
            Destination, conventionally ``*.h5``.

        Returns
        -------
        pathlib.Path
        """
        self._require_fitted("save")
        from .hasher_file import save_hasher  # the file format reads the plugin registry

        return save_hasher(self, path)
