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
from ddcmh_baselines.reference import TASKS, protocol_maps

from ddcmh_core import get_method


def score_method(name: str, bits: int, seeds: int, data: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """MAP of both tasks and fit seconds, one entry per seed."""
    scores: dict[str, list[float]] = {task: [] for task in TASKS}
    scores["fit_seconds"] = []
    for seed in range(seeds):
        model = get_method(name, n_bits=bits, seed=seed)
        started = time.perf_counter()
        model.fit(data["image_train"], data["text_train"], data["labels_train"])
        scores["fit_seconds"].append(time.perf_counter() - started)
        for task, value in protocol_maps(model, data).items():
            scores[task].append(value)
    return scores


def main(argv: list[str] | None = None) -> int:
    from ddcmh_baselines.plugin import BASELINES
    from ddcmh_baselines.reference import wikipedia_protocol_data, wikipedia_reference

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
    data = wikipedia_protocol_data(args.data_dir)
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
