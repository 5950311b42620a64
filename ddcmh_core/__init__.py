"""ddcmh: Dual Deep Neural Networks Cross-Modal Hashing with pluggable single-modal hashers.

Public names
------------
Hasher, HasherParams
    The Stage-1 hasher interface (subclass it to write a hasher).
CrossModalMethod, MethodParams, MethodState, MethodTags
    The interface of a whole cross-modal method (subclass it to write a method).
HasherSpec, MethodSpec, hookimpl
    What a plugin yields from its ``ddcmh_hashers`` / ``ddcmh_methods`` hooks, and the decorator
    for hook functions.
get_hasher, hasher_registry, load_hasher
    Build an installed hasher by name, list the installed ones, load a saved one.
get_method, method_registry, load_model
    The same for cross-modal methods and their model files.

Importing this package loads no plugin; entry points are read on first use. It sets
``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set (see :mod:`ddcmh_core.threads`).
"""

from .threads import prefer_passive_waiting

prefer_passive_waiting()  # before anything loads OpenMP (torch, scikit-learn)

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
from .hasher import Hasher, HasherParams
from .hasher_file import load_hasher
from .hookspecs import hookimpl
from .methods.base import CrossModalMethod, MethodParams, MethodState, MethodTags
from .model_file import load_model
from .plugins import HasherSpec, MethodSpec, get_hasher, get_method, hasher_registry, method_registry

__all__ = [
    "CrossModalMethod",
    "DdcmhError",
    "DuplicateNameError",
    "Hasher",
    "HasherFileError",
    "HasherParams",
    "HasherSpec",
    "InputError",
    "MethodParams",
    "MethodSpec",
    "MethodState",
    "MethodTags",
    "NotFittedError",
    "PluginError",
    "UnknownNameError",
    "UnsupportedOperationError",
    "__version__",
    "get_hasher",
    "get_method",
    "hasher_registry",
    "hookimpl",
    "load_hasher",
    "load_model",
    "method_registry",
]
