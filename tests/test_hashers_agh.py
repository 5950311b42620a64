"""AGH (one-layer Anchor Graph Hashing): the anchor graph and spectrum of OneLayerAGH_Train.m."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import ddcmh_hashers.agh as agh_module
from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.agh import AGH, anchor_affinity, kmeans_anchors, nearest_anchors


@pytest.fixture(scope="module")
def blobs():
    """Overlapping Gaussian clusters in 10-D: a connected anchor graph."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, 10)) * 1.5
    X = centres[rng.integers(0, 8, 600)] + rng.standard_normal((600, 10))
    return X


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=400, n_features=40)


def squared_distances_brute(X, anchors):
    return ((X[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=2)


def reference_one_layer_agh(X, anchors, n_bits, s, sigma):
    """Literal dense transcription of OneLayerAGH_Train.m (the 'Gaussian' coding method)."""
    n, m = X.shape[0], anchors.shape[0]
    distances = squared_distances_brute(X, anchors)
    values = np.zeros((n, s))
    positions = np.zeros((n, s), dtype=int)
    for i in range(s):
        positions[:, i] = np.argmin(distances, axis=1)
        values[:, i] = distances[np.arange(n), positions[:, i]]
        distances[np.arange(n), positions[:, i]] = 1e60
    if sigma == 0:
        sigma = np.mean(np.sqrt(values[:, s - 1]))
    values = np.exp(-values / sigma**2)
    values = values / values.sum(axis=1, keepdims=True)
    Z = np.zeros((n, m))
    Z[np.arange(n)[:, None], positions] = values
    lam = Z.sum(axis=0)
    M = np.diag(lam**-0.5) @ Z.T @ Z @ np.diag(lam**-0.5)
    eigenvalues, W = np.linalg.eigh(M)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, W = eigenvalues[order], W[:, order]
    keep = (eigenvalues > 0) & (eigenvalues < 1 - 1e-3)
    eigenvalues, W = eigenvalues[keep], W[:, keep]
    W = np.diag(lam**-0.5) @ W[:, :n_bits] @ np.diag(eigenvalues[:n_bits] ** -0.5)
    return Z, W, sigma, eigenvalues[:n_bits]


# ----------------------------------------------------------------- the anchor graph Z
def test_rows_of_z_sum_to_one_with_exactly_s_nonzeros(blobs):
    for s in (2, 3, 5):
        hasher = AGH(n_bits=8, n_anchors=40, n_neighbors=s).fit(blobs)
        Z = hasher.affinity(blobs)
        assert sp.issparse(Z) and Z.shape == (600, hasher.anchors_.shape[0])
        np.testing.assert_allclose(np.asarray(Z.sum(axis=1)).ravel(), 1.0, rtol=1e-12)
        assert np.all(np.diff(Z.indptr) == s)
        assert np.all(Z.data > 0)


def test_z_uses_the_s_nearest_anchors_with_gaussian_weights_without_factor_two(blobs):
    hasher = AGH(n_bits=8, n_anchors=40, n_neighbors=3).fit(blobs)
    Z = hasher.affinity(blobs).toarray()
    distances = squared_distances_brute(blobs, hasher.anchors_)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :3]
    for i in range(0, 600, 37):
        np.testing.assert_array_equal(np.flatnonzero(Z[i]), np.sort(nearest[i]))
        kernel = np.exp(-distances[i, nearest[i]] / hasher.bandwidth_**2)  # exp(-D / sigma^2)
        np.testing.assert_allclose(Z[i, nearest[i]], kernel / kernel.sum(), rtol=1e-10)


def test_default_bandwidth_is_the_mean_distance_to_the_s_th_nearest_anchor(blobs):
    hasher = AGH(n_bits=8, n_anchors=40, n_neighbors=3).fit(blobs)
    distances = np.sort(squared_distances_brute(blobs, hasher.anchors_), axis=1)
    assert hasher.bandwidth_ == pytest.approx(np.mean(np.sqrt(distances[:, 2])), rel=1e-12)
    fixed = AGH(n_bits=8, n_anchors=40, n_neighbors=3, bandwidth=0.7).fit(blobs)
    assert fixed.bandwidth_ == 0.7


def test_affinity_survives_far_away_points():
    # exp(-D / sigma^2) underflows for every anchor far from the point; log-sum-exp keeps Z finite.
    indices = np.array([[0, 1], [1, 0]])
    distances = np.array([[1e6, 1e6 + 1.0], [4e6, 4e6]])
    Z = anchor_affinity(indices, distances, bandwidth=1.0, n_anchors=2).toarray()
    np.testing.assert_allclose(Z, [[1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))],
                                   [0.5, 0.5]])


def test_nearest_anchor_ties_go_to_the_lower_index():
    anchors = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    indices, distances = nearest_anchors(np.zeros((1, 2)), anchors, 3)
    assert indices.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(distances, [[1.0, 1.0, 1.0]])


