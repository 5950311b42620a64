"""What makes PCA-RR right: it is PCAH rotated, and the rotation spreads the variance over the bits."""

import numpy as np
import pytest
from ddcmh_pca_rr import PCARR

import ddcmh_core
from ddcmh_core.testing import make_bow_data


@pytest.fixture(scope="module")
def texts():
    """A synthetic bag-of-words corpus (scipy CSR counts), like Stage 1's text view."""
    features, _ = make_bow_data(n_samples=600, n_features=120, seed=1)
    return features


def test_without_rotation_it_is_pcah(texts):
    """rotation="none" gives exactly the codes of ddcmh's built-in PCAH."""
    ours = PCARR(n_bits=24, rotation="none").fit_encode(texts)
    reference = ddcmh_core.get_hasher("pcah", n_bits=24).fit_encode(texts)
    assert np.array_equal(ours, reference)


def test_the_rotation_is_orthogonal_and_seeded(texts):
    """R is orthogonal, drawn from the seed, and P R spans the same space as P."""
    hasher = PCARR(n_bits=16, seed=3).fit(texts)
    rotation = hasher.rotation_
    assert np.allclose(rotation.T @ rotation, np.eye(16))
    assert np.allclose(PCARR(n_bits=16, seed=3).fit(texts).rotation_, rotation)
    assert not np.allclose(PCARR(n_bits=16, seed=4).fit(texts).rotation_, rotation)
    pcah = PCARR(n_bits=16, rotation="none").fit(texts)
    assert np.allclose(hasher.projection_, pcah.projection_ @ rotation)


def test_the_rotation_spreads_the_variance_over_the_bits(texts):
    """Same total variance as PCAH, but shared out far more evenly between the bits."""
    hasher = PCARR(n_bits=16, seed=0).fit(texts)
    variances = np.var(hasher._project(texts), axis=0, ddof=1)
    eigenvalues = hasher.eigenvalues_
    assert variances.sum() == pytest.approx(eigenvalues.sum(), rel=1e-9)
    assert np.allclose(variances, np.diag(hasher.rotation_.T @ np.diag(eigenvalues) @ hasher.rotation_))
    assert variances.max() / variances.min() < eigenvalues.max() / eigenvalues.min()


def test_more_bits_than_features_is_refused_with_a_hint(texts):
    """n_bits is bounded by the number of features; the error says how to lift the bound."""
    with pytest.raises(ddcmh_core.InputError, match=r"n_bits.*kernel_lift='rbf'"):
        PCARR(n_bits=200).fit(texts)
    with pytest.raises(ddcmh_core.InputError, match="rotation"):
        PCARR(rotation="learned")
