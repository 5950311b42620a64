"""Fidelity of the ported baselines: each port on Wikipedia against its authors' code (§c.5b).

For every method asked, fits the port on the 2,173 Wikipedia training pairs with seeds 0..n-1 at
every code length, encodes the 693 queries and the database (= the training pairs), scores both
directions with ddcmh's tie-aware MAP@all, and prints the mean over seeds beside the reference
value of the authors' code, the difference, whether it is within the tolerance, and the fit time.

    python benchmarks/bench_baselines.py scratch,seph --bits 16,32,64,128 --seeds 3

Needs ../shared/data/wikipedia and the ddcmh-baselines plugin installed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import SHARED_DATA, print_header

from ddcmh_core import get_method
from ddcmh_core.data import load_dataset
from ddcmh_core.evaluation.metrics import mean_average_precision

TASKS = ("image->text", "text->image")


def score_method(name: str, bits: int, seeds: int, data: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """MAP of both tasks and fit seconds, one entry per seed."""
    scores: dict[str, list[float]] = {task: [] for task in TASKS}
    scores["fit_seconds"] = []
    for seed in range(seeds):
        model = get_method(name, n_bits=bits, seed=seed)
        started = time.perf_counter()
        model.fit(data["image_train"], data["text_train"], data["labels_train"])
        scores["fit_seconds"].append(time.perf_counter() - started)
        image_query = model.encode_image(data["image_query"])
        text_query = model.encode_text(data["text_query"])
        image_db, text_db = model.encode_image(data["image_train"]), model.encode_text(data["text_train"])
        for task, query, database in (
            ("image->text", image_query, text_db),
            ("text->image", text_query, image_db),
        ):
            scores[task].append(
                float(mean_average_precision(query, database, data["labels_query"], data["labels_train"]))
            )
    return scores


def wikipedia_arrays(data_dir: Path) -> dict[str, np.ndarray]:
    """Training and query arrays of the standard Wikipedia split."""
    dataset = load_dataset("wikipedia", data_dir=data_dir)
    split = dataset.split
    image, text = dataset.image.take(), dataset.text.take()
    return {
        "image_train": np.asarray(image)[split.train],
        "text_train": np.asarray(text)[split.train],
        "labels_train": dataset.labels[split.train],
        "image_query": np.asarray(image)[split.query],
        "text_query": np.asarray(text)[split.query],
        "labels_query": dataset.labels[split.query],
    }


def main(argv: list[str] | None = None) -> int:
    from ddcmh_baselines.plugin import BASELINES
    from ddcmh_baselines.reference import wikipedia_reference

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", help="comma-separated method names, or 'all' (every port)")
    parser.add_argument("--bits", default="16,32,64,128")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA / "wikipedia")
    args = parser.parse_args(argv)
    names = [row[0] for row in BASELINES] if args.methods == "all" else args.methods.split(",")
    bit_lengths = [int(bits) for bits in args.bits.split(",")]
    print_header("ported baselines against the authors' code on Wikipedia (BASELINES.md §c.5b)")
    reference = wikipedia_reference()
    data = wikipedia_arrays(args.data_dir)
    print(f"{args.seeds} seeds, mean MAP@all (tie-aware); ref = authors' code, seed 1; ±{args.tolerance}")
    print("| method | bits | task | port | ± sd | ref | diff | within | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    failures = 0
    for name in names:
        for bits in bit_lengths:
            scores = score_method(name, bits, args.seeds, data)
            fit = float(np.mean(scores["fit_seconds"]))
            for task in TASKS:
                mean, spread = float(np.mean(scores[task])), float(np.std(scores[task]))
                ref = reference.value(name, bits, task)
                if ref is None:
                    diff_text, verdict = "—", "no ref"
                else:
                    diff = mean - ref
                    ok = abs(diff) <= args.tolerance
                    failures += not ok
                    diff_text, verdict = f"{diff:+.3f}", "yes" if ok else "NO"
                ref_text = "—" if ref is None else f"{ref:.3f}"
                print(
                    f"| {name} | {bits} | {task} | {mean:.3f} | {spread:.3f} | {ref_text} | {diff_text} "
                    f"| {verdict} | {fit:.1f} |",
                    flush=True,
                )
    print(f"cells outside ±{args.tolerance}: {failures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
