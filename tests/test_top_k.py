"""Tests of the counting top-k selector and the sparse-mask nonzero it reads blocks with."""

from __future__ import annotations

import numpy as np
import pytest

from ddcmh_core.evaluation.codes import nonzero_2d
from ddcmh_core.evaluation.top_k import TopKSelector


def stable_top_k(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (distance, position): obviously correct."""
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


@pytest.mark.parametrize(
    ("n_bits", "block_sizes", "k"),
    [
        (4, [3, 1, 50, 2, 200], 7),  # heavy ties, first blocks smaller than k
        (16, [1000, 1000, 1000], 30),  # many prunes at a strict bound
        (64, [5, 5, 5, 5], 20),  # exactly as many items as k
        (8, [300, 7, 300], 1),
    ],
)
def test_selector_matches_a_stable_sort_over_uneven_blocks(
    n_bits: int, block_sizes: list[int], k: int
) -> None:
    rng = np.random.default_rng(n_bits + k)
    n_queries = 9
    distances = rng.binomial(n_bits, 0.5, size=(n_queries, sum(block_sizes))).astype(np.uint16)
    selector = TopKSelector(n_queries, k, n_bits)
    start = 0
    for size in block_sizes:
        block = np.ascontiguousarray(distances[:, start : start + size])
        selector.add_block(start, block, np.empty(block.shape, np.bool_))
        start += size
    found_distances, found_positions = selector.result()
    expected_distances, expected_positions = stable_top_k(distances.astype(np.int64), k)
    assert found_distances.dtype == np.int32 and found_positions.dtype == np.int64
    np.testing.assert_array_equal(found_distances, expected_distances)
    np.testing.assert_array_equal(found_positions, expected_positions)  # ties by position


@pytest.mark.parametrize("shape", [(3, 64), (5, 13), (1, 8), (4, 0)])
def test_nonzero_2d_agrees_with_numpy(shape: tuple[int, int]) -> None:
    mask = np.random.default_rng(sum(shape)).random(shape) < 0.05
    mask.flat[-1:] = True
    rows, columns = nonzero_2d(mask)
    expected_rows, expected_columns = np.nonzero(mask)
    assert rows.dtype == np.int64 and columns.dtype == np.int64
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(columns, expected_columns)
