"""Writing files atomically and opening ddcmh's own HDF5 files.

Every file ddcmh writes (hasher, model, codes, checkpoints, results) goes to a temporary name
beside its target and is renamed over it only when complete, so a failure never leaves a
half-written file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` when the block succeeds.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    final = Path(target)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def open_ddcmh_h5(
    source: Path, *, kind: str, expected_format: str, error: type[Exception], hint: str = ""
) -> h5py.File:
    """Open an existing HDF5 file for reading and check its ``ddcmh_format`` attribute.

    Parameters
    ----------
    source : Path
        The file (the caller checks that it exists, with its own message).
    kind : str
        What the file should be, for messages (``"hasher file"``).
    expected_format : str
        The required value of the ``ddcmh_format`` attribute.
    error : type
        Exception class to raise.
    hint : str
        Appended to the message of a foreign file.

    Returns
    -------
    h5py.File
        Open for reading; the caller closes it.
    """
    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise error(f"{source}: not a readable HDF5 file ({exc})") from None
    found = handle.attrs.get("ddcmh_format")
    if found != expected_format:
        handle.close()
        raise error(
            f"{source}: not a ddcmh {kind} (attribute 'ddcmh_format' is {found!r}, "
            f"expected {expected_format!r}){hint}"
        )
    return handle
