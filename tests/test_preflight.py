"""Checks before work and refused writes (issue 14 parts 5 and 2).

Each refusal case runs ``ddcmh`` or ``ddcmh-bench`` in an empty working folder and compares the
folder's whole tree before and after: no model, no run folder, no output folder, no temporary
file. Each writer of ddcmh's files meets a full disk and must name the file, say "disk full" and
leave the previous complete file byte for byte.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ddcmh_core.preflight
from ddcmh_core.bench.runner import write_json_atomic
from ddcmh_core.cli import bench, main
from ddcmh_core.data.split import Split
from ddcmh_core.engine.checkpoint import save_checkpoint
from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.index import HammingIndex
from ddcmh_core.files import FileWriteError, atomic_path
from ddcmh_core.methods.ddcmh import DDCMH
from ddcmh_core.model_file import load_model
from ddcmh_core.plugins import hasher_registry
from ddcmh_core.preflight import check_output_path
from ddcmh_core.testing import make_bow_data

TINY_CONFIG = """
image_network = { hidden_sizes = [8] }
text_network = { hidden_sizes = [8] }
image_training = { max_epochs = 1, patience = 1, batch_size = 64 }
text_training = { max_epochs = 1, patience = 1, batch_size = 64 }
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder (outside the working folder) with a tiny dataset and configuration files."""
    folder = tmp_path_factory.mktemp("preflight-inputs")
    texts, labels = make_bow_data(n_samples=80, n_features=30, n_classes=4, seed=3)
    images = labels @ np.random.default_rng(0).standard_normal((4, 12))
    np.savez(folder / "tiny.npz", image=images, text=texts.toarray(), labels=labels)
    (folder / "tiny.toml").write_text(TINY_CONFIG)
    (folder / "negative.toml").write_text("image_network = { hidden_sizes = [-5] }\n")
    (folder / "bits8.toml").write_text(TINY_CONFIG + "n_bits = 8\nseed = 3\nhasher_params = { n_iter = 5 }\n")
    (folder / "hasher.toml").write_text(TINY_CONFIG + "hasher = 'itq'\nhasher_params = { n_iter = 5 }\n")
    return folder


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """An empty working folder holding one plain file, ``afile``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path


