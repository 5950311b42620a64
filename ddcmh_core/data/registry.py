"""Dataset registry: the ``ddcmh_datasets`` hook, :class:`DatasetSpec` and :func:`load_dataset`.

Datasets reach ddcmh the same way hashers do: a plugin module exposes a hook implementation,
declared as an entry point of the ``ddcmh`` group::

    from ddcmh_core import hookimpl
    from ddcmh_core.data import DatasetSpec

    @hookimpl
    def ddcmh_datasets():
        yield DatasetSpec(name="my-set", loader="my_pkg.data:load_my_set", summary="...")

The built-in datasets are registered by :mod:`ddcmh_core.data.builtin` through the very same path.
A loader is called as ``loader(data_dir, **options)`` and returns a
:class:`~ddcmh_core.data.dataset.CrossModalDataset`; ``data_dir`` is a :class:`pathlib.Path` or
None. A loader that cannot find its files raises
:class:`~ddcmh_core.data.errors.MissingFilesError`; :func:`load_dataset` then adds which files the
dataset needs and where its official sources are.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import PluginError, UnknownNameError
from ..plugins import (
    IMPORT_PATH_PATTERN,
    NamedRecord,
    NameRegistry,
    PluginSet,
    RegisteredName,
    collect_records,
    import_target,
    plugin_set,
)
from .dataset import CrossModalDataset
from .errors import DatasetError, MissingFilesError

DEFAULT_DATASET = "uci-mfeat"
"""The dataset ``ddcmh-bench`` uses when none is named (works on a fresh machine)."""
DATA_DIR_ENV = "DDCMH_DATA_DIR"
"""Environment variable naming a folder that holds one sub-folder per dataset."""


class DatasetFile(BaseModel):
    """A file (or one of several alternative files) that a dataset needs.

    Parameters
    ----------
    name : str
        File name or glob pattern (case-insensitive), e.g. ``"mirflickr25k-yall.mat"``.
    description : str
        What it holds, for the "files needed" message.
    alternatives : tuple of str
        Other names that provide the same content (other layouts of the field).
    optional : bool
        Not needed for loading (e.g. image files when features are given).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    alternatives: tuple[str, ...] = ()
    optional: bool = False

    def present_in(self, folder: Path) -> bool:
        """Whether ``folder`` holds the file or one of its alternatives."""
        if not folder.is_dir():
            return False
        names = [p.name.lower() for p in folder.iterdir()]
        return any(fnmatch.filter(names, pattern.lower()) for pattern in (self.name, *self.alternatives))


