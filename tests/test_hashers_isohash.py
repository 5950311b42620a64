"""IsoHash (Isotropic Hashing): the lift-and-projection solver and the hasher built on it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hasher_quality import mirflickr_text_maps

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.linalg import centred_projection, covariance, random_orthogonal
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.isohash import IsoHash, isotropic_rotation


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=600, n_features=80, n_classes=6, seed=4)


def random_spectrum(size, seed):
    return np.sort(np.random.default_rng(seed).gamma(1.0, 2.0, size))[::-1]


@pytest.mark.parametrize("size", [2, 7, 24])
def test_lift_and_projection_equalises_the_variances(size):
    variances = random_spectrum(size, seed=size)
    start = random_orthogonal(size, np.random.default_rng(1))
    rotation, errors = isotropic_rotation(variances, start, max_iter=500, tol=1e-13)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(size), atol=1e-12)
    projected = np.diag(rotation.T @ np.diag(variances) @ rotation)
    assert np.max(np.abs(projected - variances.mean())) < 1e-6 * variances.mean()
    assert errors[-1] <= 1e-13 and errors.size < 500
    assert errors[-1] <= errors[0]


def test_the_literal_zju_loop_does_not_equalise_the_variances():
    """IsoH_learn.m sets Z = R' Lambda R with R the (increasing) eigenvectors of T: not a projection."""
    variances = random_spectrum(16, seed=3)
    target = variances.mean()
    rotation = random_orthogonal(16, np.random.default_rng(0))
    literal = rotation.T @ np.diag(variances) @ rotation
    for _ in range(100):
        lifted = literal.copy()
        np.fill_diagonal(lifted, target)
        _, vectors = scipy.linalg.eigh(lifted)
        literal = vectors.T @ np.diag(variances) @ vectors
    assert np.max(np.abs(np.diag(literal) - target)) > 1e-3 * target
    ours, _ = isotropic_rotation(variances, rotation, max_iter=100, tol=0.0)
    assert np.max(np.abs(np.diag(ours.T @ np.diag(variances) @ ours) - target)) < 1e-10 * target


def test_projected_training_variances_are_equal(corpus):
    features, _ = corpus
    hasher = IsoHash(n_bits=16).fit(features)
    projected = centred_projection(features, hasher.mean_, hasher.projection_)
    variances = projected.var(axis=0, ddof=1)
    target = hasher.eigenvalues_.mean()
    assert np.max(np.abs(variances - target)) < 1e-6 * target
    assert variances.sum() == pytest.approx(hasher.eigenvalues_.sum(), rel=1e-10)
    assert hasher.isotropy_error_[-1] <= 1e-12 and hasher.n_iter_ < 100
    # PCA variances are the top eigenvalues of the covariance, which IsoHash leaves unchanged.
    top = np.linalg.eigvalsh(covariance(features))[::-1][:16]
    np.testing.assert_allclose(hasher.eigenvalues_, top, rtol=1e-8)


def test_codes_are_signs_of_the_centred_rotated_projection(corpus):
    features, _ = corpus
    hasher = IsoHash(n_bits=16).fit(features)
    dense = features.toarray()
    expected = ((dense - dense.mean(axis=0)) @ hasher.projection_ > 0).astype(np.uint8)
    np.testing.assert_array_equal(hasher.training_codes_, expected)
    np.testing.assert_array_equal(hasher.encode(features), expected)
    ones = hasher.training_codes_.mean(axis=0)
    assert np.all((ones > 0.2) & (ones < 0.8))


def test_data_are_centred_so_a_shift_changes_nothing(corpus):
    features, _ = corpus
    dense = features.toarray()
    codes = IsoHash(n_bits=12).fit_encode(dense)
    np.testing.assert_array_equal(codes, IsoHash(n_bits=12).fit_encode(dense + 3.0))


def test_deterministic_sparse_dense_and_labels_ignored(corpus):
    features, labels = corpus
    first = IsoHash(n_bits=16, seed=2).fit_encode(features)
    np.testing.assert_array_equal(first, IsoHash(n_bits=16, seed=2).fit_encode(features))
    np.testing.assert_array_equal(first, IsoHash(n_bits=16, seed=2).fit_encode(features, labels))
    assert not np.array_equal(first, IsoHash(n_bits=16, seed=3).fit_encode(features))
    dense = IsoHash(n_bits=16, seed=2).fit_encode(features.toarray())
    csc = IsoHash(n_bits=16, seed=2).fit_encode(sp.csc_matrix(features))
    assert np.mean(dense == first) > 0.99 and np.mean(csc == first) > 0.99


def test_hdf5_round_trip(tmp_path, corpus):
    features, _ = corpus
    hasher = IsoHash(n_bits=16).fit(features)
    loaded = load_hasher(hasher.save(tmp_path / "isohash.h5"))
    assert isinstance(loaded, IsoHash) and loaded.params == hasher.params
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))
    np.testing.assert_array_equal(loaded.rotation_, hasher.rotation_)


def test_bad_input_is_refused():
    assert isinstance(get_hasher("isohash", n_bits=8), IsoHash)
    features, _ = make_bow_data(n_samples=60, n_features=10, seed=1)
    with pytest.raises(InputError, match=r"'n_bits'.*n_features"):
        IsoHash(n_bits=16).fit(features)
    for bad in ({"max_iter": 0}, {"tol": -1.0}, {"n_bits": 0}):
        with pytest.raises(InputError, match=next(iter(bad))):
            IsoHash(**bad)
    hasher = IsoHash(n_bits=4).fit(features)
    with pytest.raises(InputError, match="'X'"):
        hasher.encode(np.ones((3, 9)))


@pytest.mark.data
def test_mirflickr_text_map_beats_lsh_and_the_random_floor():
    scores = mirflickr_text_maps("isohash", "lsh")
    assert scores["isohash"] > scores["floor"] + 0.02
    assert scores["isohash"] > scores["lsh"] + 0.01
