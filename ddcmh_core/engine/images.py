"""Image files as a :class:`~ddcmh_core.engine.sources.BatchSource`, decoded on the fly.

Images are decoded, resized, augmented and normalised per batch.

Each batch is decoded by a pool of threads (Pillow releases the GIL while it decodes and
resamples), or of worker processes with ``worker_processes=True``; the per-photo work is in
:mod:`~ddcmh_core.engine.photo_decoding`. JPEGs are decoded at a reduced scale (libjpeg's DCT
scaling, ``Image.draft``) when they are much larger than needed, which keeps the shorter side at
least ``resize_size``.

Randomness: the augmentation parameters of a batch are drawn in the calling thread from torch's
global generator before decoding starts, so a batch depends only on the torch RNG state (the
trainer seeds it and saves it in checkpoints), never on thread or process scheduling.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InputError
from .photo_decoding import (
    MAX_DECODED_PIXELS,
    PhotoRecipe,
    decode_photo,
    prepare_photo,
    start_worker,
    worker_job,
)

if TYPE_CHECKING:
    from .photo_cache import DecodedPhotoCache

__all__ = [
    "EVAL_BATCH_SIZE",
    "MAX_DECODED_PIXELS",
    "ImageFileSource",
    "check_images",
    "find_unreadable_images",
    "unreadable_rows",
]

_N_ATTEMPTS = 10  # random-resized-crop tries before falling back to a centre crop (torchvision's)

EVAL_BATCH_SIZE = 64
"""Photos per forward pass when a network encodes an :class:`ImageFileSource` (its default)."""


def _check_count(argument: str, value: object) -> None:
    """Refuse an :class:`ImageFileSource` argument that is not an integer >= 1 (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"ImageFileSource: argument '{argument}': expected an integer >= 1, got {value!r}")


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class ImageFileSource:
    """Image files decoded on the fly, implementing :class:`~ddcmh_core.engine.sources.BatchSource`.

    Evaluation batches (``train=False``, or any batch when ``augment`` is False) resize the shorter
    side to ``resize_size`` and take the centre ``image_size`` square. Training batches take a
    random resized crop (area fraction in ``scale``, aspect ratio in ``ratio``) resized to
    ``image_size`` and flip it horizontally with probability 1/2. Pixels are scaled to [0, 1]
    and normalised per channel with ``mean`` and ``std``. Images of any Pillow mode are converted
    to RGB (grey, palette and CMYK converted, alpha composited onto white); EXIF orientation is
    applied.

    Parameters
    ----------
    paths : sequence of str or Path
        One image file per row.
    image_size : int
        Side of the square output (the backbone's input size, e.g. 224).
    mean, std : sequence of 3 floats
        Per-channel normalisation (the backbone's, see :class:`~ddcmh_core.engine.backbones.BackboneInfo`).
    augment : bool, default True
        Whether training batches are augmented.
    resize_size : int, optional
        Shorter side before the evaluation centre crop; default ``round(image_size / 0.875)``
        (256 for 224, the usual ImageNet protocol).
    scale : (float, float), default (0.08, 1.0)
        Range of the area fraction of the random crop (torchvision's default).
    ratio : (float, float), default (3/4, 4/3)
        Range of the aspect ratio of the random crop (torchvision's default).
    n_workers : int, optional
        Decoding threads (or processes); default ``min(8, cpu_count)``.
    worker_processes : bool, default False
        Decode and augment in ``n_workers`` worker processes instead of threads (a pool started
        on first use, from a ``forkserver`` so that the training process's threads are not
        forked): for many cores feeding a GPU, where threads would contend for the interpreter
        lock. Photos come out identical either way. A worker that dies (killed, out of memory)
        raises a :class:`RuntimeError` naming the batch's files; the pool restarts on the next
        batch.
    check : bool, default False
        Decode every file once now and raise one :class:`InputError` listing all the unreadable
        ones (see :func:`check_images`).
    cache : bool or path, default False
        Keep every photo decoded, as a ``resize_size`` square, in one memory-mapped file
        (:class:`~ddcmh_core.engine.photo_cache.DecodedPhotoCache`): the first pass decodes and
        stores, later ones read the squares and only crop, resize and flip. True uses
        :func:`~ddcmh_core.engine.photo_cache.photo_cache_dir`, a path that folder. Training
        crops are then drawn inside the centre square of each photo.
    max_pixels : int, default :data:`MAX_DECODED_PIXELS`
        A photo that would decode to more pixels (after a JPEG's reduced-scale decoding) is
        refused as unreadable, before its pixels are read.
    eval_batch_size : int, default :data:`EVAL_BATCH_SIZE`
        Photos per forward pass when a network encodes this source
        (:func:`~ddcmh_core.engine.inference.forward_in_batches` reads at most this many, whatever
        batch size its caller asked for): memory holds a few batches of photos and their
        activations, not a thousand (``benchmarks/bench_images.py --only encode-whole,encode``).

    Raises
    ------
    InputError
        For bad arguments, and from :meth:`batch` for an image that is missing or fails to decode
        (the message names the file and its row).
    """

    n_features: int | None = None

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = True,
        resize_size: int | None = None,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        n_workers: int | None = None,
        worker_processes: bool = False,
        check: bool = False,
        cache: bool | str | Path = False,
        max_pixels: int = MAX_DECODED_PIXELS,
        eval_batch_size: int = EVAL_BATCH_SIZE,
    ) -> None:
        if isinstance(paths, (str, Path)):
            raise InputError(
                f"ImageFileSource: argument 'paths': expected a sequence of paths, got {paths!r}"
            )
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        if not self.paths:
            raise InputError("ImageFileSource: argument 'paths': expected at least one image file, got none")
        _check_count("image_size", image_size)
        if resize_size is None:
            resize_size = round(image_size / 0.875)
        if isinstance(resize_size, bool) or not isinstance(resize_size, int) or resize_size < image_size:
            raise InputError(
                f"ImageFileSource: argument 'resize_size': expected an integer >= image_size "
                f"({image_size}), got {resize_size!r}"
            )
        mean_array = np.asarray(mean, dtype=np.float64)
        std_array = np.asarray(std, dtype=np.float64)
        if mean_array.shape != (3,) or not np.all(np.isfinite(mean_array)):
            raise InputError(f"ImageFileSource: argument 'mean': expected 3 finite numbers, got {mean!r}")
        if std_array.shape != (3,) or not np.all(std_array > 0):
            raise InputError(f"ImageFileSource: argument 'std': expected 3 positive numbers, got {std!r}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise InputError(
                f"ImageFileSource: argument 'scale': expected 0 < low <= high <= 1, got {scale!r}"
            )
        if not 0 < ratio[0] <= ratio[1]:
            raise InputError(f"ImageFileSource: argument 'ratio': expected 0 < low <= high, got {ratio!r}")
        if n_workers is not None:
            _check_count("n_workers", n_workers)
        self.image_size = image_size
        self.resize_size = resize_size
        self.mean: tuple[float, ...] = tuple(float(v) for v in mean_array)
        self.std: tuple[float, ...] = tuple(float(v) for v in std_array)
        self.augment = bool(augment)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.n_workers = n_workers or _default_workers()
        # (x / 255 - mean) / std as one multiply-add per channel.
        self._gain = torch.tensor(1.0 / (255.0 * std_array), dtype=torch.float32).view(1, 3, 1, 1)
        self._offset = torch.tensor(-mean_array / std_array, dtype=torch.float32).view(1, 3, 1, 1)
        _check_count("max_pixels", max_pixels)
        self.max_pixels = max_pixels
        _check_count("eval_batch_size", eval_batch_size)
        self.eval_batch_size = eval_batch_size
        self.worker_processes = bool(worker_processes)
        self._executor: Executor | None = None  # decoding threads or worker processes
        self._prefetcher: ThreadPoolExecutor | None = None  # assembles the batch after the current one
        if check:
            check_images(self.paths, n_workers=self.n_workers, max_pixels=max_pixels)
        self.cache: DecodedPhotoCache | None = None
        if cache is not False:
            from .photo_cache import DecodedPhotoCache

            directory = None if cache is True else Path(cache)
            self.cache = DecodedPhotoCache(self.paths, resize_size, directory=directory)
        self.recipe = PhotoRecipe(
            image_size, resize_size, self.scale, self.ratio, max_pixels, squares=self.cache is not None
        )

    @classmethod
    def for_backbone(
        cls, paths: Sequence[str | Path], backbone: str, *, augment: bool = True, **options: Any
    ) -> ImageFileSource:
        """A source with the input size and normalisation that ``backbone`` expects.

        ``options`` are passed on (e.g. ``image_size`` to train at a smaller size).
        """
        from .backbones import backbone_info

        info = backbone_info(backbone)
        options.setdefault("image_size", info.input_size)
        if options["image_size"] == info.input_size:
            options.setdefault("resize_size", info.resize_size)
        return cls(paths, mean=info.mean, std=info.std, augment=augment, **options)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"ImageFileSource({len(self.paths)} files, image_size={self.image_size}, "
            f"resize_size={self.resize_size}, augment={self.augment})"
        )

    # The thread pool is not picklable; a copy (e.g. in a worker process) makes its own.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_executor"] = state["_prefetcher"] = None
        return state

    def close(self) -> None:
        """Shut the decoding threads down (they are started again when needed).

        A photo cache that is not complete yet is dropped (its file removed); a complete one stays.
        """
        if self.cache is not None and not self.cache.complete:
            self.cache.discard()
        for pool in (self._prefetcher, self._executor):  # the prefetcher first: it feeds the decoders
            if pool is not None:
                pool.shutdown(wait=True)
        self._executor = self._prefetcher = None

    def __enter__(self) -> ImageFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decode(self, row: int) -> Any:
        """Image ``row`` as an RGB ``PIL.Image.Image`` (full size, no transform)."""
        return decode_photo(self.paths[int(row)], int(row), 0, self.max_pixels)

    def _stored_square(self, row: int) -> np.ndarray | None:
        """Photo ``row``'s square from the decoded-photo cache, or None when not stored (or no cache)."""
        if self.cache is None or self.cache.missing(np.array([row])).size:
            return None
        return self.cache.read(row)

    def _transform(self, row: int, draws: np.ndarray | None, flip: bool) -> np.ndarray:
        """Photo ``row`` as a network input (in this process); a square decoded on the way is stored."""
        square = self._stored_square(row)
        array, decoded = prepare_photo(self.paths[row], row, self.recipe, draws, flip, square)
        self._keep_square(row, decoded)
        return array

    def _keep_square(self, row: int, decoded: np.ndarray | None) -> None:
        """Store a square :func:`prepare_photo` decoded (None: it read a stored one, or no cache)."""
        if decoded is not None:
            assert self.cache is not None
            self.cache.store(row, decoded)

    def batch(self, indices: np.ndarray | Sequence[int], *, train: bool) -> torch.Tensor:
        """Images ``indices`` as a float32 tensor ``(len(indices), 3, image_size, image_size)``.

        Augmented when ``train`` and :attr:`augment` are both true.

        Raises
        ------
        InputError
            For an index out of range, or an image that is missing or fails to decode (naming
            the file).
        """
        return self._assemble(self._jobs(indices, train))

    def submit_batch(self, indices: np.ndarray | Sequence[int], *, train: bool) -> Future[torch.Tensor]:
        """Start assembling :meth:`batch` ``(indices, train=train)`` in the background.

        The augmentation's random draws are taken now, in the calling thread, from torch's global
        generator, so a training loop that always submits batch ``k + 1`` before it trains on
        batch ``k`` is as reproducible as one that does not prefetch. Decoding, augmenting and
        normalising run on a background thread (and the decoding threads), so the next batch is
        ready while the network trains on the current one; ``result()`` raises what
        :meth:`batch` would (an :class:`InputError` naming the file).
        """
        jobs = self._jobs(indices, train)
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="ddcmh-prefetch")
        return self._prefetcher.submit(self._assemble, jobs)

    def _jobs(self, indices: np.ndarray | Sequence[int], train: bool) -> list[tuple[int, Any, bool]]:
        """``(row, crop draws or None, flip)`` per index; the only place that draws random numbers."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < -len(self.paths) or rows.max() >= len(self.paths)):
            raise InputError(
                f"ImageFileSource.batch: argument 'indices': expected rows in [0, {len(self.paths)}), "
                f"got {int(rows.min())}..{int(rows.max())}"
            )
        rows = rows % len(self.paths)
        count = rows.size
        if train and self.augment:
            draws = torch.rand(count, _N_ATTEMPTS, 4, dtype=torch.float64).numpy()
            flips = (torch.rand(count, dtype=torch.float64) < 0.5).numpy()
            return [(int(r), draws[i], bool(flips[i])) for i, r in enumerate(rows)]
        return [(int(r), None, False) for r in rows]

    def _assemble(self, jobs: list[tuple[int, Any, bool]]) -> torch.Tensor:
        """Decode (or read from the cache), transform and normalise the jobs' photos into a batch."""
        count = len(jobs)
        if self.worker_processes:
            arrays = self._transform_in_processes(jobs)
        elif count <= 1 or self.n_workers == 1:
            arrays = [self._transform(*job) for job in jobs]
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="ddcmh-decode")
            arrays = list(self._executor.map(lambda job: self._transform(*job), jobs))
        if self.cache is not None:
            self.cache.publish_if_full()
        pixels = np.empty((count, self.image_size, self.image_size, 3), dtype=np.uint8)
        for position, array in enumerate(arrays):
            pixels[position] = array
        # channels first while still uint8 (a quarter of the bytes to move), then scaled in place:
        # five times faster than scaling the permuted float view and copying it (64 x 224 px)
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous().to(torch.float32)
        return images.mul_(self._gain).add_(self._offset)

    def _transform_in_processes(self, jobs: list[tuple[int, Any, bool]]) -> list[np.ndarray]:
        """:meth:`_transform` of every job in the worker processes; squares are stored here.

        A worker gets the photo's stored square when there is one (it reads no file), else it
        decodes the file and sends the square back for this process to store, so that only one
        process ever writes the cache.

        Raises
        ------
        InputError
            From a worker, for a photo that is missing or does not decode (naming the file).
        RuntimeError
            When a worker process dies; names the batch's files. The pool restarts on next use.
        """
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["ddcmh_core.engine.photo_decoding"])
            self._executor = ProcessPoolExecutor(
                self.n_workers,
                mp_context=context,
                initializer=start_worker,
                initargs=(self.paths, self.recipe),
            )
        rows = [row for row, _, _ in jobs]
        squares = [self._stored_square(row) for row in rows]
        try:
            results = list(
                self._executor.map(
                    worker_job, rows, [draws for _, draws, _ in jobs], [flip for _, _, flip in jobs], squares
                )
            )
        except BrokenProcessPool as error:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            shown = ", ".join(f"{self.paths[row]} (row {row})" for row in rows[:5])
            more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            raise RuntimeError(
                f"ImageFileSource: a photo-decoding worker process died ({error}) while preparing the "
                f"batch of {shown}{more}; the pool restarts on the next batch. If it was killed for "
                "memory, use fewer decode_workers; decode_processes = false decodes in threads"
            ) from error
        for row, (_, decoded) in zip(rows, results, strict=True):
            self._keep_square(row, decoded)
        return [array for array, _ in results]