def _tree(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


def _no_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _read_only(monkeypatch) -> None:
    """Folders refuse new files (as a read-only folder does for a user who is not root)."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ddcmh_core.preflight.tempfile, "mkstemp", refuse)


def _train(inputs: Path, *extra: str, config: str = "tiny.toml") -> list[str]:
    return ["train", "--dataset", str(inputs / "tiny.npz"), "--config", str(inputs / config), *extra]


TRAIN_CASES: list[tuple[str, Callable[[Path], list[str]], Callable | None, str]] = [
    (
        "model under a file",
        lambda i: _train(i, "--model", "afile/s.h5"),
        None,
        "afile is a file, not a folder",
    ),
    (
        "model deep under a file",
        lambda i: _train(i, "--model", "new/../afile/x/s.h5"),
        None,
        "afile is a file, not a folder",
    ),
    ("model is a folder", lambda i: _train(i, "--model", "."), None, "exists and is a folder, not a file"),
    (
        "run folder under a file",
        lambda i: _train(i, "--model", "m/s.h5", "--run-dir", "afile/run"),
        None,
        "--run-dir afile/run: ",
    ),
    (
        "output folder not writable",
        lambda i: _train(i, "--model", "m/s.h5"),
        _read_only,
        "--model m/s.h5: cannot write in the folder",
    ),
    (
        "cuda on a CPU machine",
        lambda i: _train(i, "--model", "m/s.h5", "--device", "cuda"),
        _no_cuda,
        "'cuda' was requested but no CUDA device is available",
    ),
    (
        "negative hidden size",
        lambda i: _train(i, "--model", "m/s.h5", config="negative.toml"),
        None,
        "image_network.hidden_sizes.0: Input should be greater than or equal to 1",
    ),
    (
        "n_bits as a hasher option",
        lambda i: _train(i, "--model", "m/s.h5", "--hasher-opt", "n_bits=8"),
        None,
        "--hasher-opt n_bits=8: the code length is set with --bits",
    ),
]


@pytest.mark.parametrize(
    ("case", "arguments", "setup", "message"),
    TRAIN_CASES,
    ids=[c[0] for c in TRAIN_CASES],
)
def test_train_refuses_before_work_and_writes_nothing(
    inputs, work, capsys, monkeypatch, case, arguments, setup, message
):
    if setup is not None:
        setup(monkeypatch)
    before = _tree(work)
    status = main.main(arguments(inputs))
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert _tree(work) == before


def test_flags_win_over_the_config_file_as_in_ddcmh_bench(inputs, work, capsys):
    """n_bits and seed in --config are used; a flag given as well wins (no 'multiple values' crash)."""
    assert main.main(_train(inputs, "--model", "a.h5", config="bits8.toml")) == 0
    assert "(itq, 8 bits)" in capsys.readouterr().out
    arguments = _train(inputs, "--model", "b.h5", "--bits", "16", "--seed", "4", config="bits8.toml")
    assert main.main([*arguments, "--hasher", "lsh", "--hasher-opt", "n_iter=7"]) == 2  # lsh has no n_iter
    assert "n_iter" in capsys.readouterr().err
    assert main.main(arguments) == 0
    assert "(itq, 16 bits)" in capsys.readouterr().out
    params = load_model(work / "b.h5").params
    assert (params.n_bits, params.seed, params.hasher_params) == (16, 4, {"n_iter": 5})
    assert main.main(_train(inputs, "--model", "c.h5", "--hasher-opt", "n_iter=7", config="bits8.toml")) == 0
    params = load_model(work / "c.h5").params
    assert (params.n_bits, params.seed, params.hasher_params) == (8, 3, {"n_iter": 7})


BENCH_CASES: list[tuple[str, list[str], Callable | None, str]] = [
    ("out under a file", ["--out", "afile/run"], None, "--out afile/run: "),
    ("out is a file", ["--out", "afile"], None, "--out afile: exists and is not a folder"),
    ("out not writable", ["--out", "run"], _read_only, "--out run: cannot write in the folder"),
    ("cuda on a CPU machine", ["--out", "run", "--device", "cuda"], _no_cuda, "no CUDA device is available"),
]


@pytest.mark.parametrize(
    ("case", "arguments", "setup", "message"), BENCH_CASES, ids=[c[0] for c in BENCH_CASES]
)
def test_bench_refuses_before_work_and_writes_nothing(
    inputs, work, capsys, monkeypatch, case, arguments, setup, message
):
    if setup is not None:
        setup(monkeypatch)
    before = _tree(work)
    status = bench.main(["--dataset", str(inputs / "tiny.npz"), "--hasher", "lsh", "--bits", "8", *arguments])
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err
    assert "loading dataset" not in err  # refused before the data were read
    assert _tree(work) == before


@pytest.mark.parametrize("command", ["encode", "search"])
def test_encode_and_search_refuse_an_unwritable_out_folder(work, capsys, monkeypatch, command):
    _read_only(monkeypatch)
    before = _tree(work)
    if command == "encode":
        arguments = ["encode", "--model", "m.h5", "--view", "text", "--features", "f.npy", "--out", "o"]
    else:
        arguments = ["search", "--database", "d.h5", "--queries", "q.h5", "--out", "o"]
    assert main.main(arguments) == 2
    assert "--out o: cannot write in the folder" in capsys.readouterr().err
    assert _tree(work) == before


def test_check_output_path_accepts_new_and_existing_paths(tmp_path):
    assert check_output_path(tmp_path / "a" / "b" / "m.h5", "--model") == tmp_path / "a" / "b" / "m.h5"
    check_output_path(tmp_path, "--out", folder=True)
    with pytest.raises(InputError, match=r"the folder .* does not exist; create it"):
        check_output_path(tmp_path / "a" / "m.h5", "--out", create_parents=False)
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid"), reason="POSIX permissions")
def test_a_real_read_only_folder_is_refused(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the refusal is tested with a patched probe")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError, match="cannot write in the folder"):
            check_output_path(locked / "m.h5", "--model")
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------ refused writes (issue 14 part 2)
# A real full disk: the temporary file a writer opens is a link to /dev/full, where every write
# fails with ENOSPC in the kernel, whether the bytes go through Python, HDF5 or torch.
needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")


def _fill_disk_for(target: Path) -> Path:
    """Make the next atomic write of ``target`` (from this process) land on /dev/full."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.symlink_to("/dev/full")
    return temporary


@pytest.fixture(scope="module")
def fitted(inputs) -> dict[str, Any]:
    data = np.load(inputs / "tiny.npz")
    model = DDCMH(
        n_bits=8,
        image_network={"hidden_sizes": [8]},
        text_network={"hidden_sizes": [8]},
        image_training={"max_epochs": 1, "patience": 1},
        text_training={"max_epochs": 1, "patience": 1},
    ).fit(data["image"], data["text"], data["labels"])
    return {"model": model, "hasher": hasher_registry().create("itq", n_bits=8).fit(data["text"])}


def _split() -> Split:
    return Split(train=np.arange(6), query=np.arange(6, 8), database=np.arange(8, 10), n_items=10)


WRITERS: list[tuple[str, Callable[[dict[str, Any], Path], Any]]] = [
    ("model file", lambda f, p: f["model"].save(p)),
    ("hasher file", lambda f, p: f["hasher"].save(p)),
    ("results.json", lambda f, p: write_json_atomic(p, {"records": list(range(5000))})),
    ("checkpoint", lambda f, p: save_checkpoint({"weights": torch.zeros(50_000)}, p)),
    ("split.h5", lambda f, p: _split().save(p)),
    ("codes file", lambda f, p: main.write_codes(p, np.ones((500, 8), np.uint8), ids=None)),
    ("Hamming index", lambda f, p: _index().save(p)),
]


def _index() -> HammingIndex:
    index = HammingIndex(8)
    index.add(np.ones((500, 8), np.uint8))
    return index


@needs_dev_full
@pytest.mark.parametrize(("case", "write"), WRITERS, ids=[c[0] for c in WRITERS])
def test_disk_full_names_the_file_and_keeps_the_previous_one(fitted, tmp_path, case, write):
    target = tmp_path / "out.file"
    write(fitted, target)  # a complete file
    before = target.read_bytes()
    temporary = _fill_disk_for(target)
    with pytest.raises(FileWriteError, match=r"out\.file: cannot write the file: .*disk full") as caught:
        write(fitted, target)
    assert "the previous out.file is unchanged" in str(caught.value)
    assert target.read_bytes() == before
    assert not temporary.exists() and not temporary.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.file"]


@needs_dev_full
def test_disk_full_at_a_new_file_says_nothing_was_written(tmp_path):
    target = tmp_path / "results.json"
    _fill_disk_for(target)
    with pytest.raises(FileWriteError, match=r"no space left on the device\); nothing was written") as caught:
        write_json_atomic(target, {"a": 1})
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert list(tmp_path.iterdir()) == []


@needs_dev_full
def test_cli_disk_full_exits_2_with_one_line(tmp_path, capsys):
    codes = np.eye(8, dtype=np.uint8)
    main.write_codes(tmp_path / "db.h5", codes, ids=None)
    out = tmp_path / "hits.json"
    out.write_text("previous results")
    _fill_disk_for(out)
    arguments = ["search", "--database", str(tmp_path / "db.h5"), "--queries", str(tmp_path / "db.h5")]
    assert main.main([*arguments, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ddcmh search: error: {out}: cannot write the file: disk full (no space left on the device); "
        "the previous hits.json is unchanged\n"
    )
    assert out.read_text() == "previous results"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only file system"),
        (errno.EDQUOT, "disk quota is exceeded"),
        (errno.ENOSPC, "disk full"),
    ],
)
def test_refused_writes_are_named(tmp_path, monkeypatch, code, words):
    """Permission errors cannot be produced for root with chmod: the write itself is patched."""
    target = tmp_path / "results.json"
    target.write_text("old")

    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(FileWriteError, match=words):
        write_json_atomic(target, {"a": 1})
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_other_errors_pass_through_atomic_path_unchanged(tmp_path):
    with pytest.raises(OSError, match="Is a directory") as caught, atomic_path(tmp_path / "x") as temporary:
        temporary.mkdir()
        temporary.write_text("")
    assert not isinstance(caught.value, FileWriteError)
    with pytest.raises(ValueError, match="not a write"), atomic_path(tmp_path / "y"):
        raise ValueError("not a write")


