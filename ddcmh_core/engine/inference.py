"""Passes of a network over a source without training: codes, logits, a body's features.

One loop serves them all (:func:`forward_in_batches`). It reads a photo source a bounded batch at a
time (:attr:`ImageFileSource.eval_batch_size <ddcmh_core.engine.images.ImageFileSource>`, whatever
batch size the caller asked for), assembles the next batch while the network works on this one
(:func:`batches_ahead`), and reports its progress with an ETA once a pass is slow
(:class:`PassProgress`): the validation of a CNN epoch on photos encodes every fitting photo.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import NumericalError
from .device import autocast
from .epoch_loop import format_seconds
from .sources import BatchSource

Progress = Callable[[str], None]


def batches_ahead(
    source: BatchSource, batches: Sequence[np.ndarray], *, train: bool
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(rows, batch)`` for each of ``batches``, the next one assembled while the caller works.

    A source with ``submit_batch`` (photos: :meth:`ImageFileSource.submit_batch`) gets batch
    ``k + 1`` submitted before batch ``k`` is handed out, so decoding overlaps training and at
    most two batches are held at a time; other sources are read one batch at a time. A failure
    in the background (a photo that does not decode) is raised here, naming the file.
    """
    submit = getattr(source, "submit_batch", None)
    if submit is None:
        for rows in batches:
            yield rows, source.batch(rows, train=train)
        return
    pending = submit(batches[0], train=train) if batches else None
    for position, rows in enumerate(batches):
        current = pending
        pending = submit(batches[position + 1], train=train) if position + 1 < len(batches) else None
        assert current is not None
        yield rows, current.result()


class PassProgress:
    """Progress lines of one pass over rows: rows done, rows per second and the pass's ETA.

    Quiet while a pass is quick: the first line comes once ``quiet_seconds`` have passed, later
    ones at most every ``every_seconds`` (by default :attr:`QUIET_SECONDS` and
    :attr:`EVERY_SECONDS`); with both 0 every batch gets a line.

    Parameters
    ----------
    progress : callable or None
        Receives the lines; None prints nothing.
    label : str
        Name of the pass, at the start of each line in brackets.
    total : int
        Rows of the pass.
    unit : str
        What a row is, in the lines ("rows", "photos").
    quiet_seconds, every_seconds : float, optional
        Delay before the first line, and between two lines.
    clock : callable
        Seconds (``time.perf_counter``); replaceable in tests.
    """

    QUIET_SECONDS = 5.0
    EVERY_SECONDS = 10.0

    def __init__(
        self,
        progress: Progress | None,
        label: str,
        total: int,
        *,
        unit: str = "rows",
        quiet_seconds: float | None = None,
        every_seconds: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.progress, self.label, self.total, self.unit = progress, label, total, unit
        self.quiet_seconds = self.QUIET_SECONDS if quiet_seconds is None else quiet_seconds
        self.every_seconds = self.EVERY_SECONDS if every_seconds is None else every_seconds
        self.clock = clock
        self.restart(total)

    def restart(self, total: int) -> None:
        """A new pass of ``total`` rows begins: quiet again for ``quiet_seconds``."""
        self.total, self.started, self.last = total, self.clock(), -math.inf

    def update(self, done: int) -> None:
        """``done`` rows of the pass are finished; print a line when one is due."""
        if self.progress is None:
            return
        now = self.clock()
        elapsed = now - self.started
        if elapsed < self.quiet_seconds or now - self.last < self.every_seconds:
            return
        self.last = now
        self.progress(self.line(done, done / elapsed if elapsed > 0 else math.inf))

    def line(self, done: int, rate: float) -> str:
        """The progress line of ``done`` rows at ``rate`` rows per second."""
        line = f"[{self.label}] {done}/{self.total} {self.unit}, {rate:.1f} per s"
        if done < self.total and rate > 0:
            line += f", ETA {format_seconds((self.total - done) / rate)}"
        return line


@torch.no_grad()
def forward_in_batches(
    network: nn.Module,
    source: BatchSource,
    rows: np.ndarray,
    *,
    function: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int,
    device: torch.device,
    mixed_precision: bool = False,
    progress: Progress | None = None,
    label: str = "encoding",
    every_batch: bool = False,
) -> np.ndarray:
    """The network's outputs for evaluation batches of ``rows``, as one float32 array (rows first).

    Parameters
    ----------
    network : torch.nn.Module
        Runs in eval mode and without gradients; its mode is restored afterwards.
    source : BatchSource
        Read with evaluation preprocessing (``train=False``: no augmentation). A source with an
        ``eval_batch_size`` (photos) is read at most that many rows at a time, so memory holds a
        few batches of decoded photos and their activations, not ``batch_size`` of them.
    rows : ndarray of int
        The rows, in output order.
    function : callable, optional
        What to compute of a batch on ``device`` instead of ``network(batch)`` (e.g. its body's
        ``network.features``), one output row per input row.
    batch_size : int
        Rows per forward pass (at most).
    device : torch.device
    mixed_precision : bool
        Autocast on a GPU.
    progress : callable, optional
        Receives :class:`PassProgress` lines, once the pass is slow.
    label : str
        Name of the pass in the lines.
    every_batch : bool
        A line after every batch, from the first (a pass that is known to be slow).

    Returns
    -------
    ndarray of float32
        Shape ``(len(rows), ...)``; with no rows, shape ``(0,)`` (the caller knows the width).
    """
    batch_size = max(1, min(batch_size, getattr(source, "eval_batch_size", None) or batch_size))
    batches = [rows[begin : begin + batch_size] for begin in range(0, len(rows), batch_size)]
    unit = "photos" if hasattr(source, "eval_batch_size") else "rows"
    delay = 0.0 if every_batch else None
    reporter = PassProgress(progress, label, len(rows), unit=unit, quiet_seconds=delay, every_seconds=delay)
    compute = function or network
    outputs = []
    done = 0
    was_training = network.training
    network.eval()
    try:
        for batch_rows, batch in batches_ahead(source, batches, train=False):
            with autocast(device, mixed_precision):
                outputs.append(compute(batch.to(device)).float().cpu().numpy())
            done += len(batch_rows)
            reporter.update(done)
    finally:
        network.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0,), dtype=np.float32)


