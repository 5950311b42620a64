"""The hasher file: one HDF5 file per fitted Stage-1 hasher, written and read without pickle.

A file records the hasher's registered name and provider (so :func:`load_hasher` finds its class
through the installed plugins), its hyper-parameters as JSON and its fitted attributes (names
ending in ``_``) as datasets and attributes. This module sits above both the hasher interface and
the plugin registry: :mod:`ddcmh_core.hasher` does not import the registry.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import __version__
from .errors import HasherFileError, InputError
from .files import atomic_path, open_ddcmh_h5
from .hasher import Hasher
from .kernels import AnchorRBF, KernelLifted, lift_options
from .plugins import RegisteredHasher, hasher_registry

FILE_FORMAT = "ddcmh-hasher"
FILE_FORMAT_VERSION = 1
STATE_TYPES: dict[str, type[AnchorRBF]] = {"AnchorRBF": AnchorRBF}
"""Types of fitted attributes (besides arrays and scalars) that hasher files can hold."""


def registry_entry(hasher: Hasher) -> RegisteredHasher | None:
    """The registered name a hasher file records for ``hasher`` (None for an unregistered class).

    The name the hasher was built by when it still denotes its class, else the entry of its class
    without defaults. A :class:`~ddcmh_core.kernels.KernelLifted` is recorded by its inner
    hasher's entry (its parameters add ``kernel_lift="rbf"``).
    """
    core = hasher.hasher if isinstance(hasher, KernelLifted) else hasher
    registry = hasher_registry()
    if core.registered_name and core.registered_name in registry:
        entry = registry.get(core.registered_name)
        if issubclass(type(core), entry.spec.load()):
            return entry
    return registry.name_for_class(type(core))


def save_hasher(hasher: Hasher, path: str | os.PathLike[str]) -> Path:
    """Write a fitted hasher to ``path`` atomically (see :meth:`Hasher.save`)."""
    target = Path(path)
    entry = registry_entry(hasher)
    core = hasher.hasher if isinstance(hasher, KernelLifted) else hasher
    with atomic_path(target) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["ddcmh_format"] = FILE_FORMAT
        handle.attrs["format_version"] = FILE_FORMAT_VERSION
        handle.attrs["ddcmh_version"] = __version__
        handle.attrs["hasher_name"] = entry.spec.name if entry else ""
        handle.attrs["hasher_class"] = f"{type(core).__module__}:{type(core).__qualname__}"
        handle.attrs["provider"] = entry.plugin.distribution if entry else ""
        handle.attrs["provider_version"] = entry.plugin.version if entry else ""
        handle.attrs["params"] = json.dumps(hasher.build_params(), sort_keys=True)
        _write_state(handle.create_group("state"), hasher.fitted_state())
    return target


def _write_state(group: h5py.Group, state: dict[str, Any]) -> None:
    group.attrs["state_keys"] = json.dumps(sorted(state))
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            group.create_dataset(key, data=value, compression="gzip" if value.size > 4096 else None)
        elif isinstance(value, (bool, np.bool_)):
            group.attrs[key] = json.dumps(bool(value))
        elif isinstance(value, (int, float, str, np.integer, np.floating)) or value is None:
            scalar = value.item() if isinstance(value, np.generic) else value
            group.attrs[key] = json.dumps(scalar)
        elif type(value).__name__ in STATE_TYPES:
            subgroup = group.create_group(key)
            subgroup.attrs["state_type"] = type(value).__name__
            _write_state(subgroup, value.to_state())
        else:
            raise TypeError(
                f"fitted attribute {key!r} of type {type(value).__name__} cannot be saved; "
                "use numpy arrays, numbers, strings or a registered state type"
            )


FITTED_NAME = re.compile(r"[a-z][a-z0-9_]*_")
"""What a fitted attribute's name looks like (scikit-learn's convention: lower case, ending in ``_``)."""


def _read_state(group: h5py.Group, path: Path, *, top: bool = True) -> dict[str, Any]:
    """The state stored in ``group``, every name and value checked before it is used."""
    try:
        keys = json.loads(group.attrs["state_keys"])
    except KeyError:
        raise HasherFileError(f"{path}: group {group.name!r} has no 'state_keys' attribute") from None
    except (TypeError, ValueError) as error:
        raise HasherFileError(f"{path}: {group.name!r} attribute 'state_keys': not JSON ({error})") from None
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise HasherFileError(f"{path}: {group.name!r} attribute 'state_keys': expected a list of names")
    state: dict[str, Any] = {}
    for key in keys:
        if top and not FITTED_NAME.fullmatch(key):
            raise HasherFileError(
                f"{path}: fitted attribute {key!r}: not a fitted-attribute name (lower case, ending in '_'); "
                "the file was tampered with"
            )
        state[key] = _read_value(group, key, path)
    return state


def _read_value(group: h5py.Group, key: str, path: Path) -> Any:
    where = f"{group.name.rstrip('/')}/{key}"
    if key in group:
        item = group[key]
        if isinstance(item, h5py.Group):
            type_name = item.attrs.get("state_type", "")
            if type_name not in STATE_TYPES:
                raise HasherFileError(f"{path}: {item.name!r} has unknown state type {type_name!r}")
            nested = _read_state(item, path, top=False)
            try:
                return STATE_TYPES[type_name].from_state(nested)
            except (LookupError, TypeError, ValueError) as error:
                raise HasherFileError(f"{path}: {where!r}: invalid {type_name} state ({error})") from None
        if item.dtype.kind not in "biuf":
            raise HasherFileError(f"{path}: {where!r}: expected a numeric array, got dtype {item.dtype}")
        value = item[()]
        if np.asarray(value).dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise HasherFileError(f"{path}: {where!r}: expected finite numbers, got NaN or infinite values")
        return value
    if key not in group.attrs:
        raise HasherFileError(
            f"{path}: fitted attribute {key!r} listed in {group.name!r} is missing "
            "(the file is truncated or corrupted)"
        )
    try:
        value = json.loads(group.attrs[key])
    except (TypeError, ValueError) as error:
        raise HasherFileError(f"{path}: {where!r}: not JSON ({error})") from None
    if not isinstance(value, (int, float, str, bool)) and value is not None:
        raise HasherFileError(f"{path}: {where!r}: expected a number or a string, got {type(value).__name__}")
    return value


def _check_loaded(hasher: Hasher, path: Path) -> None:
    """Check that a loaded state fits together: the width, the codes' shape, one encoded test row."""
    width = getattr(hasher, "n_features_in_", None)
    if type(width) is not int or width < 1:
        raise HasherFileError(
            f"{path}: fitted attribute 'n_features_in_': expected a positive integer, got {width!r}"
        )
    for name in ("training_codes_", "encoded_training_codes_"):
        codes = getattr(hasher, name, None)
        if codes is not None and (np.ndim(codes) != 2 or np.shape(codes)[1] != hasher.n_bits):
            raise HasherFileError(
                f"{path}: fitted attribute {name!r}: expected {hasher.n_bits} columns (n_bits), got shape "
                f"{np.shape(codes)}"
            )
    if not hasher.tags()["supports_encode"]:
        return
    state = hasher.fitted_state()
    arrays = ", ".join(f"{key} {np.shape(value)}" for key, value in state.items() if np.ndim(value))
    try:
        codes = hasher.encode(np.random.default_rng(0).standard_normal((2, width)))
    except Exception as error:  # any failure of the stored state to encode is the file's fault
        raise HasherFileError(
            f"{path}: the fitted attributes do not fit together (shapes: {arrays}): encoding a test row "
            f"failed: {error}"
        ) from None
    if codes.shape != (2, hasher.n_bits):
        raise HasherFileError(
            f"{path}: the fitted attributes give codes of {codes.shape[1]} bits, expected n_bits = "
            f"{hasher.n_bits} (shapes: {arrays})"
        )


