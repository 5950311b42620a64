"""LSSH port: Wikipedia fidelity, the sparse coder and basis steps, save/load, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model
from ddcmh_core.evaluation.metrics import mean_average_precision

lssh = pytest.importorskip("ddcmh_baselines.lssh")
LSSH = lssh.LSSH
SMALL = {"n_atoms": 24, "n_iter": 4}


def paired_views(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two views sharing a 3-class latent structure, plus one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    centres_image, centres_text = rng.normal(size=(3, 12)), rng.normal(size=(3, 6))
    image = centres_image[classes] + 0.3 * rng.normal(size=(n, 12))
    text = centres_text[classes] + 0.3 * rng.normal(size=(n, 6))
    return image, text, np.eye(3, dtype=np.uint8)[classes]


def least_r(dictionary: np.ndarray, target: np.ndarray, ratio: float, n_steps: int) -> np.ndarray:
    """SLEP's LeastR for one sample as solveLSSH.m configures it, written out plainly."""
    correlation = dictionary.T @ target
    weight = ratio * np.abs(correlation).max()
    code, previous = np.zeros(dictionary.shape[1]), np.zeros(dictionary.shape[1])
    mapped, previous_mapped = np.zeros(len(target)), np.zeros(len(target))
    lipschitz, alpha_before, alpha = 1.0, 0.0, 1.0
    for _ in range(n_steps):
        beta = (alpha_before - 1) / alpha
        point, image = code + beta * (code - previous), mapped + beta * (mapped - previous_mapped)
        gradient = dictionary.T @ image - correlation
        previous, previous_mapped = code, mapped
        while True:
            shifted = point - gradient / lipschitz
            code = np.sign(shifted) * np.maximum(np.abs(shifted) - weight / lipschitz, 0)
            mapped = dictionary @ code
            moved, curvature = np.sum((code - point) ** 2), np.sum((mapped - image) ** 2)
            if moved <= 1e-20 or curvature <= moved * lipschitz * lssh.SLACK:
                break
            lipschitz = max(2 * lipschitz, curvature / moved)
        alpha_before, alpha = alpha, (1 + np.sqrt(4 * alpha * alpha + 1)) / 2
        if moved <= 1e-20:
            break
    return code


@pytest.mark.data
def test_wikipedia_map_close_to_reference() -> None:
    """Against the unified database codes, as the reference ranks; 64 bits, 3 of the 20 iterations.

    64 bits: at 16 and 32 the reference's text->image values sit at the level of text->text
    retrieval, which the exact port does not reach (see the docs page on the reference's basis
    solver). Three outer iterations keep the test short and already reach the 20-iteration MAP.
    """
    from ddcmh_baselines.reference import wikipedia_reference

    from ddcmh_core.data import load_dataset

    dataset = load_dataset("wikipedia", data_dir=shared_data("wikipedia"))
    train, query = dataset.split.train, dataset.split.query
    image, text, labels = np.asarray(dataset.image.take()), np.asarray(dataset.text.take()), dataset.labels
    model = LSSH(n_bits=64, seed=0, n_iter=3).fit(image[train], text[train])
    database = model.encode_unified(image[train], text[train])
    queries = {"image->text": model.encode_image(image[query]), "text->image": model.encode_text(text[query])}
    scores = {
        task: mean_average_precision(codes, database, labels[query], labels[train])
        for task, codes in queries.items()
    }
    reference = wikipedia_reference()
    for task, value in scores.items():
        expected = reference.value("lssh", 64, task)
        assert expected is not None
        assert float(value) >= expected - 0.03, f"{task}: {float(value):.3f} vs reference {expected:.3f}"


def test_sparse_coder_is_least_r_on_every_column_and_solves_the_lasso() -> None:
    rng = np.random.default_rng(0)
    dictionary, targets = rng.normal(size=(8, 40)), lssh.unit_columns(rng.normal(size=(8, 30)))
    codes = lssh.sparse_codes(dictionary, targets, 0.3, 30)
    for column in range(targets.shape[1]):
        expected = least_r(dictionary, targets[:, column], 0.3, 30)
        np.testing.assert_allclose(codes[:, column], expected, atol=1e-12)
    # run long enough, every column meets the Lasso optimality conditions with weight 0.3 max|D'y|
    codes = lssh.sparse_codes(dictionary, targets, 0.3, 3000)
    weights = 0.3 * np.abs(dictionary.T @ targets).max(axis=0)
    residual_correlation = dictionary.T @ (targets - dictionary @ codes)
    support = codes != 0
    assert support.any() and not support.all()
    np.testing.assert_allclose(residual_correlation[support], (np.sign(codes) * weights)[support], atol=1e-6)
    assert np.all(np.abs(residual_correlation) <= weights + 1e-6)


