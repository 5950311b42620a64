"""The cross-modal method interface: what DDCMH, DCMH and every plugin method implement.

A cross-modal method learns, from paired training items of two views (images and texts), one
hash function per view, so that an image query can be ranked against a database of texts and
the other way round. :class:`CrossModalMethod` is to a whole method what
:class:`~ddcmh_core.Hasher` is to a single-modal hasher:

- typed pydantic parameters (the nested ``Params`` class), with user overrides merged into the
  defaults by :func:`merge_settings` (nested tables merged, not replaced);
- ``fit(image, text, labels)`` returning ``self``; the base class checks the input (paired rows,
  labels for a supervised method, code length against the data) before any work starts;
- ``encode(view, X)`` returning packed codes (``uint8``, eight bits a byte, as faiss stores
  them); ``encode_image`` / ``encode_text`` return one ``{0,1}`` byte per bit;
- ``tags`` (supervised, needs paired data, deep or shallow, takes a Stage-1 hasher);
- saving to and loading from the one HDF5 model-file format (:mod:`ddcmh_core.model_file`):
  a method gives its state as JSON metadata plus named arrays and takes it back; no pickle.

Methods reach ddcmh through the ``ddcmh_methods`` hook of the ``ddcmh`` entry-point group,
exactly as hashers do (:class:`~ddcmh_core.plugins.MethodSpec`).
"""

from __future__ import annotations

import functools
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError, NotFittedError
from ..evaluation.codes import pack_codes
from ..memory import MemoryModel
from ..model_file import MethodState, ModelFileError, load_model, save_model
from ..validation import check_labels, check_not_constant, check_values

View = Literal["image", "text"]
VIEWS: tuple[View, View] = ("image", "text")
ProgressCallback = Callable[[str], None]
MethodT = TypeVar("MethodT", bound="CrossModalMethod")


class MethodParams(BaseModel):
    """Base of every method's parameters: the code length and the seed, validated.

    Subclass it as the nested ``Params`` class of a method; unknown keys are refused.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_bits: int = Field(32, ge=1, le=4096, description="Code length k.")
    seed: int = Field(0, ge=0, description="Seed of every random choice of the method.")


@dataclass(frozen=True)
class MethodTags:
    """What a method needs and is, read by the bench, the CLI listing and the input checks.

    Attributes
    ----------
    supervised : bool
        Needs training labels (``fit`` refuses ``labels=None``).
    needs_paired : bool
        Needs the two views of each training item (one image row per text row).
    deep : bool
        Trains neural networks (and so has epochs, devices and checkpoints).
    uses_hasher : bool
        Takes a single-modal Stage-1 hasher (``ddcmh-bench --hasher`` applies to it).
    """

    supervised: bool = True
    needs_paired: bool = True
    deep: bool = False
    uses_hasher: bool = False

    def as_dict(self) -> dict[str, bool]:
        """The tags as a JSON-ready dictionary."""
        return {
            "supervised": self.supervised,
            "needs_paired": self.needs_paired,
            "deep": self.deep,
            "uses_hasher": self.uses_hasher,
        }


@dataclass(frozen=True)
class DataShape:
    """What the input checks know of the training data before any work starts.

    Attributes
    ----------
    n_rows : int
        Training pairs.
    n_features : dict
        Width of each view (``None`` for image files).
    has_labels : bool
        Whether labels were given.
    """

    n_rows: int
    n_features: Mapping[str, int | None]
    has_labels: bool = True

    @classmethod
    def of_training_split(cls, dataset: Any) -> DataShape:
        """The shape of a :class:`~ddcmh_core.data.CrossModalDataset`'s training pairs (no data read)."""

        def width(view: Any) -> int | None:  # image files have no feature width
            return None if getattr(view, "kind", None) == "image-files" else getattr(view, "n_features", None)

        return cls(
            n_rows=len(dataset.split.train),
            n_features={"image": width(dataset.image), "text": width(dataset.text)},
            has_labels=dataset.labels is not None,
        )


