"""SDH (Supervised Discrete Hashing): properties of the official SDH.m algorithm."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.linalg import l2_normalize_rows, squared_distances
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.sdh import SDH


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=500, n_features=80, n_classes=6, seed=3)


def sparse_tag_corpus(n_samples=700, n_tags=400, n_labels=12, seed=0):
    """Binary tag vectors with multi-hot labels, shaped like MIRFLICKR's text view."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_samples, n_labels)) < 0.15).astype(np.uint8)
    labels[np.arange(n_samples), rng.integers(0, n_labels, n_samples)] = 1
    preferred = rng.random((n_labels, n_tags)) < 0.04
    rates = 0.35 * (labels @ preferred) / labels.sum(axis=1, keepdims=True) + 0.004
    tags = (rng.random((n_samples, n_tags)) < rates).astype(np.float64)
    return sp.csr_matrix(tags), labels


def separable_blobs(n_per_class=60, n_classes=4, n_features=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = 5.0 * np.eye(n_classes, n_features)
    features = np.vstack([c + 0.3 * rng.standard_normal((n_per_class, n_features)) for c in centres])
    classes = np.repeat(np.arange(n_classes), n_per_class)
    return features, classes


# ----------------------------------------------------------------------------- the objective
@pytest.mark.parametrize("case", ["bow", "sparse tags"])
def test_objective_never_increases_with_the_default_warm_started_sweeps(corpus, case):
    features, labels = corpus if case == "bow" else sparse_tag_corpus()
    hasher = SDH(n_bits=24, n_anchors=200, max_iter=8, tol=0.0)  # dcc_start="previous"
    assert hasher.params.dcc_start == "previous"
    hasher.fit(features, labels)
    history = np.concatenate([[hasher.initial_objective_], hasher.objective_])
    assert hasher.objective_.shape == (hasher.n_iter_,)
    assert np.all(np.diff(history) <= 1e-9 * history[0]), history
    assert hasher.objective_[-1] < 0.5 * hasher.initial_objective_


def test_objective_matches_the_stored_solution(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=150).fit(features, labels)
    phi = hasher.kernel_.transform(features)
    codes = hasher.codes_.astype(np.float64)
    classifier, projection = hasher.classifier_, hasher.projection_
    expected = (
        np.sum((labels - codes @ classifier) ** 2)
        + 1.0 * np.sum(classifier**2)
        + 1e-5 * (np.sum((codes - phi @ projection) ** 2) + 1e-2 * np.sum(projection**2))
    )
    assert hasher.objective_[-1] == pytest.approx(expected, rel=1e-10)
    # The warm-started B-steps improve a lot on the random start.
    assert hasher.objective_.max() < 0.5 * hasher.initial_objective_


def test_the_zero_reset_of_sdh_m_s_first_commit_stays_an_option(corpus):
    features, labels = corpus
    warm = SDH(n_bits=16, n_anchors=150, max_iter=3, tol=0.0).fit(features, labels)
    reset = SDH(n_bits=16, n_anchors=150, max_iter=3, tol=0.0, dcc_start="zeros").fit(features, labels)
    # Same anchors and B0, so the same initial objective; the B-steps start differently.
    assert reset.initial_objective_ == warm.initial_objective_
    assert not np.array_equal(reset.codes_, warm.codes_)

def test_g_and_f_steps_are_the_ridge_solutions(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=150).fit(features, labels)
    codes = hasher.codes_.astype(np.float64)
    classifier = np.linalg.solve(codes.T @ codes + np.eye(16), codes.T @ labels)
    np.testing.assert_allclose(hasher.classifier_, classifier, rtol=1e-10, atol=1e-12)
    phi = hasher.kernel_.transform(features)
    projection = np.linalg.solve(phi.T @ phi + 1e-2 * np.eye(phi.shape[1]), phi.T @ codes)
    np.testing.assert_allclose(hasher.projection_, projection, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- the B-step
def _literal_first_sweep(target, classifier):
    """One DCC sweep written as in SDH.m: delete column k, unvisited bits are still 0."""
    codes = np.zeros(target.shape)
    for k in range(codes.shape[1]):
        others = np.delete(codes, k, axis=1)
        weights_others = np.delete(classifier, k, axis=0)
        value = target[:, k] - others @ weights_others @ classifier[k]
        codes[:, k] = np.where(value >= 0, 1.0, -1.0)
    return codes


def test_first_dcc_sweep_starts_from_zeros():
    rng = np.random.default_rng(1)
    target = rng.standard_normal((50, 8))
    classifier = rng.standard_normal((8, 5))
    hasher = SDH(n_bits=8, max_sweeps=1)
    codes, sweeps = hasher._discrete_cyclic_descent(target, classifier)
    assert sweeps == 1
    np.testing.assert_array_equal(codes, _literal_first_sweep(target, classifier))
    # The zero reset: the result does not depend on the previous codes.
    rerun, _ = hasher._discrete_cyclic_descent(target, classifier, None)
    np.testing.assert_array_equal(codes, rerun)


def test_converged_sweeps_reach_a_coordinatewise_optimum():
    rng = np.random.default_rng(2)
    target = rng.standard_normal((80, 12))
    classifier = rng.standard_normal((12, 6))
    codes, sweeps = SDH(n_bits=12, max_sweeps=100)._discrete_cyclic_descent(target, classifier)
    assert sweeps < 100
    coupling = classifier @ classifier.T
    for k in range(12):
        others = np.delete(np.arange(12), k)
        value = target[:, k] - codes[:, others] @ coupling[others, k]
        np.testing.assert_array_equal(codes[:, k], np.where(value >= 0, 1.0, -1.0))


def test_ties_map_to_plus_one_and_no_bit_is_zero(corpus):
    codes, _ = SDH(n_bits=6)._discrete_cyclic_descent(np.zeros((10, 6)), np.zeros((6, 3)))
    np.testing.assert_array_equal(codes, np.ones((10, 6)))
    features, labels = corpus
    hasher = SDH(n_bits=32, n_anchors=150).fit(features, labels)
    assert hasher.codes_.dtype == np.int8 and set(np.unique(hasher.codes_).tolist()) == {-1, 1}
    np.testing.assert_array_equal(hasher.training_codes_, (hasher.codes_ > 0).astype(np.uint8))


def test_sweeps_per_b_step_are_bounded(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=150, max_sweeps=2).fit(features, labels)
    assert hasher.n_sweeps_.shape == (hasher.n_iter_,)
    assert np.all((hasher.n_sweeps_ >= 1) & (hasher.n_sweeps_ <= 2))
    assert 1 <= hasher.n_iter_ <= 5


def test_loose_tolerance_stops_after_the_first_iteration(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=150, tol=10.0).fit(features, labels)
    assert hasher.n_iter_ == 1


# ----------------------------------------------------------------------------- features
def test_kernel_follows_demo_sdh(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=120, bandwidth=0.4).fit(features, labels)
    kernel = hasher.kernel_
    assert kernel.normalize and kernel.bias and kernel.feature_mean is None
    assert kernel.bandwidth == 0.4 and kernel.anchors.shape == (120, features.shape[1])
    assert hasher.projection_.shape == (121, 16)
    normalized = l2_normalize_rows(features.toarray())
    assert np.allclose(np.linalg.norm(kernel.anchors, axis=1), 1.0)
    phi = kernel.transform(features)
    expected = np.exp(-squared_distances(normalized, kernel.anchors) / (2 * 0.4**2))
    np.testing.assert_allclose(phi[:, :-1], expected, rtol=1e-12)
    np.testing.assert_array_equal(phi[:, -1], 1.0)


def test_rows_are_l2_normalised_so_row_scaling_changes_nothing(corpus):
    features, labels = corpus
    scale = sp.diags(np.random.default_rng(0).uniform(0.5, 20.0, features.shape[0]))
    codes = SDH(n_bits=16, n_anchors=150).fit_encode(features, labels)
    scaled = SDH(n_bits=16, n_anchors=150).fit_encode(sp.csr_matrix(scale @ features), labels)
    np.testing.assert_array_equal(codes, scaled)


def test_data_driven_bandwidth(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=100, bandwidth=None).fit(features, labels)
    normalized = l2_normalize_rows(features)
    mean_squared = squared_distances(normalized, hasher.kernel_.anchors).mean()
    assert hasher.kernel_.bandwidth == pytest.approx(np.sqrt(mean_squared), rel=1e-10)


# ----------------------------------------------------------------------------- hash function
def test_hash_function_reproduces_the_codes_on_separable_data():
    features, classes = separable_blobs()
    # The zero reset rebuilds B from the labels alone, so B is a function of the class that the
    # hash function reproduces. The default warm start (current SDH.m) keeps B0's random bits
    # on some items where the labels leave them free, and the ridge hash function cannot fit those.
    hasher = SDH(n_bits=16, n_anchors=100, bandwidth=None, dcc_start="zeros").fit(features, classes)
    np.testing.assert_array_equal(hasher.encoded_training_codes_, hasher.training_codes_)
    warm = SDH(n_bits=16, n_anchors=100, bandwidth=None).fit(features, classes)
    assert 0 < np.mean(warm.encoded_training_codes_ != warm.training_codes_) < 0.1
    np.testing.assert_array_equal(hasher.encode(features), hasher.training_codes_)
    # One code per class: the labels drive B.
    for label in range(4):
        rows = hasher.training_codes_[classes == label]
        assert np.all(rows == rows[0])


def test_both_training_codes_are_exposed(corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=150)
    optimised = hasher.fit_encode(features, labels)
    encoded = hasher.fit_encode(features, labels, training_codes="encoded")
    np.testing.assert_array_equal(optimised, (hasher.codes_ > 0).astype(np.uint8))
    np.testing.assert_array_equal(encoded, hasher.encode(features))
    assert np.mean(optimised == encoded) > 0.8


def test_multi_hot_and_class_id_labels(corpus):
    features, labels = corpus
    assert np.any(labels.sum(axis=1) > 1)
    hasher = SDH(n_bits=16, n_anchors=150).fit(features, labels)
    assert hasher.classifier_.shape == (16, labels.shape[1])
    blobs, classes = separable_blobs()
    one_hot = np.eye(4, dtype=np.uint8)[classes]
    np.testing.assert_array_equal(
        SDH(n_bits=8, n_anchors=50).fit_encode(blobs, classes),
        SDH(n_bits=8, n_anchors=50).fit_encode(blobs, one_hot),
    )


# ----------------------------------------------------------------------------- API
def test_registered_name():
    assert isinstance(get_hasher("sdh", n_bits=8), SDH)
    assert SDH.requires_labels and SDH.supports_encode


def test_more_bits_than_anchors_is_refused():
    features, labels = make_bow_data(n_samples=40, n_features=30, seed=1)
    with pytest.raises(InputError, match=r"'n_bits'.*anchors"):
        SDH(n_bits=64).fit(features, labels)
    with pytest.raises(InputError, match=r"'n_bits'.*anchors"):
        SDH(n_bits=16, n_anchors=10).fit(features, labels)
    assert SDH(n_bits=16).fit(features, labels).kernel_.anchors.shape[0] == 40  # clamped to n


def test_bad_arguments():
    features, _ = make_bow_data(n_samples=60, n_features=30, seed=1)
    with pytest.raises(InputError, match="labels"):
        SDH(n_bits=8).fit(features)
    for bad in ({"bandwidth": 0.0}, {"lambda_g": -1.0}, {"max_iter": 0}, {"dcc_start": "ones"}):
        with pytest.raises(InputError, match=next(iter(bad))):
            SDH(**bad)


def test_deterministic_under_a_seed(corpus):
    features, labels = corpus
    first = SDH(n_bits=16, n_anchors=150, seed=5).fit_encode(features, labels)
    second = SDH(n_bits=16, n_anchors=150, seed=5).fit_encode(features, labels)
    other = SDH(n_bits=16, n_anchors=150, seed=6).fit_encode(features, labels)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_sparse_and_dense_input_agree(corpus):
    features, labels = corpus
    sparse = SDH(n_bits=16, n_anchors=150).fit(features, labels)
    dense = SDH(n_bits=16, n_anchors=150).fit(features.toarray(), labels)
    np.testing.assert_array_equal(sparse.training_codes_, dense.training_codes_)
    np.testing.assert_array_equal(sparse.encode(features[:100]), dense.encode(features[:100]))


def test_hdf5_round_trip(tmp_path, corpus):
    features, labels = corpus
    hasher = SDH(n_bits=16, n_anchors=150).fit(features, labels)
    loaded = load_hasher(hasher.save(tmp_path / "sdh.h5"))
    assert isinstance(loaded, SDH) and loaded.params == hasher.params
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))
    assert not hasattr(loaded, "training_codes_") and not hasattr(loaded, "codes_")  # per-row: not saved
    np.testing.assert_array_equal(loaded.objective_, hasher.objective_)
