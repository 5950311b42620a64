"""COSDISH: properties of the column-sampling discrete algorithm and of its ridge hash function."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.cosdish import COSDISH, pairwise_similarity, solve_bqp


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=500, n_features=80, n_classes=6, seed=3)


@pytest.fixture(scope="module")
def single_label():
    """Four well-separated classes, one label each."""
    rng = np.random.default_rng(7)
    classes = rng.integers(0, 4, 400)
    labels = np.eye(4, dtype=np.uint8)[classes]
    features = rng.standard_normal((400, 20)) + 3.0 * np.eye(4, 20)[classes]
    return features, labels, classes


def fitted(features: Any, labels: Any, **params: Any) -> COSDISH:
    hasher = COSDISH(**params)
    hasher.fit(features, labels)
    return hasher


def exact_objective(codes: np.ndarray, labels: np.ndarray, balance: bool = True) -> float:
    similarity, _, _ = pairwise_similarity(labels, labels, balance=balance)
    residual = codes.shape[1] * similarity - codes @ codes.T
    return float(np.sum(residual**2))


# ----------------------------------------------------------------- the similarity block
def test_similarity_is_share_at_least_one_label_and_balanced():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0]], dtype=np.uint8)
    plain, positive, negative = pairwise_similarity(labels, labels[:2], balance=False)
    assert (positive, negative) == (1.0, -1.0)
    expected = np.array([[1, 1], [1, 1], [-1, -1], [-1, -1], [-1, 1]], dtype=float)
    assert np.array_equal(plain, expected)
    weighted, positive, negative = pairwise_similarity(labels, labels[:2], balance=True)
    # 5 similar and 5 dissimilar pairs: nothing to re-weight.
    assert (positive, negative) == (1.0, -1.0)
    weighted, positive, negative = pairwise_similarity(labels, labels[2:3], balance=True)
    # 2 similar, 3 dissimilar: dissimilar pairs get -2/3, total mass balances.
    assert positive == 1.0 and negative == pytest.approx(-2 / 3)
    assert weighted.sum() == pytest.approx(0.0)
    weighted, positive, negative = pairwise_similarity(labels, labels[1:2], balance=True)
    # 3 similar, 2 dissimilar: the majority (similar) side is shrunk, targets stay in [-1, 1].
    assert positive == pytest.approx(2 / 3) and negative == -1.0
    assert weighted.sum() == pytest.approx(0.0)


# ----------------------------------------------------------------- the BQP solver
def test_bqp_solver_returns_a_one_flip_local_minimum_no_worse_than_its_starts():
    rng = np.random.default_rng(0)
    for trial in range(20):
        size = 8
        quadratic = rng.standard_normal((size, size))
        quadratic = quadratic + quadratic.T
        np.fill_diagonal(quadratic, 0.0)
        linear = rng.standard_normal(size) * (trial % 3)
        start = np.where(rng.standard_normal(size) >= 0, 1.0, -1.0)
        solution = solve_bqp(quadratic, linear, [start])

        def value(codes, quadratic=quadratic, linear=linear):
            return codes @ quadratic @ codes + linear @ codes

        assert set(np.unique(solution)) <= {-1.0, 1.0}
        assert value(solution) <= value(start) + 1e-12
        for index in range(size):
            flipped = solution.copy()
            flipped[index] *= -1
            assert value(flipped) >= value(solution) - 1e-9
        every_value = np.array(
            [value(np.array(codes)) for codes in itertools.product((-1.0, 1.0), repeat=size)]
        )
        # A local method: not always the global optimum, but among the best assignments.
        assert np.mean(every_value < value(solution) - 1e-9) <= 0.1


def test_bqp_with_dominant_linear_term_is_solved_by_its_sign():
    rng = np.random.default_rng(1)
    quadratic = rng.standard_normal((6, 6))
    quadratic = (quadratic + quadratic.T) / 100
    np.fill_diagonal(quadratic, 0.0)
    linear = np.array([3.0, -2.0, 5.0, -1.0, 4.0, -6.0])
    solution = solve_bqp(quadratic, linear, [np.ones(6)])
    assert np.array_equal(solution, -np.sign(linear))


# ----------------------------------------------------------------- the discrete optimisation
@pytest.mark.parametrize("bit_update", ["sequential", "cyclic"])
def test_objective_decreases_and_is_exact_on_small_data(corpus, bit_update):
    features, labels = corpus
    hasher = fitted(features, labels, n_bits=16, bit_update=bit_update, n_columns=40)
    objective = hasher.objective_
    assert objective.shape == (11,)  # initial codes + T_sto = 10 outer iterations
    assert objective[-1] < 0.6 * objective[0]
    # n_samples <= objective_sample: the recorded value is the exact objective.
    assert objective[-1] == pytest.approx(exact_objective(hasher.codes_.astype(float), labels))


def test_sampled_objective_estimate_is_close_to_the_exact_value(corpus):
    features, labels = corpus
    hasher = fitted(features, labels, n_bits=16, objective_sample=250)
    exact = exact_objective(hasher.codes_.astype(float), labels)
    assert hasher.objective_[-1] == pytest.approx(exact, rel=0.1)


def test_cyclic_bit_updates_never_increase_the_sampled_objective(corpus):
    _, labels = corpus
    rng = np.random.default_rng(5)
    hasher = COSDISH(n_bits=12, bit_update="cyclic")
    omega = rng.choice(len(labels), 30, replace=False)
    in_gamma = np.ones(len(labels), dtype=bool)
    in_gamma[omega] = False
    similarity, _, _ = pairwise_similarity(labels, labels[omega], balance=True)
    codes = np.where(rng.standard_normal((len(labels), 12)) >= 0, 1.0, -1.0)

    def sampled_objective(codes_omega):
        gamma_part = 12 * similarity[in_gamma] - codes[in_gamma] @ codes_omega.T
        omega_part = 12 * similarity[omega] - codes_omega @ codes_omega.T
        return np.sum(gamma_part**2) + np.sum(omega_part**2)

    codes_omega = codes[omega]
    values = [sampled_objective(codes_omega)]
    for _ in range(4):
        codes_omega = hasher._update_sampled_codes(
            codes_omega, codes[in_gamma], similarity[in_gamma], similarity[omega]
        )
        values.append(sampled_objective(codes_omega))
    assert np.all(np.diff(values) <= 1e-9 * values[0])
    assert values[-1] < values[0]


def test_same_label_codes_are_closer_than_different_label_codes(single_label):
    features, labels, classes = single_label
    hasher = fitted(features, labels, n_bits=16)
    codes = hasher.training_codes_.astype(int)
    distances = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    same = classes[:, None] == classes[None, :]
    off_diagonal = ~np.eye(len(classes), dtype=bool)
    within = distances[same & off_diagonal].mean()
    between = distances[~same].mean()
    assert within < 1.0 and between > 6.0
    # The learned hash function generalises the same separation.
    encoded = hasher.encode(features).astype(int)
    encoded_distances = (encoded[:, None, :] != encoded[None, :, :]).sum(axis=2)
    assert encoded_distances[same & off_diagonal].mean() < encoded_distances[~same].mean() / 3


def test_codes_depend_on_labels_only_and_follow_the_gamma_rule(corpus):
    """B is optimised from S alone; B^Gamma = sgn(S^{Gamma Omega} B^Omega) gives equal label rows
    equal codes (except the few rows of the last sample)."""
    features, labels = corpus
    first = fitted(features, labels, n_bits=16, n_columns=30)
    other_features = np.random.default_rng(0).random(features.shape)
    second = fitted(other_features, labels, n_bits=16, n_columns=30)
    assert np.array_equal(first.training_codes_, second.training_codes_)
    codes = first.training_codes_
    _, group = np.unique(labels, axis=0, return_inverse=True)
    agree = [
        np.array_equal(codes[i], codes[j])
        for i, j in itertools.combinations(range(200), 2)
        if group[i] == group[j]
    ]
    assert np.mean(agree) > 0.85


def test_codes_are_never_zero_and_initial_codes_are_seeded(corpus):
    features, labels = corpus
    hasher = fitted(features, labels, n_bits=8, n_outer_iter=1)
    assert set(np.unique(hasher.codes_)) <= {-1, 1}
    assert np.array_equal(hasher.training_codes_, (hasher.codes_ > 0).astype(np.uint8))
    other = fitted(features, labels, n_bits=8, n_outer_iter=1, seed=1)
    assert not np.array_equal(hasher.training_codes_, other.training_codes_)


def test_default_sample_size():
    assert COSDISH(n_bits=16)._n_columns(10_000) == 128
    assert COSDISH(n_bits=256)._n_columns(10_000) == 256
    assert COSDISH(n_bits=16)._n_columns(50) == 49
    assert COSDISH(n_bits=16, n_columns=16)._n_columns(10_000) == 16


# ----------------------------------------------------------------- the hash function
@pytest.mark.parametrize("n_rows", [500, 60], ids=["tall: d x d system", "wide: n x n dual system"])
def test_hash_function_is_ridge_regression_on_z_scored_features(corpus, n_rows):
    features, labels = corpus
    features, labels = features[:n_rows], labels[:n_rows]
    dense = features.toarray()
    dense[:, 5] = 2.5  # a constant column must get weight 0, not a division by zero
    hasher = fitted(dense, labels, n_bits=8, ridge=3.0)
    mean = dense.mean(axis=0)
    std = dense.std(axis=0, ddof=1)
    std[5] = 1.0
    standardised = (dense - mean) / std
    standardised[:, 5] = 0.0
    codes = hasher.codes_.astype(float)
    weights = np.linalg.solve(
        standardised.T @ standardised + 3.0 * np.eye(dense.shape[1]), standardised.T @ codes
    )
    assert np.allclose(hasher._project(dense), standardised @ weights, atol=1e-8)
    assert np.allclose(hasher.projection_[5], 0.0)
    assert np.array_equal(hasher.encode(dense), (standardised @ weights > 0).astype(np.uint8))


@pytest.mark.parametrize("n_rows", [500, 60], ids=["tall", "wide"])
def test_sparse_and_dense_input_agree(corpus, n_rows):
    features, labels = corpus
    features, labels = features[:n_rows], labels[:n_rows]
    from_sparse = fitted(features, labels, n_bits=16)
    from_dense = fitted(features.toarray(), labels, n_bits=16)
    assert np.array_equal(from_sparse.training_codes_, from_dense.training_codes_)
    assert np.allclose(from_sparse.projection_, from_dense.projection_, atol=1e-9)
    assert np.array_equal(from_sparse.encode(features), from_dense.encode(features.toarray()))
    assert np.array_equal(from_sparse.encode(sp.csc_matrix(features)), from_sparse.encode(features))


# ----------------------------------------------------------------- API
def test_deterministic_under_a_seed(corpus):
    features, labels = corpus
    first = fitted(features, labels, n_bits=16, seed=4)
    second = fitted(features, labels, n_bits=16, seed=4)
    assert np.array_equal(first.training_codes_, second.training_codes_)
    assert np.array_equal(first.objective_, second.objective_)
    assert np.array_equal(first.encode(features), second.encode(features))


def test_hdf5_round_trip(corpus, tmp_path):
    features, labels = corpus
    hasher = get_hasher("cosdish", n_bits=16).fit(features, labels)
    assert isinstance(hasher, COSDISH)
    path = hasher.save(tmp_path / "cosdish.h5")
    restored = load_hasher(path)
    assert isinstance(restored, COSDISH) and restored.params == hasher.params
    assert np.array_equal(restored.encode(features), hasher.encode(features))
    assert not hasattr(restored, "training_codes_") and not hasattr(restored, "codes_")  # per-row: not saved
    assert np.array_equal(restored.objective_, hasher.objective_)


def test_bad_inputs(corpus):
    features, labels = corpus
    with pytest.raises(InputError, match="'labels'"):
        COSDISH(n_bits=8).fit(features)
    with pytest.raises(InputError, match="'labels'"):
        COSDISH(n_bits=8).fit(features, labels[:-1])
    with pytest.raises(InputError, match=r"COSDISH: argument 'n_columns': expected fewer"):
        fitted(features, labels, n_bits=8, n_columns=500)
    with pytest.raises(InputError, match="n_outer_iter"):
        COSDISH(n_outer_iter=0)
    with pytest.raises(InputError, match="ridge"):
        COSDISH(ridge=0.0)
    with pytest.raises(InputError, match="bit_update"):
        COSDISH(bit_update="random")
    with pytest.raises(InputError, match="'X'"):
        COSDISH(n_bits=8).fit(features.toarray()[:, :5][0], labels)


# ----------------------------------------------------------------- real data
@pytest.mark.data
def test_mirflickr_text_codes_beat_random_codes():
    scipy_io = pytest.importorskip("scipy.io")
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "mirflickr25k"
    if not folder.is_dir():
        pytest.skip(f"real dataset folder {folder} is absent")
    text = scipy_io.loadmat(folder / "mirflickr25k-yall.mat")["YAll"]
    labels = scipy_io.loadmat(folder / "mirflickr25k-lall.mat")["LAll"]
    rows = np.random.default_rng(0).permutation(text.shape[0])[:1500]
    features = sp.csr_matrix(text[rows].astype(np.float64))
    labels = labels[rows]
    codes = COSDISH(n_bits=32).fit_encode(features, labels).astype(np.float32) * 2 - 1
    relevant = (labels[:300].astype(np.float32) @ labels.T.astype(np.float32)) > 0
    inner = codes[:300] @ codes.T
    precisions = []
    for query in range(300):
        top = np.argsort(-inner[query], kind="stable")[1:101]
        precisions.append(relevant[query, top].mean())
    base_rate = relevant.mean()  # what random codes give, about 0.55 (data README)
    assert np.mean(precisions) > base_rate + 0.25