def merge_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides merged into defaults; nested tables merge key by key instead of replacing.

    ``merge_settings({"training": {"epochs": 5, "lr": 0.1}}, {"training": {"epochs": 9}})`` keeps
    ``lr``. Pydantic models among the overrides count as their field tables.
    """
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_params(
    params_class: type[BaseModel],
    base: BaseModel | Mapping[str, Any] | None,
    overrides: Mapping[str, Any],
    *,
    owner: str,
) -> Any:
    """Validate ``overrides`` merged into ``base`` (or the defaults) as ``params_class``.

    Raises
    ------
    InputError
        Naming ``owner`` and every invalid setting.
    """
    if base is None:  # the defaults, so that a nested override keeps the rest of its table
        try:
            base = params_class()
        except ValidationError:  # required parameters: nothing to merge into
            base = {}
    if isinstance(base, BaseModel):
        base = base.model_dump()
    try:
        return params_class.model_validate(merge_settings(base, overrides))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'settings'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise InputError(f"{owner}: invalid parameters: {problems}") from None


class CrossModalMethod(ABC):
    """Base class of a cross-modal hashing method (DDCMH, DCMH, the shallow baselines, plugins).

    A subclass declares ``Params`` (a :class:`MethodParams` subclass), ``tags``
    (:class:`MethodTags`) and ``display_name``, and implements :meth:`_fit`, :meth:`_encode`,
    :meth:`get_state` and :meth:`set_state`; it may add data-dependent bounds in
    :meth:`data_problems`.

    Parameters
    ----------
    params : Params, optional
        The whole parameter set; keyword arguments override its fields, nested tables merged.

    Attributes
    ----------
    params : Params
        The validated parameters.
    n_features_ : dict
        Width of each training view (``None`` for images), set by ``fit``.
    report_ : dict
        What ``fit`` measured (validation MAP, epochs, seconds per stage...).
    """

    Params: ClassVar[type[MethodParams]] = MethodParams
    tags: ClassVar[MethodTags] = MethodTags()
    display_name: ClassVar[str] = ""
    """Name in tables (``"DCMH"``); defaults to the class name."""
    memory_model: ClassVar[MemoryModel | None] = None
    """How the fit's peak memory grows with the training shape (:meth:`working_memory`); None: not
    estimated (a method whose largest arrays are a few batches, or not declared)."""

    report_: dict[str, Any]
    n_features_: dict[str, int | None]
    extras_: dict[str, Any]
    tuning_: Any
    """Set on a model chosen by :func:`ddcmh_core.tuning.tune`: every candidate's score."""

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.params = build_params(self.Params, params, overrides, owner=self.label())

    @classmethod
    def make_params(cls, **overrides: Any) -> Any:
        """The method's ``Params``: ``overrides`` merged into the defaults and validated.

        Raises
        ------
        InputError
            Naming the method and every invalid setting.
        """
        return build_params(cls.Params, None, overrides, owner=cls.label())

    @classmethod
    def resolved_settings(cls, params: MethodParams) -> dict[str, Any]:
        """Every setting a fit with ``params`` uses, defaults filled in, as JSON values.

        Run fingerprints hold these rather than the settings a user wrote, so that a state saved
        under one default is not taken for a run under another (a changed library default, a
        plugin upgrade). A method whose parameters hold options validated elsewhere (DDCMH's
        ``hasher_params``) resolves them here too.
        """
        return dict(params.model_dump(mode="json"))

    @classmethod
    def label(cls) -> str:
        """How tables and messages name the method."""
        return cls.display_name or cls.__name__

    @property
    def n_bits(self) -> int:
        """Code length."""
        return int(self.params.n_bits)

    # ------------------------------------------------------------------ checks
    @classmethod
    def working_memory(cls, params: MethodParams, data: DataShape) -> tuple[int, str] | None:
        """Estimated peak bytes of :meth:`fit` on data of this shape, and what dominates them.

        From :attr:`memory_model` (None when the class declares none); a subclass whose memory
        depends on its parameters (DDCMH: its Stage-1 hasher) overrides this. ``ddcmh-bench``
        refuses a plan whose cell would need more than the machine has free, before any work.

        Returns
        -------
        (int, str) or None
            Bytes, and words for the message (``39,920 x 39,920 matrices of ...``).
        """
        model = cls.memory_model
        return None if model is None else model.estimate(data.n_rows, data.n_features.values())

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """Every reason ``params`` cannot be fitted on data of this shape (empty when it can).

        The base checks labels for a supervised method and at least two rows; a subclass extends
        the list with its own bounds (e.g. a code length limited by the number of features).
        Called by :meth:`fit` and by ``ddcmh-bench`` for every cell before the first one trains.
        """
        problems = []
        if cls.tags.supervised and not data.has_labels:
            problems.append("labels: this method is supervised and needs training labels")
        if data.n_rows < 2:
            problems.append(f"data: expected at least 2 training pairs, got {data.n_rows}")
        for view, width in data.n_features.items():
            network = getattr(params, f"{view}_network", None)
            if width is None and getattr(network, "architecture", None) != "cnn":
                problems.append(
                    f"{view}: the view is image files, which need a CNN {view} network "
                    f'([model.{view}_network] architecture = "cnn")'
                    if network is not None
                    else f"{view}: the view is image files and this method reads feature vectors only"
                )
            size = getattr(network, "image_size", None)
            if network is not None and network.architecture == "cnn" and size is not None:
                from ..engine.backbones import backbone_info

                smallest = backbone_info(network.backbone).min_input_size
                if size < smallest:
                    problems.append(
                        f"{view}_network.image_size: {network.backbone} needs an input of at least "
                        f"{smallest} px, got {size}"
                    )
        return problems

    def check_fit_input(self, image: Any, text: Any, labels: Any) -> tuple[Any, Any, np.ndarray | None]:
        """Check paired rows, finite values and labels, then :meth:`data_problems`; before any work.

        Returns
        -------
        (image_source, text_source, labels)
            Batch sources of the two views and the {0,1} label matrix (``None`` without labels).

        Raises
        ------
        InputError
            Naming the method, the argument and what was wrong.
        """
        owner = self.label()
        sources = []
        for name, view in zip(VIEWS, (image, text), strict=True):
            check_values(view, owner=owner, argument=name)
            sources.append(self._source(name, view, training=True))
        n_rows = len(sources[0])
        if self.tags.needs_paired and len(sources[1]) != n_rows:
            raise InputError(
                f"{owner}: argument 'text': expected {n_rows} rows, one per image (paired training "
                f"items), got {len(sources[1])}"
            )
        label_matrix = None
        if labels is not None:
            label_matrix = check_labels(
                labels, owner=owner, n_samples=n_rows, supervised=self.tags.supervised
            )
        for name, source in zip(VIEWS, sources, strict=True):
            _check_rows_differ(source, owner=owner, argument=name)
        shape = DataShape(
            n_rows=n_rows,
            n_features={name: source.n_features for name, source in zip(VIEWS, sources, strict=True)},
            has_labels=label_matrix is not None,
        )
        problems = self.data_problems(self.params, shape)
        if problems:
            raise InputError(f"{owner}: cannot fit: " + "; ".join(problems))
        return sources[0], sources[1], label_matrix

    def _source(self, view: View, X: Any, *, training: bool = False) -> Any:
        """The batch source of ``X`` read by ``view``'s network; :class:`InputError` when it cannot be.

        Photos read for training (several epochs) go through the decoded-photo cache when the
        network's ``photo_cache`` is on; photos only encoded (one pass) never do.
        """
        from ..engine.sources import as_source

        try:
            return as_source(X, self.network_config(view), training=training)
        except ValueError as error:  # a 1-D array, image files for an MLP, ...
            raise InputError(f"{self.label()}: argument {view!r}: {error}") from None

    def network_config(self, view: View) -> Any:
        """The network settings of ``view`` (a deep method's ``NetworkConfig``), else None."""
        return getattr(self.params, f"{view}_network", None)

    # ------------------------------------------------------------------ training
    def fit(
        self: MethodT,
        image: Any,
        text: Any,
        labels: Any = None,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        progress: ProgressCallback | None = None,
    ) -> MethodT:
        """Learn both views' hash functions from paired training items.

        Parameters
        ----------
        image, text : ndarray, sparse matrix, dataset View or BatchSource
            The two views of the training pairs, one row per item.
        labels : array-like of shape (n, c), optional
            {0,1} labels or class ids; required by supervised methods.
        run_dir : path, optional
            Where a deep method keeps its checkpoints, for ``resume``.
        resume : bool
            Continue from the checkpoints in ``run_dir``.
        progress : callable, optional
            Receives progress lines.

        Returns
        -------
        self
        """
        image_source, text_source, label_matrix = self.check_fit_input(image, text, labels)
        self._fit(
            image_source,
            text_source,
            label_matrix,
            run_dir=Path(run_dir) if run_dir is not None else None,
            resume=resume,
            progress=progress,
        )
        self.n_features_ = {"image": image_source.n_features, "text": text_source.n_features}
        if not hasattr(self, "report_"):
            self.report_ = {}
        return self

    @abstractmethod
    def _fit(
        self,
        image: Any,
        text: Any,
        labels: np.ndarray | None,
        *,
        run_dir: Path | None,
        resume: bool,
        progress: ProgressCallback | None,
    ) -> None:
        """Fit on checked batch sources (see ``ddcmh_core.engine.sources``) and labels."""

    @staticmethod
    def as_matrix(source: Any) -> Any:
        """Every row of a batch source as a numpy array or scipy CSR matrix (for shallow methods)."""
        from ..engine.sources import rows_as_matrix

        return rows_as_matrix(source, np.arange(len(source)))

    # ------------------------------------------------------------------ encoding
    def _require_fitted(self) -> None:
        if not hasattr(self, "n_features_"):
            raise NotFittedError(f"{self.label()}: call fit (or load a model file) before encoding")

    def encode_bits(
        self, view: View, X: Any, *, batch_size: int = 1024, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Codes of ``X`` as a view of the method, ``uint8`` {0,1} of shape (n, n_bits).

        Parameters
        ----------
        view : {"image", "text"}
        X : array, sparse matrix, raw texts or image files
            Rows of the view, as in training.
        batch_size : int
            Rows per forward pass of a network (at most; photos are read in smaller batches).
        progress : callable, optional
            Receives progress lines (with an ETA) while a slow pass runs, where the method reports
            any: a method's :meth:`_encode` receives it when it declares a ``progress`` keyword
            (DDCMH and DCMH do); others encode silently.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        InputError
            For an unknown view, a row width other than in training or non-finite values.
        """
        self._require_fitted()
        if view not in VIEWS:
            raise InputError(f"{self.label()}: argument 'view': expected 'image' or 'text', got {view!r}")
        check_values(X, owner=self.label(), argument=view)
        source = self._source(view, X)
        expected = self.n_features_.get(view)
        if expected is not None and source.n_features != expected:
            raise InputError(
                f"{self.label()}: argument {view!r}: expected {expected} features per row (as in "
                f"training), got {source.n_features}"
            )
        if progress is None or not self.reports_encode_progress():
            return self._encode(view, source, batch_size=batch_size)
        encode_reporting: Callable[..., np.ndarray] = self._encode  # declares progress, checked above
        return encode_reporting(view, source, batch_size=batch_size, progress=progress)

    def encode(
        self, view: View, X: Any, *, batch_size: int = 1024, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Packed codes of ``X`` as ``view``: ``uint8`` of shape (n, ceil(n_bits / 8)).

        Bit ``j`` of a row is bit ``7 - j % 8`` of byte ``j // 8`` (``numpy.packbits`` order, as
        :func:`~ddcmh_core.evaluation.codes.pack_codes` and the Hamming index use). ``batch_size``
        and ``progress`` are :meth:`encode_bits`'s.
        """
        return pack_codes(self.encode_bits(view, X, batch_size=batch_size, progress=progress))

    def encode_image(
        self, image: Any, *, batch_size: int = 1024, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Codes of images, ``uint8`` {0,1} of shape (n, n_bits) (options as :meth:`encode_bits`)."""
        return self.encode_bits("image", image, batch_size=batch_size, progress=progress)

    def encode_text(
        self, text: Any, *, batch_size: int = 1024, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Codes of texts, ``uint8`` {0,1} of shape (n, n_bits) (options as :meth:`encode_bits`)."""
        return self.encode_bits("text", text, batch_size=batch_size, progress=progress)

    @classmethod
    def reports_encode_progress(cls) -> bool:
        """Whether :meth:`_encode` declares a ``progress`` keyword, and so gets the caller's callback.

        Methods written before encoding had progress keep working: like a pluggy hook
        implementation, ``_encode`` is passed only the arguments it names.
        """
        return _declares_progress(cls._encode)

    @abstractmethod
    def _encode(self, view: View, source: Any, *, batch_size: int) -> np.ndarray:
        """{0,1} codes of a checked batch source of ``view``.

        A method whose passes can be slow (a network over photos) may add a keyword
        ``progress: ProgressCallback | None = None`` and send it lines; :meth:`encode_bits` then
        passes the caller's callback on.
        """

    # ------------------------------------------------------------------ state and files
    @abstractmethod
    def get_state(self) -> MethodState:
        """What encoding needs, as JSON metadata and named arrays (see :class:`MethodState`)."""

    @abstractmethod
    def set_state(self, state: MethodState, *, device: str = "auto") -> None:
        """Take back a state given by :meth:`get_state` (on a freshly built instance)."""

    def save(self, path: str | os.PathLike[str], **extras: Any) -> Path:
        """Write the fitted method to one HDF5 model file (:mod:`ddcmh_core.model_file`)."""
        self._require_fitted()
        return save_model(self, path, **extras)

    @classmethod
    def load(cls: type[MethodT], path: str | os.PathLike[str], *, device: str = "auto") -> MethodT:
        """Load a model file written by :meth:`save`; no pickled code is executed.

        Raises
        ------
        ModelFileError
            If the file holds another method than ``cls`` (or is not a model file).
        """
        model = load_model(path, device=device)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path}: holds a {type(model).label()} model, not {cls.label()}")
        return model

    def __repr__(self) -> str:
        defaults = self.Params().model_dump()
        changed = {
            key: value for key, value in self.params.model_dump().items() if defaults.get(key) != value
        }
        shown = ", ".join(f"{key}={value!r}" for key, value in changed.items())
        return f"{type(self).__name__}({shown})"


@functools.cache
def _declares_progress(encode: Callable[..., Any]) -> bool:
    """Whether an ``_encode`` implementation names a keyword parameter ``progress``."""
    parameter = inspect.signature(encode).parameters.get("progress")
    return parameter is not None and parameter.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def _check_rows_differ(source: Any, *, owner: str, argument: str, block: int = 256) -> None:
    """Refuse a training view whose rows are all equal (vector views; image files are not read)."""
    if not hasattr(source, "rows") or len(source) < 2:
        return
    n_rows = len(source)
    blocks = (source.rows(np.arange(begin, min(begin + block, n_rows))) for begin in range(0, n_rows, block))
    check_not_constant(blocks, owner=owner, argument=argument)


__all__ = [
    "CrossModalMethod",
    "DataShape",
    "MethodParams",
    "MethodState",
    "MethodTags",
    "build_params",
    "merge_settings",
]
