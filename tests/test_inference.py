"""Passes of a network without training: bounded photo batches, prefetching, progress with an ETA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ddcmh_core.engine.images import EVAL_BATCH_SIZE, ImageFileSource
from ddcmh_core.engine.inference import (
    PassProgress,
    batches_ahead,
    encode_with,
    forward_in_batches,
    predict_logits,
)
from ddcmh_core.engine.sources import ArraySource
from ddcmh_core.errors import InputError

PLAIN = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


class ModeRecorder(nn.Module):
    """A linear map of flattened 12-pixel photos that records its mode and batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 12 * 12, 5)
        self.n_bits = 5
        self.calls: list[tuple[bool, int]] = []

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, len(batch)))
        return self.linear(batch.flatten(1))


def test_photos_are_encoded_a_bounded_batch_at_a_time_whatever_batch_size_is_asked(noisy_photos) -> None:
    paths = noisy_photos(11)
    source = ImageFileSource(paths, image_size=12, resize_size=14, eval_batch_size=4, **PLAIN)
    network = ModeRecorder().train()
    rows = np.array([10, 0, 3, 7, 1, 2, 9, 8, 4, 6, 5])
    logits = predict_logits(network, source, rows, batch_size=1024)
    assert [size for _, size in network.calls] == [4, 4, 3]  # not one batch of 11 photos
    assert not any(training for training, _ in network.calls) and network.training  # eval, then restored
    with torch.no_grad():
        whole = network.linear(source.batch(rows, train=False).flatten(1)).numpy()
    np.testing.assert_allclose(logits, whole, rtol=1e-5, atol=1e-6)  # the same rows, in the same order
    codes = encode_with(network, source, rows, batch_size=2)
    assert [size for _, size in network.calls[3:]] == [2] * 5 + [1]  # a smaller request is kept
    np.testing.assert_array_equal(codes, (whole > 0).astype(np.uint8))
    assert predict_logits(network, source, np.array([], dtype=int)).shape == (0, 5)
    source.close()


def test_an_array_source_keeps_the_batch_size_asked_for() -> None:
    network = ModeRecorder()
    features = np.random.default_rng(0).normal(size=(9, 3 * 12 * 12)).astype(np.float32)
    outputs = forward_in_batches(
        network, ArraySource(features), np.arange(9), batch_size=1024, device=torch.device("cpu")
    )
    assert [size for _, size in network.calls] == [9] and outputs.shape == (9, 5)


def test_the_eval_batch_size_of_a_photo_source_is_checked(noisy_photos) -> None:
    paths = noisy_photos(2)
    assert ImageFileSource(paths, image_size=12, **PLAIN).eval_batch_size == EVAL_BATCH_SIZE
    for bad in (0, 2.5, True):
        with pytest.raises(InputError, match=r"argument 'eval_batch_size': expected an integer >= 1"):
            ImageFileSource(paths, image_size=12, eval_batch_size=bad, **PLAIN)  # type: ignore[arg-type]


def test_a_pass_is_quiet_while_quick_then_reports_its_rate_and_eta() -> None:
    now = [0.0]
    lines: list[str] = []
    reporter = PassProgress(
        lines.append, "stage 2 validation: image codes", 1000, unit="photos", clock=lambda: now[0]
    )
    now[0] = 4.0
    reporter.update(200)
    assert lines == []  # under QUIET_SECONDS
    now[0] = 5.0
    reporter.update(250)
    assert lines == ["[stage 2 validation: image codes] 250/1000 photos, 50.0 per s, ETA 15s"]
    now[0] = 14.0
    reporter.update(700)
    assert len(lines) == 1  # under EVERY_SECONDS since the last line
    now[0] = 20.0
    reporter.update(1000)
    assert lines[-1] == "[stage 2 validation: image codes] 1000/1000 photos, 50.0 per s"  # no ETA at the end
    PassProgress(None, "silent", 10, clock=lambda: 100.0).update(5)  # no callback: nothing to do


def test_a_pass_known_to_be_slow_reports_every_batch(noisy_photos) -> None:
    source = ImageFileSource(noisy_photos(5), image_size=12, resize_size=14, eval_batch_size=2, **PLAIN)
    lines: list[str] = []
    forward_in_batches(
        ModeRecorder(),
        source,
        np.arange(5),
        batch_size=64,
        device=torch.device("cpu"),
        progress=lines.append,
        label="body features",
        every_batch=True,
    )
    assert [line.split(",")[0] for line in lines] == [
        "[body features] 2/5 photos",
        "[body features] 4/5 photos",
        "[body features] 5/5 photos",
    ]
    assert "ETA" in lines[0] and "ETA" not in lines[-1]
    source.close()


def test_prefetched_batches_equal_batches_read_one_by_one(noisy_photos) -> None:
    source = ImageFileSource(noisy_photos(10), image_size=16, resize_size=20, n_workers=2, **PLAIN)
    batches = [np.array([3, 1, 4]), np.array([0, 9]), np.array([7, 2, 5, 8])]
    torch.manual_seed(0)
    one_by_one = [source.batch(rows, train=True) for rows in batches]
    torch.manual_seed(0)  # the augmentation draws are taken in the same order: the same crops and flips
    ahead = list(batches_ahead(source, batches, train=True))
    assert [rows.tolist() for rows, _ in ahead] == [rows.tolist() for rows in batches]
    for (_, got), want in zip(ahead, one_by_one, strict=True):
        assert torch.equal(got, want)
    assert list(batches_ahead(source, [], train=True)) == []
    source.close()


def test_prefetching_holds_two_batches_at_most_and_raises_a_bad_photo_by_name(noisy_photos) -> None:
    paths = noisy_photos(6)
    paths[4].write_bytes(b"no longer a photo")
    source = ImageFileSource(paths, image_size=16, resize_size=20, **PLAIN)
    submitted: list[list[int]] = []
    submit = source.submit_batch

    def counting_submit(rows, *, train):
        submitted.append(rows.tolist())
        return submit(rows, train=train)

    source.submit_batch = counting_submit  # type: ignore[method-assign]
    batches = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    reader = batches_ahead(source, batches, train=False)
    rows, _ = next(reader)
    assert rows.tolist() == [0, 1] and len(submitted) == 2  # this batch and the next one only
    next(reader)
    assert len(submitted) == 3
    with pytest.raises(InputError, match=r"n4\.png.*row 4"):
        next(reader)  # the background failure surfaces in the training loop, naming the file
    source.close()
