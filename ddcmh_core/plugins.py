"""Plugin discovery: entry points, isolated loading and the hasher registry.

Nothing is imported at ``import ddcmh_core`` time. The first call to :func:`plugin_set` (for
example through :func:`hasher_registry`) reads the ``ddcmh`` entry-point group, imports each
entry point inside its own ``try``/``except`` and records what happened, so that one broken plugin
is reported with its distribution and error while everything else keeps working.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import hookspecs
from .errors import DuplicateNameError, PluginError, UnknownNameError
from .hasher import Hasher

if TYPE_CHECKING:
    from .methods.base import CrossModalMethod

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
IMPORT_PATH_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ClassT = TypeVar("ClassT")


def check_kebab_name(name: str) -> str:
    """Return ``name`` if it is lower-case kebab (``itq``, ``cca-itq``), else raise ValueError."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"name {name!r} must be lower-case kebab, like 'itq' or 'cca-itq'")
    return name


def import_target(path: str, *, what: str) -> Any:
    """Import ``"package.module:attribute.path"`` lazily, for plugin records.

    Raises
    ------
    PluginError
        Naming ``what`` (e.g. ``"hasher 'itq'"``), the path and the import error.
    """
    module_name, _, attribute_path = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute_path.split("."):
            target = getattr(target, part)
    except Exception as exc:
        raise PluginError(f"{what}: cannot import {path!r}: {type(exc).__name__}: {exc}") from exc
    return target


class NamedRecord(BaseModel):
    """A frozen plugin record with a lower-case kebab ``name`` and ``aliases`` (validated)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    aliases: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_kebab_name(value)

    @field_validator("aliases")
    @classmethod
    def _check_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for alias in value:
            check_kebab_name(alias)
        return value


class HasherSpec(NamedRecord):
    """A validated, frozen record describing one hasher offered by a plugin.

    Parameters
    ----------
    name : str
        Lower-case kebab name users type (``itq``).
    hasher : type[Hasher] or str
        The :class:`~ddcmh_core.Hasher` subclass, or its import path ``"package.module:Class"``,
        which is imported only when the hasher is used (lazy loading).
    summary : str
        One line for listings.
    aliases : tuple of str
        Other names for the same hasher.
    defaults : dict
        Hyper-parameter values that differ from the class defaults for this name (for example
        ``cca-itq`` could be ITQ with ``projection="cca"``). They are validated by the hasher's
        ``Params`` when the hasher is built.
    """

    hasher: Any
    summary: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hasher")
    @classmethod
    def _check_hasher(cls, value: Any) -> Any:
        return check_class_or_path(value, Hasher, what="hasher")

    @property
    def target(self) -> str:
        """The hasher's import path, ``"package.module:Class"``."""
        return class_path(self.hasher)

    def load(self) -> type[Hasher]:
        """Return the hasher class, importing it first when it was given as an import path.

        Raises
        ------
        PluginError
            If the import path cannot be imported or does not name a Hasher subclass.
        """
        return load_class(self.hasher, Hasher, what=f"hasher {self.name!r}")


class MethodSpec(NamedRecord):
    """A validated, frozen record describing one cross-modal method offered by a plugin.

    Parameters
    ----------
    name : str
        Lower-case kebab name users type (``dcmh``, ``seph``).
    method : type[CrossModalMethod] or str
        The :class:`~ddcmh_core.methods.base.CrossModalMethod` subclass, or its import path
        ``"package.module:Class"``, imported only when the method is used.
    summary : str
        One line for listings.
    aliases : tuple of str
        Other names for the same method.
    defaults : dict
        Parameter values that differ from the class defaults for this name, validated by the
        method's ``Params`` when it is built.
    """

    method: Any
    summary: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: Any) -> Any:
        from .methods.base import CrossModalMethod

        return check_class_or_path(value, CrossModalMethod, what="method")

    @property
    def target(self) -> str:
        """The method's import path, ``"package.module:Class"``."""
        return class_path(self.method)

    def load(self) -> type[CrossModalMethod]:
        """Return the method class, importing it first when it was given as an import path.

        Raises
        ------
        PluginError
            If the import path cannot be imported or does not name a CrossModalMethod subclass.
        """
        from .methods.base import CrossModalMethod

        return load_class(self.method, CrossModalMethod, what=f"method {self.name!r}")  # type: ignore[type-abstract]


