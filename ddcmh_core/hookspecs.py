"""Hook specifications of the ``ddcmh`` plugin project.

A plugin is a module (or any object) with functions decorated by :data:`ddcmh_core.hookimpl`,
exposed through an entry point in the ``ddcmh`` group of its distribution::

    [project.entry-points.ddcmh]
    foo = "ddcmh_foo.plugin"

The built-in hashers, methods and datasets are registered by ddcmh's own ``pyproject.toml`` in
exactly the same way.

:mod:`ddcmh_core.plugins` registers each entry point with pluggy on its own (pluggy checks every
``@hookimpl`` against the specification below; an implementation with an argument the
specification lacks, or of a hook not specified here, fails that plugin alone) and calls each hook
through pluggy's relay one plugin at a time, so every record is attributed to its distribution
and a plugin that raises leaves the others working.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .plugins import HasherSpec, MethodSpec

PROJECT_NAME = "ddcmh"
"""pluggy project name, and the entry-point group that plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def ddcmh_hashers() -> Iterable[HasherSpec]:  # type: ignore[empty-body]
    """Provide Stage-1 hashers.

    Returns
    -------
    Iterable[HasherSpec]
        One validated record per hasher. Names are lower-case kebab (``itq``, ``cca-itq``) and must
        be unique across all installed plugins.

    Examples
    --------
    >>> from ddcmh_core import HasherSpec, hookimpl
    >>> @hookimpl
    ... def ddcmh_hashers():
    ...     yield HasherSpec(name="my-lsh", hasher="my_pkg.lsh:MyLSH", summary="Sign random projections")
    """


@hookspec
def ddcmh_methods() -> Iterable[MethodSpec]:  # type: ignore[empty-body]
    """Provide whole cross-modal methods (DDCMH, DCMH, SePH...).

    Returns
    -------
    Iterable[MethodSpec]
        One validated record per method, naming a
        :class:`~ddcmh_core.methods.base.CrossModalMethod` subclass (or its import path). Names
        are lower-case kebab and share no name with another installed method.

    Examples
    --------
    >>> from ddcmh_core import MethodSpec, hookimpl
    >>> @hookimpl
    ... def ddcmh_methods():
    ...     yield MethodSpec(name="cca-sign", method="my_pkg.cca:CCASign", summary="CCA + sign")
    """


@hookspec
def ddcmh_datasets() -> Iterable[Any]:  # type: ignore[empty-body]
    """Provide datasets (records defined by :mod:`ddcmh_core.data`).

    Returns
    -------
    Iterable[DatasetSpec]
        One validated record per dataset name.
    """
