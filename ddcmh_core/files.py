"""Writing files atomically and opening ddcmh's own HDF5 files.

Every file ddcmh writes (hasher, model, codes, checkpoints, split, results) goes to a temporary
name beside its target and is renamed over it only when complete, so a failure never leaves a
half-written file and the previous complete file stays as it was.

A write that the system refuses (a full disk, a quota, no permission, a read-only file system)
becomes a :class:`FileWriteError` that names the file and the reason in words; the command-line
tools report it in one line and exit with status 2, like every other
:class:`~ddcmh_core.errors.DdcmhError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py

from .errors import DdcmhError

WRITE_ERRORS = {
    errno.ENOSPC: "disk full (no space left on the device)",
    errno.EDQUOT: "disk full (the disk quota is exceeded)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied (operation not permitted)",
    errno.EROFS: "permission denied (read-only file system)",
}
"""The ``errno`` values reported as a refused write, and how messages name them."""

_TORCH_WRITE_FAILURE = re.compile(r"unexpected pos|file write failed|failed writing file", re.IGNORECASE)
"""What :func:`torch.save` says, without an ``errno``, when the bytes could not be written to a path."""
_HDF5_ERRNO = re.compile(r"\berrno = (\d+)")


class FileWriteError(DdcmhError, OSError):
    """A file could not be written: disk full, quota, permission or a read-only file system.

    Also an :class:`OSError` whose ``errno`` is the system's (None when torch hid it); the
    previous complete file, if any, is unchanged.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _errno_of(error: BaseException) -> int | None:
    """The first ``errno`` of :data:`WRITE_ERRORS` in ``error`` or the exceptions it came from."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in WRITE_ERRORS:
            return current.errno
        quoted = _HDF5_ERRNO.search(str(current))  # HDF5 names the errno only in its message
        if quoted is not None and int(quoted.group(1)) in WRITE_ERRORS:
            return int(quoted.group(1))
        current = current.__cause__ or current.__context__
    return None


def write_failure(error: BaseException, target: Path, existed: bool) -> FileWriteError | None:
    """The :class:`FileWriteError` that ``error``, raised while writing ``target``, stands for (or None).

    Parameters
    ----------
    error : BaseException
        What the writer raised.
    target : Path
        The file being written.
    existed : bool
        Whether ``target`` existed before (the message then says it is unchanged).

    Returns
    -------
    FileWriteError or None
        None when ``error`` is not a refused write (it is then re-raised as it is).
    """
    code = _errno_of(error)
    kept = f"the previous {target.name} is unchanged" if existed else "nothing was written"
    if code is not None:
        reason = WRITE_ERRORS[code]
        failure = FileWriteError(f"{target}: cannot write the file: {reason}; {kept}")
    elif isinstance(error, RuntimeError) and _TORCH_WRITE_FAILURE.search(str(error)):
        folder = target.parent if str(target.parent) else Path(".")
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free in {folder}"
        except OSError:
            free = f"the free space of {folder} is unknown"
        failure = FileWriteError(
            f"{target}: cannot write the file: the write failed, most likely disk full ({free}; torch "
            f"said: {str(error).strip()}); {kept}"
        )
    else:
        return None
    failure.errno = code
    return failure


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` when the block succeeds.

    On an exception the temporary file is removed and ``target`` is left as it was. A refused
    write (:data:`WRITE_ERRORS`, or torch's equivalent) is raised as a :class:`FileWriteError`
    naming ``target``; other exceptions pass unchanged.
    """
    final = Path(target)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    existed = final.exists()
    try:
        yield temporary
        os.replace(temporary, final)
    except (OSError, RuntimeError) as error:
        if isinstance(error, FileWriteError):
            raise
        failure = write_failure(error, final, existed)
        if failure is None:
            raise
        raise failure from error
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
