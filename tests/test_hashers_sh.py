"""SH (Spectral Hashing): the mode table and eigenfunctions of trainSH.m / compressSH.m."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ddcmh_core import InputError, get_hasher, load_hasher
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.sh import SH, spectral_modes


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=300, n_features=40)


def squared_frequencies(modes, ranges):
    return np.sum((np.asarray(modes) * (np.pi / np.asarray(ranges))) ** 2, axis=1)


def rotated_box_grid(lengths, angle, offset):
    """A regular grid filling a rectangle, rotated by ``angle``: its PCA box has sides ``lengths``."""
    axes = [np.linspace(0.0, length, 10 * round(4 * length) + 1) for length in lengths]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return grid @ rotation.T + offset


# ----------------------------------------------------------------- the mode table (HASHERS.md §17.2)
def test_mode_table_hand_computed_example():
    # Box 2.5 : 1, r = 4: omega^2 / pi^2 = k^2 / 6.25 on dimension 1 and k^2 on dimension 2.
    modes = spectral_modes(np.array([2.5, 1.0]), 4)
    assert modes.tolist() == [[1, 0], [2, 0], [0, 1], [3, 0]]
    np.testing.assert_allclose(
        squared_frequencies(modes, [2.5, 1.0]) / np.pi**2, [0.16, 0.64, 1.0, 1.44]
    )


def test_mode_table_is_scale_invariant_and_orders_dimensions_by_range():
    # Only range ratios matter; swapping the dimensions swaps the columns.
    np.testing.assert_array_equal(
        spectral_modes(np.array([25.0, 10.0]), 4), spectral_modes(np.array([2.5, 1.0]), 4)
    )
    assert spectral_modes(np.array([1.0, 2.5]), 4).tolist() == [[0, 1], [0, 2], [1, 0], [0, 3]]


def test_mode_table_ties_follow_the_stable_reference_order():
    # Ranges 2 : 1 tie (2,0) with (0,1) at omega^2 = pi^2; MATLAB's stable sort keeps the
    # enumeration order: dimension 1's modes before dimension 2's.
    modes = spectral_modes(np.array([2.0, 1.0]), 4)
    assert modes.tolist() == [[1, 0], [2, 0], [0, 1], [3, 0]]


def test_mode_table_uses_the_max_mode_rule():
    # maxMode_j = ceil((r + 1) R_j / max R): with ranges 10 : 1 and r = 3 the short side offers
    # ceil(0.4) - 1 = 0 modes, so all bits come from the long side.
    assert spectral_modes(np.array([10.0, 1.0]), 3).tolist() == [[1, 0], [2, 0], [3, 0]]
    # A side whose modes would all rank in the top r: ranges 1 : 1, r = 4 alternate.
    assert spectral_modes(np.array([1.0, 1.0]), 4).tolist() == [[1, 0], [0, 1], [2, 0], [0, 2]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mode_table_properties_on_random_ranges(seed):
    rng = np.random.default_rng(seed)
    ranges = rng.uniform(0.1, 5.0, size=7)
    modes = spectral_modes(ranges, 40)
    assert modes.shape == (40, 7)
    assert np.all(np.count_nonzero(modes, axis=1) == 1)  # single-dimension modes only
    assert len({tuple(row) for row in modes}) == 40  # no mode twice, constant mode dropped
    frequencies = squared_frequencies(modes, ranges)
    assert np.all(np.diff(frequencies) >= 0)
    # The kept modes are exactly the 40 lowest non-constant frequencies among all 1-D modes.
    all_frequencies = np.sort(((np.arange(1, 42)[:, None] * np.pi / ranges[None, :]) ** 2).ravel())
    np.testing.assert_allclose(frequencies, all_frequencies[:40])


def test_mode_table_rejects_bad_ranges():
    with pytest.raises(InputError, match="spectral_modes: argument 'ranges'"):
        spectral_modes(np.array([1.0, 0.0]), 4)
    with pytest.raises(InputError, match="spectral_modes: argument 'n_bits'"):
        spectral_modes(np.array([1.0]), 0)


# ----------------------------------------------------------------- fitting
def test_fitted_box_and_modes_on_a_rotated_rectangle():
    X = rotated_box_grid((2.5, 1.0), angle=0.6, offset=np.array([3.0, -1.0]))
    hasher = SH(n_bits=4).fit(X)
    np.testing.assert_allclose(hasher.box_range_, [2.5, 1.0], atol=1e-9)
    assert hasher.modes_.tolist() == [[1, 0], [2, 0], [0, 1], [3, 0]]
    # PCA directions are the rectangle's axes (up to sign).
    axis = np.array([np.cos(0.6), np.sin(0.6)])
    assert abs(abs(hasher.projection_[:, 0] @ axis) - 1) < 1e-9
    # Each bit is a cosine of k half-periods across the box: bits (1,0) and (0,1) split it in two.
    codes = hasher.training_codes_
    assert abs(codes[:, 0].mean() - 0.5) < 0.03 and abs(codes[:, 2].mean() - 0.5) < 0.06


def test_bits_follow_the_analytic_mode_ordering(corpus):
    features, _ = corpus
    hasher = SH(n_bits=48).fit(features)
    frequencies = squared_frequencies(hasher.modes_, hasher.box_range_)
    assert np.all(np.diff(frequencies) >= 0)  # frequency never decreases with the bit index
    np.testing.assert_array_equal(hasher.modes_, spectral_modes(hasher.box_range_, 48))
    assert hasher.projection_.shape == (40, 40)  # n_pca = min(n_bits, n_features)


def test_each_bit_flips_k_times_along_its_direction():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1.0, 1.0, size=(400, 3)) * np.array([3.0, 1.7, 1.0])
    hasher = SH(n_bits=10).fit(X)
    assert hasher.projection_.shape == (3, 3)
    # A generic point (not the centre, where cos(k pi / 2) = 0 for odd k).
    centre = hasher.box_min_ + 0.3137 * hasher.box_range_
    for direction in range(3):
        # Sweep the open box along one PCA direction, the other coordinates at the centre.
        steps = np.linspace(1e-6, 1 - 1e-6, 20001) * hasher.box_range_[direction]
        z = np.tile(centre, (steps.size, 1))
        z[:, direction] = hasher.box_min_[direction] + steps
        points = hasher.mean_ + z @ hasher.projection_.T  # P is square and orthogonal here
        codes = hasher.encode(points)
        flips = np.count_nonzero(np.diff(codes.astype(int), axis=0), axis=0)
        expected = np.where(hasher.modes_[:, direction] > 0, hasher.modes_[:, direction], 0)
        np.testing.assert_array_equal(flips, expected)


def test_projection_equals_the_reference_product_formula(corpus):
    features, _ = corpus
    hasher = SH(n_bits=24).fit(features)
    # compressSH.m: U_t = prod_j sin(z_j * omega_tj + pi/2), z = X pc - mn (no centring there;
    # here the box minimum is in centred coordinates, so centre first).
    dense = features.toarray()
    z = (dense - hasher.mean_) @ hasher.projection_ - hasher.box_min_
    omegas = hasher.modes_ * (np.pi / hasher.box_range_)
    reference = np.prod(np.sin(z[:, None, :] * omegas[None, :, :] + np.pi / 2), axis=2)
    np.testing.assert_allclose(hasher._project(features), reference, atol=1e-9)
    np.testing.assert_array_equal(hasher.training_codes_, reference > 0)


def test_no_mean_removal_as_in_the_reference_gives_the_same_codes(corpus):
    features, _ = corpus
    hasher = SH(n_bits=16).fit(features)
    # trainSH.m projects the raw data; the box shift absorbs the mean.
    raw = features.toarray() @ hasher.projection_
    low = raw.min(axis=0) - np.finfo(float).eps
    ranges = raw.max(axis=0) + np.finfo(float).eps - low
    np.testing.assert_allclose(ranges, hasher.box_range_, rtol=1e-9)
    modes = spectral_modes(ranges, 16)
    np.testing.assert_array_equal(modes, hasher.modes_)
    omegas = modes * (np.pi / ranges)
    u = np.prod(np.sin((raw - low)[:, None, :] * omegas[None] + np.pi / 2), axis=2)
    assert np.mean((u > 0) == hasher.training_codes_) > 0.999


def test_more_bits_than_features_come_from_higher_frequencies():
    assert SH.bits_bounded_by_features is False
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 2)) * np.array([2.0, 1.0])
    hasher = SH(n_bits=12).fit(X)
    assert hasher.training_codes_.shape == (200, 12)
    assert hasher.projection_.shape == (2, 2)
    assert hasher.modes_.max() > 1  # several bits per direction
    assert len({tuple(row) for row in hasher.modes_}) == 12


def test_out_of_box_points_are_extrapolated_periodically():
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(300, 3))
    hasher = SH(n_bits=8).fit(X)
    inside = hasher.mean_ + (
        hasher.box_min_ + rng.uniform(0.05, 0.95, size=(50, 3)) * hasher.box_range_
    ) @ hasher.projection_.T
    shift = 2 * hasher.box_range_[0] * hasher.projection_[:, 0]  # one full period of every mode
    np.testing.assert_array_equal(hasher.encode(inside + shift), hasher.encode(inside))


# ----------------------------------------------------------------- contract
def test_training_codes_equal_encoded_training_set(corpus):
    features, _ = corpus
    hasher = SH(n_bits=32).fit(features)
    np.testing.assert_array_equal(hasher.encode(features), hasher.training_codes_)
    np.testing.assert_array_equal(hasher.encoded_training_codes_, hasher.training_codes_)
    assert hasher.training_codes_.dtype == np.uint8


def test_deterministic_and_ignores_labels_and_seed(corpus):
    features, labels = corpus
    first = SH(n_bits=16, seed=0).fit_encode(features)
    np.testing.assert_array_equal(first, SH(n_bits=16, seed=0).fit_encode(features))
    np.testing.assert_array_equal(first, SH(n_bits=16, seed=5).fit_encode(features, labels))
    assert SH(n_bits=16).tags()["uses_labels"] is False


def test_sparse_and_dense_input_give_the_same_codes(corpus):
    features, _ = corpus
    sparse_codes = SH(n_bits=24).fit_encode(features)
    dense_codes = SH(n_bits=24).fit_encode(features.toarray())
    np.testing.assert_array_equal(sparse_codes, dense_codes)
    sparse_input = sp.csr_matrix(features)
    np.testing.assert_array_equal(SH(n_bits=24).fit(features).encode(sparse_input), sparse_codes)


def test_hdf5_round_trip(tmp_path, corpus):
    features, _ = corpus
    hasher = get_hasher("sh", n_bits=20).fit(features)
    path = hasher.save(tmp_path / "sh.h5")
    loaded = load_hasher(path)
    assert isinstance(loaded, SH)
    np.testing.assert_array_equal(loaded.modes_, hasher.modes_)
    np.testing.assert_array_equal(loaded.encode(features), hasher.encode(features))


def test_bad_input_is_refused(corpus):
    features, _ = corpus
    with pytest.raises(InputError, match=r"SH: argument 'X': expected training rows that differ"):
        SH(n_bits=4).fit(np.tile([1.0, 2.0, 3.0], (10, 1)))
    with pytest.raises(InputError, match=r"SH: argument 'X': expected training rows"):
        SH(n_bits=4).fit(sp.csr_matrix((10, 5)))
    with pytest.raises(InputError, match=r"SH: argument 'n_pca': unknown hyper-parameter"):
        SH(n_pca=3)
    with pytest.raises(InputError, match=r"SH: argument 'n_bits'"):
        SH(n_bits=0)
    fitted = SH(n_bits=8).fit(features)
    with pytest.raises(InputError, match=r"expected 40 features \(the width seen in fit\), got 39"):
        fitted.encode(features[:, :39])