# ----------------------------------------------------------------- the spectrum and W
def test_eigen_filter_excludes_the_trivial_eigenvalue(blobs):
    hasher = AGH(n_bits=12, n_anchors=50).fit(blobs)
    values = hasher.eigenvalues_
    assert np.all(values > 0) and np.all(values < 1 - 1e-3)
    assert np.all(np.diff(values) <= 0)
    Z = hasher.affinity(blobs)
    degree = np.asarray(Z.sum(axis=0)).ravel()
    M = (Z.T @ Z).toarray() / np.sqrt(np.outer(degree, degree))
    # M has eigenvalue 1 with eigenvector Lambda^1/2 1, which no bit uses ...
    trivial = np.sqrt(degree) / np.linalg.norm(np.sqrt(degree))
    np.testing.assert_allclose(M @ trivial, trivial, atol=1e-10)
    # ... W = Lambda^-1/2 V Sigma^-1/2 with M V = V Sigma and V orthonormal.
    V = np.sqrt(degree)[:, None] * hasher.projection_ * np.sqrt(values)[None, :]
    np.testing.assert_allclose(V.T @ V, np.eye(12), atol=1e-8)
    np.testing.assert_allclose(M @ V, V * values, atol=1e-8)
    np.testing.assert_allclose(V.T @ trivial, 0.0, atol=1e-8)
    # Orthogonality to the trivial eigenvector means every bit's projection has zero mean.
    np.testing.assert_allclose((Z @ hasher.projection_).sum(axis=0), 0.0, atol=1e-7)


def test_matches_a_literal_transcription_of_the_reference(blobs):
    hasher = AGH(n_bits=10, n_anchors=60, n_neighbors=3).fit(blobs)
    Z, W, sigma, values = reference_one_layer_agh(blobs, hasher.anchors_, 10, 3, 0)
    assert hasher.bandwidth_ == pytest.approx(sigma, rel=1e-12)
    np.testing.assert_allclose(hasher.affinity(blobs).toarray(), Z, atol=1e-12)
    np.testing.assert_allclose(hasher.eigenvalues_, values, rtol=1e-10)
    # Eigenvector signs are arbitrary in the reference: compare each bit up to sign.
    ours = hasher._project(blobs)
    theirs = Z @ W
    signs = np.sign(np.sum(ours * theirs, axis=0))
    np.testing.assert_allclose(ours, theirs * signs, atol=1e-8 * np.abs(theirs).max())
    reference_codes = (theirs * signs) > 0
    clear = np.abs(theirs) > 1e-9 * np.abs(theirs).max(axis=0)  # not rounding noise
    np.testing.assert_array_equal(hasher.training_codes_[clear], reference_codes[clear])
    assert clear.mean() > 0.99


def test_points_off_an_eigenvectors_support_get_bit_zero():
    # Three far-apart blobs: the anchor graph has three components, M has eigenvalue 1 three
    # times (all dropped) and every other eigenvector lives on one component. On the other
    # components the reference's projections are rounding noise; here they are exactly 0.
    rng = np.random.default_rng(1)
    X = np.vstack([rng.standard_normal((150, 4)) + 100.0 * k for k in range(3)])
    hasher = AGH(n_bits=6, n_anchors=30).fit(X)
    projections = hasher._project(X)
    component = np.repeat(np.arange(3), 150)
    for bit in range(6):
        support = np.unique(component[projections[:, bit] != 0])
        assert support.size == 1
        off = component != support[0]
        assert np.all(projections[off, bit] == 0) and np.all(hasher.training_codes_[off, bit] == 0)
    np.testing.assert_array_equal(
        AGH(n_bits=6, n_anchors=30).fit_encode(sp.csr_matrix(X)), hasher.training_codes_
    )


def test_training_codes_equal_encoded_training_set(corpus, blobs):
    features, _ = corpus
    for X in (features, blobs):
        hasher = AGH(n_bits=16, n_anchors=100).fit(X)
        np.testing.assert_array_equal(hasher.encode(X), hasher.training_codes_)
        np.testing.assert_array_equal(hasher.encoded_training_codes_, hasher.training_codes_)


def test_unused_anchors_are_dropped_without_changing_the_codes(monkeypatch, blobs):
    plain = AGH(n_bits=8, n_anchors=40).fit(blobs)
    original = agh_module.kmeans_anchors

    def with_a_far_anchor(features, n_anchors, n_iter, rng):
        anchors = original(features, n_anchors, n_iter, rng)
        return np.vstack([anchors[:5], np.full((1, anchors.shape[1]), 1e3), anchors[5:]])

    monkeypatch.setattr(agh_module, "kmeans_anchors", with_a_far_anchor)
    padded = AGH(n_bits=8, n_anchors=40).fit(blobs)
    np.testing.assert_array_equal(padded.anchors_, plain.anchors_)
    np.testing.assert_array_equal(padded.training_codes_, plain.training_codes_)


