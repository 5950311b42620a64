"""ddcmh: Dual Deep Neural Networks Cross-Modal Hashing with pluggable single-modal hashers.

Public names
------------
Hasher, HasherParams
    The Stage-1 hasher interface (subclass it to write a hasher).
HasherSpec, hookimpl
    What a plugin yields from its ``ddcmh_hashers`` hook, and the decorator for hook functions.
get_hasher, hasher_registry, load_hasher
    Build an installed hasher by name, list the installed ones, load a saved one.

Importing this package loads no plugin; entry points are read on first use.
"""

from ._version import __version__
from .errors import (
    DdcmhError,
    DuplicateNameError,
    HasherFileError,
    InputError,
    NotFittedError,
    PluginError,
    UnknownNameError,
    UnsupportedOperationError,
)
from .hasher import Hasher, HasherParams, load_hasher
from .hookspecs import hookimpl
from .plugins import HasherSpec, get_hasher, hasher_registry

__all__ = [
    "DdcmhError",
    "DuplicateNameError",
    "Hasher",
    "HasherFileError",
    "HasherParams",
    "HasherSpec",
    "InputError",
    "NotFittedError",
    "PluginError",
    "UnknownNameError",
    "UnsupportedOperationError",
    "__version__",
    "get_hasher",
    "hasher_registry",
    "hookimpl",
    "load_hasher",
]
