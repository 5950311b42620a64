"""Resume that is safe: run fingerprints, --restart, and ddcmh-bench resumed at every point of a cell."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bench_results import first_difference, read_results

from ddcmh_core.bench import runner as runner_module
from ddcmh_core.bench.config import BenchConfig
from ddcmh_core.bench.plan import Cell, cell_fingerprint
from ddcmh_core.cli.bench import main as bench_main
from ddcmh_core.cli.main import main as ddcmh_main
from ddcmh_core.engine.config import NetworkConfig, TrainingConfig
from ddcmh_core.engine.fingerprint import (
    MAX_LISTED_DIFFERENCES,
    RunMismatchError,
    check_fingerprint,
    fingerprint_differences,
    prepare_run_folder,
    run_fingerprint,
)
from ddcmh_core.engine.sources import ArraySource
from ddcmh_core.engine.trainer import train_hash_network
from ddcmh_core.methods import ddcmh as ddcmh_module
from ddcmh_core.methods.ddcmh import DDCMH, stage_keys
from ddcmh_core.plugins import hasher_registry
from ddcmh_core.testing import make_bow_data

TRAIN_CONFIG = """
image_network = { hidden_sizes = [32] }
text_network = { hidden_sizes = [32] }
image_training = { max_epochs = 2, batch_size = 64 }
text_training = { max_epochs = 2, batch_size = 64 }
"""


# ---------------------------------------------------------------------- the fingerprint itself
def test_the_fingerprint_holds_settings_data_split_and_versions_not_the_device():
    fingerprint = run_fingerprint(
        "ddcmh",
        {"hasher": "itq", "n_bits": 16, "device": "cuda", "image_training": {"max_epochs": 5}},
        data="d1",
    )
    assert fingerprint["method"] == "ddcmh" and fingerprint["data"] == "d1"
    assert fingerprint["config.hasher"] == "itq" and fingerprint["config.image_training.max_epochs"] == 5
    assert {"versions.ddcmh", "versions.torch", "versions.numpy"} <= set(fingerprint)
    assert not any("device" in key for key in fingerprint)
    on_cpu = run_fingerprint(
        "ddcmh",
        {"hasher": "itq", "n_bits": 16, "device": "cpu", "image_training": {"max_epochs": 5}},
        data="d1",
    )
    assert fingerprint == on_cpu


def test_differences_list_every_field_old_and_new():
    old = run_fingerprint("ddcmh", {"hasher": "itq", "n_bits": 16, "seed": 0}, data="a")
    new = run_fingerprint("ddcmh", {"hasher": "lsh", "n_bits": 16, "seed": 3}, data="b")
    assert fingerprint_differences(old, new) == [
        'config.hasher: "itq" → "lsh"',
        "config.seed: 0 → 3",
        'data: "a" → "b"',
    ]
    assert fingerprint_differences(old, old) == []
    assert "older version" in fingerprint_differences(None, new)[0]
    with pytest.raises(
        RunMismatchError, match=r"(?s)the thing belongs to another run.*config.seed: 0 → 3.*do this"
    ):
        check_fingerprint(old, new, what="the thing", advice="do this")
    many = run_fingerprint("ddcmh", {f"setting_{index:02d}": index for index in range(30)}, data="a")
    with pytest.raises(RunMismatchError) as refused:
        check_fingerprint(old, many, what="the thing", advice="do this")
    listed = str(refused.value).splitlines()
    assert len(listed) == 1 + MAX_LISTED_DIFFERENCES + 2  # the head, the fields, the count, the advice
    assert listed[-2] == f"  ... and {33 - MAX_LISTED_DIFFERENCES} more" and listed[-1] == "do this"


def test_restart_refuses_a_folder_with_foreign_files_and_keeps_them(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    fingerprint = run_fingerprint("ddcmh", {"n_bits": 8}, data="x")
    with pytest.raises(Exception, match=r"notes.txt.*--restart will not delete it"):
        prepare_run_folder(folder, fingerprint, resume=False, restart=True, advice="")
    assert (folder / "notes.txt").read_text() == "mine"


def _cell_fingerprint(model=None, hasher_options=None, method="ddcmh", hasher="cosdish"):
    config = BenchConfig(
        hashers=["cosdish"], model=model or {}, hasher_options=hasher_options or {}, bits=[16]
    )
    dataset = SimpleNamespace(
        fingerprint=SimpleNamespace(sha256="d"), split=SimpleNamespace(checksum=lambda: "s")
    )
    return cell_fingerprint(config, Cell(method, hasher, 16, 0), dataset)


def test_a_bench_cell_fingerprint_holds_the_defaults_so_a_changed_default_is_not_reused():
    written = _cell_fingerprint()
    default_rate = TrainingConfig().learning_rate
    default_balance = hasher_registry().create("cosdish").params.balance
    # every setting is there, the library's defaults and the hasher's included ...
    assert written["config.image_training.learning_rate"] == default_rate
    assert written["config.image_network.crop_min_area"] == NetworkConfig().crop_min_area
    assert written["config.hasher_params.balance"] == default_balance
    # ... so writing a default out changes nothing, and another value (or default) is a difference
    assert _cell_fingerprint(model={"image_training": {"learning_rate": default_rate}}) == written
    assert _cell_fingerprint(hasher_options={"cosdish": {"balance": default_balance}}) == written
    assert fingerprint_differences(
        written, _cell_fingerprint(model={"image_training": {"learning_rate": default_rate * 2}})
    ) == [f"config.image_training.learning_rate: {default_rate} → {default_rate * 2}"]
    assert fingerprint_differences(
        written, _cell_fingerprint(hasher_options={"cosdish": {"balance": not default_balance}})
    ) == [f"config.hasher_params.balance: {json.dumps(default_balance)} → {json.dumps(not default_balance)}"]
    # another method's settings are resolved by its own parameters
    dcmh = _cell_fingerprint(method="dcmh", hasher=None)
    assert dcmh["config.n_bits"] == 16 and len([key for key in dcmh if key.startswith("config.")]) > 5


def test_ddcmh_stage_keys_hold_the_hasher_defaults():
    plain = stage_keys(DDCMH.make_params(hasher="itq", n_bits=16))
    default_iterations = hasher_registry().create("itq").params.n_iter
    spelt_out = stage_keys(
        DDCMH.make_params(hasher="itq", n_bits=16, hasher_params={"n_iter": default_iterations})
    )
    other = stage_keys(
        DDCMH.make_params(hasher="itq", n_bits=16, hasher_params={"n_iter": default_iterations + 1})
    )
    assert spelt_out == plain
    assert other["stage1"] != plain["stage1"] and other["stage3"] != plain["stage3"]


# ---------------------------------------------------------------------- checkpoints (Python API)
def _train(path: Path, fingerprint: dict, *, resume: bool, epochs: int = 2):
    rng = np.random.default_rng(0)
    features = rng.standard_normal((40, 5)).astype(np.float32)
    targets = (rng.random((40, 3)) > 0.5).astype(np.float32)
    torch.manual_seed(0)
    network = torch.nn.Linear(5, 3)
    config = TrainingConfig(max_epochs=epochs, batch_size=8)
    return train_hash_network(
        network,
        ArraySource(features),
        targets,
        np.arange(40),
        config,
        checkpoint_path=path,
        resume=resume,
        fingerprint=fingerprint,
    )


def test_a_checkpoint_resumes_only_the_run_that_wrote_it(tmp_path):
    path = tmp_path / "net.ckpt"
    first = run_fingerprint("test", {"learning_rate": 0.1}, data="d")
    _train(path, first, resume=False)
    assert torch.load(path, weights_only=True)["fingerprint"] == first
    assert _train(path, first, resume=True, epochs=3).epochs_run == 1  # resumed after epoch 2
    other = run_fingerprint("test", {"learning_rate": 0.2}, data="d")
    with pytest.raises(
        RunMismatchError, match=r"(?s)net.ckpt belongs to another run.*learning_rate: 0.1 → 0.2"
    ):
        _train(path, other, resume=True, epochs=3)


def _views(seed: int = 3):
    texts, labels = make_bow_data(n_samples=160, n_features=30, n_classes=4, seed=seed)
    rng = np.random.default_rng(seed)
    images = labels @ rng.standard_normal((4, 12)) * 2 + rng.standard_normal((160, 12))
    return images, texts.toarray(), labels


def test_ddcmh_stage_files_refuse_other_data_on_resume(tmp_path):
    settings = {
        "hasher": "lsh",
        "n_bits": 8,
        "refit": False,
        "image_training": {"max_epochs": 1},
        "text_training": {"max_epochs": 1},
    }
    DDCMH(**settings).fit(*_views(), run_dir=tmp_path / "run")
    DDCMH(**settings).fit(*_views(), run_dir=tmp_path / "run", resume=True)  # the same run: fine
    images, texts, labels = _views()
    with pytest.raises(RunMismatchError, match=r"(?s)stage1-.*belongs to another run.*\n  data: "):
        DDCMH(**settings).fit(images, texts * 2, labels, run_dir=tmp_path / "run", resume=True)


# ---------------------------------------------------------------------- ddcmh train --resume / --restart
@pytest.fixture
def trained(tiny_dataset, tmp_path, capsys):
    data, _ = tiny_dataset
    config = tmp_path / "train.toml"
    config.write_text(TRAIN_CONFIG)
    model = tmp_path / "R.h5"
    base = ["train", "--dataset", str(data), "--config", str(config), "--bits", "16", "--model", str(model)]
    assert ddcmh_main(base) == 0
    capsys.readouterr()
    return base, model


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        (["--hasher", "lsh"], 'config.hasher: "itq" → "lsh"'),
        (["--seed", "3"], "config.seed: 0 → 3"),
        (["--bits", "32"], "config.n_bits: 16 → 32"),
    ],
    ids=["hasher", "seed", "bits"],
)
def test_train_resume_with_other_settings_exits_2_listing_them(trained, capsys, change, difference):
    base, model = trained
    saved = (model.parent / "R.h5.run" / "run.json").read_text()
    arguments = [*base, *change, "--resume"]
    status = ddcmh_main(arguments)
    err = capsys.readouterr().err
    assert status == 2
    assert "ddcmh train: error: the run folder" in err and "belongs to another run" in err
    assert f"  {difference}\n" in err
    assert "--restart" in err and "--model" in err
    assert (model.parent / "R.h5.run" / "run.json").read_text() == saved  # nothing touched


def test_train_resume_of_the_same_run_and_restart(trained, capsys):
    base, model = trained
    assert ddcmh_main([*base, "--resume"]) == 0
    assert "resumed after epoch" in capsys.readouterr().err
    assert ddcmh_main([*base, "--hasher", "lsh", "--restart"]) == 0
    stored = json.loads((model.parent / "R.h5.run" / "run.json").read_text())["fingerprint"]
    assert stored["config.hasher"] == "lsh"
    assert not list((model.parent / "R.h5.run").glob("stage1-*itq*"))
    assert DDCMH.load(model).params.hasher == "lsh"


def test_train_restart_refused_by_the_settings_check_keeps_the_old_run_folder(trained, capsys):
    base, model = trained
    run_folder = model.parent / "R.h5.run"
    before = sorted(path.name for path in run_folder.iterdir())
    status = ddcmh_main([*base, "--hasher", "nosuch", "--restart"])
    err = capsys.readouterr().err
    assert status == 2 and "cannot fit" in err and "nosuch" in err
    assert sorted(path.name for path in run_folder.iterdir()) == before  # nothing discarded


# ---------------------------------------------------------------------- ddcmh-bench --restart
def _bench(capsys, *arguments):
    status = bench_main([str(argument) for argument in arguments])
    return status, capsys.readouterr().err


def test_bench_rerun_with_other_model_settings_exits_2_then_restart_recomputes(
    tiny_dataset, tmp_path, capsys
):
    data, config = tiny_dataset
    out = tmp_path / "out"
    arguments = ["--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8", "--out", out]
    assert _bench(capsys, *arguments)[0] == 0
    config.write_text(config.read_text().replace("max_epochs = 3", "max_epochs = 2"))
    status, err = _bench(capsys, *arguments)
    assert status == 2
    assert "belongs to another run" in err
    assert "config.image_training.max_epochs: 3 → 2" in err and "--restart" in err and "--out" in err
    status, err = _bench(capsys, *arguments, "--restart")
    assert status == 0 and "discarded the saved state of 1 cell(s)" in err and "reused from" in err
    cell = json.loads((out / "cells" / "ddcmh-lsh-8bits-seed0.json").read_text())
    assert cell["fingerprint"]["config.image_training.max_epochs"] == 2
    stored = json.loads((out / "checkpoints" / "ddcmh-lsh-8bits-seed0" / "run.json").read_text())
    assert stored["fingerprint"]["config.image_training.max_epochs"] == 2


def test_bench_header_shows_the_held_out_count_and_no_eta_before_an_estimate(tiny_dataset, tmp_path, capsys):
    data, config = tiny_dataset
    arguments = [
        "--dataset",
        data,
        "--config",
        config,
        "--hasher",
        "lsh",
        "--bits",
        "8,16",
        "--out",
        tmp_path / "o",
    ]
    status, err = _bench(capsys, *arguments)
    assert status == 0
    assert "'validation'" not in err
    n_train = json.loads((tmp_path / "o" / "results.json").read_text())["dataset"]["split"]["train"]
    assert f"validation: {round(0.1 * n_train)} by DDCMH (held out of the {n_train} training pairs)" in err
    starts = [line for line in err.splitlines() if "] started;" in line]
    assert "ETA" not in starts[0] and "ETA" not in starts[1]  # random codes, then the first DDCMH cell
    assert "ETA" in starts[2] and "ETA 0m00s" not in starts[1]


# ---------------------------------------------------------------------- bench resume at every point of a cell
@pytest.fixture
def bench_case(tiny_dataset, tmp_path, capsys):
    data, config = tiny_dataset
    base = ["--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8"]
    reference = tmp_path / "reference"
    assert _bench(capsys, *base, "--out", reference)[0] == 0
    return base, read_results(reference)


class _Interrupt:
    """Raise KeyboardInterrupt once, at a chosen point of the first DDCMH cell.

    ``"stage 1 done"`` is right after the selection fit's Stage-1 files are written, ``"refit stage 1
    done"`` after the refit's (whose hasher the cell's Stage-1 scores use); other points are the
    first progress line containing them.
    """

    def __init__(self, monkeypatch, point: str) -> None:
        self.fired = False
        saves = {"stage 1 done": 1, "refit stage 1 done": 2}.get(point)
        if saves is not None:
            original = ddcmh_module.save_stage_arrays
            calls = []

            def save_then_stop(*arguments, **options):
                original(*arguments, **options)
                calls.append(arguments[0])
                if len(calls) == saves:
                    self.fire()

            monkeypatch.setattr(ddcmh_module, "save_stage_arrays", save_then_stop)
        made = runner_module.stderr_progress

        def progress(prefix: str = ""):
            say = made(prefix)

            def checked(line: str) -> None:
                say(line)
                if saves is None and point in line:
                    self.fire()

            return checked

        monkeypatch.setattr(runner_module, "stderr_progress", progress)

    def fire(self) -> None:
        if not self.fired:
            self.fired = True
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    "point", ["stage 1 done", "[stage 2 image net", "[stage 3 text net", "[refit]", "refit stage 1 done"]
)
def test_bench_resumes_a_cell_interrupted_at_any_point(bench_case, tmp_path, capsys, monkeypatch, point):
    base, reference = bench_case
    out = tmp_path / "out"
    interrupt = _Interrupt(monkeypatch, point)
    status, _ = _bench(capsys, *base, "--out", out)
    assert interrupt.fired and status == 130
    assert not (out / "cells" / "ddcmh-lsh-8bits-seed0.json").exists()
    status, err = _bench(capsys, *base, "--out", out)
    assert status == 0, err
    assert "reused codes from" in err or point == "[refit]"
    assert first_difference(read_results(out), reference) is None
    resumed = json.loads((out / "results.json").read_text())["resumed_cells"]
    assert resumed["cells"] == 1 and resumed["earlier_seconds"] > 0  # the interrupted process's time


def test_bench_resumes_after_a_real_sigint_during_stage_2(bench_case, tmp_path):
    base, reference = bench_case
    out = tmp_path / "out"
    command = [sys.executable, "-c", "import sys; from ddcmh_core.cli.bench import main; sys.exit(main())"]
    command += [str(argument) for argument in [*base, "--out", out]]
    # A shell without job control starts background jobs with SIGINT ignored, and Python then keeps
    # ignoring it: give the child the default disposition, as an interactive terminal would.
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "[stage 2 image net" in line:
            process.send_signal(signal.SIGINT)
            break
    seen += process.stderr.readlines()
    assert process.wait(timeout=300) == 130, "".join(seen)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "reused codes from" in resumed.stderr
    assert first_difference(read_results(out), reference) is None
