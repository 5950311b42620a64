"""The shared epoch loop (run_epochs) and its checkpoints, on a toy task."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ddcmh_core.engine.abandon import MedianStoppingRule, TrainingAbandoned, abandoning
from ddcmh_core.engine.checkpoint import CHECKPOINT_FORMAT_VERSION, CheckpointError, load_checkpoint
from ddcmh_core.engine.config import TrainingConfig
from ddcmh_core.engine.epoch_loop import EpochTask, Validation, run_epochs
from ddcmh_core.engine.epoch_sampling import EpochSampler, LoopTiming, active_sampler, sampling_epochs
from ddcmh_core.engine.sources import as_source
from ddcmh_core.engine.trainer import train_hash_network
from ddcmh_core.errors import InputError


class ToyTask(EpochTask):
    """A 'weight' that moves by a torch-random step each epoch; validation scores are scripted."""

    def __init__(self, scores: list[float] | None = None) -> None:
        self.weight = torch.zeros(3)
        self.scores = scores
        self.has_validation = scores is not None
        self.epoch = -1
        self.restored: dict[str, Any] | None = None

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        self.epoch = epoch
        self.weight += torch.rand(3)  # consumes the torch RNG, which a resume must restore
        return {"loss": float(self.weight.sum())}

    def validate(self) -> Validation | None:
        assert self.scores is not None
        return Validation(self.scores[self.epoch], {"epoch": self.epoch + 1})

    def best_state(self) -> dict[str, Any]:
        return {"weight": self.weight.clone()}

    def restore_best(self, state: dict[str, Any] | None) -> None:
        self.restored = state
        if state is not None:
            self.weight = state["weight"].clone()

    def checkpoint_state(self) -> dict[str, Any]:
        return {"weight": self.weight}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.weight = state["weight"].clone()

    def progress_fields(self, entry: dict[str, Any]) -> str:
        return f" loss {entry['loss']:.4f}"


def _without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in entry.items() if key != "seconds"} for entry in history]


def test_patience_stops_at_the_right_epoch_and_restores_the_best_state() -> None:
    task = ToyTask(scores=[0.1, 0.5, 0.4, 0.3, 0.9, 1.0])
    lines: list[str] = []
    result = run_epochs(task, max_epochs=6, patience=2, seed=0, progress=lines.append, label="toy")
    # Epoch 2 is the best; epochs 3 and 4 bring nothing, so patience 2 stops after epoch 4.
    assert result.epochs_run == 4 and [entry["epoch"] for entry in result.history] == [1, 2, 3, 4]
    assert (result.best_epoch, result.best_score, result.best_detail) == (2, 0.5, {"epoch": 2})
    weights_after_two = ToyTask()
    torch.manual_seed(0)
    for epoch in range(2):
        weights_after_two.run_epoch(epoch)
    assert task.restored is not None
    assert torch.equal(task.weight, weights_after_two.weight)
    assert [entry["validation"] for entry in result.history] == [0.1, 0.5, 0.4, 0.3]
    assert list(result.history[0]) == ["epoch", "loss", "validation", "seconds"]
    assert len(lines) == 4 and lines[0].startswith("[toy] epoch 1/6 loss ")
    assert "val MAP 0.4000 (best 0.5000 @ 2)" in lines[2]
    assert all("ETA" in line for line in lines[:3]) and "ETA" not in lines[3]


def test_without_validation_every_epoch_runs_and_the_last_is_kept() -> None:
    task = ToyTask()
    result = run_epochs(task, max_epochs=3, patience=1, seed=0)
    assert (result.epochs_run, result.best_epoch, result.best_score) == (3, 3, None)
    assert [entry["validation"] for entry in result.history] == [None, None, None]


def test_resume_continues_from_the_saved_epoch_as_the_whole_run(tmp_path: Path) -> None:
    scores = [0.1, 0.5, 0.4, 0.6, 0.2, 0.3]
    whole = ToyTask(scores)
    whole_result = run_epochs(whole, max_epochs=6, patience=3, seed=7)
    checkpoint = tmp_path / "run" / "toy.ckpt"
    checkpoint.parent.mkdir()
    first = run_epochs(ToyTask(scores), max_epochs=3, patience=3, seed=7, checkpoint_path=checkpoint)
    assert first.epochs_run == 3 and load_checkpoint(checkpoint)["epoch"] == 3
    resumed = ToyTask(scores)
    lines: list[str] = []
    result = run_epochs(
        resumed,
        max_epochs=6,
        patience=3,
        seed=7,
        checkpoint_path=checkpoint,
        resume=True,
        progress=lines.append,
        label="toy",
    )
    assert lines[0] == "[toy] resumed after epoch 3" and lines[1].startswith("[toy] epoch 4/6")
    assert result.epochs_run == 3  # epochs 4 to 6 in this call
    assert _without_seconds(result.history) == _without_seconds(whole_result.history)
    assert (result.best_epoch, result.best_score) == (whole_result.best_epoch, whole_result.best_score)
    assert (result.best_epoch, result.best_score) == (4, 0.6)
    assert torch.equal(resumed.weight, whole.weight)
    # Resuming a finished run trains nothing and keeps its best state.
    again = ToyTask(scores)
    finished = run_epochs(again, max_epochs=6, patience=3, seed=7, checkpoint_path=checkpoint, resume=True)
    assert finished.epochs_run == 0 and finished.best_epoch == 4 and torch.equal(again.weight, whole.weight)


def test_a_checkpoint_of_another_format_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run" / "toy.ckpt"
    checkpoint.parent.mkdir()
    torch.save({"format_version": CHECKPOINT_FORMAT_VERSION - 1, "epoch": 1}, checkpoint)
    with pytest.raises(CheckpointError, match="delete the run folder") as raised:
        run_epochs(ToyTask(), max_epochs=2, patience=1, seed=0, checkpoint_path=checkpoint, resume=True)
    assert str(checkpoint) in str(raised.value)
    assert f"format version {CHECKPOINT_FORMAT_VERSION - 1}, expected {CHECKPOINT_FORMAT_VERSION}" in str(
        raised.value
    )
    assert isinstance(raised.value, InputError)
    # Without resume the old file is simply overwritten.
    run_epochs(ToyTask(), max_epochs=1, patience=1, seed=0, checkpoint_path=checkpoint)
    assert load_checkpoint(checkpoint)["format_version"] == CHECKPOINT_FORMAT_VERSION


def test_an_unreadable_checkpoint_is_refused_naming_the_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "toy.ckpt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable ddcmh checkpoint") as raised:
        run_epochs(ToyTask(), max_epochs=2, patience=1, seed=0, checkpoint_path=checkpoint, resume=True)
    assert str(checkpoint) in str(raised.value)


def test_train_hash_network_refuses_an_old_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((20, 4)).astype(np.float32)
    targets = (features[:, :2] > 0).astype(np.float32)
    checkpoint = tmp_path / "stage2.ckpt"
    torch.save({"format_version": 1, "network": {}}, checkpoint)
    config = TrainingConfig(max_epochs=2, batch_size=8)
    arguments = (as_source(features), targets, np.arange(20), config)
    with pytest.raises(CheckpointError, match=re.escape(str(checkpoint))):
        train_hash_network(nn.Linear(4, 2), *arguments, checkpoint_path=checkpoint, resume=True)
    result = train_hash_network(nn.Linear(4, 2), *arguments, checkpoint_path=checkpoint)
    assert result.epochs_run == 2 and load_checkpoint(checkpoint)["epoch"] == 2


def test_median_stopping_rule_compares_with_finished_runs_of_the_same_kind() -> None:
    rule = MedianStoppingRule(grace_epochs=3, min_finished=2)
    for finished in ([0.2, 0.4, 0.6, 0.7], [0.3, 0.5, 0.5]):  # the second stopped after epoch 3
        rule.start()
        for epoch, best in enumerate(finished, start=1):
            assert rule.verdict("stage2", epoch, best) is None  # nothing to compare with yet
        rule.finish()
    rule.start()
    assert rule.verdict("stage2", 2, 0.0) is None  # grace
    assert rule.verdict("stage3", 3, 0.0) is None  # no finished run of this kind
    assert rule.verdict("stage2", 3, 0.56) is None  # median of 0.6 and 0.5 is 0.55
    verdict = rule.verdict("stage2", 4, 0.56)  # median of 0.7 and (stopped) 0.5 is 0.6
    assert verdict is not None and "median 0.6000 of 2 finished runs at epoch 4" in verdict
    rule.start()  # an abandoned run never finishes: its curve does not count
    assert rule.verdict("stage2", 4, 0.65) is None


def test_run_epochs_stops_by_the_installed_rule_after_writing_the_checkpoint(tmp_path: Path) -> None:
    rule = MedianStoppingRule(grace_epochs=2, min_finished=1)
    path = tmp_path / "run.ckpt"
    with abandoning(rule):
        rule.start()
        run_epochs(ToyTask(scores=[0.5, 0.6, 0.7, 0.8]), max_epochs=4, patience=4, seed=0, curve="toy")
        rule.finish()  # the loop reported this run's curve to the rule epoch by epoch
        rule.start()
        expected = r"toy: abandoned after epoch 2: best validation score 0\.2000 is below the median 0\.6000"
        with pytest.raises(TrainingAbandoned, match=expected):
            run_epochs(
                ToyTask(scores=[0.1, 0.2, 0.9, 0.9]), max_epochs=4, patience=4, seed=0, checkpoint_path=path,
                curve="toy",
            )  # fmt: skip
    assert load_checkpoint(path)["epoch"] == 2
    # Outside the block no rule is installed: the same run goes to the end.
    result = run_epochs(ToyTask(scores=[0.1, 0.2, 0.9, 0.9]), max_epochs=4, patience=4, seed=0, curve="toy")
    assert result.epochs_run == 4


def test_under_an_epoch_sampler_a_loop_runs_its_first_epochs_and_reports_its_budget() -> None:
    with sampling_epochs(2) as sampler:
        validated = run_epochs(ToyTask(scores=[0.1] * 30), max_epochs=30, patience=5, seed=0, curve="stage")
        refit = run_epochs(ToyTask(), max_epochs=1, patience=5, seed=0, label="refit")
    assert active_sampler() is None  # only inside the block
    assert (validated.epochs_run, refit.epochs_run) == (2, 1)
    assert [(loop.curve, loop.validated, loop.epochs_run, loop.budget) for loop in sampler.loops] == [
        ("stage", True, 2, 30),
        ("refit", False, 1, 1),
    ]
    unsampled = run_epochs(ToyTask(scores=[0.1] * 30), max_epochs=30, patience=50, seed=0)
    assert unsampled.epochs_run == 30  # no sampler: the whole budget


def test_the_sampler_counts_every_loop_at_its_whole_budget_and_a_refit_at_the_validated_one() -> None:
    sampler = EpochSampler(epochs=2)
    sampler.record(LoopTiming("stage2 lift none", True, 2, 1.0, 60))  # 0.5 s per epoch, 58 more
    sampler.record(LoopTiming("stage2 lift rbf", True, 1, 2.0, 40))  # stopped early: 39 more at 2 s
    sampler.record(LoopTiming("refit", False, 2, 3.0, 2))  # its budget is the sampled choice: 60
    assert sampler.unsampled_seconds() == pytest.approx(58 * 0.5 + 39 * 2.0 + 58 * 1.5)
    alone = EpochSampler()
    alone.record(LoopTiming("refit", False, 2, 3.0, 10))  # no validated loop before: its own budget
    assert alone.unsampled_seconds() == pytest.approx(8 * 1.5)
    with pytest.raises(ValueError, match="at least 1"):
        with sampling_epochs(0):
            pass


class _Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batch_progress_waits_while_an_epoch_is_quick_then_prints_rate_and_eta() -> None:
    from ddcmh_core.engine.trainer import BatchProgress

    lines: list[str] = []
    clock = _Clock()
    ticker = BatchProgress(lines.append, "stage 2", quiet_seconds=5.0, every_seconds=10.0, clock=clock)
    ticker.start(0, 1000)
    clock.now += 4.0
    ticker.update(100)  # 4 s in: still quiet
    clock.now += 1.0
    ticker.update(125)  # 5 s in: 25 rows/s, 875 rows left -> 35 s
    clock.now += 9.0
    ticker.update(350)  # 9 s after the last line: not yet
    clock.now += 1.0
    ticker.update(375)  # 15 s in: 25 rows/s, 625 left -> 25 s
    clock.now += 30.0
    ticker.update(1000)  # the epoch's end: the per-epoch line says the rest
    assert lines == [
        "[stage 2] epoch 1: 125/1000 rows, 25.0 rows/s, epoch ETA 35s",
        "[stage 2] epoch 1: 375/1000 rows, 25.0 rows/s, epoch ETA 25s",
    ]
    ticker.start(1, 1000)  # a new epoch is quiet again at first
    clock.now += 1.0
    ticker.update(500)
    assert len(lines) == 2
    BatchProgress(None, "x").update(10)  # no callback: nothing to do


def test_train_hash_network_reports_batches_inside_a_slow_epoch(monkeypatch) -> None:
    import functools

    from ddcmh_core.engine import trainer

    # every batch counts as slow: a line after each one but the last, between the epoch lines
    monkeypatch.setattr(
        trainer,
        "BatchProgress",
        functools.partial(trainer.BatchProgress, quiet_seconds=0.0, every_seconds=0.0),
    )
    rng = np.random.default_rng(0)
    features = rng.standard_normal((64, 4)).astype(np.float32)
    targets = rng.integers(0, 2, (64, 2)).astype(np.float32)
    lines: list[str] = []
    config = TrainingConfig(max_epochs=2, batch_size=16, patience=5)
    train_hash_network(
        nn.Linear(4, 2),
        as_source(features),
        targets,
        np.arange(64),
        config,
        progress=lines.append,
        label="stage 2",
    )
    batch_lines = [line for line in lines if "rows/s" in line]
    assert [re.sub(r", [\d.]+ rows/s.*", "", line) for line in batch_lines] == [
        f"[stage 2] epoch {epoch}: {rows}/64 rows" for epoch in (1, 2) for rows in (16, 32, 48)
    ]
    assert lines.index(batch_lines[3]) > next(i for i, line in enumerate(lines) if "epoch 1/2" in line)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_cnn_body_can_learn_at_a_share_of_the_head_rate(optimizer: str) -> None:
    from ddcmh_core.engine.backbones import build_image_network
    from ddcmh_core.engine.trainer import make_optimizer, make_scheduler, set_learning_rate

    network = build_image_network("mobilenet_v2", 8, feature_normalization="batch")
    config = TrainingConfig(optimizer=optimizer, learning_rate=0.02, backbone_rate_scale=0.1, max_epochs=4)
    built = make_optimizer(network, config)
    head, body = built.param_groups
    assert (head["lr"], body["lr"]) == pytest.approx((0.02, 0.002))
    assert {id(p) for p in body["params"]} == {id(p) for p in network.body.parameters()}
    expected_head = [*network.feature_norm.parameters(), *network.hash_layer.parameters()]
    assert {id(p) for p in head["params"]} == {id(p) for p in expected_head}
    scheduler = make_scheduler(built, config)
    assert scheduler is not None
    built.step()
    scheduler.step()
    head_rate, body_rate = (group["lr"] for group in built.param_groups)
    assert body_rate == pytest.approx(0.1 * head_rate) and head_rate < 0.02  # the cosine keeps the share
    set_learning_rate(built, 0.03)  # as DCMH's log-linear decay sets it each epoch
    assert [group["lr"] for group in built.param_groups] == pytest.approx([0.03, 0.003])
    single = make_optimizer(network, TrainingConfig(optimizer=optimizer))  # the default: one rate
    assert len(single.param_groups) == 1 and single.param_groups[0]["lr_scale"] == 1.0
    frozen = build_image_network("mobilenet_v2", 8, freeze=True)
    (only,) = make_optimizer(frozen, config).param_groups  # nothing of the body trains: no second group
    assert {id(p) for p in only["params"]} == {id(p) for p in frozen.hash_layer.parameters()}
    with pytest.raises(ValueError, match="backbone_rate_scale"):
        TrainingConfig(backbone_rate_scale=0)
