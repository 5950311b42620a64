"""LFH (Latent Factor Hashing): the stochastic update of TreezzZ/LFH_PyTorch and the hasher."""

from __future__ import annotations

import numpy as np
import pytest
from hasher_quality import mirflickr_text_maps

import ddcmh_hashers.lfh as lfh_module
from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.lfh import LFH, lfh_step, log_likelihood, sampled_similarity


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=300, n_features=60, n_classes=6, seed=1)


def test_sampled_similarity_is_share_at_least_one_label():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(
        sampled_similarity(labels, np.arange(4)),
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]],
    )
    sampled = sampled_similarity(labels, np.array([2, 0]))
    np.testing.assert_array_equal(sampled, [[0, 1], [0, 1], [1, 0], [0, 0]])


def test_step_is_the_reference_update():
    rng = np.random.default_rng(0)
    labels = (rng.random((30, 4)) < 0.4).astype(np.uint8)
    factors = rng.standard_normal((30, 6))
    columns = np.array([3, 17, 5, 9, 22, 0])
    beta = 30.0 / 6
    sampled = factors[columns]
    similarity = (labels @ labels[columns].T > 0).astype(float)
    gradient = (similarity - 1 / (1 + np.exp(-factors @ sampled.T / 2))) @ sampled - factors / beta
    hessian = -sampled.T @ sampled / 8 - np.eye(6) / beta
    expected = factors - gradient @ np.linalg.inv(hessian)
    np.testing.assert_allclose(lfh_step(factors, labels, columns, beta), expected, rtol=1e-9, atol=1e-12)


def test_updates_raise_the_log_posterior(corpus):
    _, labels = corpus
    rng = np.random.default_rng(2)
    factors = rng.standard_normal((labels.shape[0], 8))
    beta = 30.0 / 8
    start = log_likelihood(factors, labels, beta)
    full = factors
    for _ in range(15):
        full = lfh_step(full, labels, np.arange(labels.shape[0]), beta)
    assert log_likelihood(full, labels, beta) > 0.1 * start  # start is about -3e4, end about -2e3
    hasher = LFH(n_bits=8, seed=2).fit(corpus[0], labels)
    assert hasher.codes_.shape == (labels.shape[0], 8)


def test_no_overflow_with_huge_factors():
    labels = np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0, 1]]
    factors = 1e4 * np.random.default_rng(1).standard_normal((6, 3))
    with np.errstate(all="raise"):
        updated = lfh_step(factors, labels, np.array([0, 2, 4]), 10.0)
    assert np.all(np.isfinite(updated))


def test_codes_follow_the_labels_and_are_never_zero(corpus):
    features, labels = corpus
    hasher = LFH(n_bits=16).fit(features, labels)
    assert hasher.codes_.dtype == np.int8 and set(np.unique(hasher.codes_).tolist()) == {-1, 1}
    np.testing.assert_array_equal(hasher.training_codes_, (hasher.codes_ > 0).astype(np.uint8))
    codes = hasher.training_codes_
    distances = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    share = labels.astype(float) @ labels.T.astype(float) > 0
    assert distances[~share].mean() > distances[share].mean() + 3


def test_hash_function_is_the_scaled_ridge_regression(corpus):
    features, labels = corpus
    hasher = LFH(n_bits=16, ridge=2.0).fit(features, labels)
    dense = features.toarray()
    ridge = 2.0 * dense.shape[0] / dense.shape[1]
    expected = np.linalg.solve(dense.T @ dense + ridge * np.eye(dense.shape[1]), dense.T @ hasher.codes_)
    np.testing.assert_allclose(hasher.projection_, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(hasher.encode(features), (dense @ expected > 0).astype(np.uint8))
    assert np.mean(hasher.encode(features) == hasher.training_codes_) > 0.8


def test_defaults_scale_beta_and_sample_n_bits_columns(monkeypatch, corpus):
    features, labels = corpus
    calls = []

    def spy(factors, labels, columns, beta):
        calls.append((len(columns), beta))
        return lfh_step(factors, labels, columns, beta)

    monkeypatch.setattr(lfh_module, "lfh_step", spy)
    LFH(n_bits=12).fit(features, labels)
    assert len(calls) == 50 and set(calls) == {(12, 30.0 / 12)}
    calls.clear()
    LFH(n_bits=12, n_samples=40, n_iter=3, beta=6.0).fit(features, labels)
    assert calls == [(40, 0.5)] * 3


def test_deterministic_sparse_dense_and_class_ids(corpus):
    features, labels = corpus
    first = LFH(n_bits=16, seed=3).fit(features, labels)
    second = LFH(n_bits=16, seed=3).fit(features.toarray(), labels)
    np.testing.assert_array_equal(first.training_codes_, second.training_codes_)
    assert np.mean(first.encode(features) == second.encode(features)) > 0.99
    assert not np.array_equal(first.training_codes_, LFH(n_bits=16, seed=4).fit_encode(features, labels))
    classes = np.arange(features.shape[0]) % 3
    np.testing.assert_array_equal(
        LFH(n_bits=8).fit_encode(features, classes),
        LFH(n_bits=8).fit_encode(features, np.eye(3, dtype=np.uint8)[classes]),
    )


def test_hdf5_round_trip(tmp_path, corpus):
    features, labels = corpus
    hasher = LFH(n_bits=16).fit(features, labels)
    loaded = load_hasher(hasher.save(tmp_path / "lfh.h5"))
    assert isinstance(loaded, LFH) and loaded.params == hasher.params
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))
    np.testing.assert_array_equal(loaded.projection_, hasher.projection_)


def test_bad_input_is_refused(corpus):
    features, labels = corpus
    assert isinstance(get_hasher("lfh", n_bits=8), LFH) and LFH.requires_labels
    with pytest.raises(InputError, match="labels"):
        LFH(n_bits=8).fit(features)
    with pytest.raises(InputError, match="labels"):
        LFH(n_bits=8).fit(features, labels[:-1])
    for bad in ({"n_iter": 0}, {"beta": 0.0}, {"ridge": -1.0}, {"n_samples": 0}):
        with pytest.raises(InputError, match=next(iter(bad))):
            LFH(**bad)
    hasher = LFH(n_bits=4, n_iter=2).fit(features, labels)
    with pytest.raises(InputError, match="'X'"):
        hasher.encode(np.ones((3, 5)))


@pytest.mark.data
def test_mirflickr_text_map_beats_unsupervised_hashers_and_the_random_floor():
    scores = mirflickr_text_maps("lfh", "itq")
    assert scores["lfh"] > scores["floor"] + 0.1
    assert scores["lfh"] > scores["itq"] + 0.05
