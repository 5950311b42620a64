"""Checks that run before any work starts and before any file or folder is written.

The command-line tools call these first, so that a run which cannot finish (an output folder
under a file, a read-only folder, a device the machine lacks) stops at once with a one-line
:class:`~ddcmh_core.errors.InputError` (exit status 2) and leaves nothing behind, instead of
failing after training or leaving empty folders.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import InputError


def nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing ancestor (``.`` at the latest)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path, option: str, target: Path) -> None:
    """Create and remove one empty file in ``folder``; refuse when the system says no."""
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".ddcmh-write-test-")
    except OSError as error:
        raise InputError(
            f"{option} {target}: cannot write in the folder {folder} ({error.strerror or error}); "
            "choose another path"
        ) from None
    os.close(handle)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


def check_output_path(
    path: str | os.PathLike[str], option: str, *, folder: bool = False, create_parents: bool = True
) -> Path:
    """Refuse an output path that cannot be written, creating nothing.

    Parameters
    ----------
    path : path
        The file (or, with ``folder=True``, the folder) a command will write.
    option : str
        The option that named it, for messages (``"--model"``).
    folder : bool, default False
        ``path`` is a folder to create or reuse, not a file.
    create_parents : bool, default True
        The command creates missing folders on the way; when False the parent folder must exist.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    InputError
        When ``path`` exists as the wrong kind (a folder for a file, or the reverse), when a
        missing parent is not allowed, when an existing ancestor is a file, or when the nearest
        existing folder does not let a file be created in it (read-only, no permission).
    """
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        what = "is a folder, not a file" if target.is_dir() else "is not a folder"
        raise InputError(f"{option} {target}: exists and {what}; choose another path")
    parent = target if folder and target.is_dir() else target.parent
    existing = nearest_existing(parent)
    if not existing.is_dir():
        raise InputError(f"{option} {target}: {existing} is a file, not a folder; choose another path")
    if existing != Path(os.path.abspath(parent)) and not create_parents:
        raise InputError(
            f"{option} {target}: the folder {parent} does not exist; create it or choose another path"
        )
    _probe_writable(existing, option, target)
    return target
