"""Stage-1 hashers on the real MIRFLICKR-25K text view: fit time and text->text MAP@all.

Run: ``python benchmarks/bench_hashers.py [--data-dir ../shared/data] [--bits 16,32,64]``

DCMH protocol split (2,000 queries, 10,000 training items, database = the 18,015 non-query
items, training included). Each hasher is fitted on the 10,000 training texts (1,386-d tag
bag-of-words, sparse; labels for supervised hashers), then queries and database are encoded with
its hash function. MAP@all is tie-aware (expected), relevance = share at least one of the 24
labels. The random-code floor of the same split is printed beside it. Targets (2 cores): ITQ fits
in < 2 s; SDH (1,000 anchors) and KSH (300 anchors, 2,000 labelled items) in < 60 s at 64 bits.
"""

from __future__ import annotations

import argparse
import time
import warnings

from common import SHARED_DATA, print_header

from ddcmh_core import hasher_registry
from ddcmh_core.data import load_dataset
from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED_DATA))
    parser.add_argument("--bits", default="16,32,64")
    parser.add_argument("--hashers", default=",".join(hasher_registry().names()))
    arguments = parser.parse_args()
    print_header("Stage-1 hashers on MIRFLICKR-25K text", ("scipy", "sklearn"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset("mirflickr25k", data_dir=arguments.data_dir, image="none")
    split = dataset.split
    texts, labels = dataset.text, dataset.labels
    train_texts = texts.select(split.train).take()
    query_texts, database_texts = texts.select(split.query).take(), texts.select(split.database).take()
    query_labels, database_labels = labels[split.query], labels[split.database]
    print(f"data: {dataset.fingerprint}; split {split.sizes} ({split.protocol}, seed {split.seed})")
    bits_list = [int(b) for b in arguments.bits.split(",")]
    floors = {b: float(random_code_floor(query_labels, database_labels, b, seed=0)) for b in bits_list}
    print(f"{'hasher':<10} {'kind':<13} {'bits':>4} {'fit s':>8} {'MAP@all':>8} {'floor':>7} {'gain':>7}")
    registry = hasher_registry()
    for name in arguments.hashers.split(","):
        for bits in bits_list:
            hasher = registry.create(name, n_bits=bits, seed=0)
            supervised = hasher.tags()["uses_labels"]
            started = time.perf_counter()
            hasher.fit(train_texts, labels[split.train] if supervised else None)
            seconds = time.perf_counter() - started
            value = float(
                mean_average_precision(
                    hasher.encode(query_texts), hasher.encode(database_texts), query_labels, database_labels
                )
            )
            kind = "supervised" if supervised else "unsupervised"
            print(
                f"{name:<10} {kind:<13} {bits:>4} {seconds:>8.2f} {value:>8.4f} {floors[bits]:>7.4f} "
                f"{value - floors[bits]:>+7.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
