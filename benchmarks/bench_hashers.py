"""Stage-1 hashers on the real MIRFLICKR-25K text view: fit time and text->text MAP@all.

Run: ``python benchmarks/bench_hashers.py [--data-dir ../shared/data] [--bits 16,32,64] [--seeds N]
[--out DIR]``; with ``--out`` it also writes ``DIR/results.json``, a run record that
``ddcmh-bench report`` reads like a ``ddcmh-bench`` run's (rows "Stage 1 alone", task text->text),
so the MIRFLICKR-25K results page is generated from a committed record by the same renderer.

DCMH protocol split (2,000 queries, 10,000 training items, database = the 18,015 non-query
items, training included). Each hasher is fitted on the 10,000 training texts (1,386-d tag
bag-of-words, sparse; labels for supervised hashers), then queries and database are encoded with
its hash function. MAP@all is tie-aware (expected), relevance = share at least one of the 24
labels. The random-code floor of the same split is printed beside it. Targets (2 cores): ITQ fits
in < 2 s; SDH (1,000 anchors) and KSH (300 anchors, 2,000 labelled items) in < 60 s at 64 bits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from common import SHARED_DATA, describe_machine, print_header

from ddcmh_core import __version__, hasher_registry
from ddcmh_core.data import load_dataset
from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor

TASK = "text->text"


def _entry(
    method: str, hasher: str | None, bits: int, seeds: list[int], values: list[float]
) -> dict[str, Any]:
    """One record row in the layout of a ddcmh-bench run's results.json (mean and spread over seeds)."""
    return {
        "method": method, "hasher": hasher, "bits": bits, "task": TASK, "metric": "map@all",
        "tie_policy": "expected", "value": float(np.mean(values)), "std": float(np.std(values)),
        "seeds": seeds, "per_seed": values,
    }  # fmt: skip


def _record(
    dataset: Any, arguments: argparse.Namespace, rows: list[dict[str, Any]], wall: float
) -> dict[str, Any]:
    """The run as a record ``ddcmh-bench report`` renders: provenance, MAP rows, fit times."""
    from ddcmh_core.model_file import runtime_versions

    split = dataset.split
    fits = [
        {"method": "stage1", "hasher": r["hasher"], "bits": r["bits"], "mean": float(np.mean(r["fit"])),
         "std": float(np.std(r["fit"])), "per_seed": r["fit"]}
        for r in rows if r["hasher"] is not None
    ]  # fmt: skip
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
        "ddcmh_version": __version__,
        "config": {"bits": arguments.bits, "seeds": arguments.seeds, "dataset": dataset.name, "jobs": 1},
        "dataset": {
            "name": dataset.name,
            "fingerprint": dataset.fingerprint.as_dict(),
            "split": {
                **split.sizes,
                "protocol": split.protocol,
                "seed": split.seed,
                "checksum": split.checksum(),
            },
        },
        "versions": runtime_versions(),
        "device": describe_machine(())[0].split("; python")[0],
        "wall_seconds": wall,
        "cell_seconds": float(sum(sum(r["seconds"]) for r in rows)),
        "command": " ".join(["python", "benchmarks/bench_hashers.py", *sys.argv[1:]]),
        "fit_seconds": fits,
        "records": [_entry(r["method"], r["hasher"], r["bits"], r["seeds"], r["values"]) for r in rows],
    }


def _score(hasher: Any, texts: dict[str, Any], labels: dict[str, Any]) -> float:
    """Tie-aware MAP@all of the queries' codes against the database's."""
    codes = {part: hasher.encode(texts[part]) for part in ("query", "database")}
    return float(
        mean_average_precision(codes["query"], codes["database"], labels["query"], labels["database"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED_DATA))
    parser.add_argument("--bits", default=[16, 32, 64], type=lambda text: [int(b) for b in text.split(",")])
    parser.add_argument("--hashers", default=",".join(hasher_registry().names()))
    parser.add_argument("--seeds", type=int, default=1, help="repeat each fit with seeds 0..N-1")
    parser.add_argument(
        "--out", type=Path, help="also write DIR/results.json (a record for ddcmh-bench report)"
    )
    arguments = parser.parse_args()
    started = time.perf_counter()
    print_header("Stage-1 hashers on MIRFLICKR-25K text", ("scipy", "sklearn"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset("mirflickr25k", data_dir=arguments.data_dir, image="none")
    split = dataset.split
    texts = {
        part: dataset.text.select(getattr(split, part)).take() for part in ("train", "query", "database")
    }
    labels = {part: dataset.labels[getattr(split, part)] for part in ("train", "query", "database")}
    print(f"data: {dataset.fingerprint}; split {split.sizes} ({split.protocol}, seed {split.seed})")
    seeds = list(range(arguments.seeds))
    rows: list[dict[str, Any]] = []
    for bits in arguments.bits:
        started_floor = time.perf_counter()
        floors = [float(random_code_floor(labels["query"], labels["database"], bits, seed=s)) for s in seeds]
        seconds = [(time.perf_counter() - started_floor) / len(seeds)] * len(seeds)
        rows.append({"method": "random", "hasher": None, "bits": bits, "seeds": seeds, "values": floors,
                     "fit": [], "seconds": seconds})  # fmt: skip
    floor_of = {row["bits"]: float(np.mean(row["values"])) for row in rows}
    print(f"{'hasher':<10} {'kind':<13} {'bits':>4} {'fit s':>8} {'MAP@all':>8} {'floor':>7} {'gain':>7}")
    registry = hasher_registry()
    for name in arguments.hashers.split(","):
        for bits in arguments.bits:
            row: dict[str, Any] = {"method": "stage1", "hasher": name, "bits": bits, "seeds": seeds,
                                   "values": [], "fit": [], "seconds": []}  # fmt: skip
            for seed in seeds:
                cell_started = time.perf_counter()
                hasher = registry.create(name, n_bits=bits, seed=seed)
                supervised = hasher.tags()["uses_labels"]
                hasher.fit(texts["train"], labels["train"] if supervised else None)
                row["fit"].append(time.perf_counter() - cell_started)
                row["values"].append(_score(hasher, texts, labels))
                row["seconds"].append(time.perf_counter() - cell_started)
            rows.append(row)
            kind = "supervised" if supervised else "unsupervised"
            value = float(np.mean(row["values"]))
            print(
                f"{name:<10} {kind:<13} {bits:>4} {np.mean(row['fit']):>8.2f} {value:>8.4f} "
                f"{floor_of[bits]:>7.4f} {value - floor_of[bits]:>+7.4f}",
                flush=True,
            )
    if arguments.out is not None:
        arguments.out.mkdir(parents=True, exist_ok=True)
        record = _record(dataset, arguments, rows, time.perf_counter() - started)
        (arguments.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"record: {arguments.out / 'results.json'}")


if __name__ == "__main__":
    main()
