"""Data-layer figures: load time and peak memory of the real datasets, lazy HDF5 vs whole reads.

Run from the repository root::

    python benchmarks/bench_data.py [--data-dir ../shared/data] [--repeat 5]

Every measurement runs in a fresh Python process, so that peak memory is not inherited from an
earlier case. Peak memory is reported two ways: ``tracemalloc`` peak (Python and numpy
allocations made by the load itself) and the growth of the process's maximum resident set size
(``resource.getrusage``) over the load. Times are the median of ``--repeat`` runs in that process
(the first run included; the files are in the OS page cache after the first case).

Cases
-----
wikipedia            ``load_dataset("wikipedia")``: raw_features.mat + the two lists
mirflickr            ``load_dataset("mirflickr25k", image="none")``: YAll + LAll (.mat v5)
mirflickr-rawtags    the same, text view featurised from all_tags.txt (text="raw")
hdf5-whole / -lazy   the MIRFLICKR text view (20,015 x 1,386 uint8) copied to HDF5 in a temp dir,
                     read whole, or streamed in 1,000-row blocks (column sums), or the 10,000
                     training rows taken lazily; for a plain HDF5 copy (rows on axis 0, chunked
                     1,000 x 1,386) and a MATLAB v7.3-style copy (stored transposed, 1,386 x 20,015)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT as ROOT
from common import SHARED_DATA, describe_machine

DEFAULT_DATA = SHARED_DATA


# ---------------------------------------------------------------------------------- child side
def _prepare_copies(data_dir: Path, folder: Path) -> None:
    import h5py
    import numpy as np
    import scipy.io

    tags = scipy.io.loadmat(data_dir / "mirflickr25k" / "mirflickr25k-yall.mat")["YAll"]
    with h5py.File(folder / "plain.h5", "w") as handle:
        handle.create_dataset("YAll", data=tags, chunks=(1000, tags.shape[1]))
    with h5py.File(folder / "matlab73.h5", "w") as handle:
        handle.create_dataset("YAll", data=np.ascontiguousarray(tags.T))  # contiguous, like MATLAB -v7.3


def _case(name: str, data_dir: Path, scratch: Path) -> object:
    """Return a zero-argument callable that performs the measured work of one case."""
    import numpy as np

    from ddcmh_core.data import HDF5View, load_dataset, make_split
    from ddcmh_core.data.registry import DatasetRegistry
    from ddcmh_core.plugins import load_entry_points

    entry = __import__("importlib.metadata").metadata.EntryPoint(
        name="builtin-datasets", value="ddcmh_core.data.builtin", group="ddcmh"
    )
    registry = DatasetRegistry.from_plugin_set(load_entry_points([entry]))
    if name == "wikipedia":
        return lambda: load_dataset("wikipedia", data_dir=data_dir, registry=registry)
    if name == "mirflickr":
        return lambda: load_dataset("mirflickr25k", data_dir=data_dir, image="none", registry=registry)
    if name == "mirflickr-rawtags":
        return lambda: load_dataset(
            "mirflickr25k", data_dir=data_dir, image="none", text="raw", registry=registry
        )
    layout, _, mode = name.partition(":")
    # lazy reads use 1,000-row windows (the default window is ~64 MiB, i.e. this whole file)
    if layout == "plain":
        view = HDF5View(scratch / "plain.h5", "YAll", block_rows=1000)
    else:
        view = HDF5View(scratch / "matlab73.h5", "YAll", row_axis=1, reverse_item_axes=True, block_rows=1000)
    train = make_split(20015, "mirflickr25k", seed=0).train
    if mode == "whole":
        return lambda: view.take(None)
    if mode == "stream":

        def stream() -> object:
            total = np.zeros(view.shape[1], dtype=np.int64)
            for _, block in view.iter_blocks(1000):
                total += block.sum(axis=0, dtype=np.int64)
            return total

        return stream
    if mode == "train-lazy":
        return lambda: view.take(train)
    if mode == "train-whole":
        return lambda: view.take(None)[train]
    raise SystemExit(f"unknown case {name}")


def child(name: str, data_dir: Path, scratch: Path, repeat: int) -> None:
    import resource
    import tracemalloc
    import warnings

    warnings.simplefilter("ignore")
    work = _case(name, data_dir, scratch)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    result = work()  # type: ignore[operator]
    first = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024
    del result
    times = [first]
    for _ in range(repeat - 1):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    times.sort()
    print(
        json.dumps(
            {
                "case": name,
                "median_s": times[len(times) // 2],
                "min_s": times[0],
                "first_s": first,
                "tracemalloc_peak_mib": peak / 2**20,
                "maxrss_growth_mib": rss_growth / 2**20,
            }
        )
    )


# ---------------------------------------------------------------------------------- parent side
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data_dir, args.scratch, args.repeat)
        return
    for folder in ("wikipedia", "mirflickr25k"):
        if not (args.data_dir / folder).is_dir():
            raise SystemExit(f"missing {args.data_dir / folder}: give --data-dir (the ../shared/data folder)")
    print("machine: " + "; ".join(describe_machine(("scipy", "h5py"))))
    print(f"data: {args.data_dir.resolve()}   repeats per case: {args.repeat} (fresh process per case)")
    cases = [
        ("wikipedia", "Wikipedia features + lists (2,866 items)"),
        ("mirflickr", "MIRFLICKR YAll + LAll, .mat v5 (20,015 items)"),
        ("mirflickr-rawtags", "MIRFLICKR all_tags.txt featurised + LAll"),
        ("plain:whole", "HDF5 copy (rows on axis 0): read whole"),
        ("plain:stream", "HDF5 copy: stream 1,000-row blocks"),
        ("plain:train-lazy", "HDF5 copy: 10,000 train rows, lazy take (1,000-row windows)"),
        ("plain:train-whole", "HDF5 copy: 10,000 train rows, load whole then index"),
        ("matlab73:whole", "v7.3-style copy (stored transposed): read whole"),
        ("matlab73:stream", "v7.3-style copy: stream 1,000-row blocks"),
        ("matlab73:train-lazy", "v7.3-style copy: 10,000 train rows, lazy take (windows)"),
        ("matlab73:train-whole", "v7.3-style copy: 10,000 train rows, whole then index"),
    ]
    header = f"{'case':62s} {'median':>9s} {'first':>9s} {'tracemalloc':>12s} {'maxrss+':>9s}"
    with tempfile.TemporaryDirectory() as scratch:
        _prepare_copies(args.data_dir, Path(scratch))
        sizes = {p.name: p.stat().st_size for p in Path(scratch).iterdir()}
        print(
            "HDF5 copies of the MIRFLICKR text view: "
            + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items())
        )
        print(header)
        print("-" * len(header))
        for name, label in cases:
            output = subprocess.run(
                [sys.executable, __file__, "--child", name, "--data-dir", str(args.data_dir),
                 "--scratch", scratch, "--repeat", str(args.repeat)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            ).stdout  # fmt: skip
            row = json.loads(output.strip().splitlines()[-1])
            print(
                f"{label:62s} {row['median_s'] * 1e3:7.1f}ms {row['first_s'] * 1e3:7.1f}ms "
                f"{row['tracemalloc_peak_mib']:9.1f}MiB {row['maxrss_growth_mib']:6.1f}MiB"
            )
    print(
        "median/first: wall time of the call; tracemalloc: peak of allocations made during the first "
        "call; maxrss+: growth of the process's peak resident memory during the first call."
    )


if __name__ == "__main__":
    main()
