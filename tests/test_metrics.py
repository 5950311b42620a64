"""Tests of ddcmh_core.evaluation.metrics against slow, obviously correct references written here.

References:
- index order: sort the database by (distance, index) explicitly and walk the ranking;
- expected (tie-aware): enumerate every arrangement of relevant items inside every tie group
  (each arrangement of a group with n items, r relevant, has probability 1 / C(n, r)) and
  average the index-order metric over the resulting rankings.
"""

from __future__ import annotations

import itertools
import math
import pickle
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import scipy.sparse

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.codes import InvalidCodesError
from ddcmh_core.evaluation.metrics import (
    InvalidLabelsError,
    MetricValue,
    mean_average_precision,
    precision_at_n,
    precision_recall_by_radius,
    precision_within_radius,
    random_code_floor,
)

# ------------------------------------------------------------------------------------------
# references
# ------------------------------------------------------------------------------------------


def brute_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    return (queries[:, None, :] != database[None, :, :]).sum(axis=2)


def brute_relevance(query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    if query_labels.ndim == 1:
        return query_labels[:, None] == database_labels[None, :]
    return (query_labels.astype(int) @ database_labels.astype(int).T) > 0


def ap_of_ranking(relevance_in_rank_order: np.ndarray, k: int | None = None) -> float:
    ranked = relevance_in_rank_order if k is None else relevance_in_rank_order[:k]
    hits, total = 0, 0.0
    for position, relevant in enumerate(ranked, start=1):
        if relevant:
            hits += 1
            total += hits / position
    return total / hits if hits else 0.0


def precision_of_ranking(relevance_in_rank_order: np.ndarray, n: int) -> float:
    return float(np.sum(relevance_in_rank_order[:n])) / n


def index_order_ranking(distances: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    order = sorted(range(len(distances)), key=lambda j: (distances[j], j))
    return relevance[order]


def tie_arrangements(distances: np.ndarray, relevance: np.ndarray) -> Iterator[np.ndarray]:
    """Every distinct relevance pattern of the ranking, each equally likely."""
    groups = []
    for value in sorted(set(distances.tolist())):
        members = relevance[distances == value]
        groups.append((len(members), int(members.sum())))
    choices = [itertools.combinations(range(n), r) for n, r in groups]
    for picked in itertools.product(*choices):
        ranking = []
        for (n, _), positions in zip(groups, picked, strict=True):
            pattern = np.zeros(n, dtype=bool)
            pattern[list(positions)] = True
            ranking.append(pattern)
        yield np.concatenate(ranking)


def expected_over_ties(
    distances: np.ndarray, relevance: np.ndarray, metric: Callable[[np.ndarray], float]
) -> float:
    values = [metric(ranking) for ranking in tie_arrangements(distances, relevance)]
    return float(np.mean(values))


def reference_per_query(
    queries: np.ndarray,
    database: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    metric: Callable[[np.ndarray], float],
    tie_policy: str,
) -> np.ndarray:
    distances = brute_distances(queries, database)
    relevance = brute_relevance(query_labels, database_labels)
    values = []
    for row in range(len(queries)):
        if tie_policy == "index":
            values.append(metric(index_order_ranking(distances[row], relevance[row])))
        else:
            values.append(expected_over_ties(distances[row], relevance[row], metric))
    return np.array(values)


def random_problem(
    seed: int, n_queries: int, n_database: int, n_bits: int, n_labels: int, density: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, 2, size=(n_queries, n_bits), dtype=np.uint8)
    database = rng.integers(0, 2, size=(n_database, n_bits), dtype=np.uint8)
    query_labels = (rng.random((n_queries, n_labels)) < density).astype(np.uint8)
    database_labels = (rng.random((n_database, n_labels)) < density).astype(np.uint8)
    return queries, database, query_labels, database_labels


# ------------------------------------------------------------------------------------------
# hand-computed values
# ------------------------------------------------------------------------------------------


def test_perfect_ranking_has_map_one() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 1]], dtype=np.uint8)
    labels = np.array([[1, 0], [1, 0], [0, 1]])
    for policy in ("expected", "index"):
        result = mean_average_precision(codes[:1], codes, labels[:1], labels, tie_policy=policy)
        assert float(result) == 1.0