def check_class_or_path(value: Any, base: type, *, what: str) -> Any:
    """``value`` if it is a subclass of ``base`` or an import path string, else ValueError."""
    if isinstance(value, str):
        if not IMPORT_PATH_PATTERN.match(value):
            raise ValueError(f"{what} import path {value!r} must look like 'package.module:ClassName'")
        return value
    if isinstance(value, type) and issubclass(value, base):
        return value
    raise ValueError(
        f"{what} must be a {base.__module__.split('.')[0]}.{base.__name__} subclass or an import path "
        f"string, got {value!r}"
    )


def class_path(value: Any) -> str:
    """The import path ``"package.module:Class"`` of a class or of an import path string."""
    if isinstance(value, str):
        return value
    return f"{value.__module__}:{value.__qualname__}"


def load_class(value: Any, base: type[ClassT], *, what: str) -> type[ClassT]:
    """The class ``value`` names (importing an import path first), checked to subclass ``base``.

    Raises
    ------
    PluginError
        Naming ``what`` when the import fails or the target is not a subclass of ``base``.
    """
    if not isinstance(value, str):
        return value
    target = import_target(value, what=what)
    if not (isinstance(target, type) and issubclass(target, base)):
        raise PluginError(f"{what}: {value!r} is not a {base.__name__} subclass")
    return target


@dataclass
class PluginInfo:
    """What is known about one entry point of the ``ddcmh`` group.

    Attributes
    ----------
    name : str
        The entry point's name.
    value : str
        The entry point's target (``"package.module"``).
    distribution : str
        The distribution that declares it (``"ddcmh"`` for the built-ins).
    version : str
        That distribution's version.
    status : str
        ``"loaded"`` or ``"failed"``.
    error : str
        One-line error for a failed plugin (empty otherwise).
    details : str
        The traceback of the failure, for ``--list-plugins --json``.
    provides : dict
        Names provided per hook, e.g. ``{"ddcmh_hashers": ["itq", ...]}``.
    """

    name: str
    value: str
    distribution: str
    version: str
    status: str = "loaded"
    error: str = ""
    details: str = ""
    provides: dict[str, list[str]] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        """``"distribution version"``, how listings and errors name a provider."""
        return f"{self.distribution} {self.version}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "entry_point": self.name,
            "value": self.value,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "provides": self.provides,
        }


