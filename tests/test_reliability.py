"""Reliability: bad input, tampered files and broken run folders give clear errors, never garbage.

Each case of issue 14 (parts 3, 4 and 6) is one parametrised row: the input path, what is wrong,
the exception (or the ``ddcmh`` exit status) and a fragment of the message.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from ddcmh_core.cli.main import main, write_codes
from ddcmh_core.errors import HasherFileError, InputError, NumericalError
from ddcmh_core.hasher_file import load_hasher
from ddcmh_core.methods.dcmh import DCMH
from ddcmh_core.methods.ddcmh import DDCMH
from ddcmh_core.model_file import ModelFileError, load_model
from ddcmh_core.plugins import hasher_registry
from ddcmh_core.testing import make_bow_data

TINY_NETWORK = {"hidden_sizes": [16]}
TINY_TRAINING = {"max_epochs": 1, "patience": 1, "batch_size": 64}
TINY_CONFIG = """
image_network = { hidden_sizes = [16] }
text_network = { hidden_sizes = [16] }
image_training = { max_epochs = 1, patience = 1, batch_size = 64 }
text_training = { max_epochs = 1, patience = 1, batch_size = 64 }
"""
WEIGHT = "state/image_network/linears.0.weight"


def _tiny_ddcmh() -> DDCMH:
    return DDCMH(
        n_bits=8,
        image_network=TINY_NETWORK,
        text_network=TINY_NETWORK,
        image_training=TINY_TRAINING,
        text_training=TINY_TRAINING,
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    texts, labels = make_bow_data(n_samples=120, n_features=40, n_classes=4, seed=7)
    rng = np.random.default_rng(2)
    images = labels @ rng.standard_normal((4, 16)) * 2 + rng.standard_normal((120, 16))
    return images, texts.toarray(), labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> dict[str, Path]:
    """A model trained by ``ddcmh train`` (with its run folder), its dataset and a saved ITQ."""
    folder = tmp_path_factory.mktemp("reliability")
    images, texts, labels = data
    np.savez(folder / "tiny.npz", image=images, text=texts, labels=labels)
    (folder / "tiny.toml").write_text(TINY_CONFIG)
    paths = {"folder": folder, "data": folder / "tiny.npz", "model": folder / "model.h5"}
    assert main(_train_args(paths["data"], folder, paths["model"])) == 0
    hasher = hasher_registry().create("itq", n_bits=8).fit(texts)
    paths["hasher"] = hasher.save(folder / "itq.h5")
    np.save(folder / "images.npy", images[:5])
    return paths


def _train_args(dataset: Path, folder: Path, model: Path, *extra: str) -> list[str]:
    return [
        "train", "--dataset", str(dataset), "--bits", "8", "--config", str(folder / "tiny.toml"),
        "--model", str(model), *extra,
    ]  # fmt: skip


def _with(array: np.ndarray, row: int, value: Any) -> np.ndarray:
    changed = array.astype(np.result_type(array.dtype, np.asarray(value).dtype), copy=True)
    changed[row, 1] = value
    return changed


# ---------------------------------------------------------------------------------- Python API
FIT_CASES = [
    ("nan image", lambda i, t, y: (_with(i, 3, np.nan), t, y), "'image': expected finite values"),
    ("inf text", lambda i, t, y: (i, _with(t, 5, np.inf), y), "'text': expected finite values"),
    ("complex image", lambda i, t, y: (i.astype(complex), t, y), "'image': expected real numbers"),
    ("object image", lambda i, t, y: (i.astype(object), t, y), "'image': expected a numeric array"),
    ("1e300 image", lambda i, t, y: (i * 1e300, t, y), "'image': expected values of magnitude at most"),
    (
        "constant image",
        lambda i, t, y: (np.ones_like(i), t, y),
        "'image': expected training rows that differ",
    ),
    ("constant text", lambda i, t, y: (i, np.zeros_like(t), y), "'text': expected training rows that differ"),
    ("all-zero labels", lambda i, t, y: (i, t, np.zeros_like(y)), "'labels': expected at least one 1"),
]


@pytest.mark.parametrize("method", [_tiny_ddcmh, lambda: DCMH(n_bits=8)], ids=["DDCMH", "DCMH"])
@pytest.mark.parametrize(("case", "corrupt", "message"), FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_method_fit_refuses_bad_input_before_work(data, method, case, corrupt, message, tmp_path):
    with pytest.raises(InputError, match=message):
        method().fit(*corrupt(*data), run_dir=tmp_path)
    assert not any(tmp_path.iterdir()), f"{case}: work started before the input was refused"


HASHER_CASES = [
    ("nan", "itq", lambda x, y: (_with(x, 2, np.nan), None), "'X': expected finite values"),
    ("complex", "itq", lambda x, y: (x.astype(complex), None), "'X': expected real numbers"),
    ("object", "itq", lambda x, y: (x.astype(object), None), "'X': expected a numeric array"),
    ("1e300", "itq", lambda x, y: (x * 1e300, None), "'X': expected values of magnitude at most 1e"),
    ("constant", "itq", lambda x, y: (np.ones_like(x), None), "'X': expected training rows that differ"),
    ("all-zero labels", "sdh", lambda x, y: (x, np.zeros_like(y)), "'labels': expected at least one 1"),
]


@pytest.mark.parametrize(
    ("case", "name", "corrupt", "message"), HASHER_CASES, ids=[c[0] for c in HASHER_CASES]
)
def test_hasher_fit_refuses_bad_input(data, case, name, corrupt, message):
    images, _, labels = data
    with pytest.raises(InputError, match=message):
        hasher_registry().create(name, n_bits=8).fit(*corrupt(images, labels))


ENCODE_CASES = [
    ("1e300", lambda x: x * 1e300, "expected values of magnitude at most"),
    ("-inf", lambda x: _with(x, 0, -np.inf), "expected finite values"),
    ("complex", lambda x: x.astype(complex), "expected real numbers"),
    ("object", lambda x: x.astype(object), "expected a numeric array"),
]


@pytest.mark.parametrize(("case", "corrupt", "message"), ENCODE_CASES, ids=[c[0] for c in ENCODE_CASES])
def test_encode_refuses_bad_input(trained, data, case, corrupt, message):
    images, texts, _ = data
    with pytest.raises(InputError, match=f"argument 'image': {message}"):
        load_model(trained["model"]).encode_image(corrupt(images[:4]))
    with pytest.raises(InputError, match=f"argument 'X': {message}"):
        load_hasher(trained["hasher"]).encode(corrupt(texts[:4]))


def test_non_finite_network_or_hasher_is_an_error_not_zero_codes(trained, data):
    images, texts, _ = data
    model = load_model(trained["model"])
    with torch.no_grad():
        for parameter in model.image_network_.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(NumericalError, match="output is NaN or infinite for 4 of 4 rows"):
        model.encode_image(images[:4])
    assert model.encode_text(texts[:4]).shape == (4, 8)
    hasher = load_hasher(trained["hasher"])
    hasher.projection_ = np.full_like(hasher.projection_, np.nan)
    with pytest.raises(NumericalError, match="NaN or infinite projections"):
        hasher.encode(texts[:4])


# ---------------------------------------------------------------------------------- model files
def _tampered_copy(original: Path, folder: Path, edit: Callable[[h5py.File], None]) -> Path:
    tampered = folder / "tampered.h5"
    shutil.copy(original, tampered)
    with h5py.File(tampered, "r+") as handle:
        edit(handle)
    return tampered


def _set_attr(key: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        handle.attrs[key] = json.dumps(value)

    return edit


def _replace(path: str, make: Callable[[np.ndarray, h5py.File, str], None]) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        array = handle[path][()]
        del handle[path]
        make(array, handle, path)

    return edit


def _by_group(array, handle, path):
    handle.create_group(path).create_dataset("w", data=array)


def _by_strings(array, handle, path):
    handle.create_dataset(path, data=np.full(array.shape, "w", dtype=object), dtype=h5py.string_dtype())


def _with_nan(array, handle, path):
    handle.create_dataset(path, data=_with(array, 0, np.nan))


def _narrower(array, handle, path):
    handle.create_dataset(path, data=array[:, :-1])


MODEL_CASES = [
    (
        "n_features list",
        _set_attr("n_features", [16, 40]),
        "field 'n_features': expected a JSON object, got list",
    ),
    (
        "n_features string",
        _set_attr("n_features", "16"),
        "field 'n_features': expected a JSON object, got str",
    ),
    ("n_features text", _set_attr("n_features", {"image": "x", "text": 40}), "field 'n_features.image'"),
    ("params list", _set_attr("params", [1]), "field 'params': expected a JSON object"),
    ("meta list", _set_attr("meta", [1]), "field 'meta': expected a JSON object"),
    ("method list", _set_attr("method", [1]), "field 'method': expected a JSON object"),
    ("weight by group", _replace(WEIGHT, _by_group), "linears.0.weight"),
    ("weight by strings", _replace(WEIGHT, _by_strings), f"field '{WEIGHT}': expected a numeric array"),
    ("NaN weight", _replace(WEIGHT, _with_nan), f"field '{WEIGHT}': expected finite numbers"),
    ("weight of wrong shape", _replace(WEIGHT, _narrower), "size mismatch for linears.0.weight"),
]


@pytest.mark.parametrize(("case", "edit", "message"), MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_tampered_model_file_is_a_model_file_error(trained, tmp_path, capsys, case, edit, message):
    tampered = _tampered_copy(trained["model"], tmp_path, edit)
    with pytest.raises(ModelFileError, match=rf"(?s)tampered\.h5: .*{re.escape(message)}"):
        load_model(tampered)
    out = tmp_path / "codes.h5"
    args = ["encode", "--model", str(tampered), "--features", str(trained["folder"] / "images.npy")]
    assert main([*args, "--view", "image", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------------- hasher files
def _state_key(key: str) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        state = handle["state"]
        state.attrs["state_keys"] = json.dumps([*json.loads(state.attrs["state_keys"]), key])
        state.attrs[key] = json.dumps(1)

    return edit


def _projection(make: Callable[[np.ndarray], Any]) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        array = handle["state/projection_"][()]
        del handle["state/projection_"]
        handle.create_dataset("state/projection_", data=make(array))

    return edit


def _set_state_attr(key: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        handle["state"].attrs[key] = json.dumps(value)

    return edit


HASHER_FILE_CASES = [
    ("state key 'encode'", _state_key("encode"), "fitted attribute 'encode': not a fitted-attribute name"),
    ("state key 'params'", _state_key("params"), "fitted attribute 'params': not a fitted-attribute name"),
    ("projection too narrow", _projection(lambda a: a[:, :-1]), "projection_ (40, 7)"),
    ("projection too short", _projection(lambda a: a[:-1]), "projection_ (39, 8)"),
    ("NaN projection", _projection(lambda a: _with(a, 0, np.nan)), "'/state/projection_': expected finite"),
    ("projection by strings", _projection(lambda a: np.array(["p"] * 3, dtype=object)), "a numeric array"),
    (
        "n_features_in_ list",
        _set_state_attr("n_features_in_", [40]),
        "expected a number or a string, got list",
    ),
    (
        "n_features_in_ string",
        _set_state_attr("n_features_in_", "40"),
        "'n_features_in_': expected a positive",
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "message"), HASHER_FILE_CASES, ids=[c[0] for c in HASHER_FILE_CASES]
)
def test_tampered_hasher_file_is_a_hasher_file_error(trained, tmp_path, case, edit, message):
    tampered = _tampered_copy(trained["hasher"], tmp_path, edit)
    with pytest.raises(HasherFileError, match=rf"(?s)tampered\.h5: .*{re.escape(message)}"):
        load_hasher(tampered)


# ---------------------------------------------------------------------------------- the CLI
def _codes_file(path: Path, codes: np.ndarray, ids: list[str] | None = None) -> Path:
    with h5py.File(path, "w") as handle:
        handle.attrs["ddcmh_format"] = "ddcmh-codes"
        handle.create_dataset("codes", data=codes)
        if ids is not None:
            handle.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
    return path


def _search_1d(paths, tmp_path):
    good = tmp_path / "good.h5"
    write_codes(good, np.eye(8, dtype=np.uint8), ids=None)
    return [
        "search",
        "--database",
        str(good),
        "--queries",
        str(_codes_file(tmp_path / "q.h5", np.ones(8, np.uint8))),
    ]


def _search_ids(paths, tmp_path):
    database = _codes_file(tmp_path / "db.h5", np.eye(8, dtype=np.uint8), ids=["a", "b"])
    return ["search", "--database", str(database), "--queries", str(database)]


def _search_out(paths, tmp_path):
    database = _codes_file(tmp_path / "db.h5", np.eye(8, dtype=np.uint8))
    return [
        "search",
        "--database",
        str(database),
        "--queries",
        str(database),
        "--out",
        str(tmp_path / "no" / "r.json"),
    ]


def _encode(paths, tmp_path, source: list[str], out: Path | None = None) -> list[str]:
    out = out or tmp_path / "codes.h5"
    return ["encode", "--model", str(paths["model"]), *source, "--view", "image", "--out", str(out)]


def _encode_object(paths, tmp_path):
    np.save(tmp_path / "object.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    return _encode(paths, tmp_path, ["--features", str(tmp_path / "object.npy")])


def _encode_images(paths, tmp_path):
    (tmp_path / "images.txt").write_text("a.jpg\nb.jpg\n")
    return _encode(paths, tmp_path, ["--images", str(tmp_path / "images.txt")])


def _encode_out(paths, tmp_path):
    source = ["--features", str(paths["folder"] / "images.npy")]
    return _encode(paths, tmp_path, source, tmp_path / "no" / "codes.h5")


def _encode_1d(paths, tmp_path):
    np.save(tmp_path / "row.npy", np.ones(16))
    return _encode(paths, tmp_path, ["--features", str(tmp_path / "row.npy")])


def _train_on(change: Callable[[dict[str, np.ndarray]], None]):
    def args(paths, tmp_path):
        with np.load(paths["data"]) as stored:
            arrays = dict(stored)
        change(arrays)
        np.savez(tmp_path / "bad.npz", **arrays)
        return _train_args(tmp_path / "bad.npz", paths["folder"], tmp_path / "m.h5")

    return args


def _resume_with(damage: Callable[[bytes], bytes], pattern: str):
    def args(paths, tmp_path):
        run = tmp_path / "run"
        shutil.copytree(paths["model"].with_name("model.h5.run"), run)
        for file in run.rglob(pattern):
            file.write_bytes(damage(file.read_bytes()))
        return _train_args(
            paths["data"], paths["folder"], tmp_path / "m.h5", "--run-dir", str(run), "--resume"
        )

    return args


def _times(factor: float):
    def change(arrays):
        arrays["image"] = arrays["image"] * factor

    return change


def _constant(arrays):
    arrays["image"] = np.ones_like(arrays["image"])


def _no_labels(arrays):
    arrays["labels"] = np.zeros_like(arrays["labels"])


ADVICE = "delete the run folder"
CLI_CASES = [
    ("search 1-D codes", _search_1d, "'codes': expected a 2-D integer matrix"),
    ("search ids of wrong length", _search_ids, "'ids': expected 8 ids, one per row of 'codes', got (2,)"),
    ("search --out in a missing folder", _search_out, "does not exist; create it"),
    ("encode object .npy", _encode_object, "expected a numeric .npy matrix"),
    ("encode --images on an MLP model", _encode_images, "image files need a CNN image network"),
    ("encode --out in a missing folder", _encode_out, "does not exist; create it"),
    ("encode 1-D .npy", _encode_1d, "argument 'image': ArraySource: expected a 2-D matrix"),
    (
        "train features of 1e300",
        _train_on(_times(1e300)),
        "expected finite feature values of magnitude at most",
    ),
    ("train constant image view", _train_on(_constant), "'image': expected training rows that differ"),
    ("train all-zero labels", _train_on(_no_labels), "'labels'"),
    ("resume corrupt .ckpt", _resume_with(lambda b: b"\x80\x02garbage" * 9, "*.ckpt"), ADVICE),
    ("resume truncated .ckpt", _resume_with(lambda b: b[: len(b) // 2], "*.ckpt"), ADVICE),
    ("resume empty .ckpt", _resume_with(lambda b: b"", "*.ckpt"), ADVICE),
    ("resume truncated stage-1 codes", _resume_with(lambda b: b[: len(b) // 2], "stage1-*.npz"), ADVICE),
    ("resume corrupt stage-1 hasher", _resume_with(lambda b: b[:200], "stage1-*.hasher.h5"), ADVICE),
]


@pytest.mark.parametrize(("case", "arguments", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_errors_exit_2_with_the_message(trained, tmp_path, capsys, case, arguments, message):
    status = main(arguments(trained, tmp_path))
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "codes.h5").exists() and not (tmp_path / "m.h5").exists()
