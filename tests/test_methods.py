"""The cross-modal method interface: registry, parameters, input checks, packed codes, model files,
and a third-party method plugin installed from a folder and run through ddcmh-bench --method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import wheel_build_problem

from ddcmh_core import (
    CrossModalMethod,
    InputError,
    MethodSpec,
    NotFittedError,
    get_method,
    load_model,
    method_registry,
)
from ddcmh_core.evaluation.codes import unpack_codes
from ddcmh_core.methods.base import DataShape, MethodParams, MethodState, MethodTags, merge_settings
from ddcmh_core.methods.dcmh import DCMH
from ddcmh_core.methods.ddcmh import DDCMH
from ddcmh_core.model_file import ModelFileError

CCA_SIGN = (Path(__file__).parents[1] / "docs" / "examples" / "ddcmh_cca_sign.py").read_text()

PYPROJECT = """
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "ddcmh-cca-sign"
version = "0.1.0"
dependencies = ["ddcmh"]

[project.entry-points.ddcmh]
cca-sign = "ddcmh_cca_sign"

[tool.setuptools]
py-modules = ["ddcmh_cca_sign"]
"""


class Averager(CrossModalMethod):
    """A toy method for interface tests: a bit is 1 where a feature exceeds its training mean."""

    tags = MethodTags(supervised=True, deep=False)

    def _fit(self, image, text, labels, *, run_dir, resume, progress):
        self.means_ = {"image": self.as_matrix(image).mean(axis=0), "text": self.as_matrix(text).mean(axis=0)}

    def _encode(self, view, source, *, batch_size):
        rows = np.asarray(self.as_matrix(source))[:, : self.n_bits]
        return (rows > self.means_[view][: self.n_bits]).astype(np.uint8)

    def get_state(self):
        return MethodState(meta={"kind": "averager"}, arrays={f"mean/{v}": m for v, m in self.means_.items()})

    def set_state(self, state, *, device="auto"):
        self.means_ = {view: state.arrays[f"mean/{view}"] for view in ("image", "text")}


def _paired(n=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n)]
    image = labels @ rng.standard_normal((3, 12)) + 0.3 * rng.standard_normal((n, 12))
    text = labels @ rng.standard_normal((3, 20)) + 0.3 * rng.standard_normal((n, 20))
    return image, text, labels


def test_builtin_methods_come_through_the_entry_point():
    registry = method_registry()
    assert {"ddcmh", "dcmh"} <= set(registry.names())
    entry = registry.get("dcmh")
    assert entry.plugin.distribution == "ddcmh" and entry.spec.load() is DCMH
    assert registry.get("ddcmh").spec.load() is DDCMH
    assert DDCMH.tags.uses_hasher and DDCMH.tags.deep and not DCMH.tags.uses_hasher
    assert isinstance(get_method("dcmh", n_bits=16), DCMH)


def test_unknown_method_lists_the_installed_ones():
    with pytest.raises(Exception, match=r"unknown method 'sepj'\. Installed methods: .*dcmh"):
        get_method("sepj")


def test_method_spec_is_validated():
    with pytest.raises(ValueError, match="CrossModalMethod subclass"):
        MethodSpec(name="x", method=dict)
    with pytest.raises(ValueError, match=r"package\.module:ClassName"):
        MethodSpec(name="x", method="not a path")
    with pytest.raises(ValueError, match="lower-case kebab"):
        MethodSpec(name="Bad_Name", method=Averager)


def test_overrides_merge_into_nested_defaults():
    merged = merge_settings({"training": {"epochs": 5, "lr": 0.1}, "k": 1}, {"training": {"epochs": 9}})
    assert merged == {"training": {"epochs": 9, "lr": 0.1}, "k": 1}
    model = DCMH(training={"max_epochs": 7})
    assert model.params.training.max_epochs == 7
    assert model.params.training.optimizer == DCMH().params.training.optimizer  # the rest kept
    ddcmh = DDCMH(image_network={"dropout": 0.5})
    assert ddcmh.params.image_network.dropout == 0.5
    assert ddcmh.params.image_network.hidden_sizes == DDCMH().params.image_network.hidden_sizes


def test_invalid_parameters_name_the_method_and_the_setting():
    with pytest.raises(InputError, match=r"DCMH: invalid parameters: n_bits: .*less than or equal to 4096"):
        DCMH(n_bits=5000)
    with pytest.raises(InputError, match=r"DDCMH: invalid parameters: no_such: Extra inputs"):
        DDCMH(no_such=1)
    with pytest.raises(InputError, match=r"Averager: invalid parameters: n_bits"):
        Averager(n_bits=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i, t, y: (i, t[:-1], y), r"argument 'text': expected 60 rows, one per image"),
        (lambda i, t, y: (i, t, None), r"labels: this method is supervised"),
        (lambda i, t, y: (i, t, y[:10]), r"labels"),
        (lambda i, t, y: (np.where(np.eye(60, 12) > 0, np.nan, i), t, y), r"'image': expected finite"),
        (lambda i, t, y: (i, t.astype(complex), y), r"argument 'text': expected real numbers"),
        (lambda i, t, y: (i[:1], t[:1], y[:1]), r"at least 2 training pairs"),
    ],
)
def test_bad_input_is_refused_before_any_work(change, message):
    image, text, labels = change(*_paired())
    for method in (Averager(n_bits=8), DCMH(n_bits=8), DDCMH(n_bits=8)):
        with pytest.raises(InputError, match=message):
            method.fit(image, text, labels)
        assert not hasattr(method, "n_features_")


def test_ddcmh_refuses_a_bad_hasher_before_stage_1():
    image, text, labels = _paired()
    with pytest.raises(InputError, match=r"DDCMH: cannot fit: hasher 'no-such'"):
        DDCMH(hasher="no-such", n_bits=8).fit(image, text, labels)
    with pytest.raises(InputError, match=r"hasher 'sdh'"):
        DDCMH(hasher="sdh", n_bits=8, hasher_params={"n_anchors": -1}).fit(image, text, labels)


def test_encode_returns_packed_codes_and_checks_its_input():
    image, text, labels = _paired()
    method = Averager(n_bits=10)
    with pytest.raises(NotFittedError, match="Averager: call fit"):
        method.encode("image", image)
    method.fit(image, text, labels)
    packed = method.encode("image", image)
    assert packed.dtype == np.uint8 and packed.shape == (60, 2)
    assert np.array_equal(unpack_codes(packed, 10), method.encode_image(image))
    assert np.array_equal(unpack_codes(method.encode("text", text), 10), method.encode_text(text))
    with pytest.raises(InputError, match="argument 'view': expected 'image' or 'text', got 'audio'"):
        method.encode("audio", image)
    with pytest.raises(InputError, match="argument 'text': expected 20 features per row"):
        method.encode("text", image)
    with pytest.raises(InputError, match="expected finite values"):
        method.encode("image", np.full((2, 12), np.inf))


class ReportingAverager(Averager):
    """The toy method with an ``_encode`` that declares ``progress``: one line per encoded view."""

    def _encode(self, view, source, *, batch_size, progress=None):
        if progress is not None:
            progress(f"{view}: {len(source)} rows")
        return super()._encode(view, source, batch_size=batch_size)


def test_encode_progress_reaches_only_an_encode_that_declares_it():
    image, text, labels = _paired()
    lines: list[str] = []
    silent = Averager(n_bits=10).fit(image, text, labels)
    assert not Averager.reports_encode_progress()
    # A method written against the old _encode signature still encodes when given a callback.
    assert np.array_equal(silent.encode_image(image, progress=lines.append), silent.encode_image(image))
    assert lines == []
    reporting = ReportingAverager(n_bits=10).fit(image, text, labels)
    assert ReportingAverager.reports_encode_progress()
    codes = reporting.encode("text", text[:7], progress=lines.append)
    assert np.array_equal(unpack_codes(codes, 10), silent.encode_text(text[:7]))
    reporting.encode_image(image)  # no callback: nothing to report to
    assert lines == ["text: 7 rows"]
    assert DDCMH.reports_encode_progress() and DCMH.reports_encode_progress()


def test_data_problems_are_listed_for_a_plan():
    shape = DataShape(n_rows=1, n_features={"image": 4, "text": 5}, has_labels=False)
    problems = Averager.data_problems(Averager.Params(n_bits=8), shape)
    assert len(problems) == 2 and "supervised" in problems[0] and "2 training pairs" in problems[1]
    assert MethodParams.model_json_schema()["additionalProperties"] is False


def test_image_files_need_a_cnn_image_network_in_the_plan():
    photos = DataShape(n_rows=300, n_features={"image": None, "text": 50})
    mlp = DDCMH.data_problems(DDCMH(n_bits=16).params, photos)
    assert mlp == [
        "image: the view is image files, which need a CNN image network "
        '([model.image_network] architecture = "cnn")'
    ]
    cnn = DDCMH(n_bits=16, image_network={"architecture": "cnn"}).params
    assert DDCMH.data_problems(cnn, photos) == []
    shallow = Averager.data_problems(Averager.Params(n_bits=8), photos)
    assert shallow == ["image: the view is image files and this method reads feature vectors only"]


def test_repr_shows_the_changed_parameters():
    assert repr(DCMH(n_bits=16, gamma=2.0)) == "DCMH(n_bits=16, gamma=2.0)"
    assert repr(Averager()) == "Averager()"


def test_a_method_that_is_not_registered_cannot_be_saved(tmp_path):
    image, text, labels = _paired()
    method = Averager(n_bits=8).fit(image, text, labels)
    with pytest.raises(ModelFileError, match="not registered as a method"):
        method.save(tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_registered_plugin_method_round_trips_through_its_model_file(fake_distributions, tmp_path):
    fake_distributions.add("ddcmh-cca-sign", "ddcmh_cca_sign", CCA_SIGN, version="0.3")
    image, text, _ = _paired()
    method = get_method("cca-sign", n_bits=6).fit(image, text)  # unsupervised: no labels needed
    path = method.save(tmp_path / "cca.h5")
    loaded = load_model(path)
    assert type(loaded).__name__ == "CCASign" and loaded.params.n_bits == 6
    assert np.array_equal(loaded.encode("image", image), method.encode("image", image))
    assert np.array_equal(loaded.encode("text", text), method.encode("text", text))
    with pytest.raises(ModelFileError, match="holds a CCA \\+ sign model, not DCMH"):
        DCMH.load(path)
    with pytest.raises(InputError, match=r"n_bits: at most 12 canonical directions, got 16"):
        get_method("cca-sign", n_bits=16).fit(image, text)


def test_model_file_of_an_uninstalled_method_is_a_clear_error(fake_distributions, tmp_path):
    fake_distributions.add("ddcmh-cca-sign", "ddcmh_cca_sign", CCA_SIGN, version="0.3")
    image, text, _ = _paired()
    path = get_method("cca-sign", n_bits=4).fit(image, text).save(tmp_path / "cca.h5")
    fake_distributions.site.joinpath("ddcmh_cca_sign.py").unlink()
    for info in fake_distributions.site.glob("*.dist-info"):
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    sys.modules.pop("ddcmh_cca_sign", None)
    from ddcmh_core.plugins import plugin_set

    plugin_set(refresh=True)
    with pytest.raises(ModelFileError, match=r"written by method 'cca-sign' of ddcmh-cca-sign 0\.3"):
        load_model(path)


def test_third_party_method_installs_from_a_folder_and_runs_in_the_bench(tmp_path, tiny_dataset):
    problem = wheel_build_problem()
    if problem:
        pytest.skip(problem)
    source = tmp_path / "ddcmh-cca-sign"
    source.mkdir()
    (source / "ddcmh_cca_sign.py").write_text(CCA_SIGN)
    (source / "pyproject.toml").write_text(PYPROJECT)
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), str(source),
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    def bench(*args):
        return subprocess.run(
            [sys.executable, "-m", "ddcmh_core.cli.bench", *args],
            capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
        )  # fmt: skip

    listing = bench("--list-methods")
    assert listing.returncode == 0, listing.stderr
    assert "cca-sign" in listing.stdout and "ddcmh-cca-sign 0.1.0" in listing.stdout
    data, config = tiny_dataset
    out = tmp_path / "run"
    run = bench(
        "--dataset", str(data), "--config", str(config), "--method", "cca-sign,dcmh",
        "--method-opt", "dcmh:training.max_epochs=2", "--method-opt", "dcmh:text_network.hidden_sizes=[16]",
        "--method-opt", "dcmh:image_network.hidden_sizes=[16]", "--hasher", "itq", "--bits", "8",
        "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "| CCA + sign |" in run.stdout and "| DCMH |" in run.stdout and "| DDCMH + itq |" in run.stdout
    assert "## Fit time (seconds, mean over seeds)" in run.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["cca-sign"]["provider"] == "ddcmh-cca-sign 0.1.0"
    assert results["methods"]["cca-sign"]["tags"]["deep"] is False
    methods = {r["method"] for r in results["records"]}
    assert {"cca-sign", "dcmh", "ddcmh", "random"} <= methods
    assert {t["method"] for t in results["fit_seconds"]} == {"cca-sign", "dcmh", "ddcmh"}
    # An impossible plan is refused before any cell trains, every problem listed.
    refused = bench(
        "--dataset", str(data), "--method", "cca-sign", "--hasher", "none", "--bits", "8,64",
        "--out", str(tmp_path / "refused"),
    )  # fmt: skip
    assert refused.returncode == 2
    assert "CCA + sign + " not in refused.stderr
    assert "n_bits: at most 16 canonical directions, got 64" in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_bench_settings_for_methods():
    from ddcmh_core.bench.config import BenchConfig

    assert BenchConfig(baselines=["pairwise"]).methods == ["dcmh"]  # files of earlier releases
    assert BenchConfig(methods=[" DCMH ", "dcmh"]).methods == ["dcmh"]
    with pytest.raises(ValueError, match="nothing to run"):
        BenchConfig(hashers=[])
    assert BenchConfig(hashers=[], methods=["dcmh"]).hashers == []


def test_unknown_method_in_the_bench_exits_2_before_any_work(tmp_path, capsys):
    from ddcmh_core.cli.bench import main

    status = main(["--method", "sepj", "--out", str(tmp_path / "out")])
    assert status == 2 and "unknown method 'sepj'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