class DatasetSpec(NamedRecord):
    """A validated, frozen record describing one dataset offered by a plugin.

    Parameters
    ----------
    name : str
        Lower-case kebab name users type (``mirflickr25k``, ``nus-wide``).
    loader : callable or str
        ``loader(data_dir, **options) -> CrossModalDataset``, or its import path
        ``"package.module:function"``, imported only when the dataset is loaded (lazy loading).
    summary : str
        One line for listings.
    files : tuple of DatasetFile
        The files the dataset needs (for the "files needed" message and for finding the folder).
    sources : tuple of str
        Where to get the files (official pages first).
    aliases : tuple of str
        Other names for the same dataset.
    defaults : dict
        Loader options for this name (e.g. ``{"concepts": 10}`` for ``nus-wide-tc10``).
    folders : tuple of str
        Usual names of the dataset's folder inside a data root (``--data-dir ../shared/data``
        finds ``../shared/data/mirflickr25k``; ``$DDCMH_DATA_DIR`` is such a root).
    needs_files : bool
        False for datasets that fetch or embed their data (``uci-mfeat``).
    citation : str
        Reference to cite.
    """

    loader: Any
    summary: str = ""
    files: tuple[DatasetFile, ...] = ()
    sources: tuple[str, ...] = ()
    defaults: dict[str, Any] = Field(default_factory=dict)
    folders: tuple[str, ...] = ()
    needs_files: bool = True
    citation: str = ""

    @field_validator("loader")
    @classmethod
    def _check_loader(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not IMPORT_PATH_PATTERN.match(value):
                raise ValueError(f"loader import path {value!r} must look like 'package.module:function'")
            return value
        if callable(value):
            return value
        raise ValueError(f"loader must be a callable or an import path string, got {value!r}")

    def load_loader(self) -> Callable[..., CrossModalDataset]:
        """The loader function, importing it first when it was given as an import path.

        Raises
        ------
        PluginError
            If the import path cannot be imported or does not name a callable.
        """
        if not isinstance(self.loader, str):
            return self.loader
        target = import_target(self.loader, what=f"dataset {self.name!r}")
        if not callable(target):
            raise PluginError(f"dataset {self.name!r}: {self.loader!r} is not callable")
        return target

    def files_present(self, folder: Path) -> bool:
        """Whether ``folder`` holds every non-optional file (False when the spec lists none)."""
        required = [f for f in self.files if not f.optional]
        return bool(required) and all(f.present_in(folder) for f in required)

    def resolve_data_dir(self, data_dir: str | Path | None) -> Path | None:
        """The folder to give the loader.

        ``data_dir`` (else ``$DDCMH_DATA_DIR``) is used as is, unless it does not hold the files
        itself but has a sub-folder named as in :attr:`folders`, which is then used.
        """
        from_env = data_dir is None
        if from_env:
            if not os.environ.get(DATA_DIR_ENV):
                return None
            data_dir = os.environ[DATA_DIR_ENV]
        assert data_dir is not None
        root = Path(data_dir).expanduser()
        if root.is_dir() and not self.files_present(root):
            for folder in self.folders:
                if (root / folder).is_dir():
                    return root / folder
        if from_env and not self.needs_files:
            return None  # a data root without this dataset's folder: let it fetch its data
        return root

    def requirements(self, data_dir: str | Path | None = None) -> str:
        """Human-readable list of the files needed (marked found/missing in ``data_dir``) and sources."""
        folder = Path(data_dir).expanduser() if data_dir is not None else None
        lines = [f"Dataset {self.name!r}" + (f" ({self.summary})" if self.summary else "") + " needs:"]
        for item in self.files:
            names = " or ".join((item.name, *item.alternatives))
            state = ""
            if folder is not None:
                state = (
                    "[found]   "
                    if item.present_in(folder)
                    else ("[optional] " if item.optional else "[missing] ")
                )
            detail = f" — {item.description}" if item.description else ""
            lines.append(f"  {state}{names}{detail}")
        if not self.files:
            lines.append("  no files (the data is fetched or embedded)")
        if self.sources:
            lines.append("Official sources:")
            lines.extend(f"  - {source}" for source in self.sources)
        where = f"'{self.folders[0]}/' " if self.folders else ""
        lines.append(
            f"Give the folder with --data-dir PATH (data_dir=... in Python), or set {DATA_DIR_ENV} "
            f"to a folder that contains {where}with these files."
        )
        return "\n".join(lines)


RegisteredDataset = RegisteredName[DatasetSpec]


class DatasetRegistry(NameRegistry[DatasetSpec]):
    """All datasets offered by the installed plugins (the same naming rules as hashers).

    Duplicate names are an error naming every provider; an unknown name lists the installed
    datasets (and plugins that failed to load). Names are matched case-insensitively with
    underscores read as hyphens (``NUS_WIDE`` is ``nus-wide``).
    """

    noun = "dataset"

    @classmethod
    def from_plugin_set(cls, plugins: PluginSet) -> DatasetRegistry:
        """Collect the ``ddcmh_datasets`` records of a loaded :class:`~ddcmh_core.plugins.PluginSet`."""
        records = collect_records(plugins, "ddcmh_datasets", DatasetSpec, lambda record: record.name)
        return cls(records, plugins.plugins)

    @staticmethod
    def normalize(name: str) -> str:
        """Lower-case, underscores to hyphens (``NUS_WIDE`` -> ``nus-wide``)."""
        return name.strip().lower().replace("_", "-")

    def describe_target(self, spec: DatasetSpec) -> str:
        """The loader a record points to."""
        return f"loader {_loader_name(spec.loader)}"

    def load(self, name: str, *, data_dir: str | Path | None = None, **options: Any) -> CrossModalDataset:
        """Load the dataset called ``name`` (see :func:`load_dataset`)."""
        spec = self.get(name).spec
        loader = spec.load_loader()
        folder = spec.resolve_data_dir(data_dir)
        merged = {**spec.defaults, **options}
        _check_options(spec, loader, merged)
        try:
            return loader(folder, **merged)
        except MissingFilesError as exc:
            raise MissingFilesError(
                f"{exc}\n{spec.requirements(folder)}", dataset=spec.name, searched=folder, missing=exc.missing
            ) from exc
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc):
                raise DatasetError(f"dataset {spec.name!r}: {exc}") from exc
            raise


