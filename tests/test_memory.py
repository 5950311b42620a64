"""Memory estimates: every declared model against the measured peak of a real fit, and the plan check.

Each hasher and method that declares a :class:`~ddcmh_core.memory.MemoryModel` is fitted on a
wide problem (520 rows, 1,500 text columns: the d x d terms dominate) and a tall one (1,000 rows,
120 columns: the n x n terms do) under ``tracemalloc``, which sees every numpy allocation. The
estimate must never fall below the measured peak (the plan check would then let a run through
that the kernel kills), and stay within a few times it (or it would refuse runs that fit).
"""

from __future__ import annotations

import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from ddcmh_core import get_hasher, get_method, hasher_registry, method_registry
from ddcmh_core.cli.bench import main as bench_main
from ddcmh_core.linalg import DENSE_COVARIANCE_MAX_FEATURES
from ddcmh_core.memory import MemoryModel, available_memory, format_bytes
from ddcmh_core.methods.base import DataShape

SHAPES = {"wide": (520, 32, 1500), "tall": (1000, 32, 120)}
MIB = 2**20
# Iterations do not change what a fit holds at once: fewer keep the slow baselines quick here.
FEWER_ITERATIONS = {
    "cmfh": {"n_iter": 3},
    "lssh": {"n_iter": 2},
    "scratch": {"n_iter": 3},
    "seph": {"n_iter": 5},
    "smfh": {"max_iter": 3},
}


def _problem(n_rows: int, image_width: int, text_width: int) -> tuple[np.ndarray, Any, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = (rng.random((n_rows, 5)) < 0.3).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 0] = 1
    image = labels @ rng.standard_normal((5, image_width)) + rng.standard_normal((n_rows, image_width))
    text = sp.random(n_rows, text_width, density=0.02, random_state=0, format="csr")
    text = (text + sp.csr_matrix(labels @ (rng.random((5, text_width)) < 0.05))).tocsr()
    return image, text, labels


def _peak_of(fit) -> int:
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _assert_estimate_covers(estimate: int, measured: int, who: str) -> None:
    words = f"{who}: estimate {estimate / MIB:.1f} MiB, measured {measured / MIB:.1f} MiB"
    assert estimate >= measured, words
    assert estimate <= 3 * measured + 16 * MIB, words


pytestmark = pytest.mark.usefixtures("one_torch_thread")


HASHERS = [name for name in hasher_registry().names() if get_hasher(name, n_bits=16).memory_model is not None]
METHODS = [name for name in method_registry().names() if get_method(name).memory_model is not None]


def test_the_wide_data_hashers_and_baselines_declare_a_model() -> None:
    assert {"itq", "cca-itq", "pcah", "sh", "isohash", "lfh", "cosdish"} <= set(HASHERS)
    expected = {"cmfh", "cvh", "dch", "dlfh", "imh", "lemon", "lssh", "scm-seq", "scratch", "seph", "smfh"}
    assert expected <= set(METHODS)


def _measured_and_estimated(name: str, kind: str, shape: tuple[int, int, int]) -> tuple[int, int]:
    n_rows, image_width, text_width = shape
    image, text, labels = _problem(*shape)
    if kind == "hasher":
        hasher = get_hasher(name, n_bits=16)
        estimate = hasher.working_memory(n_rows, text_width)
        measured = _peak_of(lambda: hasher.fit(text, labels))
    else:
        model = get_method(name, n_bits=16, **FEWER_ITERATIONS.get(name, {}))
        estimate = model.working_memory(
            model.params, DataShape(n_rows, {"image": image_width, "text": text_width})
        )
        measured = _peak_of(lambda: model.fit(image, text, labels))
    assert estimate is not None
    return measured, estimate[0]


KINDS_AND_NAMES = [("hasher", name) for name in HASHERS] + [("method", name) for name in METHODS]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("kind", "name"), KINDS_AND_NAMES)
def test_estimate_covers_the_measured_peak(kind: str, name: str, shape: str) -> None:
    measured, estimate = _measured_and_estimated(name, kind, SHAPES[shape])
    _assert_estimate_covers(estimate, measured, f"{name} ({shape})")


