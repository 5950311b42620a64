"""SKLSH: the collision law of Raginsky & Lazebnik (2009) and the plugin's registration."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import ddcmh_core
from ddcmh_core.testing import make_bow_data
from ddcmh_example import SKLSH


def expected_disagreement(kernel_of_multiple: Callable[[np.ndarray], np.ndarray]) -> float:
    """Lemma 2.1 of Raginsky & Lazebnik: P[bit differs] = 8/pi^2 sum_m (1 - K(m d)) / (4m^2 - 1)."""
    multiples = np.arange(1, 2000)
    terms = (1.0 - kernel_of_multiple(multiples)) / (4.0 * multiples**2 - 1.0)
    return float(8.0 / np.pi**2 * terms.sum())


def fitted(features: Any, **params: Any) -> SKLSH:
    hasher = SKLSH(**params)
    hasher.fit(features)
    return hasher


def test_bit_disagreement_follows_the_gaussian_kernel():
    rng = np.random.default_rng(0)
    gamma = 0.5
    base = rng.standard_normal(10)
    direction = rng.standard_normal(10)
    direction /= np.linalg.norm(direction)
    distances = np.array([0.0, 0.3, 0.8, 1.5, 3.0, 8.0])
    points = np.vstack([base, base + distances[:, None] * direction])
    codes = np.hstack(
        [SKLSH(n_bits=4096, gamma=gamma, seed=seed).fit_encode(points) for seed in range(3)]
    )
    for index, distance in enumerate(distances):
        observed = np.mean(codes[0] != codes[index + 1])

        def kernel(multiple: np.ndarray, distance: float = distance) -> np.ndarray:
            return np.exp(-gamma * (multiple * distance) ** 2 / 2.0)

        expected = expected_disagreement(kernel)
        assert observed == pytest.approx(expected, abs=0.015)
    # Far-apart items disagree on 4 / pi^2 of the bits, not 1/2: the thresholds t are shared.
    assert expected_disagreement(lambda m: np.zeros_like(m, dtype=float)) == pytest.approx(
        4 / np.pi**2, abs=1e-3
    )


def test_random_parameters_follow_the_reference_distributions():
    features, _ = make_bow_data(n_samples=50, n_features=200)
    hasher = fitted(features, n_bits=500, gamma=4.0)
    assert hasher.gamma_ == 4.0
    assert np.std(hasher.projection_) == pytest.approx(2.0, rel=0.02)
    assert np.all((hasher.phase_ >= 0) & (hasher.phase_ <= 2 * np.pi))
    assert np.all(np.abs(hasher.threshold_) <= np.sqrt(2))
    assert np.mean(hasher.threshold_) == pytest.approx(0.0, abs=0.15)


def test_data_width_makes_the_codes_scale_free():
    features, _ = make_bow_data(n_samples=200)
    small = fitted(features, n_bits=64, data_width=True)
    large = fitted(features * 25.0, n_bits=64, data_width=True)
    assert large.gamma_ == pytest.approx(small.gamma_ / 625.0)
    assert np.allclose(small._project(features), large._project(features * 25.0))
    dense = features.toarray()
    distances = ((dense[:, None, :] - dense[None, :, :]) ** 2).sum(axis=2)
    mean_distance = distances.sum() / (len(dense) * (len(dense) - 1))
    assert small.gamma_ == pytest.approx(1.0 / mean_distance)


def test_sparse_input_is_not_densified_and_agrees_with_dense():
    features, _ = make_bow_data(n_samples=300)
    hasher = fitted(features, n_bits=32, data_width=True)
    assert np.array_equal(hasher.encode(features), hasher.encode(features.toarray()))


def test_bad_hyper_parameters_are_refused():
    with pytest.raises(ddcmh_core.InputError, match="gamma"):
        SKLSH(gamma=0.0)
    with pytest.raises(ddcmh_core.InputError, match="bandwidth"):
        SKLSH(bandwidth=1.0)


def _installed() -> bool:
    try:
        importlib.metadata.distribution("ddcmh-example")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="ddcmh-example is not installed (pip install .)")
def test_registered_through_the_entry_point(tmp_path):
    registry = ddcmh_core.hasher_registry(refresh=True)
    assert "sklsh" in registry.names()
    hasher = ddcmh_core.get_hasher("sklsh", n_bits=16)
    assert isinstance(hasher, SKLSH)
    features, _ = make_bow_data(n_samples=100)
    hasher.fit(features)
    restored = ddcmh_core.load_hasher(hasher.save(tmp_path / "sklsh.h5"))
    assert isinstance(restored, SKLSH)
    assert np.array_equal(restored.encode(features), hasher.encode(features))
