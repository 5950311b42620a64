"""Run fingerprints: what determines a run, stored with its state, compared before a resume.

A fingerprint is a flat dict of dotted field names to JSON values: the method and every setting
of it with the defaults filled in (:meth:`ddcmh_core.CrossModalMethod.resolved_settings`; the
Stage-1 hasher, its parameters, the code length and the seed included), the content fingerprint
of the data, the split, and the versions of ddcmh, torch and numpy. Where the data
were read from, the git commit, the device and the number of jobs or threads are left out: they
change where and how fast a run goes, not what it would compute in exact arithmetic. The thread
count does change the order of floating-point sums, which can move one seed's MAP in the second
decimal; ``ddcmh-bench`` keeps it beside each cell and says when a reused cell ran with another
count (:func:`ddcmh_core.threads.thread_counts`) rather than refusing the cell.

A training checkpoint, a ``ddcmh train`` run folder and a ``ddcmh-bench`` cell each keep the
fingerprint of the run that wrote them; a resume goes on only when the new run's fingerprint is
the same, and otherwise stops with a :class:`RunMismatchError` that lists every field that
differs (``field: old → new``) and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files import atomic_path

#: The file of a run folder that holds its fingerprint.
RUN_FILE = "run.json"

#: Top-level settings that do not change what a run computes (where and how it runs).
NOT_FINGERPRINTED = frozenset({"device"})

#: Names a run folder may hold: what ddcmh's methods, tuner and runs write there, and the bench's
#: cell-time ledgers (:mod:`ddcmh_core.bench.cell_time`).
_RUN_STATE_NAMES = re.compile(
    r"^(run\.json|.*\.ckpt|stage[123]-[0-9a-f]+\.(npz|hasher\.h5)|\..*\.tmp|refit|chosen|seed-\d+"
    r"|seconds-[\w.-]+\.json)$"
)


class RunMismatchError(InputError):
    """Saved state was made by a run with other settings, data or versions, so it cannot be resumed."""


def package_versions() -> dict[str, str]:
    """The versions that a run's numbers depend on: ddcmh, torch and numpy."""
    import torch

    from .._version import __version__

    return {"ddcmh": str(__version__), "torch": str(torch.__version__), "numpy": str(np.__version__)}


