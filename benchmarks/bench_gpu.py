"""Stage 2 of DDCMH on a GPU: the MobileNetV2 image branch on the Web News photos.

Run on a GPU machine (under 5 minutes on one recent GPU)::

    python benchmarks/bench_gpu.py [--data-dir ../shared/data/web_news_full]

and on a CPU, as CI does, to prove the script works::

    python benchmarks/bench_gpu.py --device cpu --quick

It prints, for the fine-tuned MobileNetV2 hash network (registry ImageNet weights, 32 bits)
trained as Stage 2 trains it (:func:`~ddcmh_core.engine.trainer.train_hash_network`, per-bit
sigmoid cross-entropy against fixed seeded target codes, augmentation on):

* the decoded-photo cache's fill (the first epoch's decoding, done once before the timed epochs);
* the Stage-2 epoch time and photos per second of three variants, measured in the same process:
  fp32 with the convolutions in row-major layout (the reference), fp32 in channels-last layout
  (the network's default, :meth:`~ddcmh_core.engine.backbones.ImageHashNetwork.use_memory_format`),
  and mixed precision (autocast) in channels-last, with each one's speed against the reference
  (on a CPU autocast is off, so the third row is left out);
* the peak GPU memory of each (``torch.cuda.max_memory_allocated``; on a CPU the process's peak
  resident memory instead);
* the fraction of identical code bits between a model trained on the CPU and one trained on the
  device from the same initial weights and seed, both in fp32, encoding the same photos. On a
  CPU-only run both are CPU models (the fraction then checks that training is deterministic).

``--quick`` shrinks everything (64 photos at 64 px, one epoch per variant, 32 photos for the
agreement) so that CI proves the script is not broken in well under a minute.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, fill_photo_cache, print_header

DEFAULT_DATA = SHARED_DATA / "web_news_full"
BACKBONE = "mobilenet_v2"
N_BITS = 32


@dataclass
class Settings:
    """What one invocation measures."""

    data_dir: Path
    device: str
    limit: int | None
    image_size: int
    batch_size: int
    epochs: int
    agreement_photos: int
    seed: int


def parse_settings(argv: list[str] | None) -> Settings:
    """The command line, with ``--quick``'s smaller defaults applied."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="a Web News folder layout")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="64 photos at 64 px, one epoch per variant")
    parser.add_argument("--limit", type=int, default=None, help="use the first N photos")
    parser.add_argument("--image-size", type=int, default=None, help="input side (default 224; quick 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128; quick 16")
    parser.add_argument(
        "--epochs", type=int, default=None, help="timed epochs per variant (default 2; quick 1)"
    )
    parser.add_argument(
        "--agreement-photos",
        type=int,
        default=None,
        help="photos trained on for the CPU/device bit agreement",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: int | None, full: int, small: int) -> int:
        return value if value is not None else (small if quick else full)

    return Settings(
        data_dir=args.data_dir,
        device=args.device,
        limit=args.limit if args.limit is not None else (64 if quick else None),
        image_size=pick(args.image_size, 224, 64),
        batch_size=pick(args.batch_size, 128, 16),
        epochs=pick(args.epochs, 2, 1),
        agreement_photos=pick(args.agreement_photos, 256, 32),
        seed=args.seed,
    )


def peak_memory_mib(device: Any) -> float:
    """Peak GPU memory since the last reset, or the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_network(seed: int) -> Any:
    """The MobileNetV2 hash network with registry weights; the hash layer drawn from ``seed``."""
    from ddcmh_core.engine.backbones import build_image_network

    torch.manual_seed(seed)
    return build_image_network(BACKBONE, N_BITS, pretrained="registry")


def train(network: Any, source: Any, targets: np.ndarray, rows: np.ndarray, settings: Settings, device: Any,
          *, epochs: int, mixed_precision: bool, label: str) -> Any:  # fmt: skip
    """Stage-2 training of ``network`` on ``rows`` (no validation: every epoch runs)."""
    from ddcmh_core.bench.runner import stderr_progress
    from ddcmh_core.engine.config import TrainingConfig
    from ddcmh_core.engine.trainer import train_hash_network

    config = TrainingConfig(max_epochs=epochs, batch_size=settings.batch_size, schedule="none")
    return train_hash_network(
        network.to(device), source, targets, rows, config, seed=settings.seed, device=device,
        mixed_precision=mixed_precision, progress=stderr_progress(), label=label,
    )  # fmt: skip


def synchronise(device: Any) -> None:
    """Wait for the device's queued work (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_variant(name: str, settings: Settings, source: Any, targets: np.ndarray, device: Any,
                  *, memory_format: Any, mixed_precision: bool) -> dict[str, float]:  # fmt: skip
    """Train a fresh network ``settings.epochs`` epochs; seconds per epoch, photos/s, peak memory.

    With two epochs or more the first one (allocations, cuDNN's algorithm search) is not counted.
    """
    network = build_network(settings.seed).use_memory_format(memory_format)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows = np.arange(len(targets))
    result = train(network, source, targets, rows, settings, device, epochs=settings.epochs,
                   mixed_precision=mixed_precision, label=name)  # fmt: skip
    synchronise(device)
    epochs = [entry["seconds"] for entry in result.history]
    seconds = float(np.mean(epochs[1:] if len(epochs) > 1 else epochs))  # the first one warms up
    return {"seconds": seconds, "photos_per_s": len(rows) / seconds, "peak_mib": peak_memory_mib(device)}


