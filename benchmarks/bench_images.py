"""The photo pipeline: decode-every-time against the decoded-photo cache and frozen features.

Run: ``python benchmarks/bench_images.py [--data-dir ../shared/data/web_news_full] [--limit N]
[--image-size 224] [--epochs 2] [--only encode-whole,encode]``

Every phase runs in a fresh process (so its peak resident memory is its own) over the same
photos, in a seeded random order, in batches of ``--batch-size``, with training augmentation
(random resized crop and flip) as Stage 2 reads them:

* ``naive loop``: what a plain research script does per photo: open, decode at full size,
  torchvision's ``RandomResizedCrop``, flip, ``ToTensor`` and ``Normalize``, one photo after
  the other; the first reference;
* ``decode every time``: :class:`~ddcmh_core.engine.images.ImageFileSource` without a cache
  (JPEGs decoded at reduced scale when that keeps the size, decoding threads, one batched
  normalisation); the second reference;
* ``decode, worker processes``: the same, decoding and augmenting in worker processes
  (``worker_processes=True``, as many as decoding threads) instead of threads; starting the
  pool is timed apart, and its peak memory adds the workers' own peaks;
* ``cache, first epoch``: the same source with the decoded-photo cache, empty: it decodes and
  stores every photo;
* ``cache, later epochs``: the cache complete: crops, resizes and flips the stored squares;
* ``frozen body, every epoch``: decode every time, then the frozen MobileNetV2 body and a
  training step of the hash layer, the reference of the next row;
* ``frozen features``: the body's features computed once (their one-off time printed apart)
  and the hash layer trained on them;
* ``encode, 1,024 per pass``: the whole MobileNetV2 hash network encodes every photo
  (evaluation preprocessing, no cache) through :func:`~ddcmh_core.engine.inference.predict_logits`
  asked for its default batch of 1,024, with the source's ``eval_batch_size`` raised to 1,024:
  what every encoding did before photo sources bounded their batches (the validation of each
  Stage-2 epoch encodes every fitting photo); the reference of the next row;
* ``encode, bounded batches``: the same call with the source's default ``eval_batch_size``
  (:data:`~ddcmh_core.engine.images.EVAL_BATCH_SIZE`), the next batch decoded during the pass.
  Its peak memory is the point: a few batches of photos and their activations;
* ``fine-tune, row-major``: Stage-2 epochs of the whole MobileNetV2 hash network
  (:func:`~ddcmh_core.engine.trainer.train_hash_network`, augmentation on, the photo cache
  filled beforehand, untimed) with the convolutions in row-major layout; the reference of the
  next row;
* ``fine-tune, channels-last``: the same in channels-last layout, the network's default
  (:meth:`~ddcmh_core.engine.backbones.ImageHashNetwork.use_memory_format`). Every other row
  that runs the network uses the default too.

Photos per second are per epoch (the mean over ``--epochs``); each ratio is a row's speed over a
reference row's, both measured in the same run (``2.0x decode``: twice as fast as decode every
time). Peak memory is the phase process's maximum resident set (torch
and the imports included, about 0.4 GiB before any photo).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, fill_photo_cache, print_header

DEFAULT_DATA = SHARED_DATA / "web_news_full"
BACKBONE = "mobilenet_v2"
WHOLE_PASS = 1024  # predict_logits's default batch size


def photo_paths(data_dir: Path, limit: int | None) -> list[Path]:
    """The Web News training photos of ``data_dir`` (its list file order), at most ``limit``."""
    from ddcmh_core.data.folder import load_web_news

    dataset = load_web_news(data_dir)
    paths = list(dataset.image.paths)
    return paths[:limit] if limit else paths


def _batches(n_rows: int, batch_size: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng(epoch).permutation(n_rows)
    return [order[begin : begin + batch_size] for begin in range(0, n_rows, batch_size)]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def naive_batch(paths: list[Path], rows: np.ndarray, size: int) -> Any:
    """A training batch as a plain research script makes it: full decode, torchvision transforms."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from ddcmh_core.engine.backbones import IMAGENET_MEAN, IMAGENET_STD

    augment = transforms.Compose(
        [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    images = []
    for row in rows:
        with Image.open(paths[int(row)]) as image:
            images.append(augment(image.convert("RGB")))
    return torch.stack(images)


def run_phase(phase: str, paths: list[Path], options: dict[str, Any]) -> dict[str, Any]:
    """Run one phase in this (fresh) process; return its per-epoch seconds and peak memory."""
    import torch

    from ddcmh_core.engine.backbones import build_image_network
    from ddcmh_core.engine.frozen_features import FrozenFeatures, backbone_features
    from ddcmh_core.engine.images import EVAL_BATCH_SIZE, ImageFileSource
    from ddcmh_core.engine.inference import predict_logits

    torch.manual_seed(0)
    if phase in ("fine-tune-row-major", "fine-tune"):  # on a cached source of its own
        seconds, once = _fine_tune(phase, paths, options)
        return {"seconds": seconds, "once": once, "peak_mib": _peak_mib()}
    size, batch_size, epochs = options["image_size"], options["batch_size"], options["epochs"]
    cache: bool | str = options["cache_dir"] if phase.startswith("cache") else False
    processes = phase == "decode-processes"
    eval_batch_size = WHOLE_PASS if phase == "encode-whole" else EVAL_BATCH_SIZE
    source = ImageFileSource.for_backbone(
        paths,
        BACKBONE,
        image_size=size,
        cache=cache,
        worker_processes=processes,
        eval_batch_size=eval_batch_size,
    )
    seconds: list[float] = []
    once = 0.0
    if phase == "naive":
        for epoch in range(epochs):
            started = time.perf_counter()
            for rows in _batches(len(paths), batch_size, epoch):
                naive_batch(paths, rows, size)
            seconds.append(time.perf_counter() - started)
    elif phase in ("decode", "decode-processes", "cache-first", "cache-later"):
        if processes:  # starting the pool is a one-off cost, timed apart (as the frozen features)
            started = time.perf_counter()
            source.batch(np.arange(2), train=False)
            once = time.perf_counter() - started
        runs = 1 if phase == "cache-first" else epochs
        for epoch in range(runs):
            started = time.perf_counter()
            for rows in _batches(len(paths), batch_size, epoch):
                source.batch(rows, train=True)
            seconds.append(time.perf_counter() - started)
        if phase == "cache-first":
            assert source.cache is not None and source.cache.complete, (
                "the first epoch did not fill the cache"
            )
    elif phase in ("encode-whole", "encode"):
        network = build_image_network(BACKBONE, 32, pretrained="registry")
        for _ in range(epochs):
            started = time.perf_counter()
            predict_logits(network, source, batch_size=WHOLE_PASS)
            seconds.append(time.perf_counter() - started)
    else:
        network = build_image_network(BACKBONE, 32, pretrained="registry", freeze=True)
        head = network.hash_layer
        optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
        targets = torch.from_numpy(
            np.random.default_rng(0).integers(0, 2, (len(paths), 32)).astype(np.float32)
        )
        loss_function = torch.nn.BCEWithLogitsLoss()

        def step(features: torch.Tensor, rows: np.ndarray) -> None:
            optimizer.zero_grad()
            loss_function(head(features), targets[torch.from_numpy(rows)]).backward()
            optimizer.step()

        features_all = None
        if phase == "frozen-features":
            started = time.perf_counter()
            spec = FrozenFeatures(BACKBONE, size)
            features_all = torch.from_numpy(backbone_features(paths, spec, cache_dir=options["features_dir"]))
            once = time.perf_counter() - started
        for epoch in range(epochs):
            started = time.perf_counter()
            for rows in _batches(len(paths), batch_size, epoch):
                if features_all is None:
                    with torch.no_grad():
                        features = network.body(source.batch(rows, train=True))
                else:
                    features = features_all[torch.from_numpy(rows)]
                step(features, rows)
            seconds.append(time.perf_counter() - started)
    workers_mib = _workers_peak_mib(source)
    source.close()
    return {"seconds": seconds, "once": once, "peak_mib": _peak_mib() + workers_mib}


def _fine_tune(phase: str, paths: list[Path], options: dict[str, Any]) -> tuple[list[float], float]:
    """Stage-2 epochs of the hash network on cached photos; per-epoch seconds and the cache fill."""
    import torch

    from ddcmh_core.engine.backbones import build_image_network
    from ddcmh_core.engine.config import TrainingConfig
    from ddcmh_core.engine.images import ImageFileSource
    from ddcmh_core.engine.trainer import train_hash_network

    cache = Path(options["cache_dir"]) / phase  # its own cache: the fill is this phase's one-off
    source = ImageFileSource.for_backbone(paths, BACKBONE, image_size=options["image_size"], cache=cache)
    once = fill_photo_cache(source)
    layout = torch.contiguous_format if phase == "fine-tune-row-major" else torch.channels_last
    network = build_image_network(BACKBONE, 32, pretrained="registry").use_memory_format(layout)
    targets = np.random.default_rng(0).integers(0, 2, (len(paths), 32)).astype(np.float32)
    config = TrainingConfig(max_epochs=options["epochs"], batch_size=options["batch_size"], schedule="none")
    result = train_hash_network(
        network, source, targets, np.arange(len(paths)), config, seed=0, device=torch.device("cpu")
    )
    source.close()
    return [entry["seconds"] for entry in result.history], once


def _workers_peak_mib(source: Any) -> float:
    """Sum of the peak resident memory of a source's decoding worker processes (0 for threads)."""
    processes = getattr(source._executor, "_processes", None) or {}
    total_kib = 0
    for pid in processes:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024.0


def in_fresh_process(phase: str, paths: list[Path], options: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_phase` in a newly spawned process."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_phase, phase, paths, options).result()


ROWS = (
    ("naive", "naive loop", ()),
    ("decode", "decode every time", ("naive",)),
    ("decode-processes", "decode, worker processes", ("naive", "decode")),
    ("cache-first", "cache, first epoch", ("naive", "decode")),
    ("cache-later", "cache, later epochs", ("naive", "decode")),
    ("frozen-body", "frozen body, every epoch", ()),
    ("frozen-features", "frozen features", ("frozen-body",)),
    ("encode-whole", "encode, 1,024 per pass", ()),
    ("encode", "encode, bounded batches", ("encode-whole",)),
    ("fine-tune-row-major", "fine-tune, row-major", ()),
    ("fine-tune", "fine-tune, channels-last", ("fine-tune-row-major",)),
)


def main(argv: list[str] | None = None) -> int:
    """Run every phase and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="use the first N photos only")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per phase (the cache's first: 1)")
    parser.add_argument("--skip-frozen", action="store_true", help="leave out the two frozen-body rows")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated phases to run, of {', '.join(p for p, _, _ in ROWS)}"
    )
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"bench_images: --data-dir {args.data_dir} does not exist", file=sys.stderr)
        return 2
    phases = [phase for phase, _, _ in ROWS]
    chosen = phases if args.only is None else [name.strip() for name in args.only.split(",")]
    unknown = [name for name in chosen if name not in phases]
    if unknown:
        print(f"bench_images: --only: unknown phase(s) {unknown}; choose from {phases}", file=sys.stderr)
        return 2
    print_header("photo pipeline: decoded-photo cache and frozen features", ("torch", "PIL"))
    paths = photo_paths(args.data_dir, args.limit)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as scratch:
        options = {
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "cache_dir": str(Path(scratch) / "photos"),
            "features_dir": str(Path(scratch) / "features"),
        }
        print(
            f"{len(paths)} photos from {args.data_dir}; {BACKBONE} input {args.image_size} px; "
            f"batches of {args.batch_size}; {args.epochs} epoch(s) per phase; each phase in a fresh process"
        )
        results: dict[str, dict[str, Any]] = {}
        print(f"{'phase':<28}{'photos/s':>10}{'s/epoch':>10}{'peak MiB':>10}  speed against the references")
        for phase, label, references in ROWS:
            if (args.skip_frozen and phase.startswith("frozen")) or phase not in chosen:
                continue
            result = in_fresh_process(phase, paths, options)
            results[phase] = result
            per_epoch = float(np.mean(result["seconds"]))
            ratios = [
                f"{float(np.mean(results[reference]['seconds'])) / per_epoch:.1f}x {reference}"
                for reference in references
                if reference in results
            ]
            ratio = ", ".join(ratios) if ratios else "reference"
            rate, peak = len(paths) / per_epoch, result["peak_mib"]
            print(f"{label:<28}{rate:>10.1f}{per_epoch:>10.2f}{peak:>10.0f}  {ratio}")
            once = result["once"]
            if once and phase == "decode-processes":
                print(f"{'':<28}(worker pool started once: {once:.1f} s, not in the epochs)")
            elif once and phase.startswith("fine-tune"):
                print(f"{'':<28}(photo cache filled once: {once:.1f} s, not in the epochs)")
            elif once:
                print(f"{'':<28}(features computed once: {once:.1f} s, {len(paths) / once:.1f} photos/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
