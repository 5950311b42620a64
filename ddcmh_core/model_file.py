"""One self-describing HDF5 file per trained cross-modal model; loading executes no pickled code.

The format is generic: it knows nothing of DDCMH or DCMH. A method gives its state as JSON
metadata plus named arrays (:meth:`~ddcmh_core.methods.base.CrossModalMethod.get_state`) and
takes it back (``set_state``); the file records which installed method (by registry name and
provider) wrote it, and loading builds that method through the method registry.

Layout::

    /          attrs: ddcmh_format="ddcmh-model", format_version, ddcmh_version,
                      method (JSON: name, class, provider, provider_version), params (JSON),
                      meta (JSON), n_features (JSON), versions (JSON), report (JSON)
    /state/    the method's arrays; a name "a/b" is dataset b of group a
    /extras/   optional arrays and JSON attributes (e.g. a text featuriser's vocabulary)
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ._version import __version__
from .errors import DdcmhError, InputError
from .files import atomic_path, open_ddcmh_h5
from .plugins import hasher_registry, method_registry

if TYPE_CHECKING:
    from .methods.base import CrossModalMethod


@dataclass
class MethodState:
    """What a fitted method stores in a model file: JSON metadata and named arrays.

    Array names may contain ``/`` (``"image_network/0.weight"``): the file keeps them as nested
    HDF5 groups and gives them back under the same names.
    """

    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


MODEL_FORMAT = "ddcmh-model"
MODEL_FORMAT_VERSION = 2
METADATA_KEYS = ("method", "params", "meta", "n_features", "versions", "report")


class ModelFileError(InputError):
    """A model file that is missing, foreign, corrupted or from an incompatible format version."""


def runtime_versions() -> dict[str, str]:
    """Versions of ddcmh, Python, numpy, torch and every installed ddcmh plugin distribution."""
    import torch

    versions = {
        "ddcmh": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    for plugin in hasher_registry().plugins:
        versions[f"plugin:{plugin.distribution}"] = plugin.version
    return versions


def save_model(model: CrossModalMethod, path: str | os.PathLike[str], **extras: Any) -> Path:
    """Write a fitted cross-modal method to ``path`` atomically.

    Parameters
    ----------
    model : CrossModalMethod
        A fitted method registered through the ``ddcmh_methods`` hook (its class must be the one a
        registered name points to, so that loading can build it again).
    path : str or Path
        Destination (``*.h5``).
    **extras : ndarray or JSON-compatible value
        Stored under ``/extras`` (arrays as datasets, the rest as JSON attributes).

    Returns
    -------
    Path

    Raises
    ------
    ModelFileError
        If no installed method name points to the model's class.
    """
    target = Path(path)
    entry = method_registry().name_for_class(type(model))
    if entry is None:
        raise ModelFileError(
            f"{target}: {type(model).__qualname__} is not registered as a method (ddcmh_methods hook), "
            "so a model file could not be loaded again; register it in a plugin first"
        )
    state = model.get_state()
    with atomic_path(target) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["ddcmh_format"] = MODEL_FORMAT
        handle.attrs["format_version"] = MODEL_FORMAT_VERSION
        handle.attrs["ddcmh_version"] = __version__
        handle.attrs["method"] = json.dumps(
            {
                "name": entry.spec.name,
                "class": entry.spec.target,
                "provider": entry.plugin.distribution,
                "provider_version": entry.plugin.version,
            }
        )
        handle.attrs["params"] = model.params.model_dump_json()
        handle.attrs["meta"] = json.dumps(state.meta, default=_json_default)
        handle.attrs["n_features"] = json.dumps(model.n_features_)
        handle.attrs["versions"] = json.dumps(runtime_versions())
        handle.attrs["report"] = json.dumps(getattr(model, "report_", {}), default=_json_default)
        group = handle.create_group("state")
        for name, array in state.arrays.items():
            group.create_dataset(name, data=np.asarray(array))
        extras_group = handle.create_group("extras")
        for key, value in extras.items():
            if isinstance(value, np.ndarray):
                extras_group.create_dataset(key, data=value)
            else:
                extras_group.attrs[key] = json.dumps(value)
    return target


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return float(value)


def read_model_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a model file (method, params, meta, versions, report) without its arrays."""
    source = Path(path)
    with _open(source) as handle:
        return {key: _json_field(handle.attrs, key, source) for key in METADATA_KEYS if key in handle.attrs}


def _open(source: Path) -> h5py.File:
    if not source.is_file():
        raise ModelFileError(f"{source}: no such model file")
    handle = open_ddcmh_h5(source, kind="model file", expected_format=MODEL_FORMAT, error=ModelFileError)
    version = int(handle.attrs.get("format_version", -1))
    if version != MODEL_FORMAT_VERSION:
        handle.close()
        raise ModelFileError(
            f"{source}: model file format version {version} is incompatible with ddcmh "
            f"{__version__}, which reads version {MODEL_FORMAT_VERSION}; re-train the model or "
            "install the ddcmh release that wrote it"
        )
    return handle


def _fail(source: Path, field_name: str, message: str) -> ModelFileError:
    return ModelFileError(f"{source}: field {field_name!r}: {message}")


