"""The ``ddcmh`` command: train, encode, search, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddcmh_core.cli.main import main, read_codes
from ddcmh_core.methods.ddcmh import DDCMH
from ddcmh_core.testing import make_bow_data

CONFIG = """
image_network = { hidden_sizes = [32] }
text_network = { hidden_sizes = [32] }
image_training = { max_epochs = 3, patience = 2, batch_size = 64 }
text_training = { max_epochs = 3, patience = 2, batch_size = 64 }
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddcmh-cli")
    texts, labels = make_bow_data(n_samples=240, n_features=40, n_classes=4, seed=5)
    rng = np.random.default_rng(1)
    images = labels @ rng.standard_normal((4, 16)) * 2 + rng.standard_normal((240, 16))
    data = folder / "tiny.npz"
    np.savez(data, image=images, text=texts.toarray(), labels=labels)
    (folder / "model.toml").write_text(CONFIG)
    model = folder / "model.h5"
    status = main(
        [
            "train",
            "--dataset",
            str(data),
            "--hasher",
            "itq",
            "--bits",
            "16",
            "--config",
            str(folder / "model.toml"),
            "--model",
            str(model),
        ]
    )
    assert status == 0
    return folder, data, model, images


def test_train_encode_search_round_trip(trained, capsys):
    folder, data, model, images = trained
    queries, database = folder / "q.h5", folder / "db.h5"
    assert (
        main(
            [
                "encode",
                "--model",
                str(model),
                "--dataset",
                str(data),
                "--part",
                "query",
                "--view",
                "image",
                "--out",
                str(queries),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "encode",
                "--model",
                str(model),
                "--dataset",
                str(data),
                "--part",
                "database",
                "--view",
                "text",
                "--out",
                str(database),
            ]
        )
        == 0
    )
    query_codes, query_ids = read_codes(queries)
    database_codes, _ = read_codes(database)
    assert query_codes.shape[1] == database_codes.shape[1] == 16
    capsys.readouterr()
    assert main(["search", "--database", str(database), "--queries", str(queries), "--k", "5"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == len(query_ids) and all(len(r["hits"]) == 5 for r in results)
    distances = [hit[1] for hit in results[0]["hits"]]
    assert distances == sorted(distances)
    assert (
        main(
            [
                "search",
                "--database",
                str(database),
                "--queries",
                str(queries),
                "--radius",
                "2",
                "--out",
                str(folder / "r.json"),
            ]
        )
        == 0
    )
    radius_hits = json.loads((folder / "r.json").read_text())["results"]
    assert all(hit[1] <= 2 for r in radius_hits for hit in r["hits"])
    features = folder / "features.npy"
    np.save(features, images[:7])
    assert (
        main(
            [
                "encode",
                "--model",
                str(model),
                "--features",
                str(features),
                "--view",
                "image",
                "--out",
                str(folder / "f.h5"),
            ]
        )
        == 0
    )
    codes, ids = read_codes(folder / "f.h5")
    assert codes.shape == (7, 16) and ids == [str(i) for i in range(7)]


def test_errors_exit_2(trained, capsys, tmp_path):
    _, data, model, _ = trained
    assert (
        main(["search", "--database", str(tmp_path / "none.h5"), "--queries", str(tmp_path / "none.h5")]) == 2
    )
    assert "no such codes file" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((3, 5)))
    assert (
        main(
            [
                "encode",
                "--model",
                str(model),
                "--features",
                str(wrong),
                "--view",
                "image",
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )
        == 2
    )
    assert "expected 16 features per row" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
    assert (
        main(
            [
                "encode",
                "--model",
                str(model),
                "--texts",
                str(wrong),
                "--view",
                "text",
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )
        == 2
    )
    assert "trained on text features, not raw texts" in capsys.readouterr().err
    assert (
        main(
            [
                "encode",
                "--model",
                str(data),
                "--features",
                str(wrong),
                "--view",
                "image",
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )
        == 2
    )
    assert "not a readable HDF5 file" in capsys.readouterr().err
    assert main(["train", "--dataset", str(data), "--hasher", "nope", "--model", str(tmp_path / "m.h5")]) == 2
    assert "unknown hasher 'nope'" in capsys.readouterr().err


def test_train_tunes_on_the_validation_split_and_saves_the_chosen_model(trained, capsys, tmp_path):
    _, data, _, images = trained
    config = tmp_path / "tune.toml"
    config.write_text(CONFIG + "[tune]\nimage_network = [{}, { kernel_lift = 'rbf', lift_anchors = 50 }]\n")
    model_path = tmp_path / "tuned.h5"
    arguments = ["train", "--dataset", data, "--hasher", "itq", "--bits", "8", "--config", config]
    arguments += ["--tune", "text_training.learning_rate=1e-9,0.001", "--tune-repeats", "2"]
    assert main([str(a) for a in [*arguments, "--model", model_path]]) == 0
    captured = capsys.readouterr()
    assert "[tune] chosen:" in captured.err and "text_training.learning_rate=0.001" in captured.err
    model = DDCMH.load(model_path)
    tuning = model.report_["tuning"]
    assert len(tuning["candidates"]) == 4 and tuning["seeds"] == [0, 1]
    chosen = tuning["candidates"][tuning["best_index"]]
    assert chosen["overrides"]["text_training.learning_rate"] == 0.001
    assert model.params.text_training.learning_rate == 0.001
    assert model.encode_image(images).shape == (len(images), 8)
    bad = ["train", "--dataset", data, "--model", tmp_path / "bad.h5", "--tune", "seed=1,2"]
    assert main([str(a) for a in bad]) == 2
    assert "seed cannot be tuned" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()
