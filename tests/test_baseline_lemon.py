"""LEMON port: Wikipedia fidelity, the online updates and their objective, save/load, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model

lemon = pytest.importorskip("ddcmh_baselines.lemon")
LEMON = lemon.LEMON


def paired_views(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two non-negative views sharing a 4-class structure, plus one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, n)
    centres_image, centres_text = rng.random((4, 12)) * 2, rng.random((4, 6)) * 2
    image = np.abs(centres_image[classes] + 0.3 * rng.normal(size=(n, 12)))
    text = np.abs(centres_text[classes] + 0.3 * rng.normal(size=(n, 6)))
    return image, text, np.eye(4, dtype=np.uint8)[classes]


@pytest.mark.data
def test_wikipedia_map_close_to_reference() -> None:
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference


    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = LEMON(n_bits=32, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, value in scores.items():
        expected = reference.value("lemon", 32, task)
        assert expected is not None
        assert float(value) >= expected - 0.03, f"{task}: {float(value):.3f} vs reference {expected:.3f}"


def test_embedding_and_rotation_steps_solve_their_subproblems() -> None:
    """V maximises tr(Z'V) under V'1 = 0, V'V = n I; R is the orthogonal Procrustes solution."""
    rng = np.random.default_rng(0)
    target = rng.normal(size=(60, 8)) + 3.0
    embedding = lemon.embedding_step(target, np.random.default_rng(1))
    np.testing.assert_allclose(embedding.sum(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(embedding.T @ embedding, 60 * np.eye(8), atol=1e-9)
    best = np.sum(target * embedding)
    for _ in range(20):  # other feasible embeddings: centred, orthonormalised, scaled
        other = rng.normal(size=(60, 8))
        other = np.linalg.qr(other - other.mean(axis=0))[0] * np.sqrt(60)
        assert np.sum(target * other) <= best + 1e-9
    codes = np.sign(rng.normal(size=(60, 8)))
    rotation = lemon.rotation_step(codes.T @ embedding)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(8), atol=1e-12)
    loss = np.sum((codes - embedding @ rotation) ** 2)
    for _ in range(20):
        other = np.linalg.qr(rng.normal(size=(8, 8)))[0]
        assert loss <= np.sum((codes - embedding @ other) ** 2) + 1e-9


def test_objective_never_increases_within_a_chunk_and_chunking_follows_the_demo() -> None:
    image, text, labels = paired_views()
    model = LEMON(n_bits=8, seed=0, chunk_size=40, n_iter=6).fit(image, text, labels)
    assert model.report_["chunks"] == [40, 40, 70]  # floor(150 / 40) = 3 chunks, the last takes the rest
    for history in model.report_["objective"]:
        history = np.asarray(history)
        assert len(history) == 6
        assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1])), history
    assert lemon.chunk_bounds(2173, 2000) == [(0, 2173)]  # Wikipedia: one chunk, as demo_LEMON.m trains


def test_objective_from_sums_matches_the_direct_formula() -> None:
    """stream_objective's sums give ||B - VR||^2 + a||BV' - rS||^2 + b(||L - VP||^2 + g||P||^2)."""
    rng = np.random.default_rng(3)
    n, r, c = 30, 4, 3
    labels = (rng.random((n, c)) < 0.4).astype(float)
    labels[labels.sum(axis=1) == 0, 0] = 1.0
    unit = lemon.unit_rows(labels)
    codes, embedding = np.sign(rng.normal(size=(n, r))), rng.normal(size=(n, r))
    rotation, regression = np.linalg.qr(rng.normal(size=(r, r)))[0], rng.normal(size=(r, c))
    similarity = 2 * unit @ unit.T - 1
    direct = (
        np.sum((codes - embedding @ rotation) ** 2)
        + 2.0 * np.sum((codes @ embedding.T - r * similarity) ** 2)
        + 5.0 * (np.sum((labels - embedding @ regression) ** 2) + 0.1 * np.sum(regression**2))
    )
    stats = lemon.StreamStatistics()
    half = {"labels": labels[:12], "unit": unit[:12], "image": np.zeros((12, 1)), "text": np.zeros((12, 1))}
    stats.add(half, codes[:12], embedding[:12])
    sums = stats.with_chunk(labels[12:], unit[12:], codes[12:], embedding[12:])
    value = lemon.stream_objective(sums, n, rotation, regression, (2.0, 5.0, 0.1))
    np.testing.assert_allclose(value, direct, rtol=1e-10)


def test_sparse_input_matches_dense_and_codes_are_ridge_regressions() -> None:
    image, text, labels = paired_views()
    dense = LEMON(n_bits=8, seed=3).fit(image, text, labels)
    sparse = LEMON(n_bits=8, seed=3).fit(sp.csr_matrix(image), text, labels)
    np.testing.assert_array_equal(dense.encode_image(image), sparse.encode_image(image))
    np.testing.assert_array_equal(dense.encode_text(text), sparse.encode_text(text))
    projection = dense.hash_functions_["image"].projection
    assert projection.shape == (12, 8) and LEMON.tags.supervised is True


def test_save_load_round_trip(tmp_path) -> None:
    image, text, labels = paired_views()
    model = LEMON(n_bits=16, seed=2, chunk_size=50).fit(image, text, labels)
    path = model.save(tmp_path / "lemon.h5")
    loaded = load_model(path)
    assert isinstance(loaded, LEMON) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))


def test_bad_input_is_refused_before_work(monkeypatch) -> None:
    image, text, labels = paired_views()

    def no_work(*args, **kwargs):
        raise AssertionError("fit started before the input was checked")

    monkeypatch.setattr(LEMON, "_fit", no_work)
    with pytest.raises(InputError, match="labels: this method is supervised"):
        LEMON(n_bits=8).fit(image, text)
    with pytest.raises(InputError, match=r"'text': expected 150 rows"):
        LEMON(n_bits=8).fit(image, text[:-1], labels)
    with pytest.raises(InputError, match=r"n_bits: .*chunk_size=40 the smallest chunk has 40 pairs"):
        LEMON(n_bits=40, chunk_size=40).fit(image, text, labels)
    for settings in ({"n_bits": 0}, {"alpha": -1.0}, {"xi": 0.0}, {"chunk_size": 1}):
        with pytest.raises(InputError, match=next(iter(settings))):
            LEMON(**settings)