@dataclass
class PluginSet:
    """The loaded plugins: a pluggy manager plus one :class:`PluginInfo` per entry point."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    _info_by_object: dict[int, PluginInfo] = field(default_factory=dict)

    def info_for(self, plugin_object: object) -> PluginInfo | None:
        """The :class:`PluginInfo` of a registered plugin object."""
        return self._info_by_object.get(id(plugin_object))


RecordT = TypeVar("RecordT")


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def load_entry_points(entry_points: Iterable[metadata.EntryPoint] | None = None) -> PluginSet:
    """Import every entry point of the ``ddcmh`` group, each in isolation.

    Parameters
    ----------
    entry_points : iterable of importlib.metadata.EntryPoint, optional
        The entry points to load; by default those of every installed distribution.

    Returns
    -------
    PluginSet
        A pluggy manager with each importable plugin registered, and a record for every entry
        point, including those that failed to import.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if entry_points is None:
        entry_points = metadata.entry_points(group=hookspecs.PROJECT_NAME)
    plugin_set = PluginSet(manager=manager, plugins=[])
    seen: set[tuple[str, str]] = set()
    for entry_point in entry_points:
        distribution = getattr(entry_point, "dist", None)
        dist_name = distribution.metadata["Name"] if distribution is not None else "unknown"
        dist_version = distribution.version if distribution is not None else "unknown"
        key = (dist_name, entry_point.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        info = PluginInfo(
            name=entry_point.name,
            value=entry_point.value,
            distribution=dist_name,
            version=dist_version,
        )
        plugin_set.plugins.append(info)
        try:
            plugin_object = entry_point.load()
            manager.register(plugin_object, name=f"{dist_name}:{entry_point.name}")
        except Exception as exc:
            info.status = "failed"
            info.error = _one_line(exc)
            info.details = traceback.format_exc()
            continue
        plugin_set._info_by_object[id(plugin_object)] = info
    return plugin_set


def collect_records(
    plugin_set: PluginSet,
    hook_name: str,
    record_type: type[RecordT],
    name_of: Callable[[RecordT], str],
) -> list[tuple[RecordT, PluginInfo]]:
    """Call one hook on every plugin, each call isolated, and validate what it yields.

    A plugin whose hook raises, or yields something other than ``record_type``, is marked
    ``failed`` with the error; the records of the other plugins are returned.

    Parameters
    ----------
    plugin_set : PluginSet
        The loaded plugins.
    hook_name : str
        The hook to call (``"ddcmh_hashers"``).
    record_type : type
        The type every yielded record must have.
    name_of : callable
        Gives a record's name, recorded in ``PluginInfo.provides``.

    Returns
    -------
    list of (record, PluginInfo)
    """
    collected: list[tuple[RecordT, PluginInfo]] = []
    hook_caller = getattr(plugin_set.manager.hook, hook_name)
    for implementation in hook_caller.get_hookimpls():
        info = plugin_set.info_for(implementation.plugin) or PluginInfo(
            name=implementation.plugin_name,
            value=repr(implementation.plugin),
            distribution="unknown",
            version="unknown",
        )
        try:
            records = list(implementation.function() or ())
            for record in records:
                if not isinstance(record, record_type):
                    raise PluginError(
                        f"hook {hook_name} yielded {type(record).__name__}, "
                        f"expected {record_type.__name__}"
                    )
        except Exception as exc:
            info.status = "failed"
            info.error = f"{hook_name}: {_one_line(exc)}"
            info.details = traceback.format_exc()
            continue
        info.provides[hook_name] = [name_of(record) for record in records]
        collected.extend((record, info) for record in records)
    return collected


_plugin_set: PluginSet | None = None
_lock = threading.Lock()


def plugin_set(*, refresh: bool = False) -> PluginSet:
    """The process-wide :class:`PluginSet`, loaded on first use.

    Parameters
    ----------
    refresh : bool, default False
        Forget what was loaded and read the entry points again (after installing a plugin, or in
        tests that change ``sys.path``).
    """
    global _plugin_set
    with _lock:
        if _plugin_set is None or refresh:
            _plugin_set = load_entry_points()
            _registry_cache.clear()
        return _plugin_set


SpecT = TypeVar("SpecT")


@dataclass(frozen=True)
class RegisteredName(Generic[SpecT]):
    """One name, the record that provides it and the plugin it comes from."""

    spec: SpecT
    plugin: PluginInfo


RegisteredHasher = RegisteredName["HasherSpec"]


class NameRegistry(Generic[SpecT]):
    """Names claimed by the records of the installed plugins (hashers, datasets).

    Every record claims its ``name`` and its ``aliases``. A name claimed by two records is a
    conflict: looking it up is an error naming every provider, and the other names keep working.

    Parameters
    ----------
    records : sequence of (record, PluginInfo)
        What the plugins yielded.
    plugins : sequence of PluginInfo
        Every entry point, for listings of failures.
    """

    noun = "name"
    """What the names denote, for messages (``"hasher"``)."""

    def __init__(
        self,
        records: Sequence[tuple[SpecT, PluginInfo]],
        plugins: Sequence[PluginInfo] = (),
    ) -> None:
        self.plugins = list(plugins)
        claims: dict[str, list[RegisteredName[SpecT]]] = {}
        for spec, info in records:
            for claimed in (spec.name, *spec.aliases):  # type: ignore[attr-defined]
                claims.setdefault(self.normalize(claimed), []).append(RegisteredName(spec, info))
        self._entries = {name: found[0] for name, found in claims.items() if len(found) == 1}
        self.conflicts = {name: found for name, found in claims.items() if len(found) > 1}

    @staticmethod
    def normalize(name: str) -> str:
        """The lookup key of a name (lower case, surrounding blanks removed)."""
        return name.strip().lower()

    def describe_target(self, spec: SpecT) -> str:
        """What a record points to, for conflict messages."""
        return repr(spec)

    def names(self) -> list[str]:
        """Primary names (no aliases, no conflicting names), sorted."""
        return sorted(
            name for name, entry in self._entries.items() if entry.spec.name == name  # type: ignore[attr-defined]
        )

    def entries(self) -> list[RegisteredName[SpecT]]:
        """The usable records, one per primary name, sorted by name."""
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.normalize(name) in self._entries

    def get(self, name: str) -> RegisteredName[SpecT]:
        """Look a record up by name or alias.

        Raises
        ------
        DuplicateNameError
            If several plugins claim ``name``; the message names every provider.
        UnknownNameError
            If no plugin provides ``name``; the message lists the installed names and the
            plugins that failed to load.
        """
        key = self.normalize(name)
        if key in self.conflicts:
            providers = "; ".join(
                f"{entry.plugin.provider} (entry point {entry.plugin.name!r}, "
                f"{self.describe_target(entry.spec)})"
                for entry in self.conflicts[key]
            )
            raise DuplicateNameError(
                f"{self.noun} name {key!r} is claimed by {len(self.conflicts[key])} plugins: {providers}. "
                "Uninstall one of them."
            )
        if key not in self._entries:
            installed = ", ".join(self.names()) or "none"
            failed = [p for p in self.plugins if p.status == "failed"]
            hint = ""
            if failed:
                hint = (
                    " Plugins that failed to load: "
                    + "; ".join(f"{p.provider} ({p.error})" for p in failed)
                    + "."
                )
            raise UnknownNameError(
                f"unknown {self.noun} {name!r}. Installed {self.noun}s: {installed}.{hint}"
            )
        return self._entries[key]


class HasherRegistry(NameRegistry[HasherSpec]):
    """All hashers offered by the installed plugins.

    Use :func:`hasher_registry` to get the registry of the installed plugins.
    """

    noun = "hasher"

    def describe_target(self, spec: HasherSpec) -> str:
        """The hasher class a record points to."""
        return f"hasher {spec.target}"

    def create(self, name: str, **params: Any) -> Hasher:
        """Build the hasher called ``name``, with the record's defaults overridden by ``params``.

        ``kernel_lift="rbf"`` (and ``lift_anchors``) wrap it in
        :class:`~ddcmh_core.kernels.KernelLifted` (:func:`~ddcmh_core.kernels.lift_options`).
        """
        from .kernels import lift_options

        entry = self.get(name)
        hasher_class = entry.spec.load()
        merged, wrap = lift_options({**entry.spec.defaults, **params}, owner=entry.spec.name)
        hasher = hasher_class(**merged)
        hasher._registry_name = entry.spec.name
        return wrap(hasher)

    def name_for_class(self, hasher_class: type) -> RegisteredHasher | None:
        """The registered entry whose class is ``hasher_class`` and that has no defaults."""
        for entry in self.entries():
            if entry.spec.defaults:
                continue
            if entry.spec.target == f"{hasher_class.__module__}:{hasher_class.__qualname__}":
                return entry
        return None


_registry_cache: dict[str, Any] = {}


def hasher_registry(*, refresh: bool = False) -> HasherRegistry:
    """The registry of the hashers of all installed plugins (built-ins included).

    Parameters
    ----------
    refresh : bool, default False
        Reload the entry points first.
    """
    plugins = plugin_set(refresh=refresh)
    with _lock:
        if "hashers" not in _registry_cache:
            records = collect_records(plugins, "ddcmh_hashers", HasherSpec, lambda r: r.name)
            _registry_cache["hashers"] = HasherRegistry(records, plugins.plugins)
        return _registry_cache["hashers"]


def get_hasher(name: str, **params: Any) -> Hasher:
    """Build an installed hasher by name: ``get_hasher("itq", n_bits=64, seed=0)``.

    Raises
    ------
    UnknownNameError, DuplicateNameError
        See :meth:`HasherRegistry.get`.
    pydantic.ValidationError
        If a hyper-parameter is unknown or has a wrong value.
    """
    return hasher_registry().create(name, **params)


RegisteredMethod = RegisteredName["MethodSpec"]


class MethodRegistry(NameRegistry[MethodSpec]):
    """All cross-modal methods offered by the installed plugins (DDCMH and DCMH included).

    Use :func:`method_registry` to get the registry of the installed plugins.
    """

    noun = "method"

    def describe_target(self, spec: MethodSpec) -> str:
        """The method class a record points to."""
        return f"method {spec.target}"

    def create(self, name: str, **params: Any) -> CrossModalMethod:
        """Build the method called ``name``, with the record's defaults overridden by ``params``."""
        entry = self.get(name)
        return entry.spec.load()(**{**entry.spec.defaults, **params})

    def name_for_class(self, method_class: type) -> RegisteredMethod | None:
        """The registered entry whose class is ``method_class`` and that has no defaults."""
        for entry in self.entries():
            if not entry.spec.defaults and entry.spec.target == class_path(method_class):
                return entry
        return None


def method_registry(*, refresh: bool = False) -> MethodRegistry:
    """The registry of the cross-modal methods of all installed plugins (built-ins included).

    Parameters
    ----------
    refresh : bool, default False
        Reload the entry points first.
    """
    plugins = plugin_set(refresh=refresh)
    with _lock:
        if "methods" not in _registry_cache:
            records = collect_records(plugins, "ddcmh_methods", MethodSpec, lambda r: r.name)
            _registry_cache["methods"] = MethodRegistry(records, plugins.plugins)
        return _registry_cache["methods"]


def get_method(name: str, **params: Any) -> CrossModalMethod:
    """Build an installed cross-modal method by name: ``get_method("dcmh", n_bits=64)``.

    Raises
    ------
    UnknownNameError, DuplicateNameError
        See :meth:`MethodRegistry.get`.
    InputError
        If a parameter is unknown or has a wrong value.
    """
    return method_registry().create(name, **params)
