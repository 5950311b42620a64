"""LSH, PCAH and ITQ (PCA-ITQ, CCA-ITQ): properties of the reference algorithms."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from ddcmh_core import get_hasher
from ddcmh_core.linalg import centred_projection
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.itq import ITQ
from ddcmh_hashers.lsh import LSH
from ddcmh_hashers.pcah import PCAH


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=600, n_features=80, n_classes=6, seed=4)


def test_itq_quantisation_loss_never_increases(corpus):
    features, _ = corpus
    hasher = ITQ(n_bits=24, n_iter=50).fit(features)
    losses = hasher.quantization_loss_
    assert losses.shape == (51,)  # the reference runs iter = 0:n_iter
    assert np.all(np.diff(losses) <= 1e-9 * losses[0])
    assert losses[-1] < losses[0]


def test_itq_rotation_is_orthogonal_and_codes_use_the_final_rotation(corpus):
    features, _ = corpus
    hasher = ITQ(n_bits=16).fit(features)
    rotation = hasher.rotation_
    assert np.allclose(rotation.T @ rotation, np.eye(16), atol=1e-10)
    projected = centred_projection(features, hasher.mean_, hasher.projection_)
    assert np.array_equal(hasher.training_codes_, (projected @ rotation > 0).astype(np.uint8))
    assert np.array_equal(hasher.encode(features), hasher.training_codes_)


def test_itq_svd_orientation_beats_the_transposed_bug(corpus):
    """R = S_hat S^T increases sum |V R|; the transposed variant (a known bug) barely moves."""
    features, _ = corpus
    hasher = ITQ(n_bits=16, n_iter=30).fit(features)
    projected = centred_projection(features, hasher.mean_, hasher.projection_)
    rotation = np.linalg.svd(np.random.default_rng(0).standard_normal((16, 16)))[0]
    wrong = rotation.copy()
    for _ in range(31):
        codes = np.where(projected @ wrong >= 0, 1.0, -1.0)
        left, _, right_t = np.linalg.svd(codes.T @ projected)
        wrong = right_t @ left.T  # the orientation bug: S_hat^T S^T
    correct_objective = np.abs(projected @ hasher.rotation_).sum()
    wrong_objective = np.abs(projected @ wrong).sum()
    initial_objective = np.abs(projected @ rotation).sum()
    assert correct_objective > wrong_objective
    assert correct_objective > initial_objective


def test_itq_bits_are_roughly_balanced(corpus):
    features, _ = corpus
    ones = ITQ(n_bits=32).fit_encode(features).mean(axis=0)
    assert np.all((ones > 0.2) & (ones < 0.8))


def test_pcah_uses_top_principal_directions_in_decreasing_order(corpus):
    features, _ = corpus
    hasher = PCAH(n_bits=10).fit(features)
    reference = PCA(n_components=10, svd_solver="full").fit(features.toarray())
    assert np.all(np.diff(hasher.eigenvalues_) <= 0)
    assert np.allclose(hasher.eigenvalues_, reference.explained_variance_, rtol=1e-8)
    alignment = np.abs(np.sum(hasher.projection_ * reference.components_.T, axis=0))
    assert np.allclose(alignment, 1.0, atol=1e-8)
    assert np.allclose(hasher.mean_, reference.mean_)


def test_lsh_hamming_distance_estimates_the_angle():
    """Charikar: P[bit differs] = angle / pi for Gaussian hyperplanes."""
    rng = np.random.default_rng(2)
    data = rng.standard_normal((40, 30))
    hasher = LSH(n_bits=4096, center=False, seed=5).fit(data)
    codes = hasher.encode(data).astype(bool)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    angles = np.arccos(np.clip(unit @ unit.T, -1, 1)) / np.pi
    hamming = (codes[:, None, :] != codes[None, :, :]).mean(axis=2)
    assert np.max(np.abs(hamming - angles)) < 0.04


def test_lsh_projection_is_standard_normal_and_seeded():
    data = np.random.default_rng(0).random((100, 50))
    first = LSH(n_bits=200, seed=1).fit(data)
    second = LSH(n_bits=200, seed=1).fit(data)
    other = LSH(n_bits=200, seed=2).fit(data)
    assert np.array_equal(first.projection_, second.projection_)
    assert not np.array_equal(first.projection_, other.projection_)
    assert abs(first.projection_.mean()) < 0.02 and abs(first.projection_.std() - 1) < 0.02


def _label_gap(codes: np.ndarray, labels: np.ndarray) -> float:
    """Mean Hamming distance of pairs with no shared label minus that of pairs sharing one."""
    distances = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    share = (labels @ labels.T) > 0
    return float(distances[~share].mean() - distances[share].mean())


def test_cca_itq_uses_labels_to_separate_classes(corpus):
    features, labels = corpus
    pca_codes = get_hasher("itq", n_bits=16).fit_encode(features)
    cca = get_hasher("cca-itq", n_bits=16)
    cca_codes = cca.fit_encode(features, labels)
    assert cca.labels_required() and not get_hasher("itq").labels_required()
    assert _label_gap(cca_codes, labels) > _label_gap(pca_codes, labels) > 0
    assert np.all(np.diff(cca.quantization_loss_) <= 1e-9 * cca.quantization_loss_[0])