def _problem(path: Path, row: int, max_pixels: int) -> str | None:
    """Why photo ``row`` cannot be used (missing, undecodable, too large), or None."""
    try:
        decode_photo(path, row, 64, max_pixels)
    except InputError as exc:
        cause = exc.__cause__
        return f"{type(cause).__name__}: {cause}" if cause is not None else "no such file"
    return None


def unreadable_rows(
    paths: Iterable[str | Path], *, n_workers: int | None = None, max_pixels: int = MAX_DECODED_PIXELS
) -> list[tuple[int, Path, str]]:
    """Decode every file once; ``(row, path, reason)`` for each missing, undecodable or too large one.

    JPEGs are decoded at reduced scale, which still reads all their compressed data, so
    truncated files are found too. A photo that would decode to more than ``max_pixels`` pixels
    is reported from its header, without decoding it. Each file is checked in its own try, so
    one bad file never stops the others from being checked.

    Parameters
    ----------
    paths : iterable of str or Path
    n_workers : int, optional
        Decoding threads (default ``min(8, cpu_count)``).
    max_pixels : int, default :data:`MAX_DECODED_PIXELS`

    Returns
    -------
    list of (int, Path, str)
        In row order.
    """
    files = [Path(p) for p in paths]
    with ThreadPoolExecutor(n_workers or _default_workers(), thread_name_prefix="ddcmh-check") as pool:
        reasons = list(pool.map(_problem, files, range(len(files)), [max_pixels] * len(files)))
    return [(row, files[row], reason) for row, reason in enumerate(reasons) if reason is not None]