def unwrapped(network: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network


def predict_logits(
    network: nn.Module,
    source: BatchSource,
    indices: np.ndarray | None = None,
    *,
    batch_size: int = 1024,
    device: torch.device | None = None,
    mixed_precision: bool = False,
    progress: Progress | None = None,
    label: str = "encoding",
) -> np.ndarray:
    """Logits of the network in eval mode for rows ``indices`` (all rows by default).

    Photos are read at most ``source.eval_batch_size`` at a time (see :func:`forward_in_batches`);
    ``progress`` receives lines with an ETA once the pass is slow.
    """
    device = device or next(network.parameters()).device
    rows = np.arange(len(source)) if indices is None else np.asarray(indices)
    logits = forward_in_batches(
        network,
        source,
        rows,
        batch_size=batch_size,
        device=device,
        mixed_precision=mixed_precision,
        progress=progress,
        label=label,
    )
    if not len(rows):
        return np.zeros((0, getattr(unwrapped(network), "n_bits", None) or 0), dtype=np.float32)
    return logits


def encode_with(
    network: nn.Module,
    source: BatchSource,
    indices: np.ndarray | None = None,
    **options: object,
) -> np.ndarray:
    """Codes ``[logit > 0]`` as uint8 {0,1} of shape (n, n_bits).

    ``options`` are :func:`predict_logits`'s (``batch_size``, ``device``, ``mixed_precision``,
    ``progress``, ``label``).

    Raises
    ------
    NumericalError
        If a logit is NaN or infinite (the network's weights are not finite: a diverged training
        or a damaged model), instead of turning it into a code bit.
    """
    logits = predict_logits(network, source, indices, **options)  # type: ignore[arg-type]
    bad_rows = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if bad_rows.size:
        raise NumericalError(
            f"{type(unwrapped(network)).__name__}: the network's output is NaN or infinite for "
            f"{bad_rows.size} of {len(logits)} rows (first: row {int(bad_rows[0])}); its weights are "
            "not finite (training diverged: lower the learning rate) or the model file is damaged"
        )
    return np.ascontiguousarray(logits > 0, dtype=np.uint8)