def _loader_name(loader: Any) -> str:
    return loader if isinstance(loader, str) else str(getattr(loader, "__qualname__", loader))


def _check_options(spec: DatasetSpec, loader: Callable[..., Any], options: dict[str, Any]) -> None:
    try:
        parameters = inspect.signature(loader).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(
            f"dataset {spec.name!r}: unknown option(s) {', '.join(unknown)}; "
            f"options: {', '.join(accepted) or 'none'}"
        )


_registry_lock = threading.Lock()
_registry_cache: list[tuple[PluginSet, DatasetRegistry]] = []


def dataset_registry(*, refresh: bool = False) -> DatasetRegistry:
    """The registry of the datasets of all installed plugins (built-ins included).

    Parameters
    ----------
    refresh : bool, default False
        Reload the entry points first.
    """
    plugins = plugin_set(refresh=refresh)
    with _registry_lock:
        if not _registry_cache or _registry_cache[0][0] is not plugins:
            _registry_cache.clear()
            _registry_cache.append((plugins, DatasetRegistry.from_plugin_set(plugins)))
        return _registry_cache[0][1]


def load_dataset(
    name_or_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    registry: DatasetRegistry | None = None,
    **options: Any,
) -> CrossModalDataset:
    """Load a registered dataset by name, or users' own data from a path.

    Parameters
    ----------
    name_or_path : str or path
        A registered name or alias (``uci-mfeat``, ``wikipedia``, ``mirflickr25k``, ``nus-wide``,
        ``iapr-tc12``, ``ms-coco``, ``web-news``, or one a plugin adds), or the path of an
        array file (``.h5``/``.mat``/``.npz``) or a folder. A registered name wins over a file of
        the same name; write ``./name`` for the file.
    data_dir : path, optional
        Where a named dataset's files are: its folder, or a data root holding it (e.g.
        ``../shared/data``). Default: ``$DDCMH_DATA_DIR``.
    registry : DatasetRegistry, optional
        Look names up here instead of :func:`dataset_registry` (tests, custom plugin sets).
    **options
        Passed to the loader (``seed``, ``image``, ``drop_unlabelled``, ...).

    Returns
    -------
    CrossModalDataset
        With the dataset's standard split (seeded; ``seed=`` changes the draw).

    Raises
    ------
    MissingFilesError
        A named dataset's files are missing; the message lists them and the official sources.
    UnknownNameError
        Neither a registered name nor an existing path; the message lists the installed datasets.
    DatasetError
        Any problem with the files' content.
    """
    text = str(name_or_path)
    registry = registry if registry is not None else dataset_registry()
    if not isinstance(name_or_path, Path) and text in registry:
        return registry.load(text, data_dir=data_dir, **options)
    path = Path(text).expanduser()
    if path.exists():
        from .loaders import load_generic

        return load_generic(path, **options)
    looks_like_path = isinstance(name_or_path, Path) or os.sep in text or "/" in text or path.suffix != ""
    if looks_like_path:
        raise MissingFilesError(f"{path}: no such file or folder", searched=path.parent, missing=[path.name])
    try:
        registry.get(text)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{exc} (and no file or folder named {text!r} exists)") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def describe_datasets(registry: DatasetRegistry | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per dataset, for ``--list-datasets``."""
    registry = registry if registry is not None else dataset_registry()
    return [
        {
            "name": entry.spec.name,
            "aliases": list(entry.spec.aliases),
            "summary": entry.spec.summary,
            "needs_files": entry.spec.needs_files,
            "files": [f.name for f in entry.spec.files],
            "sources": list(entry.spec.sources),
            "provider": entry.plugin.provider,
            "default": entry.spec.name == DEFAULT_DATASET,
        }
        for entry in registry.entries()
    ]
