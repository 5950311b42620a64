"""The validation split carved from the training rows, and the score that chooses on it.

Every method that chooses epochs or hyper-parameters holds out rows of its *training* set with
:func:`split_validation` and scores candidates with :func:`validation_map`; the query set plays no
part in any choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


def split_validation(n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training positions into (fit, validation), seeded; validation may be empty."""
    order = np.random.default_rng([seed, 7]).permutation(n_train)
    n_validation = round(fraction * n_train)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


@dataclass(frozen=True)
class LabelledRows:
    """Training rows of a supervised fit: those it fits on, those it validates on, those dropped."""

    fit: np.ndarray
    validation: np.ndarray
    dropped: np.ndarray


def split_labelled_rows(
    labels: np.ndarray,
    *,
    fraction: float,
    seed: int,
    drop_unlabelled: bool,
    owner: str,
    why_labels: str,
    min_fit_rows: int = 1,
) -> LabelledRows:
    """Drop (or refuse) rows without any label, then carve the validation split from the rest.

    Parameters
    ----------
    labels : ndarray of shape (n, c)
        {0,1} training labels.
    fraction, seed
        As for :func:`split_validation`.
    drop_unlabelled : bool
        Drop rows without a label; otherwise they are refused.
    owner : str
        Names the method in error messages.
    why_labels : str
        Why the method needs a label on every row (completes the error message).
    min_fit_rows : int
        Fewest labelled rows left to fit on.

    Raises
    ------
    InputError
        Naming the unlabelled rows (first ten) when they are refused, or too few rows to fit on.
    """
    empty = np.flatnonzero(labels.sum(axis=1) == 0)
    if empty.size and not drop_unlabelled:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
        raise InputError(
            f"{owner}: argument 'labels': {empty.size} training rows have no label (rows {shown}); "
            f"{why_labels}. Set drop_unlabelled=True to drop them."
        )
    usable = np.setdiff1d(np.arange(len(labels)), empty)
    fit_positions, validation_positions = split_validation(len(usable), fraction, seed)
    rows = LabelledRows(fit=usable[fit_positions], validation=usable[validation_positions], dropped=empty)
    if len(rows.fit) < min_fit_rows:
        raise InputError(
            f"{owner}: argument 'labels': expected at least {min_fit_rows} labelled rows to fit on, "
            f"got {len(rows.fit)}"
        )
    return rows


def validation_map(
    query_codes: np.ndarray, database_codes: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray
) -> float:
    """Tie-aware MAP@all as a plain float (the early-stopping score)."""
    from ..evaluation.metrics import mean_average_precision

    return float(mean_average_precision(query_codes, database_codes, query_labels, database_labels))
