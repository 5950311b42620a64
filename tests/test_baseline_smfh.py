"""SMFH port: Wikipedia fidelity, the S step's Sylvester solve, the graphs, save/load, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from conftest import shared_data

from ddcmh_core import InputError, load_model

smfh = pytest.importorskip("ddcmh_baselines.smfh")
SMFH = smfh.SMFH


def paired_views(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two views sharing a 3-class latent structure, plus one-hot labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    centres_image, centres_text = rng.normal(size=(3, 12)), rng.normal(size=(3, 6))
    image = centres_image[classes] + 0.5 * rng.normal(size=(n, 12))
    text = centres_text[classes] + 0.5 * rng.normal(size=(n, 6))
    return image, text, np.eye(3, dtype=np.uint8)[classes]


@pytest.mark.data
def test_wikipedia_map_close_to_reference() -> None:
    from ddcmh_baselines.reference import protocol_maps, wikipedia_protocol_data, wikipedia_reference


    data = wikipedia_protocol_data(shared_data("wikipedia"))
    model = SMFH(n_bits=16, seed=0).fit(data["image_train"], data["text_train"], data["labels_train"])
    scores = protocol_maps(model, data)
    reference = wikipedia_reference()
    for task, value in scores.items():
        expected = reference.value("smfh", 16, task)
        assert expected is not None
        assert float(value) >= expected - 0.03, f"{task}: {float(value):.3f} vs reference {expected:.3f}"


def test_sylvester_step_solves_its_equation() -> None:
    rng = np.random.default_rng(0)
    half = rng.normal(size=(5, 5))
    left = half @ half.T + 5 * np.eye(5)
    adjacency = (rng.random((30, 30)) < 0.2).astype(float)
    right = smfh.graph_laplacian(np.maximum(adjacency, adjacency.T))
    right = right + right.T
    constant = rng.normal(size=(5, 30))
    values, vectors = np.linalg.eigh(right)
    solution = smfh.solve_sylvester_symmetric(left, values, vectors, constant)
    np.testing.assert_allclose(left @ solution + solution @ right + constant, 0, atol=1e-9)
    np.testing.assert_allclose(solution, scipy.linalg.solve_sylvester(left, right, -constant), atol=1e-9)


def test_objective_never_increases_and_stops_at_tolerance() -> None:
    image, text, labels = paired_views()
    model = SMFH(n_bits=8, tolerance=0.0, max_iter=12).fit(image, text, labels)
    history = np.asarray(model.report_["objective"])
    assert len(history) >= 3
    assert np.all(np.diff(history) <= 1e-9 * history[:-1]), history
    stopped = SMFH(n_bits=8, tolerance=1e9, max_iter=12).fit(image, text, labels)
    assert stopped.report_["iterations"] == 2  # the first decrease from inf passes, the second does not


def test_graphs_are_symmetric_knn_and_label_laplacians() -> None:
    image, text, labels = paired_views()
    adjacency = smfh.knn_adjacency(image, 4)
    assert np.array_equal(adjacency, adjacency.T) and set(np.unique(adjacency)) <= {0.0, 1.0}
    assert np.all(np.diag(adjacency) == 0) and np.all(adjacency.sum(axis=1) >= 4)
    distances = ((image[:, None, :] - image[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    assert adjacency[0, np.argmin(distances[0])] == 1
    laplacian = smfh.joint_laplacian(image, text, labels.astype(float), 4)
    np.testing.assert_allclose(laplacian.sum(axis=1), 0, atol=1e-9)
    same_class = labels.astype(float) @ labels.T
    expected_label_part = np.diag(same_class.sum(1)) - same_class
    knn_part = smfh.graph_laplacian(adjacency) + smfh.graph_laplacian(smfh.knn_adjacency(text, 4))
    np.testing.assert_allclose(laplacian - knn_part, expected_label_part)


def test_sparse_input_matches_dense_and_one_threshold_per_bit() -> None:
    image, text, labels = paired_views()
    model = SMFH(n_bits=16, seed=1).fit(image, text, labels)
    other = SMFH(n_bits=16, seed=1).fit(sp.csr_matrix(image), text, labels)
    np.testing.assert_array_equal(model.encode_image(image), other.encode_image(image))
    threshold = model.hash_functions_["image"].threshold
    assert threshold is not None and threshold.shape == (16,)


def test_save_load_round_trip(tmp_path) -> None:
    image, text, labels = paired_views()
    model = SMFH(n_bits=24, seed=2).fit(image, text, labels)
    loaded = load_model(model.save(tmp_path / "smfh.h5"))
    assert isinstance(loaded, SMFH) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))


def test_bad_input_is_refused_before_work() -> None:
    image, text, labels = paired_views()
    assert SMFH.tags.supervised is True
    with pytest.raises(InputError, match="labels: this method is supervised"):
        SMFH(n_bits=8).fit(image, text)
    with pytest.raises(InputError, match=r"'text': expected 90 rows"):
        SMFH(n_bits=8).fit(image, text[:-1], labels)
    with pytest.raises(InputError, match="labels"):
        SMFH(n_bits=8).fit(image, text, labels[:-1])
    with pytest.raises(InputError, match="k_nn"):
        SMFH(n_bits=8, k_nn=5).fit(image[:5], text[:5], labels[:5])
    for bits in (0, 5000):
        with pytest.raises(InputError, match="n_bits"):
            SMFH(n_bits=bits)
    with pytest.raises(InputError, match="alpha"):
        SMFH(alpha=1.0)
