"""ddcmh-bench end to end on a small generic dataset: outputs, caching, interruption, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ddcmh_core.bench import plan
from ddcmh_core.bench import runner as runner_module
from ddcmh_core.cli.bench import build_parser, main, resolve_config


def _run(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_defaults_are_the_papers_two_hashers_on_the_embedded_dataset():
    config = resolve_config(build_parser().parse_args([]))
    assert config.hashers == ["itq", "cosdish"]
    assert config.bits == [16, 32, 64]
    assert config.dataset == "uci-mfeat" and config.seeds == 1
    quick = resolve_config(build_parser().parse_args(["--quick"]))
    assert quick.bits == [16, 32] and quick.quick


def test_flags_hasher_lists_options_and_config_files(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('hashers = ["sdh"]\nbits = [8]\n[hasher_options.sdh]\nn_anchors = 50\n')
    parsed = build_parser().parse_args(
        [
            "--config",
            str(toml),
            "--hasher",
            "itq,lsh",
            "--hasher",
            "pcah",
            "--hasher-opt",
            "itq:n_iter=5",
            "--hasher-opt",
            "seed=3",
            "--bits",
            "16,8",
        ]
    )
    config = resolve_config(parsed)
    assert config.hashers == ["itq", "lsh", "pcah"]
    assert config.bits == [8, 16]
    assert config.hasher_options == {"sdh": {"n_anchors": 50}, "itq": {"n_iter": 5}, "*": {"seed": 3}}
    every = resolve_config(build_parser().parse_args(["--hasher", "all"]))
    assert {"itq", "sdh", "ksh", "cosdish", "lsh"} <= set(every.hashers)


def test_a_full_run_writes_results_plots_and_resumes_from_cache(tiny_dataset, tmp_path, capsys):
    data, config = tiny_dataset
    out = tmp_path / "out"
    arguments = ["--dataset", data, "--config", config, "--hasher", "lsh,itq", "--bits", "8,16", "--out", out]
    status, stdout, stderr = _run(capsys, *arguments)
    assert status == 0, stderr
    assert "Image query → text database" in stdout and "random codes (floor)" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1 and results["complete"] is True
    assert results["dataset"]["split"]["checksum"] and (out / "split.h5").exists()
    assert {"ddcmh", "torch", "numpy"} <= set(results["versions"])
    record_keys = {"method", "hasher", "bits", "task", "metric", "tie_policy", "value", "std", "seeds"}
    assert all(record_keys <= set(record) for record in results["records"])
    methods = {(r["method"], r["hasher"]) for r in results["records"]}
    assert {("ddcmh", "lsh"), ("ddcmh", "itq"), ("random", None), ("stage1", "itq")} <= methods
    metrics = {r["metric"] for r in results["records"] if r["method"] == "ddcmh"}
    assert {"map@all", "map@50", "p@10", "precision@radius2"} <= metrics
    policies = {r["tie_policy"] for r in results["records"] if r["metric"] == "map@all"}
    assert policies == {"expected", "index"}
    floor = [r for r in results["records"] if r["method"] == "random"]
    ddcmh = [
        r
        for r in results["records"]
        if r["method"] == "ddcmh"
        and r["metric"] == "map@all"
        and r["tie_policy"] == "expected"
        and r["hasher"] == "itq"
        and r["task"] != "text->text"
    ]
    assert min(r["value"] for r in ddcmh) > max(r["value"] for r in floor)
    for image in ("map_vs_bits.png", "pr_curves.png", "precision_at_n.png"):
        assert (out / image).stat().st_size > 1000
    assert (out / "results.md").read_text().strip() in stdout
    assert "stage 2 image net" in stderr and "epoch" in stderr and "ETA" in stderr
    split = results["dataset"]["split"]
    encoding = f"encoding the {split['query']} queries and {split['database']} database items of both views"
    assert stderr.count(encoding) == 4  # each trained cell says so before its encoding
    assert results["threads"] == {str(torch.get_num_threads()): 4}  # the trained cells' thread count
    assert f"Threads per process: {torch.get_num_threads()}." in stdout
    status, _, stderr = _run(capsys, *arguments)
    assert status == 0
    assert stderr.count("reused from") == 6  # 2 bit lengths x (random + 2 hashers)
    assert "thread(s), this run uses" not in stderr
    assert results["command"].startswith("ddcmh-bench --dataset ")
    assert "--hasher lsh,itq" in results["command"]
    # The same data in another folder: its content fingerprint is the same, so the cells are reused.
    moved = tmp_path / "elsewhere" / data.name
    moved.parent.mkdir()
    data.rename(moved)
    status, _, stderr = _run(capsys, *[moved if argument == data else argument for argument in arguments])
    assert status == 0 and stderr.count("reused from") == 6


def test_ctrl_c_leaves_valid_partial_results(tiny_dataset, tmp_path, capsys, monkeypatch):
    data, config = tiny_dataset
    original = runner_module.BenchRun._run_cell
    calls = []

    def interrupt_second(self, cell, prefix):
        calls.append(cell)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, cell, prefix)

    monkeypatch.setattr(runner_module.BenchRun, "_run_cell", interrupt_second)
    out = tmp_path / "out"
    status, stdout, _ = _run(
        capsys, "--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8", "--out", out
    )
    assert status == 130
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is False
    assert {r["method"] for r in results["records"]} == {"random"}
    assert "Partial results" in stdout


def test_a_resumed_cell_counts_the_seconds_of_the_interrupted_process(tiny_dataset, tmp_path, capsys):
    data, config = tiny_dataset
    out = tmp_path / "out"
    arguments = ["--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8", "--out", out]
    status, stdout, stderr = _run(capsys, *arguments)
    assert status == 0, stderr
    assert not list(out.glob("checkpoints/*/seconds-*.json"))  # a finished cell forgets its ledger
    assert "resumed from checkpoints" not in stdout
    # A process killed while training the cell: its result is missing, its ledger holds 1000 s.
    (out / "cells" / "ddcmh-lsh-8bits-seed0.json").unlink()
    ledger = out / "checkpoints" / "ddcmh-lsh-8bits-seed0" / "seconds-ddcmh-lsh-8bits-seed0.json"
    ledger.write_text(json.dumps({"seconds": 1000.0}))
    status, stdout, stderr = _run(capsys, *arguments)
    assert status == 0, stderr
    seconds = json.loads((out / "cells" / "ddcmh-lsh-8bits-seed0.json").read_text())["seconds"]
    assert seconds["earlier_processes"] == 1000.0
    assert 1000.0 < seconds["fit"] < seconds["total"] < 1000.0 + 600
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_cells"] == {"cells": 1, "earlier_seconds": 1000.0}
    fit = [row for row in results["fit_seconds"] if row["method"] == "ddcmh"]
    assert fit and all(row["mean"] > 1000.0 for row in fit)
    assert "1 cell resumed from checkpoints after an interruption" in stdout
    assert "include the 1000 s spent before the interruption." in stdout
    assert not ledger.exists()


def test_the_eta_leaves_out_cells_that_will_be_reused(tiny_dataset, tmp_path, capsys, monkeypatch):
    cells = [plan.Cell("ddcmh", "lsh", 8, seed) for seed in range(2)] + [plan.Cell("random", None, 8, 0)]
    assert runner_module.BenchRun._eta(cells, {"ddcmh": [50.0, 70.0]}) == " | ETA 2m00s"
    assert runner_module.BenchRun._eta(cells, {}) == ""  # no DDCMH cell finished yet: no guess
    # A rerun whose seed-2 cell was computed by an earlier process: the ETA never counts it.
    data, config = tiny_dataset
    out = tmp_path / "out"
    arguments = ["--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8", "--seeds", "3"]
    assert _run(capsys, *arguments, "--out", out)[0] == 0
    for seed in (0, 1):
        (out / "cells" / f"ddcmh-lsh-8bits-seed{seed}.json").unlink()
    estimated: list[list[str]] = []
    eta = runner_module.BenchRun._eta

    def recording_eta(remaining, durations):
        estimated.append([cell.key for cell in remaining])
        return eta(remaining, durations)

    monkeypatch.setattr(runner_module.BenchRun, "_eta", staticmethod(recording_eta))
    assert _run(capsys, *arguments, "--out", out)[0] == 0
    assert estimated == [["ddcmh-lsh-8bits-seed0", "ddcmh-lsh-8bits-seed1"], ["ddcmh-lsh-8bits-seed1"]]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--hasher", "itqq"], "unknown hasher 'itqq'. Installed hashers:"),
        (["--hasher", "itq", "--hasher-opt", "itq:no_such=1"], "argument 'no_such': unknown hyper-parameter"),
        (["--hasher-opt", "justtext"], "expected [HASHER:]KEY=VALUE"),
        (["--bits", "8,x"], "expected integers like 16,32,64"),
        (["--bits", "0"], "bit length 0 is outside 1..4096"),
        (["--dataset", "no-such-dataset"], "unknown dataset 'no-such-dataset'"),
        (["--config", "missing.toml"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_a_message(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, stderr = _run(capsys, *arguments)
    assert status == 2
    assert message in stderr
    assert not (tmp_path / "ddcmh-results").exists()


def test_bad_config_file_and_unwritable_output(tiny_dataset, tmp_path, capsys):
    data, _ = tiny_dataset
    bad = tmp_path / "bad.toml"
    bad.write_text("bits = 'many'\nunknown_key = 1\n")
    status, _, stderr = _run(capsys, "--config", bad)
    assert status == 2 and "bits" in stderr and "unknown_key" in stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("bits = [16,\n")
    status, _, stderr = _run(capsys, "--config", broken)
    assert status == 2 and "is not valid TOML" in stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, _, stderr = _run(capsys, "--dataset", data, "--hasher", "lsh", "--out", blocker)
    assert status == 2 and "exists and is not a folder" in stderr


def test_dataset_with_missing_files_names_them_and_the_sources(tmp_path, capsys):
    status, _, stderr = _run(capsys, "--dataset", "nus-wide", "--data-dir", tmp_path)
    assert status == 2
    assert "nus-wide" in stderr.lower() and "http" in stderr
    assert list(tmp_path.iterdir()) == []


def test_parser_documents_every_flag_of_the_issue():
    text = build_parser().format_help()
    for flag in (
        "--hasher",
        "--hasher-opt",
        "--bits",
        "--dataset",
        "--data-dir",
        "--seeds",
        "--device",
        "--config",
        "--out",
        "--restart",
        "--quick",
        "--baseline",
        "--list-hashers",
        "--list-plugins",
        "--json",
        "--version",
        "--new-plugin",
    ):
        assert flag in text


def test_model_settings_are_validated_before_work(tmp_path, capsys, tiny_dataset):
    data, _ = tiny_dataset
    config = tmp_path / "model.toml"
    config.write_text(
        textwrap.dedent("""
        [model]
        image_training = { max_epochs = 0 }
    """)
    )
    status, _, stderr = _run(capsys, "--dataset", data, "--config", config, "--hasher", "lsh")
    assert status == 2 and "max_epochs" in stderr


def test_jobs_run_cells_in_worker_processes_with_the_same_results(tiny_dataset, tmp_path, capfd):
    data, config = tiny_dataset
    common = ["--dataset", data, "--config", config, "--hasher", "lsh,itq", "--bits", "8", "--threads", "1"]
    status, _, _ = _run(capfd, *common, "--out", tmp_path / "one")
    assert status == 0
    # Resumed with another thread count: the cells are reused, and each says it ran with another.
    status, _, stderr = _run(capfd, *common, "--threads", "2", "--out", tmp_path / "one")
    assert status == 0 and stderr.count("reused from") == 3
    assert stderr.count("(computed with 1 thread(s), this run uses 2:") == 2  # not the random codes
    status, _, stderr = _run(capfd, *common, "--jobs", "2", "--out", tmp_path / "two")  # workers write fd 2
    assert status == 0 and "--jobs 2: 3 groups of cells in 2 processes, 1 thread(s) each" in stderr
    assert "[worker]" in stderr and stderr.count("reused from") == 3  # the parent aggregates
    assert "[groups 3/3 finished | 2/2 trained cells]" in stderr  # overall progress in the parent
    one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    assert one["threads"] == two["threads"] == {"1": 2}  # what the trained cells ran with
    fields = ("method", "hasher", "bits", "task", "metric", "tie_policy", "value")
    rows = [sorted(tuple(str(record[f]) for f in fields) for record in run["records"]) for run in (one, two)]
    assert rows[0] == rows[1]


def test_threads_are_the_usable_cores_shared_between_jobs(monkeypatch):
    from ddcmh_core import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.threads_per_job(1) == 8 and threads.threads_per_job(3) == 2
    assert threads.threads_per_job(16) == 1 and threads.threads_per_job(2, threads=5) == 5


@pytest.mark.parametrize(("chosen", "expected"), [(None, "PASSIVE"), ("active", "active")])
def test_openmp_threads_sleep_while_waiting_unless_the_user_chose(chosen, expected):
    """OpenMP reads OMP_WAIT_POLICY when torch loads it: importing ddcmh_core must set it first."""
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if chosen is not None:
        environment["OMP_WAIT_POLICY"] = chosen
    probe = (
        "import sys, os, ddcmh_core; assert 'torch' not in sys.modules; import torch; "
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_dry_run_prints_the_plan_and_an_estimate_and_writes_nothing(tiny_dataset, tmp_path, capsys):
    data, config = tiny_dataset
    out = tmp_path / "never"
    status, stdout, stderr = _run(
        capsys, "--dataset", data, "--config", config, "--hasher", "lsh", "--bits", "8,16", "--seeds", "2",
        "--dry-run", "--out", out,
    )  # fmt: skip
    assert status == 0, stderr
    assert "Plan for tiny: 8 cells (random-code floors included)" in stdout
    assert re.search(r"\| ddcmh \+ lsh \| 4 \| \d+ \| \d+ \|", stdout)
    assert "Estimated compute:" in stdout and "peak resident size so far" in stdout
    assert "[1/1] calibrated ddcmh + lsh: about " in stderr and not out.exists()
    assert "each training loop timed on its first 2 epochs" in stdout


@pytest.fixture
def narrow_text(tmp_path):
    """A dataset whose text view has 6 features: ITQ cannot give 8 bits from it without a lift."""
    rng = np.random.default_rng(0)
    labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, 150)]
    images = labels @ rng.standard_normal((3, 12)) + 0.3 * rng.standard_normal((150, 12))
    texts = labels @ rng.standard_normal((3, 6)) + 0.3 * rng.standard_normal((150, 6))
    path = tmp_path / "narrow.npz"
    np.savez(path, image=images, text=texts, labels=labels)
    return path


def test_a_pca_like_hasher_on_narrow_text_is_lifted_and_says_so(narrow_text, tmp_path, capsys):
    arguments = [
        "--dataset",
        narrow_text,
        "--hasher",
        "itq,lsh",
        "--bits",
        "8",
        "--dry-run",
        "--no-calibration",
    ]
    status, _, stderr = _run(capsys, *arguments)
    assert status == 0, stderr
    assert "itq: the text view has 6 features, fewer than 8 bits, so this hasher reads anchor RBF" in stderr
    assert "lsh: the text view" not in stderr  # LSH draws as many directions as asked
    from ddcmh_core.data import load_dataset

    config = resolve_config(build_parser().parse_args([str(a) for a in arguments]))
    lifted, lines = plan.lift_hashers_for_narrow_text(config, load_dataset(str(narrow_text)))
    assert lifted.hasher_options == {"itq": {"kernel_lift": "rbf"}} and len(lines) == 1
    model = plan.model_config_for(lifted, plan.Cell("ddcmh", "itq", 8, 0))
    assert model["hasher_params"] == {"kernel_lift": "rbf"}  # in the cell's config, so in its fingerprint


def test_a_refused_lift_is_a_plan_problem_before_work(narrow_text, tmp_path, capsys):
    out = tmp_path / "run"
    status, _, stderr = _run(
        capsys,
        "--dataset",
        narrow_text,
        "--hasher",
        "itq",
        "--bits",
        "8,16",
        "--hasher-opt",
        "itq:kernel_lift=none",
        "--out",
        out,
    )
    assert status == 2
    assert "the plan cannot run on narrow (2 problems)" in stderr
    assert "DDCMH + itq, 16 bits: hasher 'itq': 16 bits from a text view of 6 features" in stderr
    assert "--hasher-opt itq:kernel_lift=rbf" in stderr
    assert not out.exists()


def test_bounds_after_the_lift_and_of_anchored_hashers_are_plan_problems(narrow_text, tmp_path, capsys):
    """The lift gives 20 anchor features, so 32 bits of lifted ITQ cannot fit; KSH and SDH give at
    most one bit per anchor. All found before any cell trains."""
    out = tmp_path / "run"
    status, _, stderr = _run(
        capsys,
        "--dataset",
        narrow_text,
        "--hasher",
        "itq,ksh,sdh",
        "--bits",
        "16,32",
        "--hasher-opt",
        "itq:lift_anchors=20",
        "--hasher-opt",
        "ksh:n_anchors=24",
        "--hasher-opt",
        "sdh:n_anchors=24",
        "--out",
        out,
    )
    assert status == 2
    assert "the plan cannot run on narrow (3 problems)" in stderr
    lifted = "DDCMH + itq, 32 bits: hasher 'itq': rbf+itq: argument 'n_bits'"
    assert f"{lifted}: the kernel lift gives 20 features" in stderr
    assert "--hasher-opt itq:lift_anchors=N" in stderr
    for name in ("ksh", "sdh"):
        cell = f"DDCMH + {name}, 32 bits: hasher '{name}'"
        assert f"{cell}: {name}: argument 'n_bits': expected at most the number of anchors" in stderr
    assert "16 bits" not in stderr.split("problems)")[1]  # 16 bits fit every hasher
    assert not out.exists()


def test_mean_over_seeds_groups_metrics_keeps_stage1_apart_and_takes_curves_of_seed_0():
    def cell(seed, value, stage1_value):
        metric = {"metric": "map@all", "tie_policy": "expected"}
        return {
            "method": "ddcmh",
            "hasher": "itq",
            "bits": 16,
            "seed": seed,
            "tasks": {
                "image->text": {
                    "metrics": [{**metric, "value": value}],
                    "curves": {"precision_at_n": [seed]},
                }
            },
            "stage1": {"text->text": {"metrics": [{**metric, "value": stage1_value}]}},
        }

    records, curves = runner_module.mean_over_seeds([cell(1, 0.5, 0.7), cell(0, 0.3, 0.9)])
    by_method = {record["method"]: record for record in records}
    assert [record["method"] for record in records] == ["ddcmh", "stage1"]  # sorted
    ddcmh = by_method["ddcmh"]
    assert ddcmh["task"] == "image->text" and ddcmh["bits"] == 16 and ddcmh["hasher"] == "itq"
    assert ddcmh["value"] == pytest.approx(0.4) and ddcmh["std"] == pytest.approx(0.1)
    assert ddcmh["seeds"] == [1, 0] and ddcmh["per_seed"] == [0.5, 0.3]
    assert by_method["stage1"]["task"] == "text->text"
    assert by_method["stage1"]["value"] == pytest.approx(0.8)
    assert curves == {"ddcmh|itq|16|image->text": {"precision_at_n": [0]}}
