"""Neighbourhood graphs shared by the graph-regularised baselines (SMFH, IMH)."""

from __future__ import annotations

import numpy as np

from ._shallow import squared_distances


def nearest_others(rows: np.ndarray, k_nn: int) -> np.ndarray:
    """Indices (n, k_nn) of every row's ``k_nn`` nearest other rows by Euclidean distance."""
    distances = squared_distances(rows, rows)
    np.fill_diagonal(distances, np.inf)
    return np.argpartition(distances, k_nn - 1, axis=1)[:, :k_nn]


def graph_laplacian(adjacency: np.ndarray) -> np.ndarray:
    """Unnormalised Laplacian ``D - W`` of a weighted graph."""
    return np.diag(adjacency.sum(axis=1)) - adjacency
