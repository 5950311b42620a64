"""CVH port (ddcmh_baselines.cvh): fidelity on Wikipedia, the eigenproblem, files, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from ddcmh_core import load_model
from ddcmh_core.errors import InputError

cvh = pytest.importorskip("ddcmh_baselines.cvh")
CVH = cvh.CVH


def synthetic(n: int = 150, seed: int = 0):
    """Positive image (12-d) and text (5-d) features sharing a latent class, one-hot labels."""
    rng = np.random.default_rng(seed)
    labels = np.eye(4)[rng.integers(0, 4, size=n)]
    image = np.abs(labels @ rng.standard_normal((4, 12)) + 0.5 * rng.standard_normal((n, 12)))
    text = np.abs(labels @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((n, 5)))
    return image, text, labels


def test_wikipedia_reaches_the_reference_and_declines_to_the_floor_like_it():
    from ddcmh_baselines.reference import wikipedia_reference

    from ddcmh_core.data import load_dataset
    from ddcmh_core.evaluation.metrics import mean_average_precision

    dataset = load_dataset("wikipedia", data_dir=shared_data("wikipedia"))
    train, query = dataset.split.train, dataset.split.query
    image, text, labels = np.asarray(dataset.image.take()), np.asarray(dataset.text.take()), dataset.labels
    model = CVH(n_bits=16).fit(image[train], text[train])
    assert model.report_["rank"] == 10  # the 10-d text bounds the cross covariance's rank
    scores = {
        "image->text": mean_average_precision(
            model.encode_image(image[query]), model.encode_text(text[train]), labels[query], labels[train]
        ),
        "text->image": mean_average_precision(
            model.encode_text(text[query]), model.encode_image(image[train]), labels[query], labels[train]
        ),
    }
    for task, score in scores.items():
        reference = wikipedia_reference().value("cvh", 16, task)
        assert float(score) >= reference - 0.03, f"{task}: {float(score):.3f} against reference {reference}"
    # at 128 bits every eigenvector is taken, negative (zero up to rounding) eigenvalues among them:
    # the reference's text codes are then all ones under Octave, and so are the port's
    full = CVH(n_bits=128).fit(image[train], text[train])
    assert min(full.report_["eigenvalues"]) <= 0
    assert (full.encode_text(text[query]) == 1).all()


def test_leading_directions_solve_the_generalised_eigenproblem_with_uncorrelated_bits():
    image, text, _ = synthetic()
    model = CVH(n_bits=5).fit(image, text)
    left, cxx, cyy, cxy = cvh.cvh_eigenproblem(image, text, 1e-4)
    wx = model.hash_functions_["image"].projection
    values = np.asarray(model.report_["eigenvalues"])
    assert model.report_["rank"] == 5 and (np.diff(values) <= 0).all()
    np.testing.assert_allclose(left @ wx, cxx @ wx * values, rtol=1e-6, atol=1e-8 * values[0])
    gram = wx.T @ cxx @ wx  # the relaxed CVH constraint: the bits' projections are uncorrelated
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-8 * np.abs(gram).max())
    wy = model.hash_functions_["text"].projection
    np.testing.assert_allclose(wy, np.linalg.solve(cyy, cxy.T @ wx), rtol=1e-10)


def test_labels_are_ignored_and_there_is_no_randomness():
    image, text, labels = synthetic()
    plain = CVH(n_bits=8, seed=0).fit(image, text)
    other = CVH(n_bits=8, seed=7).fit(image, text, labels)
    np.testing.assert_array_equal(plain.encode_image(image), other.encode_image(image))
    np.testing.assert_array_equal(plain.encode_text(text), other.encode_text(text))


def test_save_load_round_trip_gives_identical_codes(tmp_path):
    image, text, _ = synthetic()
    model = CVH(n_bits=10).fit(image, text)
    loaded = load_model(model.save(tmp_path / "cvh.h5"))
    assert isinstance(loaded, CVH) and loaded.params == model.params
    for view, rows in (("image", image), ("text", text)):
        np.testing.assert_array_equal(loaded.encode(view, rows), model.encode(view, rows))


def test_sparse_input_gives_the_same_codes():
    import scipy.sparse as sp

    image, text, _ = synthetic()
    dense = CVH(n_bits=5).fit(image, text)
    sparse = CVH(n_bits=5).fit(image, sp.csr_matrix(text))
    np.testing.assert_array_equal(dense.encode_text(text), sparse.encode_text(sp.csr_matrix(text)))


def test_bad_input_is_refused_before_any_work(monkeypatch):
    image, text, _ = synthetic()
    monkeypatch.setattr(CVH, "_fit", lambda *a, **k: pytest.fail("_fit ran on bad input"))
    with pytest.raises(InputError, match="rows"):
        CVH(n_bits=8).fit(image, text[:-1])
    with pytest.raises(InputError, match=r"n_bits.*image view has 12 features"):
        CVH(n_bits=13).fit(image, text)
    with pytest.raises(InputError, match="n_bits"):
        CVH(n_bits=0)
    with pytest.raises(InputError, match="regularisation"):
        CVH(regularisation=-1.0)
