"""SCM-seq port (ddcmh_baselines.scm): fidelity on Wikipedia, the paper's closed forms, files, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg as sla
from conftest import shared_data

from ddcmh_core import load_model
from ddcmh_core.errors import InputError

scm = pytest.importorskip("ddcmh_baselines.scm")
SCMSeq = scm.SCMSeq


def synthetic(n: int = 150, n_classes: int = 4, seed: int = 0):
    """Image (20-d) and text (6-d) views that both carry the class; some items have two labels."""
    rng = np.random.default_rng(seed)
    labels = np.eye(n_classes)[rng.integers(0, n_classes, size=n)]
    labels[: n // 5, 0] = 1
    image = labels @ rng.standard_normal((n_classes, 20)) + 0.5 * rng.standard_normal((n, 20))
    text = labels @ rng.standard_normal((n_classes, 6)) + 0.5 * rng.standard_normal((n, 6))
    return image, text, labels


def test_wikipedia_32_bits_reaches_the_reference():
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference

    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = SCMSeq(n_bits=32, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    for task, score in scores.items():
        reference = wikipedia_reference().value("scm-seq", 32, task)
        assert float(score) >= reference - 0.03, f"{task}: {float(score):.3f} against reference {reference}"


def test_semantic_correlation_never_forms_the_n_by_n_similarity_yet_equals_it():
    image, text, labels = synthetic()
    unit = labels / np.linalg.norm(labels, axis=1, keepdims=True)
    similarity = 2.0 * unit @ unit.T - 1.0  # the paper's S: cosine label similarity in [-1, 1]
    explicit = 16.0 * text.T @ similarity @ image
    np.testing.assert_allclose(scm.semantic_cross_covariance(text, image, labels, 16.0), explicit, rtol=1e-10)


def test_each_bit_is_the_top_solution_of_its_generalised_eigenproblem():
    image, text, labels = synthetic()
    x, y = text - text.mean(axis=0), image - image.mean(axis=0)
    residual = scm.semantic_cross_covariance(x, y, labels, 8.0)
    cxx, cyy = x.T @ x + 1e-6 * np.eye(6), y.T @ y + 1e-6 * np.eye(20)
    for _ in range(3):  # the first three bits, deflating as the paper does
        wx, wy, value = scm.cca_directions(cxx, cyy, residual, 1)
        left = residual @ np.linalg.solve(cyy, residual.T)
        np.testing.assert_allclose(left @ wx[:, 0], value[0] * cxx @ wx[:, 0], rtol=1e-6, atol=1e-8)
        assert value[0] == pytest.approx(sla.eigh((left + left.T) / 2, cxx, eigvals_only=True).max())
        np.testing.assert_allclose(wy[:, 0], np.linalg.solve(cyy, residual.T @ wx[:, 0]))
        residual = residual - np.outer(x.T @ np.sign(x @ wx[:, 0]), y.T @ np.sign(y @ wy[:, 0]))
    model = SCMSeq(n_bits=8).fit(image, text, labels)
    kept = model.report_["eigenvalues"][: model.report_["stopped_at_bit"] or 8]
    assert all(later <= earlier for earlier, later in itertools.pairwise(kept))


def per_bit_reference(x, y, residual, n_bits, regularisation=1e-6):
    """The sequential loop as first ported: a d_x-sized generalised eigenproblem per bit."""
    cxx = x.T @ x + regularisation * np.eye(x.shape[1])
    cyy = y.T @ y + regularisation * np.eye(y.shape[1])
    columns_x, columns_y, values = [], [], []
    for _ in range(n_bits):
        solved = np.linalg.solve(cyy, residual.T)
        left = residual @ solved
        value, vector = sla.eigh((left + left.T) / 2, cxx, subset_by_index=[len(left) - 1, len(left) - 1])
        values.append(float(value[0]))
        if not 0 < values[-1] <= (values[-2] if len(values) > 1 else np.inf):
            break
        wx, wy = vector[:, 0], solved @ vector[:, 0]
        columns_x.append(wx)
        columns_y.append(wy)
        residual = residual - np.outer(x.T @ np.sign(x @ wx), y.T @ np.sign(y @ wy))
    return np.column_stack(columns_x), np.column_stack(columns_y), values


@pytest.mark.parametrize(("width_x", "width_y"), [(30, 12), (12, 30)])
def test_sequential_solver_matches_the_per_bit_generalised_eigenproblem(width_x, width_y):
    # Both Gram sides (G'G when d_x > d_y, G G' otherwise); label signal weak enough that the
    # sequence stops on a rise at bit 7 of 8, so seven rank-one updates of G are exercised.
    rng = np.random.default_rng(0)
    labels = np.eye(5)[rng.integers(0, 5, size=200)]
    x = 0.3 * labels @ rng.standard_normal((5, width_x)) + rng.standard_normal((200, width_x))
    y = 0.3 * labels @ rng.standard_normal((5, width_y)) + rng.standard_normal((200, width_y))
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    residual = scm.semantic_cross_covariance(x, y, labels, 8.0)
    kept = residual.copy()
    want_x, want_y, want_values = per_bit_reference(x, y, residual, 8)
    got_x, got_y, got_values = scm.sequential_projections(x, y, residual, 8, 1e-6)
    np.testing.assert_array_equal(residual, kept)  # the caller's residual is left alone
    assert 4 <= got_x.shape[1] == want_x.shape[1] < 8  # the same stop bit, an early one
    np.testing.assert_allclose(got_values, want_values, rtol=1e-6)
    flips = np.sign(np.sum(got_x * want_x, axis=0))  # the eigensolver's sign, one per bit
    np.testing.assert_array_equal(np.sign(x @ got_x), np.sign(x @ want_x) * flips)
    np.testing.assert_array_equal(np.sign(y @ got_y), np.sign(y @ want_y) * flips)  # the same flip
    for got, want in ((got_x, want_x), (got_y, want_y)):
        np.testing.assert_allclose(got, want * flips, rtol=1e-6, atol=1e-9 * np.abs(want).max())
    largest = np.abs(got_x).argmax(axis=0)
    assert (got_x[largest, np.arange(got_x.shape[1])] > 0).all()  # the documented sign convention


def weakly_correlated(n: int = 200, seed: int = 0):
    """Labels that the text hardly carries and the image not at all: the sequence stops early."""
    rng = np.random.default_rng(seed)
    labels = np.eye(5)[rng.integers(0, 5, size=n)]
    text = 0.3 * labels @ rng.standard_normal((5, 4)) + rng.standard_normal((n, 4))
    return rng.standard_normal((n, 12)), text, labels


def test_bits_after_an_early_stop_are_constant_or_trailing_cca():
    image, text, labels = weakly_correlated()
    model = SCMSeq(n_bits=8).fit(image, text, labels)
    stop = model.report_["stopped_at_bit"]
    assert stop is not None and 0 < stop < 8
    assert model.report_["eigenvalues"][stop] > model.report_["eigenvalues"][stop - 1]  # the rise
    codes = model.encode_text(text)
    assert (codes[:, stop:] == 1).all() and not (codes[:, :stop] == 1).all()
    cca = SCMSeq(n_bits=4, stall_fallback="cca").fit(image, text, labels)
    stop = cca.report_["stopped_at_bit"]
    assert stop is not None and stop < 4
    x, y = text - text.mean(axis=0), image - image.mean(axis=0)
    cxx, cyy = x.T @ x + 1e-6 * np.eye(4), y.T @ y + 1e-6 * np.eye(12)
    expected, _, _ = scm.cca_directions(cxx, cyy, x.T @ y, 4)
    for column in range(stop, 4):  # bit j takes the (4 - j)-th CCA direction, as trainSCM_seq
        got = cca.hash_functions_["text"].projection[:, column]
        want = expected[:, 3 - column]
        assert abs(got @ want) == pytest.approx(np.linalg.norm(got) * np.linalg.norm(want))


def test_deterministic_and_seed_free():
    image, text, labels = synthetic()
    first = SCMSeq(n_bits=8, seed=0).fit(image, text, labels).encode_image(image)
    other = SCMSeq(n_bits=8, seed=5).fit(image, text, labels).encode_image(image)
    np.testing.assert_array_equal(first, other)


def test_save_load_round_trip_gives_identical_codes(tmp_path):
    image, text, labels = synthetic()
    model = SCMSeq(n_bits=12).fit(image, text, labels)
    loaded = load_model(model.save(tmp_path / "scm.h5"))
    assert isinstance(loaded, SCMSeq) and loaded.params == model.params
    for view, rows in (("image", image), ("text", text)):
        np.testing.assert_array_equal(loaded.encode(view, rows), model.encode(view, rows))


def test_bad_input_is_refused_before_any_work(monkeypatch):
    image, text, labels = synthetic()
    monkeypatch.setattr(SCMSeq, "_fit", lambda *a, **k: pytest.fail("_fit ran on bad input"))
    with pytest.raises(InputError, match="labels"):
        SCMSeq(n_bits=8).fit(image, text)
    with pytest.raises(InputError, match="rows"):
        SCMSeq(n_bits=8).fit(image[:-2], text, labels)
    with pytest.raises(InputError, match="n_bits"):
        SCMSeq(n_bits=5000)
    with pytest.raises(InputError, match=r"n_bits.*text view has 6 features"):
        SCMSeq(n_bits=8, stall_fallback="cca").fit(image, text, labels)
    with pytest.raises(InputError, match="stall_fallback"):
        SCMSeq(stall_fallback="pca")
