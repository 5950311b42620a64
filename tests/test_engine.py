"""The DDCMH engine: reconstruction, networks, training, pipeline, model files, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from engine_data import FAST_NETWORK, FAST_TRAINING, two_view_data

from ddcmh_core import InputError, NotFittedError
from ddcmh_core.engine.config import NetworkConfig
from ddcmh_core.engine.networks import HashMLP, build_network
from ddcmh_core.engine.sources import ArraySource
from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor
from ddcmh_core.methods.ddcmh import DDCMH, DDCMHConfig
from ddcmh_core.methods.reconstruction import reconstruct_codes
from ddcmh_core.model_file import MODEL_FORMAT_VERSION, ModelFileError, read_model_metadata

TESTS = Path(__file__).resolve().parent


def brute_force_reconstruction(labels, codes):
    overlap = labels @ labels.T  # n x n: fine at test sizes only
    return overlap @ codes / overlap.sum(axis=1, keepdims=True)


def test_reconstruction_matches_the_elementwise_formula():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 7)) < 0.3).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 0] = 1
    codes = rng.integers(0, 2, (200, 12), dtype=np.uint8)
    result = reconstruct_codes(labels, codes)
    expected = brute_force_reconstruction(labels.astype(float), codes.astype(float))
    assert np.max(np.abs(result.targets - expected)) < 1e-12
    assert np.all((result.targets >= 0) & (result.targets <= 1))
    sparse = reconstruct_codes(sp.csr_matrix(labels), codes)
    assert np.max(np.abs(sparse.targets - expected)) < 1e-12
    binary = reconstruct_codes(labels, codes, binarise=True)
    assert np.array_equal(binary.targets, (expected > 0.5).astype(float))


def test_identical_labels_get_identical_targets_and_single_label_is_class_mean():
    labels = np.eye(3, dtype=np.uint8)[[0, 0, 1, 2, 2, 2]]
    codes = np.array([[1, 0], [0, 0], [1, 1], [1, 0], [1, 1], [0, 1]], dtype=np.uint8)
    targets = reconstruct_codes(labels, codes).targets
    assert np.allclose(targets[0], [0.5, 0.0]) and np.allclose(targets[0], targets[1])
    assert np.allclose(targets[3], [2 / 3, 2 / 3])


def test_reconstruction_is_linear_in_memory_at_a_size_where_n_by_n_cannot_exist():
    n = 300_000  # an n x n float64 matrix would need 720 GB
    rng = np.random.default_rng(1)
    labels = sp.random(n, 24, density=0.1, random_state=2, format="csr", data_rvs=np.ones)
    labels = sp.csr_matrix(labels + sp.csr_matrix((np.ones(n), (np.arange(n), np.zeros(n, int))), (n, 24)))
    labels.data[:] = 1
    codes = rng.integers(0, 2, (n, 32), dtype=np.uint8)
    result = reconstruct_codes(labels, codes)
    assert result.targets.shape == (n, 32)


def test_unlabelled_rows_are_an_error_unless_dropped():
    labels = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], dtype=np.uint8)
    codes = np.ones((4, 3), dtype=np.uint8)
    with pytest.raises(InputError, match=r"2 training rows have no label \(rows 1, 3\)"):
        reconstruct_codes(labels, codes)
    result = reconstruct_codes(labels, codes, drop_unlabelled=True)
    assert result.kept.tolist() == [0, 2] and result.dropped.tolist() == [1, 3]
    with pytest.raises(InputError, match="expected 4 rows"):
        reconstruct_codes(labels, codes[:3])


def test_per_sample_loss_gradient_does_not_depend_on_other_samples_targets():
    torch.manual_seed(0)
    network = HashMLP(10, 8, NetworkConfig(hidden_sizes=[16], normalization="layer", dropout=0.0))
    inputs = torch.randn(5, 10)
    targets = torch.rand(5, 8)

    def gradient_of_sample_zero(target_matrix):
        network.zero_grad()
        losses = torch.nn.functional.binary_cross_entropy_with_logits(
            network(inputs), target_matrix, reduction="none"
        ).mean(dim=1)
        losses[0].backward()
        return [p.grad.clone() for p in network.parameters()]

    before = gradient_of_sample_zero(targets)
    changed = targets.clone()
    changed[3] = 1 - changed[3]
    after = gradient_of_sample_zero(changed)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_sparse_and_dense_batches_give_the_same_logits_and_gradients():
    texts = sp.random(30, 50, density=0.1, random_state=0, format="lil")
    texts[4] = 0  # a row without any non-zero: an empty bag
    texts = texts.tocsr()
    network = HashMLP(50, 8, NetworkConfig(hidden_sizes=[16], input_scaling="standardize")).eval()
    network.fit_input_scaling(texts)
    sparse_logits = network(ArraySource(texts).batch(np.arange(30), train=False))
    dense = ArraySource(texts.toarray())
    network_dense = HashMLP(50, 8, NetworkConfig(hidden_sizes=[16], input_scaling="standardize")).eval()
    network_dense.load_state_dict(network.state_dict())
    dense_logits = network_dense(dense.batch(np.arange(30), train=False))
    assert torch.allclose(sparse_logits, dense_logits, atol=1e-5)
    sparse_logits.square().sum().backward()
    dense_logits.square().sum().backward()
    for sparse_weight, dense_weight in zip(network.parameters(), network_dense.parameters(), strict=True):
        assert sparse_weight.grad is not None and dense_weight.grad is not None
        assert torch.allclose(sparse_weight.grad, dense_weight.grad, atol=1e-4)


def test_rbf_lift_is_the_kernel_of_scaled_rows_to_training_anchors():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(40, 6)) * 3 + 1
    config = NetworkConfig(hidden_sizes=[], kernel_lift="rbf", lift_anchors=25, lift_width_scale=0.5)
    network = HashMLP(6, 4, config).eval()
    network.fit_input_scaling(rows, seed=3)
    scaled = (rows - rows.mean(axis=0)) / rows.std(axis=0)
    anchors = network.lift_anchors.double().numpy()
    # every anchor is a distinct scaled training row
    matches = np.abs(anchors[:, None, :] - scaled[None, :, :]).max(axis=2) < 1e-5
    assert matches.any(axis=1).all() and len(np.unique(matches.argmax(axis=1))) == 25
    squared = ((scaled[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=2)
    default_width = np.sqrt(squared.mean())
    assert float(network.lift_gamma) == pytest.approx(1 / (2 * (0.5 * default_width) ** 2), rel=1e-5)
    kernel = np.exp(-float(network.lift_gamma) * squared)
    kernel = (kernel - kernel.mean(axis=0)) / kernel.std(axis=0)  # standardised on the training rows
    expected = kernel @ network.hash_layer.weight.double().detach().numpy().T
    expected += network.hash_layer.bias.double().detach().numpy()
    logits = network(torch.as_tensor(rows, dtype=torch.float32)).double().detach().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    # sparse rows give the same logits as the same rows dense
    texts = sp.random(30, 50, density=0.1, random_state=1, format="csr")
    lifted = NetworkConfig(hidden_sizes=[8], kernel_lift="rbf", lift_anchors=20)
    sparse_network = HashMLP(50, 8, lifted).eval()
    sparse_network.fit_input_scaling(texts)
    dense_network = HashMLP(50, 8, lifted).eval()
    dense_network.load_state_dict(sparse_network.state_dict())
    sparse_logits = sparse_network(ArraySource(texts).batch(np.arange(30), train=False))
    dense_logits = dense_network(ArraySource(texts.toarray()).batch(np.arange(30), train=False))
    assert torch.allclose(sparse_logits, dense_logits, atol=1e-5)


def test_a_lifted_model_takes_at_most_its_fitting_rows_as_anchors_and_round_trips(tmp_path):
    images, texts, labels = two_view_data(n_samples=200)
    lifted = {**FAST_NETWORK, "kernel_lift": "rbf", "lift_anchors": 5000}
    model = DDCMH(
        hasher="itq", n_bits=8, refit=False, image_network=lifted, text_network=FAST_NETWORK,
        image_training=FAST_TRAINING, text_training=FAST_TRAINING,
    ).fit(images, texts, labels)  # fmt: skip
    assert model.image_network_.lift_anchors.shape == (180, 24)  # 200 rows less the validation split
    loaded = DDCMH.load(model.save(tmp_path / "lifted.h5"))
    np.testing.assert_array_equal(loaded.encode_image(images), model.encode_image(images))
    floor = float(random_code_floor(labels, labels, n_bits=8, seed=0))
    codes = (model.encode_image(images), model.encode_text(texts))
    assert float(mean_average_precision(*codes, labels, labels)) > floor + 0.2


@pytest.fixture(scope="module")
def trained():
    images, texts, labels = two_view_data()
    model = DDCMH(
        hasher="itq",
        n_bits=16,
        refit=False,  # the selection fit itself: its split and rows are what these tests look at
        image_training=FAST_TRAINING,
        text_training=FAST_TRAINING,
        image_network=FAST_NETWORK,
        text_network=FAST_NETWORK,
    ).fit(images[:300], texts[:300], labels[:300])
    return model, (images, texts, labels)


def test_ddcmh_beats_the_random_floor_in_both_directions(trained):
    model, (images, texts, labels) = trained
    query_image, query_text = model.encode_image(images[300:]), model.encode_text(texts[300:])
    base_image, base_text = model.encode_image(images[:300]), model.encode_text(texts[:300])
    floor = float(random_code_floor(labels[300:], labels[:300], n_bits=16, seed=0))
    image_to_text = float(mean_average_precision(query_image, base_text, labels[300:], labels[:300]))
    text_to_image = float(mean_average_precision(query_text, base_image, labels[300:], labels[:300]))
    assert image_to_text > floor + 0.2 and text_to_image > floor + 0.2
    report = model.report_
    assert report["n_fit"] + report["n_validation"] == 300
    assert set(report["validation_map"]) == {"image->text", "text->image"}
    assert 1 <= report["stage2_best_epoch"] <= FAST_TRAINING["max_epochs"]


def test_validation_rows_come_from_training_rows_only(trained):
    model, _ = trained
    assert set(model.validation_rows_).isdisjoint(model.fit_rows_)
    assert max(model.validation_rows_.max(), model.fit_rows_.max()) < 300
    assert len(model.validation_rows_) == 30


def test_training_is_deterministic_on_cpu(trained):
    model, (images, texts, labels) = trained
    again = DDCMH(model.params).fit(images[:300], texts[:300], labels[:300])
    assert np.array_equal(again.encode_image(images), model.encode_image(images))
    assert np.array_equal(again.encode_text(texts), model.encode_text(texts))


def test_model_file_round_trip(trained, tmp_path):
    model, (images, texts, _) = trained
    path = model.save(tmp_path / "model.h5", vocabulary=np.array(["a", "b"], dtype="S"))
    loaded = DDCMH.load(path)
    assert np.array_equal(loaded.encode_image(images), model.encode_image(images))
    assert np.array_equal(loaded.encode_text(texts), model.encode_text(texts))
    metadata = read_model_metadata(path)
    assert metadata["method"]["name"] == "ddcmh" and metadata["method"]["provider"] == "ddcmh"
    assert metadata["meta"]["hasher"]["name"] == "itq" and metadata["meta"]["hasher"]["provider"] == "ddcmh"
    assert metadata["params"]["n_bits"] == 16
    assert {"ddcmh", "torch", "numpy"} <= set(metadata["versions"])
    assert loaded.extras_["vocabulary"].tolist() == [b"a", b"b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.h5"]


def test_model_files_refuse_foreign_and_future_versions(trained, tmp_path):
    model, _ = trained
    path = model.save(tmp_path / "model.h5")
    future = tmp_path / "future.h5"
    future.write_bytes(path.read_bytes())
    with h5py.File(future, "a") as handle:
        handle.attrs["format_version"] = MODEL_FORMAT_VERSION + 1
    with pytest.raises(ModelFileError, match=f"format version {MODEL_FORMAT_VERSION + 1} is incompatible"):
        DDCMH.load(future)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = 1
    with pytest.raises(ModelFileError, match="not a ddcmh model file"):
        DDCMH.load(foreign)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(path.read_bytes())
    with h5py.File(broken, "a") as handle:
        name = next(iter(handle["state/text_network"]))
        del handle["state/text_network"][name]
    with pytest.raises(ModelFileError, match="text network's weights do not fit"):
        DDCMH.load(broken)


def test_bad_input_to_the_pipeline():
    images, texts, labels = two_view_data(n_samples=60)
    with pytest.raises(InputError, match="argument 'text': expected 60 rows"):
        DDCMH().fit(images, texts[:50], labels)
    unlabelled = labels.copy()
    unlabelled[[4, 9]] = 0
    with pytest.raises(InputError, match=r"2 training rows have no label \(rows 4, 9\)"):
        DDCMH().fit(images, texts, unlabelled)
    with pytest.raises(InputError, match="invalid parameters"):
        DDCMH(n_bits=0)
    with pytest.raises(InputError, match="invalid parameters"):
        DDCMH(no_such_option=1)
    with pytest.raises(NotFittedError):
        DDCMH().encode_text(texts)


def test_dropping_unlabelled_rows_reports_them():
    images, texts, labels = two_view_data(n_samples=200)
    labels = labels.copy()
    labels[[3, 7, 11]] = 0
    model = DDCMH(
        hasher="lsh",
        n_bits=8,
        drop_unlabelled=True,
        image_training=FAST_TRAINING,
        text_training=FAST_TRAINING,
        image_network=FAST_NETWORK,
        text_network=FAST_NETWORK,
    ).fit(images, texts, labels)
    assert model.report_["n_dropped_unlabelled"] == 3
    assert not {3, 7, 11} & (set(model.fit_rows_) | set(model.validation_rows_))


def test_config_rejects_bits_inside_hasher_params():
    with pytest.raises(ValueError, match="n_bits"):
        DDCMHConfig(hasher_params={"n_bits": 8})


def _train_script(run_dir, output, *extra):
    return [
        sys.executable,
        str(TESTS / "scripts" / "train_for_resume.py"),
        str(run_dir),
        str(output),
        str(TESTS),
        *extra,
    ]


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference.npz"
    subprocess.run(_train_script(tmp_path / "run-a", reference), check=True, capture_output=True)
    interrupted_dir = tmp_path / "run-b"
    process = subprocess.Popen(
        _train_script(interrupted_dir, tmp_path / "unused.npz", "slow"),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # kill in the middle of Stage 2, after some checkpoints
        if "[stage 2" in line and "epoch 3/" in line:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(interrupted_dir.glob("stage2-*.ckpt")) and not list(interrupted_dir.glob("stage3-*.ckpt"))
    resumed = tmp_path / "resumed.npz"
    result = subprocess.run(
        _train_script(interrupted_dir, resumed), check=True, capture_output=True, text=True
    )
    assert "resumed after epoch" in result.stdout
    first, second = np.load(reference), np.load(resumed)
    assert np.array_equal(first["image_codes"], second["image_codes"])
    assert np.array_equal(first["text_codes"], second["text_codes"])


def test_torchrun_two_processes_match_single_process_quality(tmp_path):
    single = tmp_path / "single.npz"
    subprocess.run(_train_script(tmp_path / "single", single), check=True, capture_output=True)
    distributed = tmp_path / "ddp.npz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            *(_train_script(tmp_path / "ddp", distributed)[1:]),
        ],
        capture_output=True,
        text=True,
        # Loopback only (gloo would otherwise pick the interface of the host name), one thread per
        # process; the timeout turns a hung rendezvous into a failure instead of a stuck suite.
        env={**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    single_scores, ddp_scores = np.load(single)["validation"], np.load(distributed)["validation"]
    assert np.all(ddp_scores > single_scores - 0.05), (single_scores, ddp_scores)
    assert np.all(ddp_scores > 0.7)


def test_refit_trains_again_on_all_rows_for_the_chosen_epochs():
    images, texts, labels = two_view_data(n_samples=200)
    model = DDCMH(
        hasher="itq",
        n_bits=8,
        refit=True,
        image_training=FAST_TRAINING,
        text_training=FAST_TRAINING,
        image_network=FAST_NETWORK,
        text_network=FAST_NETWORK,
    ).fit(images, texts, labels)
    selection = model.report_["selection"]
    assert model.report_["refit"] is True and len(model.fit_rows_) == 200
    assert model.report_["n_validation"] == 0 and selection["n_validation"] == 20
    assert model.image_training_.epochs_run == selection["stage2_best_epoch"]
    assert model.text_training_.epochs_run == selection["stage3_best_epoch"]
    assert model.report_["validation_map"] == selection["validation_map"]


def test_auto_lift_candidates_follow_the_view():
    from ddcmh_core.engine.sources import as_source
    from ddcmh_core.methods.ddcmh import lift_candidates

    images, texts, _ = two_view_data(n_samples=50)
    auto = NetworkConfig()
    assert auto.kernel_lift == "auto"
    dense = [c.kernel_lift for c in lift_candidates(auto, as_source(images), has_validation=True)]
    assert dense == ["none", "rbf"]
    assert [c.kernel_lift for c in lift_candidates(auto, as_source(texts), has_validation=True)] == ["none"]
    unsplit = lift_candidates(auto, as_source(images), has_validation=False)
    assert [c.kernel_lift for c in unsplit] == ["none"]
    narrow = NetworkConfig(auto_lift_max_features=10)
    narrow_candidates = lift_candidates(narrow, as_source(images), has_validation=True)
    assert [c.kernel_lift for c in narrow_candidates] == ["none"]
    fixed = NetworkConfig(kernel_lift="rbf")
    assert lift_candidates(fixed, as_source(texts), has_validation=True) == [fixed]


def test_auto_lift_keeps_the_input_with_the_better_validation_score(tmp_path):
    images, texts, labels = two_view_data(n_samples=200)
    lines: list[str] = []
    model = DDCMH(
        hasher="itq", n_bits=8, refit=False, image_network=FAST_NETWORK, text_network=FAST_NETWORK,
        image_training=FAST_TRAINING, text_training=FAST_TRAINING,
    ).fit(images, texts, labels, run_dir=tmp_path / "run", progress=lines.append)  # fmt: skip
    choice = model.report_["input_lift"]
    assert set(choice) == {"image"}  # the sparse text view is not lifted
    scores = choice["image"]["validation"]
    assert set(scores) == {"none", "rbf"}
    assert choice["image"]["chosen"] == max(scores, key=lambda name: scores[name])
    assert model.image_training_.best_score == max(scores.values())
    assert hasattr(model.image_network_, "lift_anchors") == (choice["image"]["chosen"] == "rbf")
    assert any("input lift of the image network" in line for line in lines)
    # Each candidate has its own checkpoint (named by its settings), and the model file reloads.
    assert len(list((tmp_path / "run").glob("stage2-*.ckpt"))) == 2
    loaded = DDCMH.load(model.save(tmp_path / "auto.h5"))
    np.testing.assert_array_equal(loaded.encode_image(images), model.encode_image(images))
    with pytest.raises(ValueError, match="kernel_lift='auto' is decided by the method"):
        build_network(NetworkConfig(), 8, 24)
