"""Command-line tools of ddcmh (``ddcmh-bench``, ``ddcmh``)."""

from __future__ import annotations

import os
import sys


def stdout_closed() -> int:
    """Handle a reader of stdout that went away (``| head``): stop quietly with status 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1