def test_two_tied_items_one_relevant_by_hand() -> None:
    # both database items at distance 1; only one is relevant
    query = np.array([[0]], dtype=np.uint8)
    database = np.array([[1], [1]], dtype=np.uint8)
    query_labels = np.array([[1, 0]])
    relevant_first = np.array([[1, 0], [0, 1]])
    relevant_second = np.array([[0, 1], [1, 0]])
    # expected: the relevant item is first or second with probability 1/2: (1 + 1/2) / 2
    for labels in (relevant_first, relevant_second):
        assert mean_average_precision(query, database, query_labels, labels) == pytest.approx(0.75)
    assert mean_average_precision(query, database, query_labels, relevant_first, tie_policy="index") == 1.0
    assert mean_average_precision(query, database, query_labels, relevant_second, tie_policy="index") == 0.5


def test_three_tied_items_two_relevant_by_hand() -> None:
    # patterns 110, 101, 011 equally likely: AP = 1, 5/6, 7/12 -> mean 29/36
    query = np.zeros((1, 4), dtype=np.uint8)
    database = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.uint8)
    classes_query = np.array([7])
    classes_database = np.array([3, 7, 7])
    expected = mean_average_precision(query, database, classes_query, classes_database)
    assert expected == pytest.approx(29 / 36, abs=1e-15)
    index = mean_average_precision(query, database, classes_query, classes_database, tie_policy="index")
    assert index == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_truncated_map_at_k_by_hand() -> None:
    # ranking by distance 0,1,2,3 with relevance 0,1,0,1 (no ties): AP@2 = (1/2)/1, AP@4 = (1/2+2/4)/2
    query = np.zeros((1, 3), dtype=np.uint8)
    database = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=np.uint8)
    labels_query, labels_database = np.array([1]), np.array([0, 1, 0, 1])
    assert mean_average_precision(query, database, labels_query, labels_database, k=1) == 0.0
    assert mean_average_precision(query, database, labels_query, labels_database, k=2) == 0.5
    assert mean_average_precision(query, database, labels_query, labels_database, k=4) == pytest.approx(0.5)
    assert mean_average_precision(query, database, labels_query, labels_database, k=40).name == "MAP@40"


def test_truncated_expected_with_cut_inside_a_tie_group_by_hand() -> None:
    # three tied items, one relevant, k = 2: the relevant item is at 1, 2 or 3 with prob 1/3
    # AP@2 = 1, 1/2, 0 -> 1/2
    query = np.zeros((1, 2), dtype=np.uint8)
    database = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.uint8)
    value = mean_average_precision(query, database, np.array([1]), np.array([0, 1, 0]), k=2)
    assert value == pytest.approx(0.5, abs=1e-15)


def test_queries_without_relevant_items_count_zero_and_are_reported() -> None:
    queries = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    database = np.array([[0, 0], [0, 1]], dtype=np.uint8)
    query_labels = np.array([[1, 0], [0, 1]])  # the second query matches nothing
    database_labels = np.array([[1, 0], [1, 0]])
    for policy in ("expected", "index"):
        result = mean_average_precision(queries, database, query_labels, database_labels, tie_policy=policy)
        assert result == 0.5
        assert result.n_queries_without_relevant == 1
        np.testing.assert_array_equal(result.per_query, [1.0, 0.0])
        assert not np.isnan(result)


# ------------------------------------------------------------------------------------------
# agreement with the references on random tiny cases (with many ties)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tie_policy", ["expected", "index"])
@pytest.mark.parametrize("seed", range(6))
def test_map_all_matches_reference(seed: int, tie_policy: str) -> None:
    n_bits = [2, 3, 4, 5, 9, 12][seed]
    problem = random_problem(seed, n_queries=4, n_database=9, n_bits=n_bits, n_labels=3, density=0.35)
    expected = reference_per_query(*problem, ap_of_ranking, tie_policy)
    result = mean_average_precision(*problem, tie_policy=tie_policy)
    assert result.tie_policy == tie_policy and result.name == "MAP@all"
    np.testing.assert_allclose(result.per_query, expected, rtol=0, atol=1e-12)
    assert float(result) == pytest.approx(expected.mean(), abs=1e-12)


