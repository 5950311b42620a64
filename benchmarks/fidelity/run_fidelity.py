"""Fidelity of ddcmh's built-in hashers to their authors' public code on MIRFLICKR-25K text.

Run (GNU Octave and its ``statistics`` package on the PATH, e.g. ``apt-get install octave
octave-statistics``; each repository of ``REFERENCES`` cloned under ``--reference-dir`` as
``OWNER/NAME`` and checked out at its commit; never in CI)::

    nice -n 10 python benchmarks/fidelity/run_fidelity.py --reference-dir ~/hashing-references \\
        --data-dir ../shared/data --bits 64 --seeds 2 --timeout 2400 \\
        --out docs/results/records/fidelity-mirflickr.json
    python benchmarks/fidelity/run_fidelity.py --report docs/results/records/fidelity-mirflickr.json \\
        --out docs/fidelity.md

Protocol: the DCMH split of MIRFLICKR-25K (2,000 queries; database = the other 18,015 items;
the split's 10,000 training items, a subset of the database). Both implementations get the same
1,386-d tag vectors (and the 24-label matrix for supervised hashers): ddcmh fits the hasher on the
training rows and encodes queries and database; the reference code gets the same rows in a MAT
file (``reference_codes.m`` prepares them as each reference's demo does and calls its functions).
Both sets of codes are scored by ddcmh's own MAP@all (text -> text, relevant = share a label,
tie-aware). Random methods run with seeds 0..S-1 in both (mean ± sd); deterministic ones once.

The reference code is never part of this repository: a hasher whose reference is absent from
``--reference-dir`` is skipped with a message, and one without public reference code is reported
with ddcmh's MAP only. Explanations of the differences live in ``CASES`` and go into the record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SHARED_DATA, describe_machine

from ddcmh_core import __version__, get_hasher
from ddcmh_core.errors import InputError

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.01
"""A difference of MAP@all within ±TOLERANCE counts as agreement (issue 15 part 7)."""
REPORT_COMMAND = "python benchmarks/fidelity/run_fidelity.py --report {record} --out {page}"


@dataclass(frozen=True)
class Reference:
    """A public repository of reference code, checked out as ``<reference-dir>/<repo>``."""

    repo: str
    commit: str
    files: tuple[str, ...]

    def root(self, reference_dir: Path) -> Path:
        """Where the checkout is expected."""
        return reference_dir / self.repo

    def missing(self, reference_dir: Path) -> list[str]:
        """The files the driver needs that the checkout lacks."""
        return [name for name in self.files if not (self.root(reference_dir) / name).is_file()]


REFERENCES = {
    "willard_yuan": Reference(
        "willard-yuan/hashing-baseline-for-image-retrieval",
        "822837884bdb5d44e297015d05ad081cea695a56",
        ("Method-PCAH/trainPCAH.m", "Method-PCAH/compressPCAH.m", "utils/compactbit.m"),
    ),
    "zju": Reference(
        "ZJULearning/MatlabFunc",
        "97504df0f597c1980ab76ddc0c9c5d669043c6c9",
        (
            *(
                f"ANNS/Hashing/Unsupervised/{name}.m"
                for name in ("LSH_learn", "LSH_compress", "ITQ_learn", "ITQ_compress", "ITQ/ITQ")
            ),
            *(
                f"ANNS/Hashing/Unsupervised/{name}.m"
                for name in ("SH_learn", "SH_compress", "SH/SpectralHashing", "SpH_learn", "SpH_compress")
            ),
            *(
                f"ANNS/Hashing/Unsupervised/{name}.m"
                for name in (
                    "SpH/SphericalHashing",
                    "IsoH_learn",
                    "IsoH_compress",
                    "DSH_learn",
                    "DSH_compress",
                )
            ),
            "Clustering/litekmeans.m",
            "Tools/EuDist2.m",
        ),
    ),
    "agh": Reference(
        "ColumbiaDVMM/Anchor-Graph-Hashing",
        "b15951cae22da2ce16078449001dd7fae8dde6b1",
        ("OneLayerAGH_Train.m", "OneLayerAGH_Test.m", "sqdist.m"),
    ),
    "sdh": Reference(
        "bd622/DiscretHashing",
        "bfaafc13dddf9440c2b0a8637f0ba06a270e9aae",
        ("SDH.m", "RRC.m", "normalize.m", "sqdist.m"),
    ),
    "ksh": Reference(
        "ColumbiaDVMM/Supervised-Hashing-with-Kernels",
        "b0acf3b1a83dbea4f4961d731a2a6b13ef441c55",
        ("KSH_demo.m", "OptProjectionFast.m", "sqdist.m"),
    ),
    "lfh": Reference("TreezzZ/LFH_PyTorch", "b18fa6fbfb9c42c42da1c760ac18b185e63170b6", ("lfh.py",)),
}
"""Each reference repository, the commit the record was made with, and the files used."""


@dataclass(frozen=True)
class Case:
    """One row of the comparison: a ddcmh hasher setting against one reference setting.

    Attributes
    ----------
    hasher, label : str
        ddcmh's registry name, and the row's label on the page.
    reference : str or None
        Key of ``REFERENCES``; None when the method has no public reference code.
    code : str
        How the reference is run (for the page).
    random : bool
        Whether the methods draw random numbers (then every seed runs; else seed 0 only).
    params, driver : dict
        Extra ddcmh hyper-parameters; options for ``reference_codes.m``.
    note : str
        Why the two differ, or what the row shows.
    train_size, max_seeds : int or None
        At most this many training rows / seeds for this row, in both implementations.
    """

    hasher: str
    label: str
    reference: str | None
    code: str = ""
    random: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    driver: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    train_size: int | None = None
    max_seeds: int | None = None


CASES = (
    Case("lsh", "LSH", "zju", "LSH_learn.m / LSH_compress.m on centred rows"),
    Case("pcah", "PCAH", "willard_yuan", "trainPCAH.m / compressPCAH.m on centred rows", random=False),
    Case("itq", "ITQ", "zju", "ITQ_learn.m (Gong's ITQ.m) / ITQ_compress.m on centred rows"),
    Case(
        "cca-itq", "CCA-ITQ", None,
        note="No public reference code from the authors (Gong & Lazebnik published PCA-ITQ's ITQ.m; "
        "the CCA variant is described in the paper only).",
    ),
    Case("sh", "SH", "zju", "SH_learn.m (SpectralHashing.m) / SH_compress.m on centred rows", random=False),
    Case(
        "agh", "AGH", "agh", "litekmeans (ZJU, 300 anchors, 5 iterations) + OneLayerAGH_Train/Test.m, s = 2",
        note="The anchors are k-means centres in both, from different random starts.",
    ),
    Case(
        "sdh", "SDH", "sdh", "demo_SDH.m's recipe + SDH.m (current version, warm-started B-steps)",
        note="Both use L2-normalised rows, 1,000 random anchors and ddcmh's default width (sigma^2 = "
        "mean squared training-to-anchor distance) instead of the demo's 0.4 for dense image "
        "features; the B-steps start from the previous codes as in the current SDH.m. 5,000 "
        "training rows in both: SDH.m's ridge solves on 10,000 rows are slow under Octave.",
        train_size=5000,
    ),
    Case(
        "sdh", "SDH, dcc_start=\"zeros\" (the former default)", "sdh",
        "demo_SDH.m's recipe + SDH.m (current version)", params={"dcc_start": "zeros"},
        note="ddcmh's former default reset B to zeros before every B-step, as the first commit of "
        "SDH.m (ae8a00c) did; the current SDH.m (bfaafc1) warm-starts, and so does ddcmh's default "
        "now. This row shows the cost of the reset.",
        train_size=5000,
    ),
    Case(
        "ksh", "KSH", "ksh", "KSH_demo.m's kernel and projection blocks + OptProjectionFast.m, "
        "anchors among distinct rows", driver={"distinct_anchors": 1},
        note="The reference samples its 300 anchors among distinct training rows here; ddcmh samples "
        "rows and regularises the generalised eigenproblem (jitter), see the next row. One seed: a "
        "KSH_demo.m run at 64 bits (500 gradient iterations per bit on a 2,000 x 2,000 S) takes "
        "over 20 minutes under Octave on the machine below.",
        max_seeds=1,
    ),
    Case(
        "ksh", "KSH, reference anchors as in KSH_demo.m (rows may repeat)", "ksh",
        "KSH_demo.m's kernel and projection blocks + OptProjectionFast.m, random anchor rows",
        driver={"distinct_anchors": 0},
        note="Many MIRFLICKR items have identical tag vectors, so random anchor rows repeat; repeated "
        "anchors make K'K singular, and KSH_demo.m's unregularised eig(LM, RM) then solves an "
        "ill-posed problem whose answer can change with the anchor sample (issue 15 reports a wide "
        "spread over seeds); with the one seed run here it agrees. ddcmh keeps its regularised "
        "solve (eig_jitter), which does not need distinct anchors. One seed, as in the row above.",
        max_seeds=1,
    ),
    Case(
        "cosdish", "COSDISH", None,
        note="No public reference code from the authors (HASHERS.md §11: a third-party MATLAB "
        "function of unidentified origin only).",
    ),
    Case(
        "sph", "SpH", "zju", "SpH_learn.m (SphericalHashing.m) / SpH_compress.m",
        note="SphericalHashing.m has no iteration cap; ddcmh stops after 100 iterations.",
    ),
    Case(
        "isohash", "IsoHash", "zju", "IsoH_learn.m / IsoH_compress.m on centred rows",
        note="ddcmh implements the paper's lift-and-projection, which equalises the projected "
        "variances; IsoH_learn.m's loop does not (HASHERS.md §7), so the two rotations differ.",
    ),
    Case("dsh", "DSH", "zju", "DSH_learn.m / DSH_compress.m"),
    Case(
        "lfh", "LFH", "lfh", "lfh.train (PyTorch) with beta = 30/r, lambda = n/d, r sampled columns",
        note="The authors' MATLAB code is not public; the reference is TreezzZ's PyTorch port, "
        "which forms the full n x n similarity matrix.",
    ),
)  # fmt: skip
"""The rows of the record, in page order; the notes explain differences beyond ±TOLERANCE."""


@dataclass
class Protocol:
    """The split both implementations see: training rows, and the rows to encode (queries first)."""

    train: sp.csr_matrix
    train_labels: np.ndarray
    encode: sp.csr_matrix
    labels: np.ndarray
    n_query: int
    description: dict[str, Any]

    def first_training_rows(self, n_train: int | None) -> Protocol:
        """The same protocol with only the first ``n_train`` training rows (all when None)."""
        if n_train is None or n_train >= self.train.shape[0]:
            return self
        return Protocol(
            self.train[:n_train], self.train_labels[:n_train], self.encode, self.labels, self.n_query,
            self.description,
        )  # fmt: skip


def load_protocol(data_dir: Path, n_train: int | None) -> Protocol:
    """MIRFLICKR-25K text and labels on the DCMH split (the first ``n_train`` training items)."""
    from ddcmh_core.data import load_dataset

    dataset = load_dataset("mirflickr25k", data_dir=data_dir, image="none")
    split = dataset.split
    train_index = split.train if n_train is None else split.train[:n_train]
    order = np.concatenate([split.query, split.database])
    view = dataset.text
    if view is None:
        raise InputError(
            f"--data-dir: expected MIRFLICKR-25K with its text view under {data_dir}, found none"
        )
    texts = sp.csr_matrix(view.select(order).take(), dtype=np.float64)
    train = sp.csr_matrix(view.select(train_index).take(), dtype=np.float64)
    description = {
        "dataset": "mirflickr25k", "view": "text (1,386-d tag vectors)", "split": split.protocol,
        "split_checksum": split.checksum(), "split_seed": split.seed, "n_query": int(split.query.size),
        "n_database": int(split.database.size), "n_train": int(train_index.size),
    }  # fmt: skip
    return Protocol(
        train, dataset.labels[train_index], texts, dataset.labels[order], int(split.query.size), description
    )


def score(codes: np.ndarray, protocol: Protocol) -> float:
    """Text -> text MAP@all (ddcmh's metric) of the codes of the query rows against the database rows."""
    from ddcmh_core.evaluation.metrics import mean_average_precision

    q = protocol.n_query
    labels = protocol.labels
    return float(mean_average_precision(codes[:q], codes[q:], labels[:q], labels[q:]).value)


def ddcmh_codes(case: Case, protocol: Protocol, n_bits: int, seed: int) -> np.ndarray:
    """Codes of ddcmh's hasher (its defaults plus the case's parameters)."""
    hasher = get_hasher(case.hasher, n_bits=n_bits, seed=seed, **case.params)
    labels = protocol.train_labels if hasher.tags()["uses_labels"] else None
    hasher.fit(protocol.train, labels)
    return np.asarray(hasher.encode(protocol.encode))


def octave_codes(case: Case, protocol: Protocol, n_bits: int, seed: int, settings: Settings) -> np.ndarray:
    """Codes of the reference MATLAB code, run by ``reference_codes.m`` in one Octave process."""
    roots = {f"root_{key}": str(ref.root(settings.reference_dir)) for key, ref in REFERENCES.items()}
    with tempfile.TemporaryDirectory(dir=settings.work_dir) as scratch:
        inputs, outputs = Path(scratch) / "inputs.mat", Path(scratch) / "codes.mat"
        scipy.io.savemat(
            inputs,
            {
                "method": case.hasher, "n_bits": float(n_bits), "seed": float(seed),
                "train": protocol.train.tocsc(), "train_labels": protocol.train_labels.astype(np.float64),
                "encode": protocol.encode.tocsc(),
                "distinct_anchors": float(case.driver.get("distinct_anchors", 0)),
                **roots,
            },
            do_compression=True,
        )  # fmt: skip
        script = f"addpath('{HERE}'); reference_codes('{inputs}', '{outputs}');"
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        run = subprocess.run(
            [settings.octave, "--no-gui", "--no-window-system", "--quiet", "--eval", script],
            capture_output=True, text=True, timeout=settings.timeout, env=environment,
        )  # fmt: skip
        if not outputs.is_file():
            raise RuntimeError(f"Octave failed (exit {run.returncode}): {run.stderr.strip()[-1500:]}")
        return np.asarray(scipy.io.loadmat(outputs)["codes"], dtype=np.uint8)


def lfh_reference_codes(protocol: Protocol, n_bits: int, seed: int, settings: Settings) -> np.ndarray:
    """Codes of TreezzZ/LFH_PyTorch's ``lfh.train`` (its MAP and PR curve are computed and ignored)."""
    import torch

    sys.path.insert(0, str(REFERENCES["lfh"].root(settings.reference_dir)))
    import lfh

    torch.manual_seed(seed)
    n, d = protocol.train.shape
    q = protocol.n_query

    def tensor(matrix: Any) -> torch.Tensor:
        return torch.as_tensor(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=torch.float32)

    labels = tensor(protocol.labels)
    checkpoint = lfh.train(
        tensor(protocol.train), tensor(protocol.train_labels), tensor(protocol.encode[:q]), labels[:q],
        tensor(protocol.encode[q:]), labels[q:], n_bits, n_bits, 50, 30.0 / n_bits, n / d,
        torch.device("cpu"), -1,
    )  # fmt: skip
    codes = torch.cat([checkpoint["qB"], checkpoint["rB"]]).numpy()
    return (codes > 0).astype(np.uint8)


@dataclass(frozen=True)
class Settings:
    """Where the references are, how to run them, and the cache of finished runs."""

    reference_dir: Path
    work_dir: Path
    octave: str = "octave"
    timeout: float = 1800.0


class RunFailed(Exception):
    """A reference run that failed or ran out of time (the reason is cached like a MAP)."""


def cached_map(settings: Settings, key: str, compute: Any) -> float:
    """MAP of one run, read from ``work_dir/cache.json`` or computed and written there.

    A run that times out or fails is cached as ``{"failed": reason}`` (a rerun with the same
    cache does not retry it) and raises :class:`RunFailed`.
    """
    path = settings.work_dir / "cache.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key not in cache:
        value: float | dict[str, str]
        try:
            value = compute()
        except subprocess.TimeoutExpired:
            value = {"failed": f"did not finish within {settings.timeout:.0f} s"}
        except RuntimeError as error:
            value = {"failed": f"failed: {error}"}
        cache = {**(json.loads(path.read_text()) if path.is_file() else {}), key: value}
        path.write_text(json.dumps(cache, indent=1, sort_keys=True))
        print(f"  {key}: {value}", flush=True)
    if isinstance(cache[key], dict):
        raise RunFailed(cache[key]["failed"])
    return float(cache[key])


def run_key(side: str, case: Case, protocol: Protocol, n_bits: int, seed: int) -> str:
    """The cache key of one run: side, hasher, its options, training rows, bits, seed."""
    options = json.dumps(case.driver if side == "reference" else case.params, sort_keys=True)
    return f"{side}/{case.hasher}/{options}/n{protocol.train.shape[0]}/{n_bits}/{seed}"


def summary(values: list[float], seeds: list[int]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the per-seed values."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "seeds": seeds, "per_seed": [float(v) for v in values]}


def reference_maps(
    case: Case, protocol: Protocol, n_bits: int, seeds: list[int], settings: Settings
) -> tuple[dict[str, Any] | None, str]:
    """The reference's MAP summary, or None with the reason it was not run."""
    assert case.reference is not None
    reference = REFERENCES[case.reference]
    missing = reference.missing(settings.reference_dir)
    if missing:
        return (
            None,
            f"reference absent: {reference.repo} lacks {', '.join(missing[:3])} under --reference-dir",
        )
    values = []
    for seed in seeds:
        key = run_key("reference", case, protocol, n_bits, seed)

        def compute(seed: int = seed) -> float:
            if case.reference == "lfh":
                return score(lfh_reference_codes(protocol, n_bits, seed, settings), protocol)
            return score(octave_codes(case, protocol, n_bits, seed, settings), protocol)

        try:
            values.append(cached_map(settings, key, compute))
        except RunFailed as failure:
            return None, f"the reference {failure} (seed {seed})"
    return summary(values, seeds), ""


def verdict(row: dict[str, Any], note: str) -> str:
    """Agreement within ±TOLERANCE, an explained difference, or why there is no comparison."""
    if row["reference_map"] is None:
        return row["status"]
    if abs(row["difference"]) <= TOLERANCE:
        return f"within ±{TOLERANCE}"
    return "explained (see note)" if note else "differs: unexplained"


def compare(case: Case, protocol: Protocol, n_bits: int, n_seeds: int, settings: Settings) -> dict[str, Any]:
    """One row of the record: ddcmh's MAP, the reference's, the difference and the verdict."""
    seeds = list(range(min(n_seeds, case.max_seeds or n_seeds) if case.random else 1))
    protocol = protocol.first_training_rows(case.train_size)
    print(f"{case.label} ({n_bits} bits)", flush=True)
    ddcmh_values = [
        cached_map(
            settings,
            run_key("ddcmh", case, protocol, n_bits, seed),
            lambda seed=seed: score(ddcmh_codes(case, protocol, n_bits, seed), protocol),
        )
        for seed in seeds
    ]
    row: dict[str, Any] = {
        "hasher": case.hasher, "label": case.label, "bits": n_bits, "params": case.params,
        "n_train": int(protocol.train.shape[0]),
        "ddcmh_map": summary(ddcmh_values, seeds), "reference_map": None, "difference": None,
        "reference_code": None, "status": "no public reference code",
    }  # fmt: skip
    if case.reference is not None:
        reference = REFERENCES[case.reference]
        row["reference_code"] = {
            "repo": reference.repo, "commit": checkout_commit(reference, settings.reference_dir),
            "files": list(reference.files), "how": case.code,
        }  # fmt: skip
        row["reference_map"], row["status"] = reference_maps(case, protocol, n_bits, seeds, settings)
        if row["reference_map"] is not None:
            row["difference"] = row["ddcmh_map"]["mean"] - row["reference_map"]["mean"]
    row["verdict"] = verdict(row, case.note)
    row["note"] = case.note
    return row


def checkout_commit(reference: Reference, reference_dir: Path) -> str:
    """The commit of the checkout (``git rev-parse HEAD``), or the expected one when it is not a git tree."""
    try:
        run = subprocess.run(
            ["git", "-C", str(reference.root(reference_dir)), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return run.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{reference.commit} (expected; the checkout is not a git tree)"


def octave_version(octave: str) -> str:
    """The first line of ``octave --version``, or why there is none."""
    try:
        run = subprocess.run([octave, "--version"], capture_output=True, text=True, timeout=60)
        return run.stdout.splitlines()[0] if run.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"not available ({error})"


def build_record(arguments: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run every selected case at every code length and collect the record."""
    settings = Settings(
        Path(arguments.reference_dir).expanduser().resolve(), Path(arguments.work_dir).resolve(),
        arguments.octave, arguments.timeout,
    )  # fmt: skip
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    protocol = load_protocol(Path(arguments.data_dir) / "mirflickr25k", arguments.train_size)
    selected = [case for case in CASES if case.hasher in arguments.hashers]
    rows = [
        compare(case, protocol, bits, arguments.seeds, settings)
        for bits in arguments.bits
        for case in selected
    ]
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "ddcmh_version": __version__, "tolerance": TOLERANCE,
        "protocol": {
            **protocol.description, "metric": "MAP@all, text -> text, relevant = share a label, tie-aware",
            "seeds": arguments.seeds,
        },
        "machine": "; ".join(describe_machine(("scipy", "torch"))),
        "octave": octave_version(arguments.octave),
        "rows": rows,
    }  # fmt: skip


def _map_cell(summary_: dict[str, Any] | None) -> str:
    if summary_ is None:
        return "—"
    if len(summary_["per_seed"]) == 1:
        return f"{summary_['mean']:.4f}"
    return f"{summary_['mean']:.4f} ± {summary_['std']:.4f}"


def _code_cell(row: dict[str, Any]) -> str:
    code = row["reference_code"]
    if code is None:
        return "—"
    commit = code["commit"].split()[0]
    return f"[{code['repo']}](https://github.com/{code['repo']}/tree/{commit}) @ `{commit[:7]}`"


def render_page(record: dict[str, Any], command: str) -> str:
    """The docs page of a fidelity record (every number and explanation comes from the record)."""
    protocol = record["protocol"]
    lines = [
        f"<!-- generated by: {command} -->",
        "# Fidelity to the reference implementations",
        "",
        "Each built-in hasher and its authors' public code, run on the same MIRFLICKR-25K text split "
        f"({protocol['n_query']:,} queries, {protocol['n_database']:,} database items; split "
        f"`{protocol['split']}`), fitted on the first training items of the split (column *Rows*; the "
        "same rows in both implementations). Both sets of codes are scored by ddcmh's "
        f"{protocol['metric']}. Random methods: mean ± sd over the seeds 0, 1, ... (column *Seeds*) in "
        f"both implementations. A difference within ±{record['tolerance']} counts as agreement; a larger "
        "one is explained in the notes below the table. The reference code is not part of ddcmh: "
        "`benchmarks/fidelity/run_fidelity.py` runs it from a checkout of each repository (GNU Octave "
        "for the MATLAB code) and records the commit used.",
        "",
        "| Hasher | Bits | Rows | Seeds | ddcmh MAP | Reference MAP | Difference | Verdict | Reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in record["rows"]:
        # round(...) + 0.0 turns -0.0 into 0.0, so a difference below 5e-5 reads +0.0000.
        difference = "—" if row["difference"] is None else f"{round(row['difference'], 4) + 0.0:+.4f}"
        mark = ""
        if row["note"]:
            notes.append(row)
            mark = f" [{len(notes)}]"
        lines.append(
            f"| {row['label']}{mark} | {row['bits']} | {row['n_train']:,} | {len(row['ddcmh_map']['seeds'])} "
            f"| {_map_cell(row['ddcmh_map'])} | {_map_cell(row['reference_map'])} | {difference} "
            f"| {row['verdict']} | {_code_cell(row)} |"
        )
    lines += ["", "## Notes", ""]
    lines += [f"{number}. **{row['label']}**: {row['note']}" for number, row in enumerate(notes, 1)]
    lines += ["", "## How each reference was run", ""]
    lines += [
        f"- **{row['label']}**: {row['reference_code']['how']}."
        for row in record["rows"]
        if row["reference_code"]
    ]
    lines += [
        "",
        "## Provenance",
        "",
        f"- Command: `{record['command']}`",
        f"- Recorded: {record['created']} with ddcmh {record['ddcmh_version']}",
        f"- Machine: {record['machine']}",
        f"- Octave: {record['octave']}",
        f"- Split checksum: `{protocol['split_checksum']}`",
        "",
    ]
    return "\n".join(lines)


def write_report(record_path: Path, page_path: Path) -> None:
    """Write the page of a committed record (the test regenerates it and compares)."""
    record = json.loads(record_path.read_text())
    command = REPORT_COMMAND.format(record=record_path.as_posix(), page=page_path.as_posix())
    page_path.write_text(render_page(record, command))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", metavar="RECORD", help="write the page of RECORD to --out and stop")
    parser.add_argument("--out", required=True, help="the record (JSON) to write, or the page with --report")
    parser.add_argument("--reference-dir", help="checkouts of the reference repositories, as OWNER/NAME")
    parser.add_argument("--data-dir", default=str(SHARED_DATA))
    parser.add_argument("--bits", type=lambda text: [int(b) for b in text.split(",")], default=[64])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the random methods (default 3)")
    parser.add_argument(
        "--hashers", type=lambda text: text.split(","), default=sorted({c.hasher for c in CASES})
    )
    parser.add_argument("--train-size", type=int, help="use the first N training items (default all)")
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "ddcmh-fidelity"))
    parser.add_argument("--octave", default="octave")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per reference run")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.hashers) - {case.hasher for case in CASES})
    if unknown:
        raise InputError(
            f"--hashers: expected names among {sorted({c.hasher for c in CASES})}, found {unknown}"
        )
    if arguments.report is None and arguments.reference_dir is None:
        raise InputError("--reference-dir: expected the folder of the reference checkouts, found none")
    if arguments.seeds < 1:
        raise InputError(f"--seeds: expected a positive number of seeds, found {arguments.seeds}")
    return arguments


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the record, or (``--report``) write the page of a record."""
    arguments = parse_arguments(argv)
    if arguments.report is not None:
        write_report(Path(arguments.report), Path(arguments.out))
        return 0
    command = "python benchmarks/fidelity/run_fidelity.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    record = build_record(arguments, command)
    Path(arguments.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
