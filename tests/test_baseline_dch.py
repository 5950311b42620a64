"""DCH port (ddcmh_baselines.dch): fidelity on Wikipedia, the closed-form steps, files, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from ddcmh_core import load_model
from ddcmh_core.errors import InputError

dch = pytest.importorskip("ddcmh_baselines.dch")
DCH = dch.DCH


def synthetic(n: int = 120, n_classes: int = 4, seed: int = 0):
    """Two views that both carry the class, one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, n_classes, size=n)
    labels = np.eye(n_classes)[classes]
    image = labels @ rng.standard_normal((n_classes, 20)) + 0.5 * rng.standard_normal((n, 20))
    text = labels @ rng.standard_normal((n_classes, 8)) + 0.5 * rng.standard_normal((n, 8))
    return image, text, labels


def test_wikipedia_32_bits_reaches_the_reference():
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference


    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = DCH(n_bits=32, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    for task, score in scores.items():
        reference = wikipedia_reference().value("dch", 32, task)
        assert float(score) >= reference - 0.03, f"{task}: {float(score):.3f} against reference {reference}"


def test_g_step_and_relaxed_b_step_solve_their_subproblems():
    rng = np.random.default_rng(1)
    labels = np.eye(3)[rng.integers(0, 3, size=50)]
    codes = np.sign(rng.standard_normal((50, 8)))
    classifier = dch.ridge_solution(codes, labels, 1.0)
    # G-step: the gradient of ||Y - B G||^2 + ||G||^2 vanishes, and no perturbation does better
    gradient = codes.T @ (codes @ classifier - labels) + 1.0 * classifier
    np.testing.assert_allclose(gradient, 0.0, atol=1e-9)
    best = dch.classification_loss(codes, labels, classifier, 1.0)
    for _ in range(20):
        moved = classifier + 1e-3 * rng.standard_normal(classifier.shape)
        assert dch.classification_loss(codes, labels, moved, 1.0) > best
    # B-step: before the sign, the rows minimise ||Y - B G||^2 + 0.01 ||B||^2
    relaxed = np.linalg.solve(classifier @ classifier.T + 0.01 * np.eye(8), classifier @ labels.T).T
    gradient = (relaxed @ classifier - labels) @ classifier.T + 0.01 * relaxed
    np.testing.assert_allclose(gradient, 0.0, atol=1e-9)
    np.testing.assert_array_equal(dch.code_step(labels, classifier, 0.01), np.sign(relaxed))


def test_codes_are_label_linear_and_objective_is_recorded():
    rng = np.random.default_rng(2)
    labels = np.eye(4)[rng.integers(0, 4, size=80)]
    classifier = rng.standard_normal((16, 4))
    codes = dch.code_step(labels, classifier, 0.01)
    for row in range(80):  # items with the same labels get the same code (B depends on Y only)
        same = (labels == labels[row]).all(axis=1)
        assert (codes[same] == codes[row]).all()
    image, text, labels = synthetic()
    model = DCH(n_bits=16, seed=0, n_iterations=4).fit(image, text, labels)
    objective = model.report_["objective"]
    assert len(objective) == 4 and all(np.isfinite(objective))
    # the codes fit the labels far better than the random initial codes do
    start = np.sign(np.random.default_rng(0).standard_normal((len(labels), 16)))
    initial = dch.classification_loss(start, labels, dch.ridge_solution(start, labels, 1.0), 1.0)
    assert objective[-1] < 0.5 * initial


def test_same_seed_gives_the_same_codes():
    image, text, labels = synthetic()
    first = DCH(n_bits=16, seed=3).fit(image, text, labels).encode_image(image)
    again = DCH(n_bits=16, seed=3).fit(image, text, labels).encode_image(image)
    np.testing.assert_array_equal(first, again)


def test_save_load_round_trip_gives_identical_codes(tmp_path):
    image, text, labels = synthetic()
    model = DCH(n_bits=24, seed=1).fit(image, text, labels)
    path = model.save(tmp_path / "dch.h5")
    loaded = load_model(path)
    assert isinstance(loaded, DCH) and loaded.params == model.params
    for view, rows in (("image", image), ("text", text)):
        np.testing.assert_array_equal(loaded.encode(view, rows), model.encode(view, rows))


def test_sparse_input_gives_the_same_codes():
    import scipy.sparse as sp

    image, text, labels = synthetic()
    dense = DCH(n_bits=16, seed=0).fit(image, text, labels)
    sparse = DCH(n_bits=16, seed=0).fit(image, sp.csr_matrix(text), labels)
    np.testing.assert_array_equal(dense.encode_text(text), sparse.encode_text(sp.csr_matrix(text)))


def test_bad_input_is_refused_before_any_work(monkeypatch):
    image, text, labels = synthetic()
    monkeypatch.setattr(DCH, "_fit", lambda *a, **k: pytest.fail("_fit ran on bad input"))
    with pytest.raises(InputError, match="labels"):
        DCH(n_bits=16).fit(image, text)
    with pytest.raises(InputError, match="rows"):
        DCH(n_bits=16).fit(image, text[:-1], labels)
    with pytest.raises(InputError, match="labels"):
        DCH(n_bits=16).fit(image, text, labels[:-1])
    with pytest.raises(InputError, match="n_bits"):
        DCH(n_bits=0)
    with pytest.raises(InputError, match="n_iterations"):
        DCH(n_iterations=0)
