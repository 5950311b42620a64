"""SCRATCH port (ddcmh-baselines): fidelity on Wikipedia, the paper's properties, files, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model
from ddcmh_core.evaluation.metrics import mean_average_precision
from ddcmh_core.testing import make_bow_data

scratch = pytest.importorskip("ddcmh_baselines.scratch")
SCRATCH = scratch.SCRATCH


def paired_corpus(n_samples=240, seed=0):
    """A sparse bag-of-words view and a dense view, both driven by the same labels."""
    text, labels = make_bow_data(n_samples=n_samples, n_features=60, n_classes=5, seed=seed)
    rng = np.random.default_rng(seed + 1)
    image = labels @ rng.standard_normal((5, 24)) + 0.5 * rng.standard_normal((n_samples, 24))
    return image, text, labels


@pytest.fixture(scope="module")
def corpus():
    return paired_corpus()


@pytest.fixture(scope="module")
def fitted(corpus):
    image, text, labels = corpus
    return SCRATCH(n_bits=16, n_anchors=100, n_iter=15, seed=3).fit(image, text, labels)


# ----------------------------------------------------------------------------- fidelity
def test_wikipedia_map_reaches_the_authors_code_at_32_bits():
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference

    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = SCRATCH(n_bits=32, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, score in scores.items():
        floor = reference.value("scratch", 32, task) - 0.03
        assert float(score) >= floor, (task, float(score), floor)


# ----------------------------------------------------------------------------- the paper's properties
def test_objective_never_increases(fitted):
    objective = np.asarray(fitted.report_["objective"])
    assert objective.shape == (15,)
    assert np.all(np.diff(objective) <= 1e-9 * objective[0]), objective
    assert objective[-1] < objective[0]
    assert len(fitted.report_["reference_objective"]) == 15


def test_latent_update_minimises_its_subproblem(corpus):
    labels = corpus[2]
    method = SCRATCH(n_bits=8, kernel="none", gamma=2.0, alpha=3.0, mu=4.0, seed=0)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((24, 50))
    Y = rng.standard_normal((10, 50))
    L = labels[:50].T.astype(float)
    R = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    blocks = {"R": R, "B": np.sign(rng.standard_normal((8, 50)))}
    for name, rows in (("Ux", 24), ("Uy", 10), ("G", 5)):
        blocks[name] = rng.standard_normal((rows, 8))
    blocks["Wx"], blocks["Wy"] = rng.standard_normal((8, 24)), rng.standard_normal((8, 10))
    blocks["V"] = method.update_latent(blocks, X, Y, L)

    def total(candidate):
        return sum(method.objective_terms({**blocks, "V": candidate}, X, Y, L))

    best = total(blocks["V"])
    for _ in range(5):
        assert total(blocks["V"] + 1e-3 * rng.standard_normal(blocks["V"].shape)) > best


def test_factor_updates_are_stationary_points_of_the_objective():
    method = SCRATCH(n_bits=8, kernel="none", gamma=2.0, alpha=3.0, mu=4.0, lambda_image=0.3)
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((24, 50)), rng.standard_normal((10, 50))
    L = (rng.random((5, 50)) < 0.3).astype(float)
    V = rng.standard_normal((8, 50))
    rotation = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    blocks = {"V": V, "B": np.sign(rng.standard_normal((8, 50))), "R": rotation}
    blocks.update(method.update_factors(V, X, Y, L, method.hash_operators(X, Y)))

    def total(changes):
        return sum(method.objective_terms({**blocks, **changes}, X, Y, L))

    base = total({})
    for name in ("Ux", "Uy", "G", "Wx", "Wy"):
        step = 1e-4 * rng.standard_normal(blocks[name].shape)
        up, down = total({name: blocks[name] + step}), total({name: blocks[name] - step})
        curvature = up + down - 2.0 * base
        assert curvature > 0, name
        assert abs(up - down) < 1e-2 * curvature, name  # no first-order term: the ridge minimiser


def test_rotation_is_the_orthogonal_procrustes_solution():
    rng = np.random.default_rng(1)
    codes, latent = np.sign(rng.standard_normal((6, 40))), rng.standard_normal((6, 40))
    rotation = scratch.procrustes(codes, latent)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(6), atol=1e-10)
    best = np.sum((codes - rotation @ latent) ** 2)
    for _ in range(5):
        other = np.linalg.qr(rng.standard_normal((6, 6)))[0]
        assert np.sum((codes - other @ latent) ** 2) >= best


def test_codes_are_informative_and_seeded(corpus, fitted):
    image, text, labels = corpus
    again = SCRATCH(n_bits=16, n_anchors=100, n_iter=15, seed=3).fit(image, text, labels)
    np.testing.assert_array_equal(fitted.encode_image(image), again.encode_image(image))
    score = mean_average_precision(fitted.encode_image(image), fitted.encode_text(text), labels, labels)
    assert float(score) > 0.6


def test_sparse_and_dense_input_give_the_same_codes(corpus, fitted):
    image, text, labels = corpus
    dense_model = SCRATCH(n_bits=16, n_anchors=100, n_iter=15, seed=3).fit(
        sp.csr_matrix(image), text.toarray(), labels
    )
    np.testing.assert_array_equal(dense_model.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip_gives_identical_codes(corpus, fitted, tmp_path):
    image, text, _ = corpus
    loaded = load_model(fitted.save(tmp_path / "scratch.h5"))
    assert isinstance(loaded, SCRATCH)
    np.testing.assert_array_equal(loaded.encode_image(image), fitted.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- input checks
@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("work started before the input checks")

    monkeypatch.setattr(SCRATCH, "optimise", fail)


def test_missing_labels_are_refused(corpus, no_work):
    image, text, _ = corpus
    with pytest.raises(InputError, match="labels"):
        SCRATCH(n_bits=8, n_anchors=50).fit(image, text)


def test_unpaired_rows_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"text.*expected 240 rows"):
        SCRATCH(n_bits=8, n_anchors=50).fit(image, text[:200], labels)


@pytest.mark.parametrize("bits", [0, 5000])
def test_code_length_out_of_range_is_refused(bits):
    with pytest.raises(InputError, match="n_bits"):
        SCRATCH(n_bits=bits)


def test_more_anchors_than_training_pairs_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"n_anchors: 500 .* only 240"):
        SCRATCH(n_bits=8).fit(image, text, labels)
