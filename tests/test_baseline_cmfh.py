"""CMFH port: Wikipedia fidelity, the closed-form steps, save/load, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model

cmfh = pytest.importorskip("ddcmh_baselines.cmfh")
CMFH = cmfh.CMFH


def paired_views(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two views sharing a 3-class latent structure, plus one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    centres_image, centres_text = rng.normal(size=(3, 12)), rng.normal(size=(3, 6))
    image = centres_image[classes] + 0.3 * rng.normal(size=(n, 12))
    text = centres_text[classes] + 0.3 * rng.normal(size=(n, 6))
    return image, text, np.eye(3, dtype=np.uint8)[classes]


@pytest.mark.data
def test_wikipedia_map_close_to_reference() -> None:
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference


    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = CMFH(n_bits=32, seed=0).fit(data["image_train"], data["text_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, value in scores.items():
        expected = reference.value("cmfh", 32, task)
        assert expected is not None
        assert float(value) >= expected - 0.03, f"{task}: {float(value):.3f} vs reference {expected:.3f}"


def test_closed_form_steps_solve_their_subproblems() -> None:
    """U, Y and (paper) W each zero the gradient of the objective in their own block."""
    image, text, _ = paired_views()
    views = [image - image.mean(0), text - text.mean(0)]
    rng = np.random.default_rng(1)
    weights, mu, gamma, k = (0.5, 0.5), 100.0, 0.01, 4
    latent = rng.random((len(image), k))
    projections = [rng.random((rows.shape[1], k)) for rows in views]
    bases = cmfh.update_bases(latent, views, gamma)
    for rows, basis in zip(views, bases, strict=True):
        gradient = -latent.T @ (rows - latent @ basis) + gamma * basis
        np.testing.assert_allclose(gradient, 0, atol=1e-8)
    latent = cmfh.update_latent(views, bases, projections, weights, mu, gamma)
    gradient = sum(
        w * (-(rows - latent @ basis) @ basis.T + mu * (latent - rows @ proj) + gamma * latent)
        for w, rows, basis, proj in zip(weights, views, bases, projections, strict=True)
    )
    np.testing.assert_allclose(gradient, 0, atol=1e-7)
    for rows in views:
        paper = cmfh.update_projection(rows, latent, mu, gamma, "paper")
        gradient = -mu * rows.T @ (latent - rows @ paper) + gamma * paper
        np.testing.assert_allclose(gradient, 0, atol=1e-6)
        reference = cmfh.update_projection(rows, latent, mu, gamma, "reference")
        np.testing.assert_allclose(reference, paper / mu**2, rtol=1e-8)


def test_objective_never_increases_with_exact_steps() -> None:
    image, text, _ = paired_views()
    model = CMFH(n_bits=8, n_iter=15, projection_step="paper").fit(image, text)
    history = np.asarray(model.report_["objective"])
    assert len(history) == 15
    assert np.all(np.diff(history) <= 1e-9 * history[:-1]), history


def test_labels_are_ignored_and_sparse_input_matches_dense() -> None:
    image, text, labels = paired_views()
    plain = CMFH(n_bits=16, seed=3).fit(image, text)
    labelled = CMFH(n_bits=16, seed=3).fit(sp.csr_matrix(image), text, labels)
    np.testing.assert_array_equal(plain.encode_image(image), labelled.encode_image(image))
    np.testing.assert_array_equal(plain.encode_text(text), labelled.encode_text(text))
    assert CMFH.tags.supervised is False


def test_save_load_round_trip(tmp_path) -> None:
    image, text, _ = paired_views()
    model = CMFH(n_bits=24, seed=2).fit(image, text)
    path = model.save(tmp_path / "cmfh.h5")
    loaded = load_model(path)
    assert isinstance(loaded, CMFH) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))


def test_bad_input_is_refused_before_work() -> None:
    image, text, _ = paired_views()
    with pytest.raises(InputError, match=r"'text': expected 120 rows"):
        CMFH(n_bits=8).fit(image, text[:-1])
    for bits in (0, 5000):
        with pytest.raises(InputError, match="n_bits"):
            CMFH(n_bits=bits)
    with pytest.raises(InputError, match="mu"):
        CMFH(mu=-1.0)
    bad = image.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        CMFH(n_bits=8).fit(bad, text)