def load_hasher(path: str | os.PathLike[str], *, hasher_class: type[Hasher] | None = None) -> Hasher:
    """Load a hasher written by :meth:`Hasher.save`.

    The hasher class is found through the installed plugins by the name recorded in the file;
    nothing from the file is executed.

    Parameters
    ----------
    path : str or path-like
        The HDF5 file.
    hasher_class : type, optional
        The class to restore into, for hashers that are not registered by any plugin.

    Returns
    -------
    Hasher
        A fitted hasher.

    Raises
    ------
    HasherFileError
        If the file is missing, not HDF5, not a ddcmh hasher file, from a newer format version,
        names a hasher that is not installed, or lacks part of its state.
    """
    source = Path(path)
    if not source.is_file():
        raise HasherFileError(f"{source}: no such file")
    with open_ddcmh_h5(
        source, kind="hasher file", expected_format=FILE_FORMAT, error=HasherFileError
    ) as handle:
        version = int(handle.attrs.get("format_version", -1))
        if version != FILE_FORMAT_VERSION:
            raise HasherFileError(
                f"{source}: hasher file format version {version} is not supported by ddcmh "
                f"{__version__} (it reads version {FILE_FORMAT_VERSION})"
            )
        name = str(handle.attrs.get("hasher_name", ""))
        recorded_class = str(handle.attrs.get("hasher_class", ""))
        if hasher_class is None:
            if not name:
                raise HasherFileError(
                    f"{source}: the hasher {recorded_class} was not registered by a plugin when "
                    "saved; pass hasher_class= to load it"
                )
            registry = hasher_registry()
            if name not in registry:
                provider = handle.attrs.get("provider", "")
                raise HasherFileError(
                    f"{source}: hasher {name!r} (from {provider or 'an unknown distribution'}) is "
                    f"not installed; installed hashers: {', '.join(registry.names())}"
                )
            hasher_class = registry.get(name).load()
        try:
            params = json.loads(handle.attrs["params"])
            if not isinstance(params, dict):
                raise InputError(f"expected a JSON object, got {type(params).__name__}")
            options, wrap = lift_options(params, owner=name or hasher_class.__name__)
            core = hasher_class.registered(name, **options)
        except (KeyError, json.JSONDecodeError, InputError) as exc:
            raise HasherFileError(f"{source}: invalid stored hyper-parameters: {exc}") from None
        if "state" not in handle:
            raise HasherFileError(f"{source}: group 'state' is missing")
        state = _read_state(handle["state"], source)
    hasher = wrap(core)
    for key in ("n_features_in_", *(["lift_"] if hasher is not core else [])):
        if key not in state:
            raise HasherFileError(f"{source}: fitted attribute {key!r} is missing")
    try:
        hasher.set_fitted_state(state)
    except InputError as error:
        raise HasherFileError(f"{source}: invalid fitted state: {error}") from None
    _check_loaded(hasher, source)
    return hasher