def codes_after_training(settings: Settings, source: Any, eval_source: Any, targets: np.ndarray,
                         device: Any) -> np.ndarray:  # fmt: skip
    """Signs of the codes of the agreement photos from a network trained on ``device`` in fp32."""
    from ddcmh_core.engine.inference import predict_logits

    rows = np.arange(min(settings.agreement_photos, len(targets)))
    network = build_network(settings.seed)
    train(network, source, targets, rows, settings, device, epochs=1, mixed_precision=False,
          label=f"agreement on {device.type}")  # fmt: skip
    logits = predict_logits(network, eval_source, rows, batch_size=settings.batch_size, device=device)
    return (torch.as_tensor(logits).cpu().numpy() > 0).astype(np.int8)


def main(argv: list[str] | None = None) -> int:
    """Measure and print; exit 2 on a bad data folder or an unavailable device."""
    settings = parse_settings(argv)
    from ddcmh_core.data import DatasetWarning
    from ddcmh_core.data.folder import load_web_news
    from ddcmh_core.engine.images import ImageFileSource
    from ddcmh_core.errors import DdcmhError

    if not settings.data_dir.is_dir():
        print(f"bench_gpu: --data-dir {settings.data_dir} does not exist", file=sys.stderr)
        return 2
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: --device cuda: no CUDA device here (use --device cpu --quick)", file=sys.stderr)
        return 2
    print_header("Stage 2 on a GPU: MobileNetV2 hash network on Web News photos", ("torch", "torchvision"))
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)  # the withheld test photos
            paths = list(load_web_news(settings.data_dir).image.paths)
    except DdcmhError as error:
        print(f"bench_gpu: {error}", file=sys.stderr)
        return 2
    paths = paths[: settings.limit] if settings.limit else paths
    targets = np.random.default_rng(settings.seed).integers(0, 2, (len(paths), N_BITS)).astype(np.float32)
    print(
        f"{len(paths)} photos from {settings.data_dir}; {BACKBONE} at {settings.image_size} px, "
        f"{N_BITS} bits; batches of {settings.batch_size}; {settings.epochs} epoch(s) per variant "
        f"(the first not timed when there are two or more); device {device}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        options = {"image_size": settings.image_size, "cache": Path(scratch) / "photos"}
        source = ImageFileSource.for_backbone(paths, BACKBONE, **options)
        fill = fill_photo_cache(source)
        print(
            f"photo cache filled: {fill:.1f} s, {len(paths) / fill:.1f} photos/s (decoded and resized once)"
        )
        eval_source = ImageFileSource.for_backbone(
            paths, BACKBONE, augment=False, **options
        )  # reads the cache
        variants = [("fp32, row-major", torch.contiguous_format, False)]
        variants.append(("fp32, channels-last", torch.channels_last, False))
        if device.type == "cuda":
            variants.append(("mixed precision, chan-last", torch.channels_last, True))
        rows = {
            name: timed_variant(
                name, settings, source, targets, device, memory_format=layout, mixed_precision=mixed
            )
            for name, layout, mixed in variants
        }
        memory = "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB"
        print(f"{'variant':<28}{'s/epoch':>10}{'photos/s':>10}{memory:>14}  speed")
        reference_seconds = rows["fp32, row-major"]["seconds"]
        for name, row in rows.items():
            figures = f"{row['seconds']:>10.2f}{row['photos_per_s']:>10.1f}{row['peak_mib']:>14.0f}"
            ratio = reference_seconds / row["seconds"]
            speed = "reference" if name == "fp32, row-major" else f"{ratio:.2f}x fp32, row-major"
            print(f"{name:<28}{figures}  {speed}")
        if device.type != "cuda":
            print("(on a CPU autocast is off: no mixed-precision row)")
        reference = codes_after_training(settings, source, eval_source, targets, torch.device("cpu"))
        other = codes_after_training(settings, source, eval_source, targets, device)
        agreement = float(np.mean(reference == other))
        print(
            f"identical code bits, cpu model vs {device.type} model (same initial weights and seed, fp32, "
            f"{reference.shape[0]} photos x {N_BITS} bits): {agreement:.4f}"
        )
        source.close()
        eval_source.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
