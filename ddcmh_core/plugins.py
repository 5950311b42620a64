"""Plugin discovery: entry points, isolated loading and the hasher registry.

Nothing is imported at ``import ddcmh_core`` time. The first call to :func:`plugin_set` (for
example through :func:`hasher_registry`) reads the ``ddcmh`` entry-point group the way pluggy's
``PluginManager.load_setuptools_entrypoints`` does, but one entry point at a time, each inside its
own ``try``/``except``: importing it, registering it with pluggy (which checks every hook
implementation's signature against its hook specification) and calling its hooks. What happened is
recorded in a :class:`PluginInfo` with the distribution's name and version, so that one broken
plugin is reported while every other plugin keeps working.

Hooks are called through pluggy's hook relay: :func:`call_hook` calls
``manager.subset_hook_caller(hook, others)``, the relay of ``manager.hook.<hook>`` with the other
plugins left out (the way pytest calls a hook for one conftest), so that every result is known to
come from one plugin and a plugin that raises does not hide the results of the others.
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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    problems : list of str
        What is wrong with a loaded plugin's records (a name it yields twice). The names
        concerned are unusable; the plugin's other names work.
    plugin_name : str
        The name pluggy registered the plugin under (``"distribution:entry point"``), empty
        when it was not registered.
    """

    name: str
    value: str
    distribution: str
    version: str
    status: str = "loaded"
    error: str = ""
    details: str = ""
    provides: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    plugin_name: str = ""

    @property
    def provider(self) -> str:
        """``"distribution version"``, how listings and errors name a provider."""
        return f"{self.distribution} {self.version}"

    def describe(self) -> str:
        """``"distribution version (entry point 'name')"``, how error messages name a plugin."""
        return f"{self.provider} (entry point {self.name!r})"

    def mark_failed(self, error: BaseException, during: str = "") -> None:
        """Record that the plugin failed, with a one-line message and the traceback."""
        self.status = "failed"
        self.error = f"{during}: {_one_line(error)}" if during else _one_line(error)
        self.details = "".join(traceback.format_exception(error))

    def add_problem(self, message: str) -> None:
        """Record a problem with the plugin's records (once, however often registries are built)."""
        if message not in self.problems:
            self.problems.append(message)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "entry_point": self.name,
            "value": self.value,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "problems": list(self.problems),
            "provides": self.provides,
        }


@dataclass
class PluginSet:
    """The loaded plugins: a pluggy manager plus one :class:`PluginInfo` per entry point."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]

    def info_for(self, plugin_object: object) -> PluginInfo | None:
        """The :class:`PluginInfo` of a registered plugin object."""
        name = self.manager.get_name(plugin_object)
        return next((info for info in self.plugins if name and info.plugin_name == name), None)

    def register(self, plugin_object: object, info: PluginInfo) -> bool:
        """Register one plugin object with pluggy, in isolation, and record it.

        pluggy checks each hook implementation against its specification (a wrong signature is a
        ``PluginValidationError``) before it changes anything; an implementation of a hook that
        ddcmh does not specify (a misspelt name) is refused here too. A refused plugin is marked
        ``failed`` in ``info`` and leaves nothing registered.

        Parameters
        ----------
        plugin_object : object
            The module (or any object) holding ``@hookimpl`` functions.
        info : PluginInfo
            Its record, appended to :attr:`plugins`.

        Returns
        -------
        bool
            Whether the plugin was registered.
        """
        self.plugins.append(info)
        name = f"{info.distribution}:{info.name}"
        try:
            self.manager.register(plugin_object, name=name)
            unknown = [
                caller.name
                for caller in self.manager.get_hookcallers(plugin_object) or []
                if not caller.has_spec()
            ]
            if unknown:
                self.manager.unregister(plugin_object)
                known = ", ".join(sorted(name for name in dir(hookspecs) if name.startswith("ddcmh_")))
                raise PluginError(
                    f"hook implementation(s) {', '.join(unknown)} match no ddcmh hook; the hooks are {known}"
                )
        except Exception as exc:
            info.mark_failed(exc, during="register")
            return False
        info.plugin_name = name
        return True


RecordT = TypeVar("RecordT")


def _one_line(exc: BaseException) -> str:
    """``"ExceptionType: first line"``; for a pydantic error, the first field and its message."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "record"
        return f"invalid {exc.title}: {location}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def entry_point_info(entry_point: metadata.EntryPoint) -> PluginInfo:
    """The :class:`PluginInfo` of an entry point, named after its distribution (``EntryPoint.dist``)."""
    distribution = getattr(entry_point, "dist", None)
    return PluginInfo(
        name=entry_point.name,
        value=entry_point.value,
        distribution=distribution.metadata["Name"] if distribution is not None else "unknown",
        version=distribution.version if distribution is not None else "unknown",
    )


