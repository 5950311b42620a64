"""How much memory a fit will need, estimated from the shape of its training data, and how much is free.

A hasher or cross-modal method that forms matrices as large as its features squared (covariances,
Gram matrices) or its rows squared (affinity graphs) declares a :class:`MemoryModel`; the plan
check of ``ddcmh-bench`` compares each cell's estimate with :func:`available_memory` and refuses
the plan before any work starts, instead of the kernel killing the run an hour in (a 39,920-column
caption vocabulary makes one float64 covariance 12.7 GB).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FLOAT_BYTES = 8  # the fits work in float64


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes of a fit as float64 matrices of the training shape.

    ``peak = 8 * (feature_squares * d^2 + row_squares * n^2 + dense_copies * n * sum(d_view)
    + n * row_columns)`` with ``n`` the training rows and ``d`` the width of the widest view: how
    many d x d and n x n matrices the fit holds at once (with the workspace of their
    factorisations), how many dense copies of the views, and how many columns of per-row
    matrices of a fixed width (kernel features of anchors, sparse codes over a dictionary) at the
    method's default parameters. The constants are read from the code and checked against the
    measured peak of a real fit (``tests/test_memory.py``), rounded up: an estimate errs high.

    Attributes
    ----------
    feature_squares : float
        d x d matrices alive at the peak.
    row_squares : float
        n x n matrices alive at the peak.
    dense_copies : float
        Dense float64 copies of the training views (a sparse text view densified counts).
    row_columns : float
        Columns of the fixed-width per-row matrices alive at the peak (e.g. 2 x 500 anchors).
    squares_up_to : int or None
        The d x d matrices are formed only up to this width (above it the fit uses an implicit
        operator, as PCA above :data:`~ddcmh_core.linalg.DENSE_COVARIANCE_MAX_FEATURES`).
    """

    feature_squares: float = 0.0
    row_squares: float = 0.0
    dense_copies: float = 1.0
    row_columns: float = 0.0
    squares_up_to: int | None = None

    def _feature_squares(self, widest: int) -> float:
        if self.squares_up_to is not None and widest > self.squares_up_to:
            return 0.0
        return self.feature_squares * widest**2

    def peak_bytes(self, n_rows: int, widths: Iterable[int | None]) -> int:
        """Estimated peak bytes on ``n_rows`` training rows of views ``widths`` wide (None: photos)."""
        known, widest = _known_widths(widths)
        cells = (
            self._feature_squares(widest)
            + self.row_squares * n_rows**2
            + self.dense_copies * n_rows * sum(known)
            + self.row_columns * n_rows
        )
        return int(FLOAT_BYTES * cells)

    def estimate(self, n_rows: int, widths: Iterable[int | None]) -> tuple[int, str]:
        """:meth:`peak_bytes` and :meth:`explain` together: what ``working_memory`` returns."""
        widths = list(widths)
        return self.peak_bytes(n_rows, widths), self.explain(n_rows, widths)

    def explain(self, n_rows: int, widths: Iterable[int | None]) -> str:
        """What dominates the estimate, in words (``d x d matrices of the 39920 features``)."""
        _, widest = _known_widths(widths)
        squares = self._feature_squares(widest)
        rows = self.row_squares * n_rows**2
        if squares >= rows and squares > 0:
            return f"{widest:,} x {widest:,} matrices of the widest view's features"
        if rows > 0:
            return f"{n_rows:,} x {n_rows:,} matrices of the training rows"
        return f"dense copies of the {n_rows:,} training rows"


def _known_widths(widths: Iterable[int | None]) -> tuple[list[int], int]:
    """The widths of the feature views (photos, None, have none) and the widest of them (0 if none)."""
    known = [int(width) for width in widths if width is not None]
    return known, max(known, default=0)


def available_memory() -> int | None:
    """Bytes the system can give a new process without swapping (``MemAvailable``), or None if unknown.

    ``$DDCMH_AVAILABLE_MEMORY`` (bytes) overrides it, for a machine shared with other work or a
    test.
    """
    forced = os.environ.get("DDCMH_AVAILABLE_MEMORY")
    if forced:
        return int(forced)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """``count`` bytes as ``12.7 GiB`` / ``340 MiB``."""
    if count >= 2**30:
        return f"{count / 2**30:.1f} GiB"
    return f"{count / 2**20:.0f} MiB"


__all__ = ["MemoryModel", "available_memory", "format_bytes"]