def test_pca_covariance_is_counted_only_while_it_is_formed() -> None:
    pca = get_hasher("itq", n_bits=16)
    width = DENSE_COVARIANCE_MAX_FEATURES
    at_limit, above = pca.working_memory(1000, width), pca.working_memory(1000, width + 1)
    assert at_limit is not None and above is not None
    assert at_limit[0] > 4 * 8 * width**2 and above[0] < 8 * 1000 * (width + 1) * 2  # implicit operator
    cca = get_hasher("itq", n_bits=16, projection="cca").working_memory(1000, 39_920)
    assert cca is not None and cca[0] > 8 * 39_920**2 and "39,920 x 39,920" in cca[1]


def test_model_arithmetic_and_words() -> None:
    model = MemoryModel(feature_squares=2, row_squares=1, dense_copies=1)
    assert model.peak_bytes(10, [3, None, 5]) == 8 * (2 * 25 + 100 + 10 * 8)  # photos have no width
    assert model.explain(10, [100]) == "100 x 100 matrices of the widest view's features"
    assert model.explain(1000, [10]) == "1,000 x 1,000 matrices of the training rows"
    assert format_bytes(12.7 * 2**30) == "12.7 GiB" and format_bytes(340 * MIB) == "340 MiB"


def test_available_memory_reads_the_system_or_the_override(monkeypatch) -> None:
    monkeypatch.delenv("DDCMH_AVAILABLE_MEMORY", raising=False)
    free = available_memory()
    assert free is None or free > 0
    monkeypatch.setenv("DDCMH_AVAILABLE_MEMORY", str(3 * 2**30))
    assert available_memory() == 3 * 2**30


def test_plan_check_refuses_a_cell_that_cannot_fit_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    """A 1,500-column text view with 1 MiB free: CCA-ITQ (d x d) and CVH are refused, LSH is not."""
    rng = np.random.default_rng(1)
    n_rows = 300
    features = tmp_path / "wide.npz"
    labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n_rows)]
    np.savez(
        features,
        image=rng.standard_normal((n_rows, 32)),
        text=rng.random((n_rows, 1500)),
        labels=labels,
    )
    monkeypatch.setenv("DDCMH_AVAILABLE_MEMORY", str(2**20))
    out = tmp_path / "run"
    arguments = ["--dataset", str(features), "--hasher", "cca-itq,lsh", "--method", "cvh", "--bits", "16"]
    assert bench_main([*arguments, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "DDCMH + cca-itq, 16 bits: memory: the fit needs about" in error
    assert "1,500 x 1,500 matrices of the widest view's features in Stage 1 (cca-itq)" in error
    assert "CVH, 16 bits: memory:" in error and "max_features" in error
    assert "lsh" not in error.split("problem")[1]  # LSH's largest arrays are its input: not refused
    assert not out.exists()  # refused before anything was written
    monkeypatch.setenv("DDCMH_AVAILABLE_MEMORY", str(64 * 2**30))
    dry = ["--dry-run", "--no-calibration", "--jobs", "2"]
    assert bench_main([*arguments, *dry]) == 0  # enough memory: the same plan passes
    report = capsys.readouterr().out
    assert "Largest fit: about" in report and "(DDCMH + cca-itq, 16 bits: 1,500 x 1,500 matrices" in report
    assert "64.0 GiB free" in report


@pytest.mark.parametrize(("kind", "name"), KINDS_AND_NAMES)
def test_estimate_grows_with_the_width_as_the_fit_does(kind: str, name: str) -> None:
    """From 750 to 1,500 text columns the estimate must grow by about what the fit's peak grows: a
    d x d term where the fit grows linearly (or the reverse) is off by a factor of three or more
    here, and at a 39,920-column vocabulary it would refuse a run that fits, or let one through
    that the kernel kills."""
    narrow = _measured_and_estimated(name, kind, (520, 32, 750))
    wide = _measured_and_estimated(name, kind, (520, 32, 1500))
    ratio = (wide[1] - narrow[1]) / (wide[0] - narrow[0])
    assert 0.75 < ratio < 2.5, (
        f"{name}: from 750 to 1,500 columns the fit's peak grows {(wide[0] - narrow[0]) / MIB:.1f} MiB, "
        f"the estimate {(wide[1] - narrow[1]) / MIB:.1f} MiB"
    )
