"""The validation split carved from the training rows, and the score that chooses on it.

Every method that chooses epochs or hyper-parameters holds out rows of its *training* set with
:func:`split_validation` and scores candidates with :func:`validation_map`; the query set plays no
part in any choice.
"""

from __future__ import annotations

import numpy as np


def split_validation(n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training positions into (fit, validation), seeded; validation may be empty."""
    order = np.random.default_rng([seed, 7]).permutation(n_train)
    n_validation = round(fraction * n_train)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def validation_map(
    query_codes: np.ndarray, database_codes: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray
) -> float:
    """Tie-aware MAP@all as a plain float (the early-stopping score)."""
    from ..evaluation.metrics import mean_average_precision

    return float(mean_average_precision(query_codes, database_codes, query_labels, database_labels))
