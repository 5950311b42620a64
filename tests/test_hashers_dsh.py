"""DSH (Density Sensitive Hashing): candidate pairs, balance scores and the hasher of DSH_learn.m."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hasher_quality import mirflickr_text_maps

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.linalg import squared_distances
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.dsh import DSH, bisector_balance, candidate_pairs


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=500, n_features=80, n_classes=6, seed=3)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = 5.0 * rng.standard_normal((10, 6))
    return np.vstack([centre + rng.standard_normal((60, 6)) for centre in centres])


def test_candidate_pairs_are_nearest_neighbours_once_each_by_distance():
    centres = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    pairs = candidate_pairs(centres, n_neighbors=1)
    # Nearest of 0 is 1, of 1 is 0, of 2 is 1, of 3 is 2, of 4 is 3; (1, 0) only once.
    np.testing.assert_array_equal(pairs, [[1, 0], [2, 1], [3, 2], [4, 3]])
    two = candidate_pairs(centres, n_neighbors=2)
    distances = np.abs(centres[two[:, 0], 0] - centres[two[:, 1], 0])
    assert np.all(np.diff(distances) >= 0) and np.all(two[:, 0] > two[:, 1])
    assert len({tuple(pair) for pair in two.tolist()}) == len(two)
    assert {(2, 0), (4, 2)} <= {tuple(pair) for pair in two.tolist()}
    # More neighbours than other centres: every pair, no error.
    assert len(candidate_pairs(centres[:3], n_neighbors=5)) == 3


def test_balance_of_bisectors_on_a_line():
    centres = np.array([[0.0], [1.0], [2.0], [3.0]])
    weights = np.full(4, 0.25)
    pairs = np.array([[1, 0], [2, 1], [3, 2]])
    directions, intercepts, balance = bisector_balance(centres, weights, pairs)
    np.testing.assert_allclose(directions, [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(intercepts, [0.5, 1.5, 2.5])
    np.testing.assert_allclose(balance, [1 / 3, 1.0, 1 / 3])
    # The mass counts cluster proportions, not clusters.
    _, _, skewed = bisector_balance(centres, np.array([0.7, 0.1, 0.1, 0.1]), pairs)
    np.testing.assert_allclose(skewed, [0.3 / 0.7, 0.2 / 0.8, 0.1 / 0.9])


def test_bits_are_the_best_balanced_bisectors(blobs):
    hasher = DSH(n_bits=8).fit(blobs)
    assert hasher.centres_.shape == (12, blobs.shape[1])
    all_pairs = candidate_pairs(hasher.centres_, 3)
    _, _, balance = bisector_balance(hasher.centres_, hasher.cluster_weights_, all_pairs)
    assert np.all(np.diff(hasher.balance_) <= 0)
    assert hasher.balance_[-1] >= np.sort(balance)[::-1][7]
    assert len({tuple(pair) for pair in hasher.pairs_.tolist()}) == 8
    first, second = hasher.centres_[hasher.pairs_[:, 0]], hasher.centres_[hasher.pairs_[:, 1]]
    np.testing.assert_allclose(hasher.projection_, (first - second).T)
    np.testing.assert_allclose(hasher.intercept_, np.sum((first + second) / 2 * (first - second), axis=1))


def test_bit_is_which_side_of_the_bisector(blobs):
    hasher = DSH(n_bits=8).fit(blobs)
    expected = (blobs @ hasher.projection_ > hasher.intercept_).astype(np.uint8)
    np.testing.assert_array_equal(hasher.training_codes_, expected)
    np.testing.assert_array_equal(hasher.encode(blobs), expected)
    # The first centre of each pair lies on the 1 side, the second on the 0 side.
    bits = np.arange(8)
    np.testing.assert_array_equal(hasher.encode(hasher.centres_[hasher.pairs_[:, 0]])[bits, bits], 1)
    np.testing.assert_array_equal(hasher.encode(hasher.centres_[hasher.pairs_[:, 1]])[bits, bits], 0)


def test_cluster_weights_are_nearest_centre_shares(blobs):
    hasher = DSH(n_bits=8).fit(blobs)
    nearest = np.argmin(squared_distances(blobs, hasher.centres_), axis=1)
    expected = np.bincount(nearest, minlength=12) / blobs.shape[0]
    np.testing.assert_allclose(hasher.cluster_weights_, expected)
    assert hasher.cluster_weights_.sum() == pytest.approx(1.0)


def test_more_bits_than_candidate_pairs_is_refused():
    rows = np.random.default_rng(1).standard_normal((6, 5))
    repeated = np.repeat(rows, 20, axis=0)  # 6 distinct rows: 6 centres, at most 15 pairs
    with pytest.raises(InputError, match=r"'n_bits'.*pairs"):
        DSH(n_bits=16).fit(repeated)
    assert DSH(n_bits=4).fit(repeated).pairs_.shape == (4, 2)


def test_deterministic_sparse_dense_translation_and_labels_ignored(corpus, blobs):
    features, labels = corpus
    first = DSH(n_bits=16, seed=2).fit_encode(features)
    np.testing.assert_array_equal(first, DSH(n_bits=16, seed=2).fit_encode(features))
    np.testing.assert_array_equal(first, DSH(n_bits=16, seed=2).fit_encode(features, labels))
    assert not np.array_equal(first, DSH(n_bits=16, seed=3).fit_encode(features))
    dense = DSH(n_bits=16, seed=2).fit_encode(features.toarray())
    csc = DSH(n_bits=16, seed=2).fit_encode(sp.csc_matrix(features))
    assert np.mean(dense == first) > 0.99 and np.mean(csc == first) > 0.99
    shifted = DSH(n_bits=8).fit_encode(blobs + 4.0)
    assert np.mean(shifted == DSH(n_bits=8).fit_encode(blobs)) > 0.99


def test_hdf5_round_trip(tmp_path, corpus):
    features, _ = corpus
    hasher = DSH(n_bits=16).fit(features)
    loaded = load_hasher(hasher.save(tmp_path / "dsh.h5"))
    assert isinstance(loaded, DSH) and loaded.params == hasher.params
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))
    np.testing.assert_array_equal(loaded.pairs_, hasher.pairs_)


def test_bad_input_is_refused():
    assert isinstance(get_hasher("dsh", n_bits=8), DSH)
    assert DSH(n_bits=1).cluster_count() == 2 and DSH(n_bits=5).cluster_count() == 8  # 7.5 rounds up
    with pytest.raises(InputError, match=r"'X'.*at least round\(alpha \* n_bits\) = 24"):
        DSH(n_bits=16).fit(np.random.default_rng(0).random((20, 3)))
    for bad in ({"alpha": 0.0}, {"n_neighbors": 0}, {"kmeans_iter": -1}):
        with pytest.raises(InputError, match=next(iter(bad))):
            DSH(**bad)
    hasher = DSH(n_bits=4).fit(np.random.default_rng(0).random((30, 5)))
    with pytest.raises(InputError, match="'X'"):
        hasher.encode(np.ones((3, 4)))


@pytest.mark.data
def test_mirflickr_text_map_beats_lsh_and_the_random_floor():
    scores = mirflickr_text_maps("dsh", "lsh")
    assert scores["dsh"] > scores["floor"] + 0.015
    assert scores["dsh"] > scores["lsh"] + 0.01
