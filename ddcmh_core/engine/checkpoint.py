"""Training checkpoints: written atomically, read back with a format check.

A checkpoint is a dict saved with :func:`torch.save` and read with ``weights_only=True`` (tensors,
numbers, strings, lists and dicts only, no arbitrary code). It carries ``format_version``; a file
from another format is refused with a message that names it, instead of failing half-way
through a resume. It also carries the run fingerprint (:mod:`ddcmh_core.engine.fingerprint`) of
the run that wrote it: a resume by a run with another fingerprint is refused with the list of what
differs.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..files import atomic_path
from .fingerprint import check_fingerprint

#: Version of the checkpoint layout written by :func:`save_checkpoint`. 2: the loop's state at
#: the top level and the training task's own state under ``"task"`` (one layout for every deep
#: method).
CHECKPOINT_FORMAT_VERSION = 2


class CheckpointError(InputError):
    """A checkpoint that cannot be resumed from: unreadable, foreign, or of another format version."""


def save_checkpoint(state: dict[str, Any], path: Path, *, fingerprint: dict[str, Any] | None = None) -> None:
    """Write ``state`` plus ``format_version`` (and ``fingerprint``) to ``path`` atomically.

    Parameters
    ----------
    state : dict
        What to save; values that :func:`torch.load` accepts with ``weights_only=True``.
    path : Path
        The checkpoint file; replaced only once the new one is complete.
    fingerprint : dict, optional
        The fingerprint of the run (:func:`~ddcmh_core.engine.fingerprint.run_fingerprint`).
    """
    with atomic_path(path) as temporary:
        torch.save(
            {"format_version": CHECKPOINT_FORMAT_VERSION, **state, "fingerprint": fingerprint}, temporary
        )


def load_checkpoint(
    path: Path,
    *,
    map_location: torch.device | str | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; check its format and its run.

    Parameters
    ----------
    path : Path
        The checkpoint file.
    map_location : torch.device or str, optional
        Where to put its tensors (as :func:`torch.load`).
    fingerprint : dict, optional
        The fingerprint of the run that resumes; when given, the saved one must be the same.

    Returns
    -------
    dict
        The saved state, ``format_version`` included.

    Raises
    ------
    CheckpointError
        When the file cannot be read as a checkpoint or has another format version; the message
        names the file and says to delete the run folder or use a new one.
    RunMismatchError
        When ``fingerprint`` is given and differs from the saved one (every difference listed).
    """
    advice = resume_advice(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as error:
        raise CheckpointError(f"{path}: not a readable ddcmh checkpoint ({error}); {advice}") from None
    found = state.get("format_version") if isinstance(state, dict) else None
    if found != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {found}, expected {CHECKPOINT_FORMAT_VERSION} (written by "
            f"another version of ddcmh); {advice}"
        )
    if fingerprint is not None:
        check_fingerprint(state.get("fingerprint"), fingerprint, what=f"the checkpoint {path}", advice=advice)
    return state


def resume_advice(path: Path) -> str:
    """What to do about an unreadable file of a run folder."""
    return (
        f"delete the run folder {path.parent} or use a new one to start the training afresh "
        "(ddcmh train and ddcmh-bench: --restart)"
    )


def save_stage_arrays(
    path: Path, arrays: dict[str, np.ndarray], *, fingerprint: dict[str, Any] | None
) -> None:
    """Write a run folder's ``.npz`` stage file atomically, with the run's fingerprint."""
    stored: dict[str, Any] = {**arrays, "fingerprint": np.array(json.dumps(fingerprint))}
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez(handle, **stored)


def load_stage_arrays(
    path: Path, names: tuple[str, ...], *, fingerprint: dict[str, Any] | None = None
) -> tuple[np.ndarray, ...]:
    """Arrays ``names`` of a run folder's ``.npz`` stage file (no pickle).

    With ``fingerprint``, the one saved by :func:`save_stage_arrays` must be the same.

    Raises
    ------
    CheckpointError
        When the file is unreadable (truncated, corrupted) or lacks one of the arrays; the message
        says to delete the run folder or use a new one.
    RunMismatchError
        When the saved fingerprint differs from ``fingerprint``.
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = tuple(np.asarray(stored[name]) for name in names)
            saved = json.loads(str(stored["fingerprint"])) if "fingerprint" in stored else None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable stage file ({error}); {resume_advice(path)}") from None
    if fingerprint is not None:
        check_fingerprint(saved, fingerprint, what=f"the stage file {path}", advice=resume_advice(path))
    return arrays


__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "load_checkpoint",
    "load_stage_arrays",
    "resume_advice",
    "save_checkpoint",
    "save_stage_arrays",
]
