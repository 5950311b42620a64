"""KSH (Supervised Hashing with Kernels): properties of KSH_demo.m / OptProjectionFast.m."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.linalg import squared_distances
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.ksh import (
    KSH,
    ResidualOperator,
    pairwise_similarity,
    refine_projection,
    similarity_groups,
    spectral_direction,
)


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=400, n_features=80, n_classes=6, seed=2)


@pytest.fixture(scope="module")
def fitted(corpus):
    features, labels = corpus
    return KSH(n_bits=12, n_anchors=60, n_labelled=250).fit(features, labels)


def residual_before_each_bit(hasher, features, labels):
    """Dense R_{k-1} on the labelled subset, rebuilt from the chosen codes, and those codes."""
    labelled = hasher.labelled_index_
    kernel = hasher.kernel_.transform(features[labelled])
    codes = np.where(kernel @ hasher.projection_ > 0, 1.0, -1.0)
    residual = hasher.n_bits * pairwise_similarity(labels[labelled])
    residuals = []
    for bit in range(hasher.n_bits):
        residuals.append(residual.copy())
        residual -= np.outer(codes[:, bit], codes[:, bit])
    return kernel, codes, residuals


# ----------------------------------------------------------------------------- greedy fit
def test_kept_projection_never_falls_below_its_spectral_start(fitted):
    assert np.all(fitted.bit_fit_ >= fitted.bit_fit_spectral_)
    np.testing.assert_array_equal(
        fitted.bit_fit_, np.maximum(fitted.bit_fit_spectral_, fitted.bit_fit_refined_)
    )
    chosen = fitted.refined_chosen_.astype(bool)
    assert np.all(fitted.bit_fit_refined_[chosen] > fitted.bit_fit_spectral_[chosen])
    assert chosen.any()  # the gradient refinement does help on this data


def test_per_bit_fit_is_the_residual_fit_and_beats_random_projections(corpus, fitted):
    features, labels = corpus
    kernel, codes, residuals = residual_before_each_bit(fitted, features, labels)
    rng = np.random.default_rng(0)
    random_codes = np.where(kernel @ rng.standard_normal((kernel.shape[1], 30)) > 0, 1.0, -1.0)
    for bit, residual in enumerate(residuals):
        fit = codes[:, bit] @ residual @ codes[:, bit]
        assert fit == pytest.approx(fitted.bit_fit_[bit], rel=1e-12)
        random_fits = np.einsum("ij,ik,kj->j", random_codes, residual, random_codes)
        assert fit > random_fits.max(), (bit, fit, random_fits.max())


def test_training_codes_are_the_hash_function_on_all_rows(corpus, fitted):
    features, _ = corpus
    assert fitted._training_codes() is None
    np.testing.assert_array_equal(fitted.training_codes_, fitted.encode(features))
    projections = fitted.kernel_.transform(features) @ fitted.projection_
    np.testing.assert_array_equal(fitted.training_codes_, (projections > 0).astype(np.uint8))
    ones = fitted.training_codes_.mean(axis=0)
    assert np.all((ones > 0.1) & (ones < 0.9))


def test_residual_update_leaves_the_target_minus_the_chosen_codes(corpus, fitted):
    """||B B^T - r S||^2 on the labelled set decreases bit by bit (R_k = R_{k-1} - b b^T)."""
    features, labels = corpus
    _, _, residuals = residual_before_each_bit(fitted, features, labels)
    errors = np.array([np.sum(residual**2) for residual in residuals])
    assert np.all(np.diff(errors) < 0), errors


# ----------------------------------------------------------------------------- spectral init
def test_spectral_init_solves_the_jittered_generalised_eigenproblem():
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((20, 50))  # fewer labelled items than anchors: K^T K singular
    left = kernel.T @ np.sign(rng.standard_normal((20, 20))) @ kernel
    gram = kernel.T @ kernel
    with pytest.raises(np.linalg.LinAlgError):
        scipy.linalg.eigh((left + left.T) / 2, gram)
    direction, jitter = spectral_direction(left, gram, 1e-8)
    assert jitter > 0 and np.all(np.isfinite(direction))
    definite = gram + jitter * np.eye(50)
    values = scipy.linalg.eigh((left + left.T) / 2, definite, eigvals_only=True)
    rayleigh = (direction @ left @ direction) / (direction @ definite @ direction)
    assert rayleigh == pytest.approx(values[-1], rel=1e-6)
    residual = (left + left.T) / 2 @ direction - rayleigh * definite @ direction
    assert np.linalg.norm(residual) <= 1e-6 * np.linalg.norm(left) * np.linalg.norm(direction)


def test_fewer_labelled_items_than_anchors_fits(corpus):
    features, labels = corpus
    hasher = KSH(n_bits=8, n_anchors=80, n_labelled=40).fit(features, labels)
    assert hasher.labelled_index_.shape == (40,) and hasher.jitter_ > 0
    assert np.all(np.isfinite(hasher.projection_))
    assert np.all(hasher.bit_fit_ >= hasher.bit_fit_spectral_)


# ----------------------------------------------------------------------------- refinement
def test_refinement_lowers_the_smooth_cost_and_matches_the_dense_residual(corpus, fitted):
    features, labels = corpus
    kernel, _, residuals = residual_before_each_bit(fitted, features, labels)
    rng = np.random.default_rng(4)
    start = rng.standard_normal(kernel.shape[1])
    start *= np.sqrt(kernel.shape[0] / (start @ kernel.T @ kernel @ start))
    operator = ResidualOperator(labels[fitted.labelled_index_], fitted.n_bits)
    direction, costs = refine_projection(kernel, operator, start, 100, 1e-2)
    dense_direction, dense_costs = refine_projection(kernel, residuals[0], start, 100, 1e-2)
    np.testing.assert_allclose(direction, dense_direction, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(costs, dense_costs, rtol=1e-10)
    assert costs[0] == costs[1] and costs[-1] < costs[0]
    phi = np.tanh(kernel @ direction / 2)
    assert costs[-1] == pytest.approx(-phi @ residuals[0] @ phi, rel=1e-9)


def test_no_overflow_even_with_huge_projections(corpus):
    features, labels = corpus
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        hasher = KSH(n_bits=8, n_anchors=50, n_labelled=200).fit(features, labels)
        kernel = hasher.kernel_.transform(features[hasher.labelled_index_])
        residual = 8 * pairwise_similarity(labels[hasher.labelled_index_])
        huge = 1e6 * hasher.projection_[:, 0]  # exp(-K a) would overflow here
        direction, costs = refine_projection(kernel, residual, huge, 20, 1e-2)
    assert np.all(np.isfinite(direction)) and np.all(np.isfinite(costs))


def test_refinement_stops_at_the_iteration_limit(corpus):
    features, labels = corpus
    hasher = KSH(n_bits=4, n_anchors=50, n_labelled=150, max_gd_iter=3, gd_tol=0.0)
    hasher.fit(features, labels)
    assert np.all(hasher.gd_iterations_ <= 3)
    no_refinement = KSH(n_bits=4, n_anchors=50, n_labelled=150, max_gd_iter=0)
    no_refinement.fit(features, labels)
    assert np.all(no_refinement.gd_iterations_ == 0)
    np.testing.assert_array_equal(no_refinement.bit_fit_, no_refinement.bit_fit_spectral_)


# ----------------------------------------------------------------------------- labels, kernel
def test_pairwise_similarity_shares_at_least_one_label():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [1, 1, 0]])
    expected = np.where(labels @ labels.T > 0, 1.0, -1.0)
    np.fill_diagonal(expected, 1.0)  # the unlabelled rows 4 and 5 are their own neighbours only
    np.testing.assert_array_equal(pairwise_similarity(labels), expected)
    groups, group_similarity = similarity_groups(labels)
    assert group_similarity.shape[0] == 6  # rows 1 and 6 share a label set; 4 and 5 do not
    assert groups[1] == groups[6] and groups[4] != groups[5]


def test_residual_operator_equals_the_dense_residual():
    rng = np.random.default_rng(5)
    labels = (rng.random((90, 7)) < 0.25).astype(np.uint8)
    operator = ResidualOperator(labels, n_bits=5)
    dense = 5 * pairwise_similarity(labels)
    for _ in range(3):
        codes = np.where(rng.standard_normal(90) > 0, 1.0, -1.0)
        operator.subtract(codes)
        dense -= np.outer(codes, codes)
    vector = rng.standard_normal(90)
    np.testing.assert_allclose(operator.apply(vector), dense @ vector, rtol=1e-12, atol=1e-10)
    assert operator.quadratic(codes) == pytest.approx(codes @ dense @ codes, rel=1e-12)


def test_kernel_follows_ksh_demo(corpus, fitted):
    features, _ = corpus
    kernel = fitted.kernel_
    assert not kernel.normalize and not kernel.bias and kernel.anchors.shape[0] == 60
    distances = squared_distances(features, kernel.anchors)
    assert kernel.bandwidth**2 == pytest.approx(distances.mean(), rel=1e-10)  # mean of D
    raw = np.exp(-distances / (2 * distances.mean()))
    # centred by the mean over all n training rows, not over the labelled subset
    np.testing.assert_allclose(kernel.feature_mean, raw.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(kernel.transform(features), raw - raw.mean(axis=0), atol=1e-12)


def test_labelled_subset_is_seeded_and_clamped(corpus):
    features, labels = corpus
    subset = KSH(n_bits=4, n_anchors=30, n_labelled=100, max_gd_iter=5, seed=1)
    subset.fit(features, labels)
    index = subset.labelled_index_
    assert index.shape == (100,) and np.all(np.diff(index) > 0)
    other = KSH(n_bits=4, n_anchors=30, n_labelled=100, max_gd_iter=5, seed=2)
    assert not np.array_equal(other.fit(features, labels).labelled_index_, index)
    everything = KSH(n_bits=4, n_anchors=30, max_gd_iter=5).fit(features[:120], labels[:120])
    np.testing.assert_array_equal(everything.labelled_index_, np.arange(120))  # l clamped to n


# ----------------------------------------------------------------------------- API
def test_registered_name():
    assert isinstance(get_hasher("ksh", n_bits=8), KSH)
    assert KSH.requires_labels and KSH.supports_encode


def test_anchors_are_clamped_and_bits_bounded_by_anchors():
    features, labels = make_bow_data(n_samples=40, n_features=30, seed=1)
    hasher = KSH(n_bits=16, max_gd_iter=20).fit(features, labels)  # 300 anchors > 40 rows
    assert hasher.kernel_.anchors.shape[0] == 40
    with pytest.raises(InputError, match=r"'n_bits'.*anchors"):
        KSH(n_bits=64).fit(features, labels)
    with pytest.raises(InputError, match=r"'n_bits'.*anchors"):
        KSH(n_bits=16, n_anchors=10).fit(features, labels)


def test_bad_arguments():
    features, _ = make_bow_data(n_samples=60, n_features=30, seed=1)
    with pytest.raises(InputError, match="labels"):
        KSH(n_bits=8).fit(features)
    for bad in ({"n_labelled": 1}, {"eig_jitter": 0.0}, {"gd_tol": -1.0}, {"n_anchors": 1}):
        with pytest.raises(InputError, match=next(iter(bad))):
            KSH(**bad)


def test_deterministic_sparse_dense_and_hdf5(tmp_path, corpus, fitted):
    features, labels = corpus
    again = KSH(n_bits=12, n_anchors=60, n_labelled=250).fit(features, labels)
    np.testing.assert_array_equal(again.training_codes_, fitted.training_codes_)
    np.testing.assert_array_equal(again.projection_, fitted.projection_)
    dense = KSH(n_bits=12, n_anchors=60, n_labelled=250).fit(features.toarray(), labels)
    assert np.mean(dense.training_codes_ == fitted.training_codes_) >= 0.99
    loaded = load_hasher(fitted.save(tmp_path / "ksh.h5"))
    assert isinstance(loaded, KSH) and loaded.params == fitted.params
    np.testing.assert_array_equal(loaded.encode(features), fitted.encode(features))
    np.testing.assert_array_equal(loaded.bit_fit_, fitted.bit_fit_)