# ------------------------------------------------------------------ newcomer items (issue 14 part 7)
@pytest.mark.parametrize("entry", [main.main, bench.main], ids=["ddcmh", "ddcmh-bench"])
def test_version_of_both_commands(entry, capsys):
    with pytest.raises(SystemExit) as leaving:
        status = entry(["--version"])
        raise SystemExit(status)
    assert leaving.value.code in (0, None)
    assert re.match(r"ddcmh \d+\.\d+\S*; plugins: ", capsys.readouterr().out)


def test_split_h5_has_the_mode_of_the_other_outputs(tmp_path):
    """0644 under the default umask, as every file written through atomic_path (not mkstemp's 0600)."""
    umask = os.umask(0o022)
    try:
        split = _split().save(tmp_path / "split.h5")
        write_json_atomic(tmp_path / "results.json", {})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(split.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644


def test_list_datasets_shows_files_and_sources_without_json(capsys):
    assert bench.main(["--list-datasets"]) == 0
    out = capsys.readouterr().out
    assert "uci-mfeat (default)" in out and "wikipedia" in out
    assert "files (needs): raw_features.mat" in out
    assert "source: http://www.svcl.ucsd.edu/projects/crossmodal/" in out
    assert "source: shipped: ddcmh_core/data/embedded/uci_mfeat.npz" in out


def test_train_with_a_full_disk_at_a_checkpoint_exits_2(inputs, work, capsys, monkeypatch):
    """torch.save to a path says only "unexpected pos" when the disk fills: still a one-line error."""

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", full_disk)
    assert main.main(_train(inputs, "--model", "m/s.h5", "--bits", "8")) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress lines
    assert last.startswith("ddcmh train: error: m/s.h5.run/")
    assert "cannot write the file: the write failed, most likely disk full" in last
    assert not (work / "m" / "s.h5").exists()