# ----------------------------------------------------------------- anchors
def test_kmeans_anchors_are_seeded_distinct_and_lower_the_objective(blobs):
    def inertia(centres):
        return np.sum(np.min(squared_distances_brute(blobs, centres), axis=1))

    start = kmeans_anchors(blobs, 20, 0, np.random.default_rng(4))
    assert len({row.tobytes() for row in start}) == 20
    assert all(np.any(np.all(blobs == row, axis=1)) for row in start)  # initial rows are data
    objectives = [inertia(kmeans_anchors(blobs, 20, t, np.random.default_rng(4))) for t in range(6)]
    assert np.all(np.diff(objectives) <= 1e-9)
    assert objectives[-1] < objectives[0]
    np.testing.assert_array_equal(
        kmeans_anchors(blobs, 20, 5, np.random.default_rng(4)),
        kmeans_anchors(blobs, 20, 5, np.random.default_rng(4)),
    )


def test_duplicate_rows_never_give_duplicate_anchors():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 4))
    X = base[rng.integers(0, 30, 500)]  # 500 rows, at most 30 distinct
    anchors = kmeans_anchors(X, 25, 0, np.random.default_rng(1))
    assert len({row.tobytes() for row in anchors}) == 25


# ----------------------------------------------------------------- contract
def test_deterministic_under_a_seed_and_ignores_labels(corpus):
    features, labels = corpus
    first = AGH(n_bits=16, n_anchors=100, seed=3).fit_encode(features)
    np.testing.assert_array_equal(first, AGH(n_bits=16, n_anchors=100, seed=3).fit_encode(features))
    np.testing.assert_array_equal(
        first, AGH(n_bits=16, n_anchors=100, seed=3).fit_encode(features, labels)
    )
    other = AGH(n_bits=16, n_anchors=100, seed=4).fit(features)
    assert not np.array_equal(other.anchors_, AGH(n_bits=16, n_anchors=100, seed=3).fit(features).anchors_)
    assert AGH(n_bits=16).tags()["uses_labels"] is False


def test_sparse_and_dense_input_give_the_same_codes(corpus):
    features, _ = corpus
    sparse_codes = AGH(n_bits=16, n_anchors=100).fit_encode(features)
    dense_codes = AGH(n_bits=16, n_anchors=100).fit_encode(features.toarray())
    np.testing.assert_array_equal(sparse_codes, dense_codes)
    hasher = AGH(n_bits=16, n_anchors=100).fit(features)
    np.testing.assert_array_equal(hasher.encode(features.toarray()), hasher.encode(features))


def test_hdf5_round_trip(tmp_path, corpus):
    features, _ = corpus
    hasher = get_hasher("agh", n_bits=12, n_anchors=80, n_neighbors=3).fit(features)
    loaded = load_hasher(hasher.save(tmp_path / "agh.h5"))
    assert isinstance(loaded, AGH) and loaded.params == hasher.params
    assert loaded.bandwidth_ == hasher.bandwidth_
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))


def test_bad_input_is_refused(blobs):
    with pytest.raises(InputError, match=r"AGH: argument 'n_bits': expected n_bits < n_anchors \(40\)"):
        AGH(n_bits=40, n_anchors=40).fit(blobs)
    with pytest.raises(InputError, match=r"AGH: argument 'n_anchors': expected at most n_samples \(600\)"):
        AGH(n_bits=8, n_anchors=601).fit(blobs)
    with pytest.raises(InputError, match=r"AGH: argument 'n_neighbors': expected n_neighbors <= n_anchors"):
        AGH(n_bits=4, n_anchors=10, n_neighbors=11).fit(blobs)
    with pytest.raises(InputError, match=r"AGH: argument 'n_neighbors'"):
        AGH(n_neighbors=1)
    with pytest.raises(InputError, match=r"AGH: argument 'bandwidth'"):
        AGH(bandwidth=0.0)
    with pytest.raises(InputError, match=r"AGH: argument 'kmeans_iter'"):
        AGH(kmeans_iter=-1)
    fitted = AGH(n_bits=4, n_anchors=20).fit(blobs)
    with pytest.raises(InputError, match=r"expected 10 features \(the width seen in fit\), got 9"):
        fitted.encode(blobs[:, :9])


def test_too_few_distinct_rows_for_the_anchors():
    X = np.repeat(np.eye(6), 20, axis=0)  # 120 rows, 6 distinct
    with pytest.raises(InputError, match=r"AGH: argument 'X': expected at least 9 distinct rows"):
        AGH(n_bits=8, n_anchors=10).fit(X)


def test_too_many_bits_for_a_disconnected_anchor_graph():
    # Two far-apart blobs with 3 anchors each and s = 2: the graph has two components, so M has
    # eigenvalue 1 twice and only 6 - 2 = 4 eigenvalues can pass the filter.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.standard_normal((100, 3)), rng.standard_normal((100, 3)) + 1e3])
    with pytest.raises(InputError, match=r"AGH: argument 'n_bits': expected at most [0-4] bits"):
        AGH(n_bits=5, n_anchors=6).fit(X)
