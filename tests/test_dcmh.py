"""DCMH (Jiang & Li, CVPR 2017), the pairwise baseline of the DDCMH engine."""

from __future__ import annotations

import functools
import itertools
import math
import tracemalloc
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ddcmh_core.engine.sources import ArraySource
from ddcmh_core.engine.trainer import BatchProgress
from ddcmh_core.errors import InputError, NotFittedError
from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor
from ddcmh_core.methods.dcmh import (
    DCMH,
    DCMHConfig,
    dcmh_objective,
    pairwise_batch_loss,
    reference_network,
    reference_training,
    similarity_block,
)

N_CLASSES = 6


def _labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, N_CLASSES)) < 0.25).astype(np.uint8)
    empty = labels.sum(axis=1) == 0
    labels[empty, rng.integers(0, N_CLASSES, size=int(empty.sum()))] = 1
    return labels


def _views(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy views of the labels: a 20-d 'image' and a 30-d 'text' feature vector."""
    mixing = np.random.default_rng(99)
    image_map, text_map = mixing.standard_normal((N_CLASSES, 20)), mixing.standard_normal((N_CLASSES, 30))
    rng = np.random.default_rng(seed)
    image = labels @ image_map + 0.5 * rng.standard_normal((len(labels), 20))
    text = labels @ text_map + 0.5 * rng.standard_normal((len(labels), 30))
    return image, text


# The reference's own networks (narrower), input handling (no scaling, centred text) and learning-rate
# decay: these tests check the algorithm.
SMALL = {
    "n_bits": 16,
    "device": "cpu",
    "image_network": {**reference_network().model_dump(), "hidden_sizes": [128]},
    "text_network": {**reference_network().model_dump(), "hidden_sizes": [128]},
    "final_learning_rate": 1e-3,
}


def _model(**overrides: Any) -> DCMH:
    settings: dict[str, Any] = {**SMALL, "training": {"max_epochs": 40}}
    settings.update(overrides)
    return DCMH(**settings)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    train_labels, test_labels = _labels(600, 1), _labels(200, 2)
    train_image, train_text = _views(train_labels, 3)
    test_image, test_text = _views(test_labels, 4)
    return {
        "train_image": train_image,
        "train_text": train_text,
        "train_labels": train_labels,
        "test_image": test_image,
        "test_text": test_text,
        "test_labels": test_labels,
    }


@pytest.fixture(scope="module")
def fitted(problem: dict[str, np.ndarray]) -> DCMH:
    return _model().fit(problem["train_image"], problem["train_text"], problem["train_labels"])


# ---------------------------------------------------------------- the reference algorithm
def test_batch_gradient_is_the_reference_gradient() -> None:
    """d(pairwise_batch_loss)/d(outputs) equals the full objective's gradient for those rows and
    the closed form of process_DCMH.m: 0.5 G (sigma(0.5 G'F_b) - S_b) + 2 gamma (F_b - B_b) + 2 eta F1."""
    generator = torch.Generator().manual_seed(0)
    n, k, gamma, eta = 40, 6, 1.3, 0.7
    labels = (torch.rand(n, 5, generator=generator) < 0.3).double()
    image = torch.randn(n, k, generator=generator, dtype=torch.float64)
    text = torch.randn(n, k, generator=generator, dtype=torch.float64)
    codes = torch.where(torch.randn(n, k, generator=generator, dtype=torch.float64) >= 0, 1.0, -1.0).double()
    rows = torch.tensor([2, 9, 17, 31])

    whole = image.clone().requires_grad_(True)
    theta = 0.5 * whole @ text.T
    similar = (labels @ labels.T > 0).double()
    full = (
        (torch.nn.functional.softplus(theta) - similar * theta).sum()
        + gamma * ((codes - whole).pow(2).sum() + (codes - text).pow(2).sum())
        + eta * (whole.sum(0).pow(2).sum() + text.sum(0).pow(2).sum())
    )
    full.backward()
    assert whole.grad is not None

    batch = image[rows].clone().requires_grad_(True)
    pairwise_batch_loss(batch, rows, image.clone(), text, codes, labels, gamma, eta).backward()
    assert batch.grad is not None
    torch.testing.assert_close(batch.grad, whole.grad[rows], rtol=0, atol=1e-12)

    closed_form = (
        0.5 * text.T @ (torch.sigmoid(0.5 * text @ image[rows].T) - similar[:, rows])
        + 2 * gamma * (image[rows] - codes[rows]).T
        + 2 * eta * image.sum(0)[:, None]
    )
    torch.testing.assert_close(batch.grad, closed_form.T, rtol=0, atol=1e-12)
    assert dcmh_objective(image, text, codes, labels, gamma, eta, block_rows=7) == pytest.approx(
        float(full.detach()), rel=1e-12
    )


def test_similarity_block_is_share_a_label() -> None:
    labels = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    expected = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.float32)
    torch.testing.assert_close(similarity_block(labels[:2], labels), expected)


def test_codes_are_sign_of_f_plus_g_with_ties_positive(fitted: DCMH) -> None:
    expected = (fitted.params.gamma * (fitted.image_outputs_ + fitted.text_outputs_) >= 0).astype(np.uint8)
    np.testing.assert_array_equal(fitted.codes_, expected)
    assert fitted.codes_.shape == (fitted.report_["n_fit"], 16)


def test_reference_defaults() -> None:
    config = DCMHConfig()
    assert (config.gamma, config.eta) == (1.0, 1.0)
    assert config.training.batch_size == 128 and config.training.max_epochs == 150
    assert config.training.optimizer == "sgd" and config.training.momentum == 0.0
    assert config.training.learning_rate == pytest.approx(10**-1.5)
    assert config.final_learning_rate == pytest.approx(1e-2)
    assert reference_training().max_epochs == 500 and reference_network().hidden_sizes == [8192]
    assert reference_network().input_scaling == "none"
    assert config.image_network.input_scaling == config.text_network.input_scaling == "standardize"
    assert (config.image_network.kernel_lift, config.text_network.kernel_lift) == ("auto", "none")
    model = DCMH(training={"max_epochs": 5}, final_learning_rate=1e-3)  # the rest kept
    assert model.params.training.optimizer == "sgd" and model.params.training.max_epochs == 5
    rates = [model._learning_rate(epoch, None) for epoch in range(5)]  # type: ignore[arg-type]
    np.testing.assert_allclose(rates, np.logspace(-1.5, -3, 5))


def test_a_cnn_image_network_gets_a_batch_norm_before_its_hash_layer_unless_chosen() -> None:
    """The reference SGD diverges on a CNN's raw pooled features (see tests/test_photos_cli.py)."""
    from ddcmh_core.methods.ddcmh import DDCMH

    assert DCMH(image_network={"architecture": "cnn"}).params.image_network.feature_normalization == "batch"
    chosen = DCMH(image_network={"architecture": "cnn", "feature_normalization": "none"})
    assert chosen.params.image_network.feature_normalization == "none"
    assert DCMH().params.image_network.feature_normalization == "auto"  # an MLP has no pooled features
    again = DCMHConfig.model_validate(chosen.params.model_dump())  # as a model file stores it
    assert again.image_network.feature_normalization == "none"
    ddcmh = DDCMH(n_bits=16, image_network={"architecture": "cnn"}).params.image_network
    assert ddcmh.feature_normalization == "auto"  # DDCMH's Adam-trained Stage 2 goes without


def test_a_schedule_replaces_the_decay_also_from_a_toml_file(tmp_path) -> None:
    """TOML has no null: final_learning_rate = "none" hands the rate to training.schedule."""
    import tomllib

    text = 'final_learning_rate = "none"\n[training]\nschedule = "cosine"\noptimizer = "adam"\n'
    config = DCMHConfig.model_validate(tomllib.loads(text))
    assert config.final_learning_rate is None and config.training.schedule == "cosine"
    with pytest.raises(ValueError, match=r'final_learning_rate=None \("none" in TOML\)'):
        DCMHConfig.model_validate(tomllib.loads('[training]\nschedule = "cosine"\n'))


# ---------------------------------------------------------------- it learns
def test_beats_random_codes_in_both_directions(fitted: DCMH, problem: dict[str, np.ndarray]) -> None:
    train_labels, test_labels = problem["train_labels"], problem["test_labels"]
    image_queries = fitted.encode_image(problem["test_image"])
    text_queries = fitted.encode_text(problem["test_text"])
    image_items = fitted.encode_image(problem["train_image"])
    text_items = fitted.encode_text(problem["train_text"])
    image_to_text = mean_average_precision(image_queries, text_items, test_labels, train_labels)
    text_to_image = mean_average_precision(text_queries, image_items, test_labels, train_labels)
    floor = random_code_floor(test_labels, train_labels, 16)
    assert float(image_to_text) > float(floor) + 0.2
    assert float(text_to_image) > float(floor) + 0.2
    report = fitted.report_
    assert set(report["validation_map"]) == {"image->text", "text->image"}
    assert min(report["validation_map"].values()) > float(floor) + 0.15
    assert report["seconds_per_epoch"]["training"] > 0
    assert 1 <= report["best_epoch"] <= report["epochs_run"] == len(fitted.history_)


def test_objective_decreases(fitted: DCMH) -> None:
    """After a transient of a few epochs (the balance term overshoots while F, G are stale), the
    objective falls epoch after epoch."""
    objectives = [entry["objective"] for entry in fitted.history_]
    n_fit = fitted.report_["n_fit"]
    assert fitted.report_["objective"]["initial"] == pytest.approx(n_fit**2 * np.log(2))  # F = G = B = 0
    assert objectives[-1] < objectives[0] and objectives[-1] < 0.5 * max(objectives)
    tail = objectives[len(objectives) // 3 :]
    assert all(later <= earlier * (1 + 1e-4) for earlier, later in itertools.pairwise(tail))


# ---------------------------------------------------------------- cost structure
class _LargestTensor(TorchDispatchMode):
    """Records the largest dense tensor any torch operation produces (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor) and value.layout == torch.strided:
                self.largest = max(self.largest, value.numel())
        return result


def test_never_forms_an_n_by_n_matrix() -> None:
    n, batch = 1500, 64
    labels = _labels(n, 5)
    image, text = _views(labels, 6)
    model = DCMH(
        n_bits=8,
        device="cpu",
        image_network={**reference_network().model_dump(), "hidden_sizes": []},
        text_network={**reference_network().model_dump(), "hidden_sizes": []},
        training={"max_epochs": 1, "batch_size": batch},
    )
    watcher = _LargestTensor()
    tracemalloc.start()
    try:
        with watcher:
            model.fit(image, text, labels)
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n_fit = model.report_["n_fit"]
    assert watcher.largest >= batch * n_fit  # the watcher saw the pairwise batch x n block ...
    assert watcher.largest <= 2 * batch * n  # ... and nothing near n x n (2.25e6 entries)
    assert numpy_peak < n * n * 8 / 4  # numpy (validation MAP etc.) stays far below one n x n float64


# ---------------------------------------------------------------- reproducibility and inputs
def test_deterministic_under_a_seed(problem: dict[str, np.ndarray]) -> None:
    def run(seed: int) -> DCMH:
        return _model(training={"max_epochs": 3}, seed=seed).fit(
            problem["train_image"], problem["train_text"], problem["train_labels"]
        )

    first, second, other = run(4), run(4), run(5)
    np.testing.assert_array_equal(first.codes_, second.codes_)
    queries = problem["test_text"]
    np.testing.assert_array_equal(first.encode_text(queries), second.encode_text(queries))
    assert [e["objective"] for e in first.history_] == [e["objective"] for e in second.history_]
    assert not np.array_equal(first.codes_, other.codes_)


class _PrefetchingSource(ArraySource):
    """Feature rows served the way photos are: ``submit_batch`` hands out a future."""

    def __init__(self, data: np.ndarray) -> None:
        super().__init__(data)
        self.submitted = {True: 0, False: 0}  # training batches, encoding batches

    def submit_batch(self, indices: np.ndarray, *, train: bool) -> Future[torch.Tensor]:
        self.submitted[train] += 1
        future: Future[torch.Tensor] = Future()
        future.set_result(self.batch(indices, train=train))
        return future


def test_batches_are_prefetched_and_slow_passes_report_progress(problem, monkeypatch) -> None:
    """A source that prefetches (photos) is read ahead and gives the same model; every pass of a
    slow epoch prints its rows done and ETA (here every batch: no quiet time)."""
    import ddcmh_core.methods.dcmh_training as dcmh_training

    n = 200
    image, text, labels = problem["train_image"][:n], problem["train_text"][:n], problem["train_labels"][:n]
    settings = {"training": {"max_epochs": 2, "batch_size": 32}}
    plain = _model(**settings).fit(image, text, labels)
    source = _PrefetchingSource(image)
    monkeypatch.setattr(
        dcmh_training, "BatchProgress", functools.partial(BatchProgress, quiet_seconds=0, every_seconds=0)
    )
    lines: list[str] = []
    ahead = _model(**settings).fit(source, text, labels, progress=lines.append)
    np.testing.assert_array_equal(plain.codes_, ahead.codes_)
    n_fit = len(ahead.fit_rows_)
    assert source.submitted[True] == 2 * math.ceil(n_fit / 32)  # every batch of both epochs, read ahead
    # The validation of each epoch encodes the validation and fitting images, read ahead too.
    assert source.submitted[False] == 2 * 2
    for view in ("image", "text"):
        assert any(line.startswith(f"[DCMH {view} net] epoch 2: 32/{n_fit} rows") for line in lines), lines
    assert any("epoch ETA" in line for line in lines)


def test_sparse_text_gives_the_dense_result(problem: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    n = 300
    labels = problem["train_labels"][:n]
    words = (rng.random((n, 50)) < 0.1) | (labels @ (rng.random((N_CLASSES, 50)) < 0.2) > 0)
    dense = words.astype(np.float64)
    image = problem["train_image"][:n]
    settings = {"training": {"max_epochs": 2}}
    from_dense = _model(**settings).fit(image, dense, labels)
    from_sparse = _model(**settings).fit(image, sp.csr_matrix(dense), labels)
    np.testing.assert_array_equal(from_dense.codes_, from_sparse.codes_)
    sparse_codes = from_sparse.encode_text(sp.csr_matrix(dense))
    np.testing.assert_array_equal(from_dense.encode_text(dense), sparse_codes)


def test_resume_continues_the_run(tmp_path: Any, problem: dict[str, np.ndarray]) -> None:
    data = (problem["train_image"][:300], problem["train_text"][:300], problem["train_labels"][:300])
    constant = {"final_learning_rate": None, "training": {"max_epochs": 4, "learning_rate": 0.01}}
    whole = _model(**constant).fit(*data)

    def stop_after_epoch_2(line: str) -> None:
        if "epoch 2/" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the checkpoint of epoch 2 is written before the line
        _model(**constant).fit(*data, run_dir=tmp_path, progress=stop_after_epoch_2)
    resumed = _model(**constant).fit(*data, run_dir=tmp_path, resume=True)
    assert len(resumed.history_) == 4
    np.testing.assert_array_equal(whole.codes_, resumed.codes_)
    assert [e["objective"] for e in whole.history_] == [e["objective"] for e in resumed.history_]


def test_bad_inputs(problem: dict[str, np.ndarray]) -> None:
    image, text, labels = (problem[name][:50] for name in ("train_image", "train_text", "train_labels"))
    model = _model(training={"max_epochs": 1})
    with pytest.raises(InputError, match=r"DCMH: argument 'text': expected 50 rows"):
        model.fit(image, text[:49], labels)
    with pytest.raises(InputError, match=r"DCMH: argument 'labels'"):
        model.fit(image, text, labels[:49])
    unlabelled = labels.copy()
    unlabelled[[3, 8]] = 0
    with pytest.raises(InputError, match=r"2 training rows have no label \(rows 3, 8\)"):
        model.fit(image, text, unlabelled)
    dropped = _model(training={"max_epochs": 1}, drop_unlabelled=True).fit(image, text, unlabelled)
    np.testing.assert_array_equal(dropped.dropped_rows_, [3, 8])
    assert not set(dropped.fit_rows_) & {3, 8} and not set(dropped.validation_rows_) & {3, 8}
    with pytest.raises(NotFittedError):
        _model().encode_image(image)
    with pytest.raises(InputError, match=r"argument 'text': expected 30 features"):
        dropped.encode_text(image)
    with pytest.raises(InputError, match="invalid parameters"):
        DCMH(unknown_option=1)
    with pytest.raises(InputError, match="final_learning_rate"):
        DCMH(training={"schedule": "cosine"})
    with pytest.raises(InputError, match="invalid parameters"):
        DCMH(gamma=-1.0)


def test_dcmh_model_file_round_trip(problem: dict[str, np.ndarray], tmp_path) -> None:
    image, text, labels = (problem[name][:80] for name in ("train_image", "train_text", "train_labels"))
    model = _model(training={"max_epochs": 2}).fit(image, text, labels)
    assert isinstance(model.text_network_, torch.nn.Module)
    path = model.save(tmp_path / "dcmh.h5")
    loaded = DCMH.load(path)
    np.testing.assert_array_equal(loaded.encode_image(image), model.encode_image(image))
    np.testing.assert_array_equal(loaded.encode_text(text), model.encode_text(text))
    np.testing.assert_array_equal(loaded.encode("text", text), model.encode("text", text))


def test_standardised_input_rescues_features_of_small_magnitude(problem: dict[str, np.ndarray]) -> None:
    """Features a hundred times smaller (like bag-of-words histograms that sum to 1) starve the
    reference's unscaled first layer: its codes stay near the random floor (on Wikipedia's SIFT
    histograms, at it). The default standardises each feature on the training rows."""
    image, text, labels = (problem[name] for name in ("train_image", "train_text", "train_labels"))
    queries, query_labels = problem["test_image"] / 100, problem["test_labels"]
    floor = float(random_code_floor(query_labels, labels, 16))

    def image_to_text(model: DCMH) -> float:
        codes = (model.encode_image(queries), model.encode_text(text))
        return float(mean_average_precision(*codes, query_labels, labels))

    settings = {"n_bits": 16, "device": "cpu", "training": {"max_epochs": 30}, "compute_objective": False}
    narrow = {"hidden_sizes": [128]}
    reference_shape = {**reference_network().model_dump(), **narrow}
    reference = DCMH(**settings, image_network=reference_shape, text_network=reference_shape).fit(
        image / 100, text, labels
    )
    default = DCMH(**settings, image_network=narrow, text_network=narrow).fit(image / 100, text, labels)
    assert DCMHConfig().image_network.input_scaling == "standardize"
    assert image_to_text(reference) < floor + 0.08  # measured: floor 0.425, reference 0.468
    assert image_to_text(default) > image_to_text(reference) + 0.1  # measured: 0.791
