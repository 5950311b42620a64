"""DLFH port (ddcmh-baselines): fidelity on Wikipedia, the paper's properties, files, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model
from ddcmh_core.evaluation.metrics import mean_average_precision
from ddcmh_core.testing import make_bow_data

dlfh = pytest.importorskip("ddcmh_baselines.dlfh")
DLFH = dlfh.DLFH


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
    return DLFH(n_bits=16, seed=3).fit(image, text, labels)


def random_block(seed, n=40, m=8, bits=8):
    """Codes, the other view's sampled codes and a label-sharing block, as one update sees them."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 4)) < 0.35).astype(float)
    chosen = rng.choice(n, size=m, replace=False)
    similarity = (labels @ labels[chosen].T > 0).astype(float)
    codes = np.where(rng.random((n, bits)) < 0.5, -1.0, 1.0)
    partners = np.where(rng.random((m, bits)) < 0.5, -1.0, 1.0)
    return codes, partners, similarity


# ----------------------------------------------------------------------------- fidelity
def test_wikipedia_map_reaches_the_authors_code_at_64_bits():
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference

    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = DLFH(n_bits=64, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, score in scores.items():
        floor = reference.value("dlfh", 64, task) - 0.03
        assert float(score) >= floor, (task, float(score), floor)


# ----------------------------------------------------------------------------- the paper's properties
@pytest.mark.parametrize("seed", range(5))
def test_every_column_update_never_lowers_the_log_likelihood(seed):
    codes, partners, similarity = random_block(seed)
    scale = 8.0 / codes.shape[1]
    history = [dlfh.log_likelihood(similarity, scale * codes @ partners.T)]
    updated, before, after = dlfh.update_codes(codes, partners, similarity, scale)
    assert before == pytest.approx(history[0])
    assert after > before
    # the iterates: column j is updated with columns < j already new, so they are these codes
    for j in range(1, codes.shape[1] + 1):
        partial = np.concatenate([updated[:, :j], codes[:, j:]], axis=1)
        history.append(dlfh.log_likelihood(similarity, scale * partial @ partners.T))
    assert np.all(np.diff(history) >= -1e-9), history


def test_column_update_maximises_the_lower_bound():
    codes, partners, similarity = random_block(7, n=12, m=6, bits=3)
    scale = 8.0 / 3
    theta = scale * codes @ partners.T
    gradient = scale * (similarity - dlfh.sigmoid(theta)) @ partners[:, 0]
    curvature = len(partners) * scale**2 / 8.0  # 1/4 bound on the logistic curvature, halved

    def bound(column):
        change = column - codes[:, 0]
        return gradient @ change - curvature * change @ change

    updated, _, _ = dlfh.update_codes(codes, partners, similarity, scale)
    best = bound(updated[:, 0])
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert bound(np.where(rng.random(12) < 0.5, -1.0, 1.0)) <= best + 1e-12


def test_incremental_update_equals_the_reference_recomputation():
    codes, partners, similarity = random_block(3, n=50, m=10, bits=10)
    scale, m, bits = 0.8, 10, 10
    expected = codes.copy()
    for k in range(bits):  # DLFH.m's updateColumnU, transcribed literally
        activation = 1.0 / (1.0 + np.exp(-scale * expected @ partners.T))
        gradient = scale * ((similarity - activation) * partners[:, k]).sum(axis=1)
        push = gradient + m * scale**2 / 4 * expected[:, k]
        expected[:, k] = np.where(push < 0, -1.0, 1.0)
    updated, _, _ = dlfh.update_codes(codes, partners, similarity, scale)
    np.testing.assert_array_equal(updated, expected)


def test_fit_records_non_decreasing_steps(fitted):
    for step in ("image_step", "text_step"):
        record = np.asarray(fitted.report_[step])
        assert record.shape == (30, 2)
        assert np.all(record[:, 1] >= record[:, 0] - 1e-9)
    assert len(fitted.report_["sampled"][0]) == 16


def test_bits_are_strictly_positive_projections(fitted):
    image = np.zeros((2, 24))  # X W = 0 exactly: DLFH_algo.m's "> 0" gives bit 0
    np.testing.assert_array_equal(fitted.encode_image(image), 0)
    function = fitted.hash_functions_["image"]
    rows = np.random.default_rng(0).standard_normal((30, 24))
    expected = (rows @ function.projection > 0).astype(np.uint8)
    np.testing.assert_array_equal(fitted.encode_image(rows), expected)


def test_codes_are_informative_and_seeded(corpus, fitted):
    image, text, labels = corpus
    again = DLFH(n_bits=16, seed=3).fit(image, text, labels)
    np.testing.assert_array_equal(fitted.encode_image(image), again.encode_image(image))
    score = mean_average_precision(fitted.encode_image(image), fitted.encode_text(text), labels, labels)
    assert float(score) > 0.6


def test_sparse_and_dense_input_give_the_same_codes(corpus, fitted):
    image, text, labels = corpus
    dense_model = DLFH(n_bits=16, seed=3).fit(sp.csr_matrix(image), text.toarray(), labels)
    np.testing.assert_array_equal(dense_model.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip_gives_identical_codes(corpus, fitted, tmp_path):
    image, text, _ = corpus
    loaded = load_model(fitted.save(tmp_path / "dlfh.h5"))
    assert isinstance(loaded, DLFH)
    np.testing.assert_array_equal(loaded.encode_image(image), fitted.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), fitted.encode_text(text))


# ----------------------------------------------------------------------------- input checks
@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("work started before the input checks")

    monkeypatch.setattr(DLFH, "learn_codes", fail)


def test_missing_labels_are_refused(corpus, no_work):
    image, text, _ = corpus
    with pytest.raises(InputError, match="labels"):
        DLFH(n_bits=8).fit(image, text)


def test_unpaired_rows_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"text.*expected 240 rows"):
        DLFH(n_bits=8).fit(image, text[:200], labels)


@pytest.mark.parametrize("bits", [0, 5000])
def test_code_length_out_of_range_is_refused(bits):
    with pytest.raises(InputError, match="n_bits"):
        DLFH(n_bits=bits)


def test_more_sampled_columns_than_training_pairs_are_refused(corpus, no_work):
    image, text, labels = corpus
    with pytest.raises(InputError, match=r"n_bits: 256 .* only 240"):
        DLFH(n_bits=256).fit(image, text, labels)
    with pytest.raises(InputError, match=r"n_samples: 300 .* only 240"):
        DLFH(n_bits=8, n_samples=300).fit(image, text, labels)
