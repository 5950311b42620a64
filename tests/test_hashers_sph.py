"""SpH (Spherical Hashing): properties of the authors' SphericalHashing.m algorithm."""

from __future__ import annotations

import numpy as np
import pytest
from hasher_quality import mirflickr_text_maps

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.linalg import squared_distances
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.sph import SpH, overlap_statistics, shifted_squared_distances


@pytest.fixture(scope="module")
def blobs():
    """Continuous data (no tied distances), on which the reference converges quickly."""
    rng = np.random.default_rng(0)
    centres = 4.0 * rng.standard_normal((6, 12))
    return np.vstack([centre + rng.standard_normal((100, 12)) for centre in centres])


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=500, n_features=80, n_classes=6, seed=3)


def true_distances(features, pivots):
    dense = features.toarray() if hasattr(features, "toarray") else features
    return np.linalg.norm(dense[:, None, :] - pivots[None, :, :], axis=2)


def test_every_sphere_holds_half_of_the_items(blobs):
    hasher = SpH(n_bits=16).fit(blobs)
    # No tied distances: exactly floor(n/2) items lie inside each sphere.
    np.testing.assert_array_equal(hasher.training_codes_.sum(axis=0), blobs.shape[0] // 2)


def test_converged_spheres_overlap_on_a_quarter_of_the_items(blobs):
    hasher = SpH(n_bits=16).fit(blobs)
    assert hasher.converged_ and hasher.n_iter_ < hasher.params.max_iter
    overlaps, deviation, spread = overlap_statistics(hasher.training_codes_.astype(bool))
    quarter = blobs.shape[0] / 4
    assert deviation <= 0.1 * quarter and spread <= 0.15 * quarter
    pairs = overlaps[np.triu_indices(16, k=1)] / blobs.shape[0]
    assert abs(pairs.mean() - 0.25) < 0.025
    assert hasher.overlap_deviation_[-1] == pytest.approx(deviation / quarter)
    assert hasher.overlap_spread_[-1] == pytest.approx(spread / quarter)


def test_the_loop_stops_at_the_iteration_cap(corpus):
    features, _ = corpus
    # Unreachable tolerances: the reference would loop forever; the cap ends the loop.
    hasher = SpH(n_bits=16, max_iter=7, mean_tol=0.0, std_tol=0.0).fit(features)
    assert hasher.n_iter_ == 7 and not hasher.converged_
    assert hasher.overlap_deviation_.shape == hasher.overlap_spread_.shape == (7,)
    loose = SpH(n_bits=16, mean_tol=10.0, std_tol=10.0).fit(features)
    assert loose.n_iter_ == 1 and loose.converged_  # one update always runs


def test_bit_is_one_inside_the_sphere(corpus):
    features, _ = corpus
    hasher = SpH(n_bits=12, max_iter=20).fit(features)
    distances = true_distances(features, hasher.pivots_)
    expected = (distances <= hasher.radii_ * (1 + 1e-12)).astype(np.uint8)
    codes = hasher.encode(features)
    assert np.mean(codes == expected) > 0.999
    np.testing.assert_array_equal(codes, hasher.training_codes_)
    assert np.all(hasher.training_codes_.sum(axis=0) >= features.shape[0] // 2)


def test_forces_match_the_pairwise_loop_of_the_reference():
    rng = np.random.default_rng(1)
    n_bits, n_samples = 5, 40
    pivots = rng.standard_normal((n_bits, 7))
    overlaps = rng.integers(0, 20, (n_bits, n_bits)).astype(np.float64)
    overlaps = overlaps + overlaps.T
    expected = np.zeros_like(pivots)
    quarter = n_samples / 4
    for i in range(n_bits - 1):
        for j in range(i + 1, n_bits):
            force = 0.5 * (overlaps[i, j] - quarter) / quarter * (pivots[i] - pivots[j])
            expected[i] += force / n_bits
            expected[j] -= force / n_bits
    forces = SpH(n_bits=n_bits)._forces(pivots, overlaps, n_samples)
    np.testing.assert_allclose(forces, expected, rtol=1e-12, atol=1e-14)


def test_shifted_distances_stay_exact_for_far_pivots(blobs):
    pivots = np.random.default_rng(2).standard_normal((3, blobs.shape[1]))
    shifted = shifted_squared_distances(blobs, pivots)
    np.testing.assert_allclose(shifted + np.sum(pivots**2, axis=1), true_distances(blobs, pivots) ** 2)
    # A pivot far from the data (where SpH's pivots drift on sparse text): the naive
    # ||x||^2 + ||p||^2 - 2 x^T p rounds distinct distances to ties, the shifted form does not.
    far = 1e15 * pivots
    naive = squared_distances(blobs, far)
    shifted = shifted_squared_distances(blobs, far)
    assert np.unique(naive[:, 0]).size < blobs.shape[0] // 2
    assert np.unique(shifted[:, 0]).size == blobs.shape[0]


def test_single_bit_has_no_pairs_and_stops():
    data = np.random.default_rng(3).standard_normal((50, 4))
    hasher = SpH(n_bits=1).fit(data)
    assert hasher.converged_ and hasher.n_iter_ == 1
    assert hasher.training_codes_.sum() == 25


def test_subsampled_training(corpus):
    features, _ = corpus
    hasher = SpH(n_bits=16, max_samples=200).fit(features)
    assert hasher.training_codes_.shape == (features.shape[0], 16)
    ones = hasher.training_codes_.mean(axis=0)
    assert np.all((ones > 0.3) & (ones < 0.7))
    full = SpH(n_bits=16).fit(features)
    assert not np.array_equal(hasher.pivots_, full.pivots_)


def test_deterministic_sparse_dense_and_labels_ignored(corpus):
    features, labels = corpus
    first = SpH(n_bits=16, seed=4).fit_encode(features)
    np.testing.assert_array_equal(first, SpH(n_bits=16, seed=4).fit_encode(features))
    np.testing.assert_array_equal(first, SpH(n_bits=16, seed=4).fit_encode(features, labels))
    assert not np.array_equal(first, SpH(n_bits=16, seed=5).fit_encode(features))
    dense = SpH(n_bits=16, seed=4).fit_encode(features.toarray())
    assert np.mean(dense == first) > 0.99


def test_hdf5_round_trip(tmp_path, corpus):
    features, _ = corpus
    hasher = SpH(n_bits=16).fit(features)
    loaded = load_hasher(hasher.save(tmp_path / "sph.h5"))
    assert isinstance(loaded, SpH) and loaded.params == hasher.params
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))
    np.testing.assert_array_equal(loaded.pivots_, hasher.pivots_)
    assert loaded.converged_ == hasher.converged_ and loaded.n_iter_ == hasher.n_iter_


def test_bad_input_is_refused():
    assert isinstance(get_hasher("sph", n_bits=8), SpH)
    with pytest.raises(InputError, match=r"'X'.*at least 5"):
        SpH(n_bits=4).fit(np.random.default_rng(0).random((4, 3)))
    for bad in ({"max_iter": 0}, {"n_init_points": 0}, {"mean_tol": -1.0}, {"max_samples": 2}):
        with pytest.raises(InputError, match=next(iter(bad))):
            SpH(**bad)
    hasher = SpH(n_bits=4).fit(np.random.default_rng(0).random((30, 5)))
    with pytest.raises(InputError, match="'X'"):
        hasher.encode(np.ones((3, 4)))


@pytest.mark.data
def test_mirflickr_text_map_beats_lsh_and_the_random_floor():
    scores = mirflickr_text_maps("sph", "lsh")
    assert scores["sph"] > scores["floor"] + 0.01
    assert scores["sph"] > scores["lsh"] + 0.004