def load_entry_points(entry_points: Iterable[metadata.EntryPoint] | None = None) -> PluginSet:
    """Import and register every entry point of the ``ddcmh`` group, each in isolation.

    Parameters
    ----------
    entry_points : iterable of importlib.metadata.EntryPoint, optional
        The entry points to load; by default those of every installed distribution.

    Returns
    -------
    PluginSet
        A pluggy manager with each importable plugin registered, and a record for every entry
        point, including those that failed to import or to register.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if entry_points is None:
        entry_points = metadata.entry_points(group=hookspecs.PROJECT_NAME)
    plugin_set = PluginSet(manager=manager, plugins=[])
    seen: set[tuple[str, str]] = set()
    for entry_point in entry_points:
        info = entry_point_info(entry_point)
        key = (info.distribution, info.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        try:
            plugin_object = entry_point.load()
        except Exception as exc:
            plugin_set.plugins.append(info)
            info.mark_failed(exc)
            continue
        plugin_set.register(plugin_object, info)
    return plugin_set


def call_hook(plugin_set: PluginSet, hook_name: str, plugin_object: object) -> list[Any]:
    """Call a hook through pluggy's relay for one plugin: ``manager.hook.<hook_name>()`` without the others.

    Parameters
    ----------
    plugin_set : PluginSet
        The loaded plugins.
    hook_name : str
        The hook (``"ddcmh_hashers"``).
    plugin_object : object
        The registered plugin whose implementation runs.

    Returns
    -------
    list
        pluggy's result list: what each of the plugin's implementations returned (None left out).
    """
    manager = plugin_set.manager
    others = [plugin for plugin in manager.get_plugins() if plugin is not plugin_object]
    return manager.subset_hook_caller(hook_name, remove_plugins=others)()


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
    implementations = getattr(plugin_set.manager.hook, hook_name).get_hookimpls()
    for plugin_object in dict.fromkeys(implementation.plugin for implementation in implementations):
        info = plugin_set.info_for(plugin_object)
        if info is None:  # registered by hand, not through PluginSet.register
            info = PluginInfo(
                name=str(plugin_set.manager.get_name(plugin_object)),
                value=repr(plugin_object),
                distribution="unknown",
                version="unknown",
            )
        try:
            results = call_hook(plugin_set, hook_name, plugin_object)
            records = _checked_records(results, hook_name, record_type)
        except Exception as exc:
            info.mark_failed(exc, during=hook_name)
            continue
        info.provides[hook_name] = [name_of(record) for record in records]
        collected.extend((record, info) for record in records)
    return collected


def _checked_records(results: list[Any], hook_name: str, record_type: type[RecordT]) -> list[RecordT]:
    """The records of a hook's results (each an iterable of records), or PluginError."""
    records: list[RecordT] = []
    for result in results:
        if isinstance(result, (str, bytes, BaseModel)) or not isinstance(result, Iterable):
            raise PluginError(
                f"hook {hook_name} returned {type(result).__name__}, expected an iterable of "
                f"{record_type.__name__} (yield each record)"
            )
        for record in result:
            if not isinstance(record, record_type):
                raise PluginError(
                    f"hook {hook_name} yielded {type(record).__name__}, expected {record_type.__name__}"
                )
            records.append(record)
    return records


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
    """One name, the record that provides it and the plugin it comes from.

    Attributes
    ----------
    spec : HasherSpec, MethodSpec or DatasetSpec
        The record the plugin yielded.
    plugin : PluginInfo
        Its provider: entry point, distribution name and version.
    """

    spec: SpecT
    plugin: PluginInfo

    def load(self) -> Any:
        """The class a hasher or method record names, imported on first use.

        Raises
        ------
        PluginError
            When the import fails or does not give the expected kind of class; the message
            names the plugin that provides the record (distribution, version, entry point).
        """
        try:
            return self.spec.load()  # type: ignore[attr-defined]
        except PluginError as error:
            raise PluginError(f"{error}; provided by {self.plugin.describe()}") from error


