"""BATCH port (ddcmh-baselines): fidelity on Wikipedia, the paper's properties, files, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model
from ddcmh_core.evaluation.metrics import mean_average_precision
from ddcmh_core.testing import make_bow_data

batch = pytest.importorskip("ddcmh_baselines.batch")
BATCH = batch.BATCH
SMALL = {"n_image_anchors": 100, "n_text_anchors": 120}


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
    return BATCH(n_bits=16, n_iter=10, seed=3, **SMALL).fit(image, text, labels)


def feasible(V, atol=1e-8):
    n, k = V.shape
    np.testing.assert_allclose(V.sum(axis=0), np.zeros(k), atol=atol * n)
    np.testing.assert_allclose(V.T @ V, n * np.eye(k), atol=atol * n)


# ----------------------------------------------------------------------------- fidelity
def test_wikipedia_map_reaches_the_authors_code_at_32_bits():
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference

    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = BATCH(n_bits=32, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, score in scores.items():
        floor = reference.value("batch", 32, task) - 0.03
        assert float(score) >= floor, (task, float(score), floor)


# ----------------------------------------------------------------------------- the paper's properties
def test_objective_never_increases(fitted):
    objective = np.asarray(fitted.report_["objective"])
    assert objective.shape == (10,)
    assert np.all(np.diff(objective) <= 1e-9 * abs(objective[0])), objective
    assert objective[-1] < objective[0]


def test_embedding_is_balanced_and_decorrelated_and_codes_binary(corpus):
    image, text, labels = corpus
    method = BATCH(n_bits=12, kernel="none", n_iter=4)
    codes, embedding, _ = method.learn_codes(
        image, text.toarray(), labels.astype(float), np.random.default_rng(0)
    )
    feasible(embedding)
    assert set(np.unique(codes)) == {-1.0, 1.0}


@pytest.fixture
def problem(corpus):
    """A small BATCH problem with a random code matrix and a random feasible embedding."""
    image, text, labels = corpus
    method = BATCH(n_bits=10, kernel="none", omega=2.0, eta_image=0.3, eta_text=0.2, eta_label=0.7)
    rng = np.random.default_rng(7)
    B = batch.signs(rng.standard_normal((len(labels), 10)))
    V = batch.orthogonal_balanced(rng.standard_normal((len(labels), 10)), rng)
    data = (image, text.toarray(), labels.astype(float))
    return method, data, B, V, rng


def test_factor_updates_are_stationary_points_of_the_objective(problem):
    method, data, B, V, rng = problem
    factors = method.update_factors(V, *data)
    base = method.objective(B, V, factors, *data)
    for name, factor in factors.items():
        step = 1e-5 * rng.standard_normal(factor.shape)
        up = method.objective(B, V, {**factors, name: factor + step}, *data)
        down = method.objective(B, V, {**factors, name: factor - step}, *data)
        curvature = up + down - 2.0 * base
        assert curvature > 0, name
        assert abs(up - down) < 1e-2 * curvature, name  # no first-order term: the ridge minimiser


def test_embedding_step_solves_its_subproblem(problem):
    method, data, B, V, rng = problem
    factors = method.update_factors(V, *data)
    Z = method.embedding_target(B, factors, *data)
    # On the constraint set the objective is const - 2 tr(V'Z) ...
    shifted = [
        method.objective(B, other, factors, *data) + 2.0 * np.trace(other.T @ Z)
        for other in [V] + [batch.orthogonal_balanced(rng.standard_normal(V.shape), rng) for _ in range(5)]
    ]
    np.testing.assert_allclose(shifted, shifted[0], rtol=1e-9)
    # ... so the maximiser of the trace is the minimiser of the objective.
    best = batch.orthogonal_balanced(Z, rng)
    feasible(best)
    assert method.objective(B, best, factors, *data) <= min(
        method.objective(B, batch.orthogonal_balanced(rng.standard_normal(V.shape), rng), factors, *data)
        for _ in range(10)
    )


def test_code_step_solves_its_subproblem(problem):
    method, data, B, V, rng = problem
    factors = method.update_factors(V, *data)
    target = method.code_target(V, batch.normalize_rows(data[2]))
    shifted = [
        method.objective(codes, V, factors, *data) + 2.0 * np.sum(codes * target)
        for codes in [B] + [batch.signs(rng.standard_normal(B.shape)) for _ in range(5)]
    ]
    np.testing.assert_allclose(shifted, shifted[0], rtol=1e-9)  # linear in B: sign(target) is optimal
    best = method.objective(batch.signs(target), V, factors, *data)
    flips = rng.random((20, *B.shape)) < 0.05
    for flip in flips:
        assert method.objective(np.where(flip, -1, 1) * batch.signs(target), V, factors, *data) > best


def test_embedding_step_maximises_the_trace_over_the_constraint_set():
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((80, 6))
    V = batch.orthogonal_balanced(Z, rng)
    feasible(V)
    best = np.trace(V.T @ Z)
    for _ in range(20):
        other = batch.orthogonal_balanced(rng.standard_normal((80, 6)), rng)
        assert np.trace(other.T @ Z) <= best + 1e-9


def test_embedding_step_completes_a_rank_deficient_problem():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 7)) + 5.0  # rank 3, plus a constant
    V = batch.orthogonal_balanced(Z, rng)
    feasible(V)
    other = batch.orthogonal_balanced(rng.standard_normal((60, 7)), rng)
    assert np.trace(other.T @ Z) <= np.trace(V.T @ Z) + 1e-9


def test_codes_are_informative_and_seeded(corpus, fitted):
    image, text, labels = corpus
    again = BATCH(n_bits=16, n_iter=10, seed=3, **SMALL).fit(image, text, labels)
    np.testing.assert_array_equal(fitted.encode_text(text), again.encode_text(text))
    score = mean_average_precision(fitted.encode_image(image), fitted.encode_text(text), labels, labels)
    assert float(score) > 0.6


def test_sparse_and_dense_input_give_the_same_codes(corpus, fitted):
    image, text, labels = corpus
    other = BATCH(n_bits=16, n_iter=10, seed=3, **SMALL).fit(sp.csr_matrix(image), text.toarray(), labels)
    np.testing.assert_array_equal(other.encode_image(image), fitted.encode_image(image))


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip_gives_identical_codes(corpus, fitted, tmp_path):
    image, text, _ = corpus
    loaded = load_model(fitted.save(tmp_path / "batch.h5"))
    assert isinstance(loaded, BATCH)
    np.testing.assert_array_equal(loaded.encode_image(image), fitted.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- input checks
@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("work started before the input checks")

    monkeypatch.setattr(BATCH, "learn_codes", fail)


def test_missing_labels_are_refused(corpus, no_work):
    image, text, _ = corpus
    with pytest.raises(InputError, match="labels"):
        BATCH(n_bits=8, **SMALL).fit(image, text)


def test_unpaired_rows_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"text.*expected 240 rows"):
        BATCH(n_bits=8, **SMALL).fit(image, text[:200], labels)


@pytest.mark.parametrize("bits", [0, 5000])
def test_code_length_out_of_range_is_refused(bits):
    with pytest.raises(InputError, match="n_bits"):
        BATCH(n_bits=bits)


def test_more_bits_than_training_pairs_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"n_bits: .* got n_bits=64 with 40 pairs"):
        BATCH(n_bits=64, kernel="none").fit(image[:40], text[:40], labels[:40])


def test_more_anchors_than_training_pairs_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"n_text_anchors: 1000 .* only 240") as error:
        BATCH(n_bits=8, n_image_anchors=100).fit(image, text, labels)
    assert "n_image_anchors" not in str(error.value)
