"""One self-describing HDF5 file per trained DDCMH model; loading executes no pickled code.

Layout::

    /                attrs: ddcmh_format="ddcmh-model", format_version, ddcmh_version,
                            config (JSON), hasher (JSON: name, provider, version, params),
                            n_features (JSON), versions (JSON), report (JSON)
    /image_network/  one dataset per state-dict tensor (names as in the state dict)
    /text_network/   likewise
    /extras/         optional arrays and JSON attributes (e.g. a text featuriser's vocabulary)
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ._version import __version__
from .engine.device import resolve_device
from .engine.networks import build_network
from .errors import InputError
from .files import atomic_path, open_ddcmh_h5
from .methods.ddcmh import DDCMHConfig
from .plugins import hasher_registry

MODEL_FORMAT = "ddcmh-model"
MODEL_FORMAT_VERSION = 1


class ModelFileError(InputError):
    """A model file that is missing, foreign, corrupted or from an incompatible format version."""


def runtime_versions() -> dict[str, str]:
    """Versions of ddcmh, Python, numpy, torch and every installed ddcmh plugin distribution."""
    versions = {
        "ddcmh": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    for plugin in hasher_registry().plugins:
        versions[f"plugin:{plugin.distribution}"] = plugin.version
    return versions


def _write_state_dict(group: h5py.Group, state: dict[str, torch.Tensor]) -> None:
    for name, tensor in state.items():
        group.create_dataset(name, data=tensor.detach().cpu().numpy())


def _read_state_dict(group: h5py.Group) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.asarray(group[name][()])) for name in group}


def save_model(model: Any, path: str | Path, **extras: Any) -> Path:
    """Write a fitted :class:`~ddcmh_core.methods.ddcmh.DDCMH` to ``path`` atomically.

    Parameters
    ----------
    model : DDCMH
        A fitted model.
    path : str or Path
        Destination (``*.h5``).
    **extras : ndarray or JSON-compatible value
        Stored under ``/extras`` (arrays as datasets, the rest as JSON attributes).

    Returns
    -------
    Path
    """
    target = Path(path)
    hasher = model.hasher_
    entry = hasher_registry().get(model.config.hasher)
    with atomic_path(target) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["ddcmh_format"] = MODEL_FORMAT
        handle.attrs["format_version"] = MODEL_FORMAT_VERSION
        handle.attrs["ddcmh_version"] = __version__
        handle.attrs["config"] = model.config.model_dump_json()
        handle.attrs["hasher"] = json.dumps(
            {
                "name": entry.spec.name,
                "class": entry.spec.target,
                "provider": entry.plugin.distribution,
                "provider_version": entry.plugin.version,
                "params": hasher.get_params(),
            }
        )
        handle.attrs["n_features"] = json.dumps(model.n_features_)
        handle.attrs["versions"] = json.dumps(runtime_versions())
        handle.attrs["report"] = json.dumps(getattr(model, "report_", {}), default=float)
        _write_state_dict(handle.create_group("image_network"), model.image_network_.state_dict())
        _write_state_dict(handle.create_group("text_network"), model.text_network_.state_dict())
        extras_group = handle.create_group("extras")
        for key, value in extras.items():
            if isinstance(value, np.ndarray):
                extras_group.create_dataset(key, data=value)
            else:
                extras_group.attrs[key] = json.dumps(value)
    return target


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a model file (config, hasher, versions, report) without loading weights."""
    source = Path(path)
    with _open(source) as handle:
        return {
            key: json.loads(handle.attrs[key])
            for key in ("config", "hasher", "n_features", "versions", "report")
            if key in handle.attrs
        }


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


def load_model(path: str | Path, *, device: str = "auto") -> Any:
    """Load a model written by :func:`save_model` (weights only; no pickle).

    Parameters
    ----------
    path : str or Path
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    DDCMH
        Ready to encode. ``hasher_`` is an unfitted hasher with the recorded params (Stage 1 is
        not needed at query time).
    """
    from .methods.ddcmh import DDCMH

    source = Path(path)
    with _open(source) as handle:
        try:
            config = DDCMHConfig.model_validate_json(handle.attrs["config"])
            hasher_record = json.loads(handle.attrs["hasher"])
            n_features = json.loads(handle.attrs["n_features"])
            report = json.loads(handle.attrs.get("report", "{}"))
            image_state = _read_state_dict(handle["image_network"])
            text_state = _read_state_dict(handle["text_network"])
            extras = {key: handle["extras"][key][()] for key in handle.get("extras", {})}
            extras.update({key: json.loads(value) for key, value in handle["extras"].attrs.items()})
        except (KeyError, ValueError) as error:
            raise ModelFileError(f"{source}: corrupted model file ({error})") from None
    model = DDCMH(config)
    target_device = resolve_device(device)
    for view, state in (("image", image_state), ("text", text_state)):
        network_config = getattr(config, f"{view}_network").model_copy(update={"pretrained": None})
        anchors = state.get("lift_anchors")
        network = build_network(
            network_config,
            config.n_bits,
            n_features[view],
            n_training_rows=anchors.shape[0] if anchors is not None else None,
        )
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelFileError(f"{source}: the {view} network's weights do not fit: {error}") from None
        network.to(target_device).eval()
        setattr(model, f"{view}_network_", network)
    model.n_features_ = n_features
    model.report_ = report
    model.extras_ = extras
    model.hasher_record_ = hasher_record
    try:
        model.hasher_ = hasher_registry().create(
            hasher_record["name"],
            n_bits=config.n_bits,
            **{k: v for k, v in hasher_record["params"].items() if k != "n_bits"},
        )
    except Exception:  # the Stage-1 plugin may be gone; the model still encodes
        model.hasher_ = None
    return model