@pytest.mark.parametrize("tie_policy", ["expected", "index"])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 9, 20])
def test_truncated_map_at_k_matches_reference(k: int, tie_policy: str) -> None:
    problem = random_problem(10 + k, n_queries=5, n_database=9, n_bits=3, n_labels=3, density=0.35)
    expected = reference_per_query(*problem, lambda ranking: ap_of_ranking(ranking, k), tie_policy)
    result = mean_average_precision(*problem, k=k, tie_policy=tie_policy)
    assert result.name == f"MAP@{k}"
    np.testing.assert_allclose(result.per_query, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tie_policy", ["expected", "index"])
def test_precision_at_n_matches_reference(tie_policy: str) -> None:
    problem = random_problem(3, n_queries=5, n_database=10, n_bits=3, n_labels=2, density=0.4)
    n_values = [1, 2, 3, 5, 7, 10]
    curve = precision_at_n(*problem, n_values, tie_policy=tie_policy)
    assert curve.tie_policy == tie_policy
    for column, n in enumerate(n_values):
        expected = reference_per_query(
            *problem, lambda ranking, n=n: precision_of_ranking(ranking, n), tie_policy
        )
        np.testing.assert_allclose(curve.per_query_precision[:, column], expected, atol=1e-12)
    relevance = brute_relevance(problem[2], problem[3])
    n_relevant = relevance.sum(axis=1)
    recall = np.where(
        n_relevant[:, None] > 0, curve.per_query_precision * n_values / np.maximum(n_relevant, 1)[:, None], 0
    )
    np.testing.assert_allclose(curve.recall, recall.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(curve.precision[-1], relevance.mean(), atol=1e-12)


@pytest.mark.parametrize("tie_policy", ["expected", "index"])
def test_no_metric_returns_nan_for_zero_queries(tie_policy: str) -> None:
    # The module promises "No metric returns NaN"; an empty query set scores 0 everywhere
    # (precision_at_n once averaged an empty array into NaN).
    queries, database, query_labels, database_labels = random_problem(7, 3, 12, 4, 3)
    empty = (queries[:0], database, query_labels[:0], database_labels)
    assert float(mean_average_precision(*empty, tie_policy=tie_policy)) == 0.0
    assert float(mean_average_precision(*empty, k=5, tie_policy=tie_policy)) == 0.0
    curve = precision_at_n(*empty, [1, 5, 12], tie_policy=tie_policy)
    np.testing.assert_array_equal(curve.precision, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(curve.recall, [0.0, 0.0, 0.0])
    assert curve.per_query_precision.shape == (0, 3)
    assert float(precision_within_radius(*empty)) == 0.0
    by_radius = precision_recall_by_radius(*empty)
    assert not np.isnan(by_radius.precision).any() and not np.isnan(by_radius.recall).any()


def test_expected_map_is_independent_of_database_order_and_index_map_is_not() -> None:
    queries, database, query_labels, database_labels = random_problem(5, 20, 300, 4, 5)
    permutation = np.random.default_rng(0).permutation(len(database))
    original = mean_average_precision(queries, database, query_labels, database_labels)
    shuffled = mean_average_precision(
        queries, database[permutation], query_labels, database_labels[permutation]
    )
    assert original == pytest.approx(float(shuffled), abs=1e-12)
    # sorting the database so relevant items come first inflates index-order MAP at 4 bits
    by_label = np.argsort(-database_labels[:, 0], kind="stable")
    biased = mean_average_precision(
        queries, database[by_label], query_labels, database_labels[by_label], tie_policy="index"
    )
    assert abs(float(biased) - float(original)) > 1e-3


def test_expected_equals_mean_of_index_order_over_many_shuffles() -> None:
    queries, database, query_labels, database_labels = random_problem(6, 3, 40, 3, 3)
    rng = np.random.default_rng(1)
    values = []
    for _ in range(3000):
        permutation = rng.permutation(len(database))
        values.append(
            float(
                mean_average_precision(
                    queries,
                    database[permutation],
                    query_labels,
                    database_labels[permutation],
                    tie_policy="index",
                )
            )
        )
    expected = mean_average_precision(queries, database, query_labels, database_labels)
    assert np.mean(values) == pytest.approx(float(expected), abs=4 * np.std(values) / np.sqrt(len(values)))


# ------------------------------------------------------------------------------------------
# label forms, code widths, chunking, threads and the torch path give identical results
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bits", [7, 16, 64, 100, 300])
def test_code_widths_match_index_order_reference(n_bits: int) -> None:
    problem = random_problem(n_bits, n_queries=6, n_database=50, n_bits=n_bits, n_labels=4)
    expected = reference_per_query(*problem, ap_of_ranking, "index")
    np.testing.assert_allclose(
        mean_average_precision(*problem, tie_policy="index").per_query, expected, atol=1e-12
    )


def test_label_forms_give_the_same_result() -> None:
    queries, database, _, _ = random_problem(7, 8, 120, 6, 1)
    rng = np.random.default_rng(7)
    query_classes, database_classes = rng.integers(0, 5, 8), rng.integers(0, 5, 120)
    one_hot_query, one_hot_database = (
        np.eye(5, dtype=np.uint8)[query_classes],
        np.eye(5, dtype=np.uint8)[database_classes],
    )
    for policy in ("expected", "index"):
        from_classes = mean_average_precision(
            queries, database, query_classes, database_classes, tie_policy=policy
        )
        from_one_hot = mean_average_precision(
            queries, database, one_hot_query, one_hot_database, tie_policy=policy
        )
        from_sparse = mean_average_precision(
            queries,
            database,
            scipy.sparse.csr_matrix(one_hot_query),
            scipy.sparse.csr_matrix(one_hot_database),
            tie_policy=policy,
        )
        from_bool = mean_average_precision(
            queries, database, one_hot_query.astype(bool), one_hot_database.astype(float), tie_policy=policy
        )
        for other in (from_one_hot, from_sparse, from_bool):
            np.testing.assert_allclose(other.per_query, from_classes.per_query, atol=1e-12)


@pytest.mark.parametrize("n_labels", [70, 300])
def test_wide_and_sparse_label_matrices(n_labels: int) -> None:
    problem = random_problem(n_labels, n_queries=5, n_database=60, n_bits=5, n_labels=n_labels, density=0.01)
    expected = reference_per_query(*problem, ap_of_ranking, "index")
    dense = mean_average_precision(*problem, tie_policy="index")
    sparse = mean_average_precision(
        problem[0],
        problem[1],
        scipy.sparse.csr_matrix(problem[2]),
        scipy.sparse.csr_matrix(problem[3]),
        tie_policy="index",
    )
    np.testing.assert_allclose(dense.per_query, expected, atol=1e-12)
    np.testing.assert_allclose(sparse.per_query, expected, atol=1e-12)


def test_chunking_and_threads_do_not_change_results() -> None:
    problem = random_problem(8, n_queries=37, n_database=1001, n_bits=16, n_labels=6)
    for policy in ("expected", "index"):
        reference = mean_average_precision(*problem, tie_policy=policy, k=50, n_threads=1)
        for budget, threads in ((0.01, 1), (0.01, 2), (0.2, 2), (1000, 3)):
            other = mean_average_precision(
                *problem, tie_policy=policy, k=50, memory_budget_mb=budget, n_threads=threads
            )
            np.testing.assert_allclose(other.per_query, reference.per_query, atol=1e-13)


@pytest.mark.parametrize("tie_policy", ["expected", "index"])
def test_torch_path_on_cpu_equals_numpy(tie_policy: str) -> None:
    torch = pytest.importorskip("torch")
    queries, database, query_labels, database_labels = random_problem(9, 23, 400, 12, 5)
    numpy_result = mean_average_precision(
        queries, database, query_labels, database_labels, tie_policy=tie_policy, k=30
    )
    torch_result = mean_average_precision(
        torch.from_numpy(queries),
        torch.from_numpy(database),
        query_labels,
        database_labels,
        tie_policy=tie_policy,
        k=30,
        device="cpu",
        memory_budget_mb=0.05,
    )
    np.testing.assert_allclose(torch_result.per_query, numpy_result.per_query, atol=1e-12)
    classes = np.arange(23) % 4, np.arange(400) % 4
    np.testing.assert_allclose(
        mean_average_precision(queries, database, *classes, tie_policy=tie_policy, device="cpu").per_query,
        mean_average_precision(queries, database, *classes, tie_policy=tie_policy).per_query,
        atol=1e-12,
    )
    curve_numpy = precision_at_n(
        queries, database, query_labels, database_labels, [1, 10, 400], tie_policy=tie_policy
    )
    curve_torch = precision_at_n(
        queries, database, query_labels, database_labels, [1, 10, 400], tie_policy=tie_policy, device="cpu"
    )
    np.testing.assert_allclose(curve_torch.per_query_precision, curve_numpy.per_query_precision, atol=1e-12)
    radius_numpy = precision_recall_by_radius(queries, database, query_labels, database_labels)
    radius_torch = precision_recall_by_radius(queries, database, query_labels, database_labels, device="cpu")
    np.testing.assert_allclose(radius_torch.precision, radius_numpy.precision, atol=1e-12)


# ------------------------------------------------------------------------------------------
# radius metrics
# ------------------------------------------------------------------------------------------


def test_precision_recall_by_radius_matches_brute_force() -> None:
    queries, database, query_labels, database_labels = random_problem(11, 9, 80, 6, 3, density=0.2)
    distances = brute_distances(queries, database)
    relevance = brute_relevance(query_labels, database_labels)
    micro = precision_recall_by_radius(queries, database, query_labels, database_labels)
    macro = precision_recall_by_radius(queries, database, query_labels, database_labels, average="macro")
    np.testing.assert_array_equal(micro.radii, np.arange(7))
    for radius in range(7):
        within = distances <= radius
        hits = (within & relevance).sum()
        assert micro.precision[radius] == pytest.approx(hits / within.sum() if within.sum() else 0.0)
        assert micro.recall[radius] == pytest.approx(hits / relevance.sum())
        per_query_precision = [
            (w & r).sum() / w.sum() if w.sum() else 0.0 for w, r in zip(within, relevance, strict=True)
        ]
        per_query_recall = [
            (w & r).sum() / r.sum() if r.sum() else 0.0 for w, r in zip(within, relevance, strict=True)
        ]
        assert macro.precision[radius] == pytest.approx(np.mean(per_query_precision))
        assert macro.recall[radius] == pytest.approx(np.mean(per_query_recall))
    assert micro.recall[-1] == pytest.approx(1.0)


def test_precision_within_radius_two_counts_empty_retrieval_as_zero() -> None:
    queries = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=np.uint8)
    database = np.array([[0, 0, 0, 0, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=np.uint8)
    query_labels, database_labels = np.array([1, 1]), np.array([1, 2, 2])
    result = precision_within_radius(queries, database, query_labels, database_labels)
    # query 0 retrieves all three (1 relevant); query 1 retrieves nothing within radius 2
    np.testing.assert_allclose(result.per_query, [1 / 3, 0.0])
    assert result.name == "precision within Hamming radius 2" and result.tie_policy is None
    assert precision_within_radius(
        queries, database, query_labels, database_labels, radius=5
    ) == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------------
# results, random floor, bad input
# ------------------------------------------------------------------------------------------


def test_metric_value_is_a_named_immutable_float() -> None:
    problem = random_problem(12, 4, 30, 8, 3)
    result = mean_average_precision(*problem)
    assert isinstance(result, float) and 0 < result < 1
    assert f"{result:.3f}" == f"{float(result):.3f}"
    assert "tie_policy='expected'" in repr(result) and "MAP@all" in repr(result)
    with pytest.raises(AttributeError):
        result.tie_policy = "index"  # type: ignore[misc]
    with pytest.raises(ValueError):
        result.per_query[0] = 1.0
    clone = pickle.loads(pickle.dumps(result))
    assert isinstance(clone, MetricValue) and clone == result and clone.tie_policy == "expected"
    assert result.to_dict()["n_queries"] == 4


def test_random_code_floor_is_reproducible_and_near_chance() -> None:
    rng = np.random.default_rng(0)
    query_classes, database_classes = rng.integers(0, 10, 200), rng.integers(0, 10, 5000)
    floor = random_code_floor(query_classes, database_classes, 32, seed=3)
    again = random_code_floor(query_classes, database_classes, 32, seed=3)
    assert float(floor) == float(again)
    assert "random 32-bit codes (seed 3)" in floor.name and floor.tie_policy == "expected"
    chance = np.mean([np.mean(database_classes == c) for c in query_classes])
    assert abs(float(floor) - chance) < 0.02


def test_bad_inputs_raise_clear_value_errors() -> None:
    queries, database, query_labels, database_labels = random_problem(13, 3, 10, 8, 2)
    with pytest.raises(InvalidCodesError, match="query_codes: expected only 0 and 1"):
        mean_average_precision(queries * 2, database, query_labels, database_labels)
    with pytest.raises(
        InvalidCodesError, match="database_codes: expected 8 bits per code like query_codes, found 9"
    ):
        mean_average_precision(queries, np.zeros((10, 9)), query_labels, database_labels)
    with pytest.raises(InvalidLabelsError, match=r"query_labels: expected 3 rows \(one per code\), found 4"):
        mean_average_precision(queries, database, np.zeros((4, 2)), database_labels)
    with pytest.raises(InvalidLabelsError, match="database_labels: expected 2 label columns"):
        mean_average_precision(queries, database, query_labels, np.zeros((10, 3)))
    with pytest.raises(InvalidLabelsError, match="database_labels: expected a \\{0,1\\} label matrix"):
        mean_average_precision(queries, database, query_labels, database_labels * 3)
    with pytest.raises(InvalidLabelsError, match="both 1-D"):
        mean_average_precision(queries, database, np.zeros(3, dtype=int), database_labels)
    with pytest.raises(InvalidLabelsError, match="integer class ids"):
        mean_average_precision(queries, database, np.zeros(3), np.zeros(10))
    with pytest.raises(InputError, match="k: expected a positive integer, found 0"):
        mean_average_precision(queries, database, query_labels, database_labels, k=0)
    with pytest.raises(InputError, match="tie_policy: expected one of 'expected', 'index', found 'random'"):
        mean_average_precision(queries, database, query_labels, database_labels, tie_policy="random")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n_values"):
        precision_at_n(queries, database, query_labels, database_labels, [0, 5])
    with pytest.raises(InputError, match="n_values"):
        precision_at_n(queries, database, query_labels, database_labels, [11])
    with pytest.raises(InputError, match="radius"):
        precision_within_radius(queries, database, query_labels, database_labels, radius=-1)
    with pytest.raises(InputError, match="memory_budget_mb"):
        mean_average_precision(queries, database, query_labels, database_labels, memory_budget_mb=0)
    with pytest.raises(InputError, match="n_threads"):
        mean_average_precision(queries, database, query_labels, database_labels, n_threads=0)
    for error in (InvalidCodesError, InvalidLabelsError):
        assert issubclass(error, ValueError)


def test_hypergeometric_enumeration_sanity() -> None:
    # the reference enumerator itself: number of arrangements is the product of binomials
    distances = np.array([0, 0, 1, 1, 1, 2])
    relevance = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    arrangements = list(tie_arrangements(distances, relevance))
    assert len(arrangements) == math.comb(2, 1) * math.comb(3, 2) * 1
    assert all(a.sum() == relevance.sum() for a in arrangements)
