"""SePH port (ddcmh-baselines): fidelity on Wikipedia, the paper's properties, files, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model
from ddcmh_core.evaluation.metrics import mean_average_precision
from ddcmh_core.testing import make_bow_data

seph = pytest.importorskip("ddcmh_baselines.seph")
SePH = seph.SePH

SMALL = {"n_anchors": 60, "n_iter": 60}


def paired_corpus(n_samples=200, seed=0):
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
    return SePH(n_bits=16, seed=3, **SMALL).fit(image, text, labels)


# ----------------------------------------------------------------------------- fidelity
def test_wikipedia_map_reaches_the_authors_code_at_16_bits():
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference

    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = SePH(n_bits=16, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, score in scores.items():
        floor = reference.value("seph", 16, task) - 0.03
        assert float(score) >= floor, (task, float(score), floor)


# ----------------------------------------------------------------------------- the paper's properties
def test_affinity_is_a_distribution_of_label_cosines():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    affinity = seph.semantic_affinity(labels)
    assert affinity.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(affinity, affinity.T)
    assert np.all(np.diag(affinity) == seph.REALMIN)
    # cosine of [1,0,0] and [1,1,0] is 1/sqrt(2), the only pair sharing a label: both halves 0.5
    np.testing.assert_allclose(affinity[0, 1], 0.5)
    assert affinity[0, 2] == seph.REALMIN and affinity[3, 0] == seph.REALMIN


def test_student_kernel_is_one_over_one_plus_hamming_for_binary_codes():
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((12, 9)) < 0.5, -1.0, 1.0)
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    expected = 1.0 / (1.0 + hamming)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(seph.student_kernel(codes), expected)


def test_descent_gradient_is_the_gradient_of_the_objective():
    rng = np.random.default_rng(1)
    labels = np.eye(3)[rng.integers(0, 3, 15)]
    descent = seph.KLDescent(seph.semantic_affinity(labels), weight=0.05)
    codes = rng.standard_normal((15, 4))
    kernel = np.empty((15, 15))

    def objective(candidate):
        divergence, _ = descent.objective_and_gradient(candidate, kernel)
        return divergence + descent.weight * seph.quantisation_loss(candidate)

    _, gradient = descent.objective_and_gradient(codes, kernel)
    numeric = np.zeros_like(codes)
    for index in np.ndindex(*codes.shape):
        step = np.zeros_like(codes)
        step[index] = 1e-6
        numeric[index] = (objective(codes + step) - objective(codes - step)) / 2e-6
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_descent_lowers_the_objective_and_keeps_its_best_codes(fitted):
    objective = np.asarray(fitted.report_["objective"])
    assert objective.shape == (SMALL["n_iter"],)
    assert objective[-1] < 0.5 * objective[0]
    assert fitted.report_["kept_iteration"] == int(np.argmin(objective))


def test_logistic_regression_reaches_the_minimum_of_its_objective():
    rng = np.random.default_rng(2)
    rows, anchors = rng.standard_normal((80, 3)), rng.standard_normal((20, 3))
    features = np.exp(-((rows[:, None] - anchors[None]) ** 2).sum(-1) / 4.0)
    gram = np.exp(-((anchors[:, None] - anchors[None]) ** 2).sum(-1) / 4.0)
    targets = np.where(rows[:, :3] + 0.3 * rng.standard_normal((80, 3)) > 0, 1.0, -1.0)
    solver = seph.KernelLogistic(features, gram, 0.1)
    weights, report = solver.fit(targets, max_iter=50, tolerance=1e-9)
    assert report["max_gradient"] <= 1e-9 and all(0 < steps < 50 for steps in report["newton_steps"])

    def objective(candidate):
        return seph.logistic_costs(candidate, features @ candidate, gram @ candidate, targets, 0.1)

    best = objective(weights)
    for _ in range(5):
        assert np.all(objective(weights + 1e-3 * rng.standard_normal(weights.shape)) > best)
    # each bit is its own problem: solving one column alone gives the same weights
    alone, _ = solver.fit(targets[:, 1:2], max_iter=50, tolerance=1e-9)
    np.testing.assert_allclose(alone[:, 0], weights[:, 1], rtol=1e-6, atol=1e-8)


def test_codes_are_informative_and_seeded(corpus, fitted):
    image, text, labels = corpus
    again = SePH(n_bits=16, seed=3, **SMALL).fit(image, text, labels)
    np.testing.assert_array_equal(fitted.encode_image(image), again.encode_image(image))
    score = mean_average_precision(fitted.encode_image(image), fitted.encode_text(text), labels, labels)
    assert float(score) > 0.6


def test_random_anchors_are_centred_training_rows(corpus):
    image, text, labels = corpus
    model = SePH(n_bits=8, n_anchors=40, n_iter=20, anchor_sampling="random").fit(image, text, labels)
    feature_map = model.hash_functions_["image"].feature_map
    centred = image - image.mean(axis=0)
    distances = ((feature_map.anchors[:, None, :] - centred[None]) ** 2).sum(-1)
    assert feature_map.anchors.shape == (40, 24) and np.all(distances.min(axis=1) < 1e-20)
    assert feature_map.kernel_mean is None  # the demo's kernel features are not centred


def test_sparse_and_dense_input_give_the_same_codes(corpus, fitted):
    image, text, labels = corpus
    dense_model = SePH(n_bits=16, seed=3, **SMALL).fit(sp.csr_matrix(image), text.toarray(), labels)
    np.testing.assert_array_equal(dense_model.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip_gives_identical_codes(corpus, fitted, tmp_path):
    image, text, _ = corpus
    loaded = load_model(fitted.save(tmp_path / "seph.h5"))
    assert isinstance(loaded, SePH)
    np.testing.assert_array_equal(loaded.encode_image(image), fitted.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- input checks
@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("work started before the input checks")

    monkeypatch.setattr(SePH, "learn_codes", fail)


def test_missing_labels_are_refused(corpus, no_work):
    image, text, _ = corpus
    with pytest.raises(InputError, match="labels"):
        SePH(n_bits=8, n_anchors=50).fit(image, text)


def test_unpaired_rows_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"text.*expected 200 rows"):
        SePH(n_bits=8, n_anchors=50).fit(image, text[:150], labels)


@pytest.mark.parametrize("bits", [0, 5000])
def test_code_length_out_of_range_is_refused(bits):
    with pytest.raises(InputError, match="n_bits"):
        SePH(n_bits=bits)


def test_more_anchors_than_training_pairs_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"n_anchors: 500 .* only 200"):
        SePH(n_bits=8).fit(image, text, labels)