def find_unreadable_images(
    paths: Iterable[str | Path], *, n_workers: int | None = None, max_pixels: int = MAX_DECODED_PIXELS
) -> list[tuple[Path, str]]:
    """``(path, reason)`` for each missing, undecodable or too large file (see :func:`unreadable_rows`)."""
    return [
        (path, reason)
        for _, path, reason in unreadable_rows(paths, n_workers=n_workers, max_pixels=max_pixels)
    ]


def check_images(
    paths: Iterable[str | Path], *, n_workers: int | None = None, max_pixels: int = MAX_DECODED_PIXELS
) -> None:
    """Raise one :class:`InputError` that lists every missing or undecodable image file.

    Parameters
    ----------
    paths : iterable of str or Path
    n_workers : int, optional
        Decoding threads (default ``min(8, cpu_count)``).
    max_pixels : int, default :data:`MAX_DECODED_PIXELS`
        Larger photos are reported as unreadable.

    Raises
    ------
    InputError
        When at least one file cannot be decoded; the message names each of them and why.
    """
    problems = find_unreadable_images(paths, n_workers=n_workers, max_pixels=max_pixels)
    if problems:
        shown = "; ".join(f"{path}: {reason}" for path, reason in problems[:20])
        more = f"; ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(
            f"check_images: argument 'paths': expected decodable image files, got {len(problems)} "
            f"that cannot be read: {shown}{more}"
        )
