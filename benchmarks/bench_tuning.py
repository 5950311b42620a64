"""Cost of choosing hyper-parameters on the validation split: the full grid against successive halving.

The reference run trains every candidate with every seed and shares nothing (how ``--tune`` worked
before). The measured run is the default: successive halving over seeds (after each seed only the
best third of the candidates still racing runs the next one, and the race ends when one is left),
candidates abandoned mid-fit in the first round when a stage's validation curve trails the median
of the finished candidates' (the median stopping rule), and stage files shared between candidates
that agree on Stage 1 or on Stages 1 and 2. Both runs see the same data, candidates and
seeds in the same process; the script prints both times, their ratio and whether they chose the
same candidate.

The grid is the one of the Wikipedia results page: the image network plain or RBF-lifted (width
0.35 or 0.7) times the text network plain or lifted (0.35), 6 candidates, 3 seeds, COSDISH.

    python benchmarks/bench_tuning.py --bits 32 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import torch
from common import SHARED_DATA, print_header

from ddcmh_core.data import load_dataset
from ddcmh_core.methods.ddcmh import DDCMHConfig
from ddcmh_core.tuning import tune

LIFT = {"kernel_lift": "rbf", "lift_anchors": 2000}
GRID = {
    "image_network": [
        {"kernel_lift": "none"},
        {**LIFT, "lift_width_scale": 0.35},
        {**LIFT, "lift_width_scale": 0.7},
    ],
    "text_network": [{"kernel_lift": "none"}, {**LIFT, "lift_width_scale": 0.35}],
}


def run(views: tuple[Any, Any, Any], base: DDCMHConfig, strategy: str, shared: bool) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        _, result = tune(
            *views, GRID, params=base, repeats=3, strategy=strategy, run_dir=folder if shared else None
        )
    return {
        "seconds": time.perf_counter() - started,
        "chosen": result.best_index,
        "fits": sum(len(candidate.scores) for candidate in result.candidates),
        "abandoned": [index for index, candidate in enumerate(result.candidates) if candidate.abandoned],
        "scores": [[round(score, 4) for score in candidate.scores] for candidate in result.candidates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--hasher", default="cosdish")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "wikipedia"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_header(f"tuning cost: full grid against successive halving ({args.threads} thread(s))")
    data = load_dataset("wikipedia", data_dir=args.data_dir)
    train = data.split.train
    views = (data.image.select(train), data.text.select(train), data.labels[train])
    base = DDCMHConfig(hasher=args.hasher, n_bits=args.bits, device="cpu", refit=False)
    results = {}
    for name, strategy, shared in (("grid", "grid", False), ("halving", "halving", True)):
        results[name] = run(views, base, strategy, shared)
        print(f"{name}: {results[name]}", flush=True)
    grid, halving = results["grid"], results["halving"]
    print("\n| run | seconds | fits | chosen candidate |\n|---|---|---|---|")
    print(f"| full grid, nothing shared | {grid['seconds']:.0f} | {grid['fits']} | {grid['chosen'] + 1} |")
    print(
        f"| halving + median stopping, shared stages | {halving['seconds']:.0f} | {halving['fits']} | "
        f"{halving['chosen'] + 1} |"
    )
    same = grid["chosen"] == halving["chosen"]
    ratio = grid["seconds"] / halving["seconds"]
    print(f"Ratio full grid / halving: {ratio:.1f}x (target >= 3); same choice: {same}")


if __name__ == "__main__":
    main()