def test_basis_step_solves_the_norm_constrained_least_squares() -> None:
    """KKT of min ||X - B S||^2 s.t. ||b_j|| <= 1: (B S - X) S' = -b_j nu_j, nu_j >= 0, nu_j = 0 inside."""
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(20, 200)) * (rng.random((20, 200)) < 0.2)
    codes[3] = 0.0  # an atom no sample uses
    for scale in (0.05, 3.0):  # mostly inactive / mostly active constraints
        targets = scale * rng.normal(size=(6, 200))
        basis, multipliers = lssh.norm_bounded_basis(targets, codes)
        norms = np.linalg.norm(basis, axis=0)
        assert np.all(norms <= 1 + 1e-9) and norms[3] == 0
        gradient = (basis @ codes - targets) @ codes.T
        np.testing.assert_allclose(gradient + basis * multipliers, 0, atol=1e-6)
        assert np.all(multipliers >= 0)
        assert np.all(multipliers[norms < 1 - 1e-6] == 0)
        for start in (multipliers * 3 + 0.5, np.full(20, 1e-6)):  # a start near 0 is the hard case
            warm, _ = lssh.norm_bounded_basis(targets, codes, start)
            np.testing.assert_allclose(warm, basis, atol=1e-7)


def test_latent_step_and_fitted_constraints() -> None:
    """Y solves min mu||T - A Y||^2 + lambda||Y - R S||^2; the fitted B, R, A keep unit-ball columns."""
    rng = np.random.default_rng(2)
    basis, texts, coupled = rng.normal(size=(6, 5)), rng.normal(size=(6, 40)), rng.normal(size=(5, 40))
    latent = lssh.latent_text(basis, texts, coupled, 0.2 / 0.05)
    gradient = 0.05 * basis.T @ (basis @ latent - texts) + 0.2 * (latent - coupled)
    np.testing.assert_allclose(gradient, 0, atol=1e-10)
    image, text, _ = paired_views()
    model = LSSH(n_bits=8, seed=1, **SMALL).fit(image, text)
    for matrix in (model.dictionary_, model.coupling_, model.text_basis_):
        assert np.linalg.norm(matrix, axis=0).max() <= 1 + 1e-9
    np.testing.assert_allclose(model.pca_.T @ model.pca_, np.eye(8), atol=1e-10)
    history = model.report_["objective"]
    assert len(history) == SMALL["n_iter"] and history[-1] < history[0]


def test_codes_labels_ignored_and_sparse_input_matches_dense() -> None:
    image, text, labels = paired_views()
    plain = LSSH(n_bits=8, seed=3, **SMALL).fit(image, text)
    labelled = LSSH(n_bits=8, seed=3, **SMALL).fit(sp.csr_matrix(image), text, labels)
    np.testing.assert_array_equal(plain.encode_image(image), labelled.encode_image(image))
    np.testing.assert_array_equal(plain.encode_text(text), labelled.encode_text(text))
    unified = plain.encode_unified(image, text)
    assert unified.shape == (120, 8) and set(np.unique(unified)) <= {0, 1}
    assert LSSH.tags.supervised is False


def test_save_load_round_trip(tmp_path) -> None:
    image, text, _ = paired_views()
    model = LSSH(n_bits=8, seed=2, **SMALL).fit(image, text)
    path = model.save(tmp_path / "lssh.h5")
    loaded = load_model(path)
    assert isinstance(loaded, LSSH) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))
    np.testing.assert_array_equal(loaded.encode_unified(image, text), model.encode_unified(image, text))


def test_bad_input_is_refused_before_work(monkeypatch) -> None:
    image, text, _ = paired_views()

    def no_work(*args, **kwargs):
        raise AssertionError("fit started before the input was checked")

    monkeypatch.setattr(LSSH, "_fit", no_work)
    with pytest.raises(InputError, match=r"'text': expected 120 rows"):
        LSSH(n_bits=8).fit(image, text[:-1])
    with pytest.raises(InputError, match=r"n_bits: .* at most the 12 image features, got 16"):
        LSSH(n_bits=16).fit(image, text)
    for settings in ({"n_bits": 0}, {"rho": 1.5}, {"mu": 0.0}, {"n_atoms": 0}):
        with pytest.raises(InputError, match=next(iter(settings))):
            LSSH(**settings)
    bad = image.copy()
    bad[0, 0] = np.inf
    with pytest.raises(InputError, match="finite"):
        LSSH(n_bits=8).fit(bad, text)
    monkeypatch.undo()
    model = LSSH(n_bits=8, seed=0, **SMALL).fit(image, text)
    with pytest.raises(InputError, match="one text row per image row"):
        model.encode_unified(image, text[:-1])