def _json_field(attrs: Any, key: str, source: Path, *, required: bool = True) -> dict[str, Any]:
    """The JSON object stored in attribute ``key``; a :class:`ModelFileError` naming it otherwise."""
    if key not in attrs:
        if required:
            raise _fail(source, key, "missing (the file is truncated or corrupted)")
        return {}
    try:
        value = json.loads(attrs[key])
    except (TypeError, ValueError) as error:
        raise _fail(source, key, f"expected JSON text, got unreadable data ({error})") from None
    if not isinstance(value, dict):
        raise _fail(source, key, f"expected a JSON object, got {type(value).__name__} {value!r:.80}")
    return value


def _check_n_features(value: dict[str, Any], source: Path) -> dict[str, int | None]:
    if set(value) != {"image", "text"}:
        raise _fail(source, "n_features", f"expected the keys 'image' and 'text', got {sorted(value)}")
    for view, width in value.items():
        if width is not None and (type(width) is not int or width < 1):
            raise _fail(
                source, f"n_features.{view}", f"expected a positive integer or null, got {width!r:.80}"
            )
    return value


def _read_arrays(group: Any, source: Path, where: str) -> dict[str, np.ndarray]:
    """Every dataset below ``group``, checked to be a finite numeric array."""
    if not isinstance(group, h5py.Group):
        raise _fail(source, where, f"expected a group of arrays, got {type(group).__name__}")
    arrays: dict[str, np.ndarray] = {}

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            field_name = f"{where}/{name}"
            if item.dtype.kind not in "biuf":
                raise _fail(source, field_name, f"expected a numeric array, got dtype {item.dtype}")
            array = np.asarray(item[()])
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                bad = int(np.count_nonzero(~np.isfinite(array)))
                raise _fail(source, field_name, f"expected finite numbers, got {bad} NaN or infinite values")
            arrays[name] = array

    group.visititems(visit)
    return arrays


def _read_extras(handle: h5py.File, source: Path) -> dict[str, Any]:
    group = handle.get("extras")
    if group is None:
        return {}
    if not isinstance(group, h5py.Group):
        raise _fail(source, "extras", f"expected a group, got {type(group).__name__}")
    extras: dict[str, Any] = {}
    for key, item in group.items():
        if not isinstance(item, h5py.Dataset):
            raise _fail(source, f"extras/{key}", f"expected an array, got {type(item).__name__}")
        extras[key] = item[()]
    for key, value in group.attrs.items():
        try:
            extras[key] = json.loads(value)
        except (TypeError, ValueError) as error:
            raise _fail(source, f"extras.{key}", f"expected JSON text ({error})") from None
    return extras


def _read_fields(handle: h5py.File, source: Path) -> dict[str, Any]:
    """Every field of a model file, each checked for its type before any is used."""
    record = _json_field(handle.attrs, "method", source)
    if not isinstance(record.get("name"), str):
        raise _fail(source, "method.name", f"expected a method name, got {record.get('name')!r:.80}")
    if "state" not in handle:
        raise _fail(source, "state", "missing (the file is truncated or corrupted)")
    return {
        "record": record,
        "params": _json_field(handle.attrs, "params", source),
        "meta": _json_field(handle.attrs, "meta", source, required=False),
        "n_features": _check_n_features(_json_field(handle.attrs, "n_features", source), source),
        "report": _json_field(handle.attrs, "report", source, required=False),
        "arrays": _read_arrays(handle["state"], source, "state"),
        "extras": _read_extras(handle, source),
    }


def load_model(path: str | os.PathLike[str], *, device: str = "auto") -> CrossModalMethod:
    """Load a model written by :func:`save_model` (arrays and JSON only; no pickle).

    Parameters
    ----------
    path : str or Path
    device : {"auto", "cpu", "cuda"}
        Where a deep method's networks go.

    Returns
    -------
    CrossModalMethod
        The method that wrote the file, ready to encode; ``report_`` and ``extras_`` hold what
        was saved with it.

    Raises
    ------
    ModelFileError
        For a missing, foreign, corrupted or incompatible file, one written by a method that is
        not installed, or a field of the wrong type or shape, or non-finite weights (the message
        names the field).
    """
    source = Path(path)
    with _open(source) as handle:
        fields = _read_fields(handle, source)
    record, params = fields["record"], fields["params"]
    try:
        method_class = method_registry().get(record["name"]).load()
    except DdcmhError as error:
        raise ModelFileError(
            f"{source}: written by method {record.get('name')!r} of {record.get('provider')} "
            f"{record.get('provider_version')}, which cannot be loaded here: {error}"
        ) from None
    try:
        model = method_class(params)
    except InputError as error:
        raise _fail(source, "params", str(error)) from None
    model.n_features_ = fields["n_features"]
    try:
        model.set_state(MethodState(meta=fields["meta"], arrays=fields["arrays"]), device=device)
    except (InputError, LookupError, ValueError, TypeError, AttributeError, RuntimeError) as error:
        raise _fail(source, "state", f"the stored state does not fit the method: {error}") from None
    model.report_ = fields["report"]
    model.extras_ = fields["extras"]
    return model
