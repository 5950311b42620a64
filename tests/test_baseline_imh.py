"""IMH port: Wikipedia fidelity, the eigen-solution and its closed form, balance, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model

imh = pytest.importorskip("ddcmh_baselines.imh")
IMH = imh.IMH


def paired_views(n: int = 41, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative two-view data sharing a 3-class structure, plus one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    image = rng.random((3, 12))[classes] + 0.3 * rng.random((n, 12))
    text = rng.random((3, 6))[classes] + 0.3 * rng.random((n, 6))
    return image, text, np.eye(3, dtype=np.uint8)[classes]


@pytest.mark.data
def test_wikipedia_map_close_to_reference() -> None:
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference


    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = IMH(n_bits=16).fit(data["image_train"], data["text_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, value in scores.items():
        expected = reference.value("imh", 16, task)
        assert expected is not None
        assert float(value) >= expected - 0.03, f"{task}: {float(value):.3f} vs reference {expected:.3f}"
    assert float(scores["image->text"]) > reference.protocol["random_floor"] + 0.02


def reference_system(views: list[np.ndarray], beta: float, lam: float, k_nn: int, u: float) -> np.ndarray:
    """``D`` of IMH_learn.m term by term: A1 + C2'A2C2 + (I-C2)'U(I-C2) + lam L1 + lam C2'L2C2."""
    a1, a2 = (imh.ridge_residual_operator(rows, beta) for rows in views)
    l1, l2 = (imh.averaged_knn_laplacian(rows, k_nn) for rows in views)
    identity = np.eye(len(a1))
    c2 = np.linalg.solve(a2 + lam * l2 + u * identity, u * identity)
    gap = identity - c2
    return a1 + c2.T @ a2 @ c2 + u * gap.T @ gap + lam * l1 + lam * c2.T @ l2 @ c2


@pytest.mark.parametrize("u", [3.0, 1e10])
def test_embeddings_solve_the_relaxed_problem(u: float) -> None:
    """F1 spans D's smallest eigenvectors (D as IMH_learn.m builds it); F2 minimises given F1."""
    image, text, _ = paired_views()
    views = [image, text]
    model = IMH(n_bits=5, pairing_weight=u)
    (f1, f2), eigenvalues = model.embeddings(views)
    system = reference_system(views, 1.0, 1.0, 1, u)
    system = (system + system.T) / 2
    np.testing.assert_allclose(f1.T @ f1, np.eye(5), atol=1e-9)
    np.testing.assert_allclose(system @ f1, f1 * eigenvalues, atol=1e-7)
    np.testing.assert_allclose(eigenvalues, np.linalg.eigvalsh(system)[:5], atol=1e-7)
    coupled = imh.ridge_residual_operator(text, 1.0) + imh.averaged_knn_laplacian(text, 1)
    np.testing.assert_allclose(coupled @ f2 + u * (f2 - f1), 0, atol=1e-6 * max(u, 1.0))


def test_ridge_residual_operator_gives_the_eliminated_ridge_term() -> None:
    rng = np.random.default_rng(3)
    rows, targets = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    projection = imh.ridge_projection(rows, targets, 0.7)
    value = np.sum((rows @ projection - targets) ** 2) + 0.7 * np.sum(projection**2)
    np.testing.assert_allclose(np.trace(targets.T @ imh.ridge_residual_operator(rows, 0.7) @ targets), value)


def test_training_bits_are_balanced_and_fit_is_deterministic() -> None:
    image, text, labels = paired_views()
    model = IMH(n_bits=8, seed=0).fit(image, text)
    for codes in (model.encode_image(image), model.encode_text(text)):
        assert np.all(codes.sum(axis=0) == len(image) // 2)  # strictly above the median of 41 values
    other = IMH(n_bits=8, seed=7).fit(sp.csr_matrix(image), text, labels)
    np.testing.assert_array_equal(model.encode_image(image), other.encode_image(image))
    np.testing.assert_array_equal(model.encode_text(text), other.encode_text(text))
    assert IMH.tags.supervised is False


def test_save_load_round_trip(tmp_path) -> None:
    image, text, _ = paired_views()
    model = IMH(n_bits=12).fit(image, text)
    loaded = load_model(model.save(tmp_path / "imh.h5"))
    assert isinstance(loaded, IMH) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))


def test_bad_input_is_refused_before_work() -> None:
    image, text, _ = paired_views()
    with pytest.raises(InputError, match=r"'text': expected 41 rows"):
        IMH(n_bits=8).fit(image, text[:-1])
    with pytest.raises(InputError, match=r"n_bits: IMH takes one eigenvector .* at most 41 bits"):
        IMH(n_bits=64).fit(image, text)
    with pytest.raises(InputError, match="k_nn"):
        IMH(n_bits=2, k_nn=3).fit(image[:3], text[:3])
    with pytest.raises(InputError, match="n_bits"):
        IMH(n_bits=0)