RegisteredHasher = RegisteredName["HasherSpec"]
RegistryT = TypeVar("RegistryT", bound="NameRegistry[Any]")


class NameRegistry(Generic[SpecT]):
    """Names claimed by the records of the installed plugins (hashers, datasets).

    Every record claims its ``name`` and its ``aliases``. A name claimed by two plugins is a
    conflict (:attr:`conflicts`), a name one plugin claims twice is a broken name
    (:attr:`problems`): looking either up is a :class:`DuplicateNameError` naming the providers,
    and the other names keep working.

    Parameters
    ----------
    records : sequence of (record, PluginInfo)
        What the plugins yielded.
    plugins : sequence of PluginInfo
        Every entry point, for listings of failures.
    """

    noun = "name"
    """What the names denote, for messages (``"hasher"``)."""
    hook = ""
    """The hook whose records the registry holds (``"ddcmh_hashers"``), for :meth:`from_plugin_set`."""
    record_type: type = object
    """The type of those records (:class:`HasherSpec`)."""

    def __init__(
        self,
        records: Sequence[tuple[SpecT, PluginInfo]],
        plugins: Sequence[PluginInfo] = (),
    ) -> None:
        self.plugins = list(plugins)
        claims: dict[str, list[RegisteredName[SpecT]]] = {}
        for spec, info in records:
            for claimed in dict.fromkeys((spec.name, *spec.aliases)):  # type: ignore[attr-defined]
                claims.setdefault(self.normalize(claimed), []).append(RegisteredName(spec, info))
        self._entries = {name: found[0] for name, found in claims.items() if len(found) == 1}
        self.conflicts: dict[str, list[RegisteredName[SpecT]]] = {}
        self.problems: dict[str, str] = {}
        """Broken names: a name one plugin claims more than once, with the message lookups raise."""
        for name, found in claims.items():
            providers = list({id(entry.plugin): entry.plugin for entry in found}.values())
            if len(providers) > 1:
                self.conflicts[name] = found
            elif len(found) > 1:
                targets = " and ".join(self.describe_target(entry.spec) for entry in found)
                self.problems[name] = (
                    f"{self.noun} name {name!r} is registered {len(found)} times by "
                    f"{providers[0].describe()} ({targets}); the plugin must yield each name once"
                )
                providers[0].add_problem(self.problems[name])

    @classmethod
    def from_plugin_set(cls: type[RegistryT], plugins: PluginSet) -> RegistryT:
        """Call :attr:`hook` on every loaded plugin (each call isolated) and register the records."""
        records: list[tuple[Any, PluginInfo]] = collect_records(
            plugins, cls.hook, cls.record_type, lambda record: record.name
        )
        return cls(records, plugins.plugins)

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
            name
            for name, entry in self._entries.items()
            if entry.spec.name == name  # type: ignore[attr-defined]
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
            If several plugins claim ``name``, or one plugin claims it twice; the message names
            every provider.
        UnknownNameError
            If no plugin provides ``name``; the message lists the installed names and the
            plugins that failed to load.
        """
        key = self.normalize(name)
        if key in self.problems:
            raise DuplicateNameError(f"{self.problems[key]}. Other {self.noun}s keep working.")
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
    hook = "ddcmh_hashers"
    record_type = HasherSpec

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
        hasher_class = entry.load()
        merged, wrap = lift_options({**entry.spec.defaults, **params}, owner=entry.spec.name)
        hasher = hasher_class.registered(entry.spec.name, **merged)
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
            _registry_cache["hashers"] = HasherRegistry.from_plugin_set(plugins)
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
    hook = "ddcmh_methods"
    record_type = MethodSpec

    def describe_target(self, spec: MethodSpec) -> str:
        """The method class a record points to."""
        return f"method {spec.target}"

    def create(self, name: str, **params: Any) -> CrossModalMethod:
        """Build the method called ``name``, with the record's defaults overridden by ``params``."""
        entry = self.get(name)
        return entry.load()(**{**entry.spec.defaults, **params})

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
            _registry_cache["methods"] = MethodRegistry.from_plugin_set(plugins)
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
