"""Errors and warnings of the data layer.

Every problem with a dataset file raises :class:`DatasetError`, a subclass of
:class:`ddcmh_core.errors.InputError`, so the command-line tools report it in one line and exit
with status 2. Messages name the file, the key or the row, what was expected and what was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError


class DatasetError(InputError):
    """A dataset file is missing, malformed or inconsistent; the message says where and why."""


class MissingFilesError(DatasetError):
    """The files a dataset needs are not where they were looked for.

    Parameters
    ----------
    message : str
        What is missing.
    dataset : str
        The dataset's registered name (empty for generic files).
    searched : path, optional
        The folder that was searched.
    missing : sequence of str
        The missing file names (or patterns).
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str = "",
        searched: str | Path | None = None,
        missing: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.searched = None if searched is None else Path(searched)
        self.missing = tuple(missing)


class DatasetWarning(UserWarning):
    """Something about a dataset the user should know (skipped items, items without labels)."""
