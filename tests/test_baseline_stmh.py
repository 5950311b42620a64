"""STMH port: Wikipedia fidelity, the closed-form G1 step, the topic step, code balance, save/load."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model
from ddcmh_core.evaluation.metrics import mean_average_precision

stmh = pytest.importorskip("ddcmh_baselines.stmh")
STMH = stmh.STMH


def paired_views(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative two-view data sharing a 3-class structure, plus one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    image = rng.random((3, 16))[classes] + 0.2 * rng.random((n, 16))
    text = rng.dirichlet(np.ones(8), size=3)[classes] + 0.05 * rng.random((n, 8))
    return image, text, np.eye(3, dtype=np.uint8)[classes]


@pytest.mark.data
def test_wikipedia_map_close_to_reference() -> None:
    from ddcmh_baselines.reference import wikipedia_reference

    from ddcmh_core.data import load_dataset

    dataset = load_dataset("wikipedia", data_dir=shared_data("wikipedia"))
    train, query = dataset.split.train, dataset.split.query
    image, text, labels = np.asarray(dataset.image.take()), np.asarray(dataset.text.take()), dataset.labels
    model = STMH(n_bits=32, seed=0).fit(image[train], text[train])
    scores = {
        "image->text": mean_average_precision(
            model.encode_image(image[query]), model.encode_text(text[train]), labels[query], labels[train]
        ),
        "text->image": mean_average_precision(
            model.encode_text(text[query]), model.encode_image(image[train]), labels[query], labels[train]
        ),
    }
    reference = wikipedia_reference()
    for task, value in scores.items():
        expected = reference.value("stmh", 32, task)
        assert expected is not None
        assert float(value) >= expected - 0.03, f"{task}: {float(value):.3f} vs reference {expected:.3f}"
    # the reference's text->image sits near random codes; image->text must stay clearly above them
    assert float(scores["image->text"]) > reference.protocol["random_floor"] + 0.015


def test_image_concept_step_solves_every_row() -> None:
    """G1's rows zero the gradient of r d_i ||x_i - F1 g||^2 + lam ||g2_i - R'g||^2 + gamma ||g||^2."""
    rng = np.random.default_rng(0)
    n, d, k, r, lam, gamma = 20, 7, 5, 0.5, 0.5, 1e-4
    image, basis = rng.random((n, d)), rng.normal(size=(d, k))
    topics, correlation = rng.integers(0, 2, (n, k)).astype(float), rng.normal(size=(k, k))
    weights = rng.random(n) + 0.1
    left = r * weights[:, None] * (image @ basis) + lam * topics @ correlation.T
    ridge = lam * correlation @ correlation.T + gamma * np.eye(k)
    concepts = stmh.update_image_concepts(left, weights, r * basis.T @ basis, ridge)
    for i in range(n):
        g = concepts[i]
        gradient = (
            -r * weights[i] * basis.T @ (image[i] - basis @ g)
            - lam * correlation @ (topics[i] - correlation.T @ g)
        ) + gamma * g
        np.testing.assert_allclose(gradient, 0, atol=1e-9)


def test_topic_step_picks_the_cheapest_half_of_the_topics() -> None:
    rng = np.random.default_rng(1)
    costs = rng.normal(size=(12, 6))
    indicator = stmh.top_indicator(-costs, stmh.ones_per_code(6))
    assert np.all(indicator.sum(axis=1) == 3)
    for row, chosen in zip(costs, indicator, strict=True):
        best = min(itertools.combinations(range(6), 3), key=lambda subset: row[list(subset)].sum())
        assert set(np.flatnonzero(chosen)) == set(best)
    assert [stmh.ones_per_code(bits) for bits in (2, 3, 16, 17)] == [1, 2, 8, 9]
    tied = stmh.top_indicator(np.zeros((1, 4)), 2)
    assert tied.tolist() == [[1, 1, 0, 0]]  # ties go to the lower topic, as MATLAB's stable sort


def test_codes_set_half_of_their_bits_and_labels_are_ignored() -> None:
    image, text, labels = paired_views()
    model = STMH(n_bits=16, seed=0).fit(image, text)
    assert np.all(model.encode_text(text).sum(axis=1) == 8)
    assert np.all(model.encode_image(image).sum(axis=1) == 8)
    labelled = STMH(n_bits=16, seed=0).fit(sp.csr_matrix(image), text, labels)
    np.testing.assert_array_equal(model.encode_image(image), labelled.encode_image(image))
    np.testing.assert_array_equal(model.encode_text(text), labelled.encode_text(text))
    assert STMH.tags.supervised is False
    history = model.report_["objective"]
    assert 2 <= len(history) <= 10 and all(np.isfinite(history))


def test_save_load_round_trip(tmp_path) -> None:
    image, text, _ = paired_views()
    model = STMH(n_bits=24, seed=2).fit(image, text)
    loaded = load_model(model.save(tmp_path / "stmh.h5"))
    assert isinstance(loaded, STMH) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))
    assert isinstance(loaded.hash_functions_["text"], stmh.NearestTopicsHash)


def test_bad_input_is_refused_before_work() -> None:
    image, text, _ = paired_views()
    with pytest.raises(InputError, match=r"'text': expected 100 rows"):
        STMH(n_bits=8).fit(image, text[:-1])
    with pytest.raises(InputError, match="n_bits: STMH sets round"):
        STMH(n_bits=1).fit(image, text)
    for bits in (0, 5000):
        with pytest.raises(InputError, match="n_bits"):
            STMH(n_bits=bits)
    with pytest.raises(InputError, match="invalid parameters: r: "):
        STMH(r=1.5)