def run_fingerprint(
    method: str,
    config: Mapping[str, Any],
    *,
    data: str | None,
    split: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprint of a run, as a flat dict of dotted fields.

    Parameters
    ----------
    method : str
        The method's registered name (``"ddcmh"``, ``"dcmh"``, ...).
    config : mapping
        The method's settings as JSON values (e.g. ``params.model_dump(mode="json")``); nested
        tables become dotted fields (``config.image_training.max_epochs``). The settings in
        :data:`NOT_FINGERPRINTED` are left out.
    data : str or None
        The content fingerprint of the training data.
    split : str, optional
        The split's checksum, when the run chose the training rows from a dataset.
    extra : mapping, optional
        Further fields that determine the run (e.g. a tuning grid, evaluation settings).

    Returns
    -------
    dict
        ``method``, ``config.*``, ``data``, ``split``, ``extra.*`` and ``versions.*`` fields.
    """
    settings = {key: value for key, value in config.items() if key not in NOT_FINGERPRINTED}
    fields: dict[str, Any] = {"method": method, "data": data, "split": split}
    fields.update(_flatten("config", json.loads(json.dumps(settings, default=str))))
    fields.update(_flatten("extra", json.loads(json.dumps(dict(extra or {}), default=str))))
    fields.update(_flatten("versions", package_versions()))
    return fields


def training_data_digest(labels: np.ndarray | None, *sources: Any) -> str:
    """A sha256 of the training labels and the content of each batch source.

    A source that reads a dataset view hashes the view's content
    (:meth:`~ddcmh_core.data.View.update_hash`), an array source its array; any other source
    contributes its size only.
    """
    from ..data.views import as_view

    digest = hashlib.sha256()
    if labels is not None:
        digest.update(f"labels|{np.shape(labels)}|".encode())
        digest.update(np.ascontiguousarray(labels).tobytes())
    for source in sources:
        view = getattr(source, "view", None)
        if view is None and getattr(source, "data", None) is not None:
            view = as_view(source.data)
        if view is not None and hasattr(view, "update_hash"):
            view.update_hash(digest)
        else:
            digest.update(
                f"|{type(source).__name__}|{len(source)}|{getattr(source, 'n_features', None)}".encode()
            )
    return digest.hexdigest()


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(_flatten(f"{prefix}.{key}", value[key]))
        return flat
    return {prefix: value}


def fingerprint_differences(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """One line ``field: old → new`` per field that differs (empty when the fingerprints agree).

    A missing ``stored`` fingerprint (state written by an older ddcmh) is one difference.
    """
    if stored is None:
        return ["fingerprint: none saved (written by an older version of ddcmh) → this run's"]
    lines = []
    for key in sorted(set(stored) | set(current), key=lambda name: (name.split(".")[0] != "method", name)):
        old, new = stored.get(key, _ABSENT), current.get(key, _ABSENT)
        if old != new:
            lines.append(f"{key}: {_shown(old)} → {_shown(new)}")
    return lines


_ABSENT = object()


def _shown(value: Any) -> str:
    return "(not set)" if value is _ABSENT else json.dumps(value)


#: How many differences a mismatch error lists before it counts the rest.
MAX_LISTED_DIFFERENCES = 20


def mismatch_error(what: str, differences: list[str], advice: str) -> RunMismatchError:
    """The error for state ``what`` that another run made: the differences, then ``advice``.

    At most :data:`MAX_LISTED_DIFFERENCES` are listed, then how many more there are (state from
    an older ddcmh, whose fingerprint lacks the settings added since, differs in many fields).
    """
    shown = differences[:MAX_LISTED_DIFFERENCES]
    if len(differences) > len(shown):
        shown.append(f"... and {len(differences) - len(shown)} more")
    listed = "\n  ".join(shown)
    return RunMismatchError(
        f"{what} belongs to another run, so it cannot be resumed; what differs (saved → now):\n"
        f"  {listed}\n{advice}"
    )


def check_fingerprint(
    stored: Mapping[str, Any] | None, current: Mapping[str, Any], *, what: str, advice: str
) -> None:
    """Raise :class:`RunMismatchError` unless ``stored`` equals ``current``.

    Parameters
    ----------
    stored : mapping or None
        The fingerprint saved with the state (None: none was saved).
    current : mapping
        The fingerprint of the run that wants to resume.
    what : str
        The state, for the message (a file or folder).
    advice : str
        What to do instead (e.g. ``--restart`` or another output folder).
    """
    differences = fingerprint_differences(stored, current)
    if differences:
        raise mismatch_error(what, differences, advice)


def read_run_fingerprint(folder: Path) -> dict[str, Any] | None:
    """The fingerprint saved in ``folder/run.json`` (None when there is none).

    Raises
    ------
    RunMismatchError
        When the file exists but is not a fingerprint (damaged or foreign).
    """
    path = folder / RUN_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RunMismatchError(
            f"{path}: not a readable run fingerprint ({error}); delete the folder {folder} or use a new one"
        ) from None
    if not isinstance(stored, dict) or not isinstance(stored.get("fingerprint"), dict):
        raise RunMismatchError(
            f"{path}: not a ddcmh run fingerprint; delete the folder {folder} or use a new one"
        )
    return dict(stored["fingerprint"])


def write_run_fingerprint(folder: Path, fingerprint: Mapping[str, Any]) -> None:
    """Save ``fingerprint`` as ``folder/run.json`` (atomically; the folder is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / RUN_FILE) as temporary:
        temporary.write_text(json.dumps({"fingerprint": dict(fingerprint)}, indent=1, sort_keys=True))


def holds_run_state(folder: Path) -> bool:
    """Whether ``folder`` exists and holds anything (saved state of a run)."""
    return folder.is_dir() and any(folder.iterdir())


def folder_differences(folder: Path, fingerprint: Mapping[str, Any]) -> list[str]:
    """What differs between ``fingerprint`` and the run whose state ``folder`` holds.

    Empty when the folder is missing or empty, or when its ``run.json`` matches.
    """
    if not holds_run_state(folder):
        return []
    return fingerprint_differences(read_run_fingerprint(folder), fingerprint)


def check_discardable(folder: Path) -> None:
    """Refuse to discard a folder that holds files ddcmh did not write (before any work).

    Raises
    ------
    InputError
        Naming the first foreign files and the folder.
    """
    if not folder.exists():
        return
    if not folder.is_dir():
        raise InputError(f"{folder}: the run folder is a file; remove it or choose another folder")
    foreign = sorted(str(path.relative_to(folder)) for path in _foreign_entries(folder))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InputError(
            f"{folder}: holds files that ddcmh did not write ({shown}), so --restart will not delete it; "
            "move them away or choose another folder"
        )


def _foreign_entries(folder: Path) -> list[Path]:
    found = []
    for entry in folder.iterdir():
        if not _RUN_STATE_NAMES.match(entry.name) or entry.is_symlink():
            found.append(entry)
        elif entry.is_dir():
            found += _foreign_entries(entry)
    return found


def discard_run_state(folder: Path) -> None:
    """Delete a run folder's saved state (after :func:`check_discardable` has passed)."""
    check_discardable(folder)
    if folder.is_dir():
        shutil.rmtree(folder)


def prepare_run_folder(
    folder: Path, fingerprint: Mapping[str, Any], *, resume: bool, restart: bool, advice: str
) -> None:
    """Claim ``folder`` for the run ``fingerprint`` before it trains.

    With ``restart`` the folder's saved state is deleted first; with ``resume`` the state must be
    that of a run with the same fingerprint. The fingerprint is then saved as ``run.json``.

    Parameters
    ----------
    folder : Path
        The run folder (created when missing).
    fingerprint : mapping
        This run's :func:`run_fingerprint`.
    resume, restart : bool
        Whether the run continues the saved state, or discards it.
    advice : str
        What to do when the state belongs to another run (ends the error message).

    Raises
    ------
    RunMismatchError
        On ``resume`` when the saved state is another run's; every difference is listed.
    InputError
        On ``restart`` when the folder holds files that ddcmh did not write.
    """
    if restart:
        discard_run_state(folder)
    elif resume:
        differences = folder_differences(folder, fingerprint)
        if differences:
            raise mismatch_error(f"the run folder {folder}", differences, advice)
    write_run_fingerprint(folder, fingerprint)


__all__ = [
    "MAX_LISTED_DIFFERENCES",
    "NOT_FINGERPRINTED",
    "RUN_FILE",
    "RunMismatchError",
    "check_discardable",
    "check_fingerprint",
    "discard_run_state",
    "fingerprint_differences",
    "folder_differences",
    "holds_run_state",
    "mismatch_error",
    "package_versions",
    "prepare_run_folder",
    "read_run_fingerprint",
    "run_fingerprint",
    "training_data_digest",
    "write_run_fingerprint",
]
