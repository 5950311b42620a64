"""Linear-time reconstruction of the image codes from label overlap (METHOD.md §1.5).

``b_xr_i = (l_i L^T B_x) / ||l_i L^T||_1``, computed right to left as ``D^-1 L (L^T B_x)`` with
``d = L (L^T 1)``: O(nnz(L) k) time, O(n k + c k) memory, never an n x n matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InputError


@dataclass(frozen=True)
class Reconstruction:
    """Reconstructed targets and what was done to get them.

    Attributes
    ----------
    targets : ndarray of shape (n_kept, n_bits), float64 in [0, 1] (or {0,1} when binarised)
    kept : ndarray of int
        Row indices (into the inputs) that have targets.
    dropped : ndarray of int
        Rows without any label that were dropped (empty unless ``drop_unlabelled``).
    binarised : bool
        Whether the targets were re-binarised at 0.5 (``> 0.5`` is 1).
    """

    targets: np.ndarray
    kept: np.ndarray
    dropped: np.ndarray
    binarised: bool


def unlabelled_rows(labels: Any) -> np.ndarray:
    """Indices of rows with no label at all."""
    counts = np.asarray(labels.sum(axis=1)).ravel()
    return np.flatnonzero(counts == 0)


def reconstruct_codes(
    labels: Any,
    image_codes: np.ndarray,
    *,
    binarise: bool = False,
    drop_unlabelled: bool = False,
) -> Reconstruction:
    """Reconstruct the image codes as label-overlap-weighted averages.

    Parameters
    ----------
    labels : ndarray or sparse matrix of shape (n, c), {0,1}
        Training labels ``L`` (non-negative).
    image_codes : ndarray of shape (n, k), {0,1}
        Stage-2 training image codes ``B_x``.
    binarise : bool, default False
        Re-binarise the soft targets: 1 iff the reconstructed value is > 0.5 (METHOD.md §2, 3).
    drop_unlabelled : bool, default False
        Drop rows without labels instead of raising (their weight in every other row's
        reconstruction is 0, so no other target changes).

    Returns
    -------
    Reconstruction

    Raises
    ------
    InputError
        On shape mismatches, negative labels, or unlabelled rows when ``drop_unlabelled`` is
        False (the message gives their count and first indices).
    """
    label_matrix = (
        sp.csr_matrix(labels, dtype=np.float64)
        if sp.issparse(labels)
        else np.asarray(labels, dtype=np.float64)
    )
    codes = np.asarray(image_codes, dtype=np.float64)
    if label_matrix.ndim != 2 or codes.ndim != 2:
        raise InputError("reconstruct_codes: expected 2-D labels and 2-D image codes")
    if label_matrix.shape[0] != codes.shape[0]:
        raise InputError(
            f"reconstruct_codes: argument 'image_codes': expected {label_matrix.shape[0]} rows "
            f"(one per label row), got {codes.shape[0]}"
        )
    values = np.asarray(label_matrix.data if sp.issparse(label_matrix) else label_matrix)
    if np.any(values < 0):
        raise InputError("reconstruct_codes: argument 'labels': expected non-negative labels")
    empty = unlabelled_rows(label_matrix)
    kept = np.arange(label_matrix.shape[0])
    if empty.size:
        if not drop_unlabelled:
            shown = ", ".join(str(i) for i in empty[:10]) + (", ..." if empty.size > 10 else "")
            raise InputError(
                f"reconstruct_codes: argument 'labels': {empty.size} training rows have no label "
                f"(rows {shown}); the reconstruction is undefined for them. Drop them "
                "(drop_unlabelled=True, or --drop-unlabelled) or fix the labels."
            )
        kept = np.setdiff1d(kept, empty)
        label_matrix = label_matrix[kept]
        codes = codes[kept]
    label_frequencies = np.asarray(label_matrix.sum(axis=0)).ravel()  # c = L^T 1
    normalisers = np.asarray(label_matrix @ label_frequencies).ravel()  # d = L c
    per_label_sums = np.asarray(label_matrix.T @ codes)  # M = L^T B_x, exact integer counts
    targets = np.asarray(label_matrix @ per_label_sums) / normalisers[:, None]
    if binarise:
        targets = (targets > 0.5).astype(np.float64)
    return Reconstruction(
        targets=targets, kept=kept, dropped=empty if drop_unlabelled else empty[:0], binarised=binarise
    )
