"""Photos as frozen-backbone features (ddcmh_core.engine.frozen_features) and ddcmh-bench --image-features."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ddcmh_core.cli.bench import main
from ddcmh_core.engine.frozen_features import (
    FrozenFeatures,
    backbone_features,
    parse_frozen_features,
    with_frozen_image_features,
)
from ddcmh_core.engine.weights import WeightsNotFoundError, locate_weights
from ddcmh_core.errors import InputError

CLASSES = ("red", "green", "blue")


@pytest.fixture
def mobilenet_weights() -> Path:
    """The registry MobileNetV2 weights, or a skip (tests never download)."""
    try:
        return locate_weights("mobilenet_v2", download=False)
    except WeightsNotFoundError:
        pytest.skip(
            "mobilenet_v2 registry weights not cached: run `python -m ddcmh_core.engine.weights fetch`"
        )


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """A Web-News-layout folder: 36 photos of three colours with captions naming the colour."""
    from PIL import Image

    root = tmp_path / "photos"
    (root / "texts").mkdir(parents=True)
    for name in CLASSES:
        (root / "images" / name).mkdir(parents=True)
    (root / "categories.list").write_text("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(0)
    rows: dict[str, list[str]] = {"train": [], "test": []}
    for number in range(36):
        label = number % 3
        pixels = np.zeros((48, 64, 3)) + 40
        pixels[..., label] = 200
        pixels += rng.normal(0, 25, pixels.shape)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            root / "images" / CLASSES[label] / f"img{number}.jpg"
        )
        (root / "texts" / f"doc{number}.txt").write_text(f"a {CLASSES[label]} picture number {number}")
        rows["test" if number >= 30 else "train"].append(f"doc{number}\timg{number}\t{label + 1}")
    for part, lines in rows.items():
        (root / f"{part}set_txt_img_cat.list").write_text("\n".join(lines) + "\n")
    return root


def _images(folder: Path) -> list[Path]:
    return sorted((folder / "images").rglob("*.jpg"), key=lambda path: int(path.stem[3:]))


def test_the_spec_names_a_backbone_with_registry_weights_and_a_size() -> None:
    assert parse_frozen_features("mobilenet_v2") == FrozenFeatures("mobilenet_v2", None)
    assert parse_frozen_features(" mobilenet_v2:160 ").describe() == "mobilenet_v2:160"
    with pytest.raises(InputError, match=r"--image-features: expected BACKBONE or BACKBONE:SIZE"):
        parse_frozen_features("mobilenet_v2:big")
    with pytest.raises(
        InputError, match=r"unknown backbone 'vgg'; with registry weights: \['efficientnet_lite0'"
    ):
        parse_frozen_features("vgg")
    with pytest.raises(InputError, match="'resnet18' has no registry weights"):
        parse_frozen_features("resnet18")
    with pytest.raises(InputError, match="mobilenet_v2 needs an input of at least"):
        parse_frozen_features("mobilenet_v2:8")


def test_features_are_computed_once_then_read_from_the_cache_until_a_photo_changes(
    photo_folder: Path, tmp_path: Path, mobilenet_weights: Path
) -> None:
    paths, cache = _images(photo_folder)[:6], tmp_path / "cache"
    spec = FrozenFeatures("mobilenet_v2", 96, batch_size=4)
    lines: list[str] = []
    first = backbone_features(paths, spec, cache_dir=cache, progress=lines.append)
    assert first.shape == (6, 1280) and first.dtype == np.float32 and np.isfinite(first).all()
    assert [line.split("] ")[1].split(",")[0] for line in lines] == ["4/6 photos", "6/6 photos"]
    assert "ETA" in lines[0] and len(list(cache.glob("mobilenet_v2-96-*.npy"))) == 1
    assert not list(cache.glob(".*tmp"))  # written under a temporary name, then renamed
    lines.clear()
    again = backbone_features(paths, spec, cache_dir=cache, progress=lines.append)
    assert np.array_equal(first, again) and lines == [
        f"[mobilenet_v2:96 features] 6 photos read from {next(cache.glob('*.npy'))}"
    ]
    os.utime(paths[2], ns=(1, 1))  # a photo that changed: another key, so computed again
    backbone_features(paths, spec, cache_dir=cache, progress=lines.append)
    assert len(list(cache.glob("*.npy"))) == 2
    for path in cache.glob("*.npy"):
        path.write_bytes(b"not an array")  # a damaged file is computed again, never read
    lines.clear()
    repaired = backbone_features(paths, spec, cache_dir=cache, progress=lines.append)
    assert "read from" not in lines[-1] and np.allclose(repaired, first, atol=1e-5)
    assert np.array_equal(backbone_features(paths, spec, cache_dir=cache), repaired)  # and rewritten
    # the features tell the colours apart: each photo's nearest other photo has its colour
    features = backbone_features(_images(photo_folder)[:12], spec, cache_dir=cache)
    distances = ((features[:, None] - features[None]) ** 2).sum(-1) + np.diag([np.inf] * 12)
    assert (distances.argmin(1) % 3 == np.arange(12) % 3).mean() >= 0.9


def test_missing_photos_are_all_named_before_any_work(photo_folder: Path, tmp_path: Path) -> None:
    paths = [*_images(photo_folder)[:4], tmp_path / "gone1.jpg", tmp_path / "gone2.jpg"]
    with pytest.raises(InputError, match=r"2 of 6 image files cannot be read: row 4: .*gone1.jpg .*row 5"):
        backbone_features(paths, FrozenFeatures(), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_only_a_view_of_image_files_can_become_features(tiny_dataset) -> None:
    from ddcmh_core.data import load_dataset

    dataset = load_dataset(str(tiny_dataset[0]))
    with pytest.raises(
        InputError, match="need a view of image files, but the dataset has an image view of dense"
    ):
        with_frozen_image_features(dataset, FrozenFeatures())


def test_ddcmh_bench_trains_on_frozen_features_of_photos(
    photo_folder: Path, tmp_path: Path, capsys, monkeypatch, mobilenet_weights: Path
) -> None:
    (tmp_path / "cache" / "weights").mkdir(parents=True)  # features cached here, not in the user's cache
    (tmp_path / "cache" / "weights" / mobilenet_weights.name).symlink_to(mobilenet_weights)
    monkeypatch.setenv("DDCMH_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "small.toml"
    config.write_text(
        "dataset_options = { text_features = { max_features = 3 } }\n"
        "[model]\nimage_network = { hidden_sizes = [32] }\ntext_network = { hidden_sizes = [32] }\n"
        "image_training = { max_epochs = 3, batch_size = 16 }\n"
        "text_training = { max_epochs = 3, batch_size = 16 }\n"
    )
    out = tmp_path / "run"
    arguments = ["--dataset", "web-news", "--data-dir", photo_folder, "--image-features", "mobilenet_v2:96"]
    status = main(
        [str(a) for a in [*arguments, "--config", config, "--hasher", "lsh", "--bits", "8", "--out", out]]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "[mobilenet_v2:96 features] 36/36 photos" in captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["image_features"] == "mobilenet_v2:96"
    assert results["dataset"]["split"]["train"] == 30
    assert {record["method"] for record in results["records"]} == {"ddcmh", "stage1", "random"}
    assert results["config"]["dataset_options"] == {"text_features": {"max_features": 3}}
    assert "text 3, " in captured.err  # the loader capped the vocabulary (5 words otherwise)
    status = main([str(a) for a in [*arguments[:4], "--image-features", "resnet18", "--dry-run"]])
    assert status == 2 and "'resnet18' has no registry weights" in capsys.readouterr().err


def test_the_plan_is_checked_on_the_features_shape_before_any_photo_is_read(
    photo_folder: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("DDCMH_CACHE_DIR", str(tmp_path / "cache"))  # no weights needed: no pass
    arguments = ["--dataset", "web-news", "--data-dir", photo_folder, "--image-features", "mobilenet_v2"]
    assert main([str(a) for a in [*arguments, "--hasher", "lsh", "--dry-run", "--no-calibration"]]) == 0
    captured = capsys.readouterr()
    assert "Plan for web-news: 6 cells" in captured.out and "features]" not in captured.err
    narrow = ["--hasher", "pcah", "--hasher-opt", "pcah:kernel_lift=none", "--bits", "128"]
    status = main([str(a) for a in [*arguments, *narrow]])
    assert status == 2 and "128 bits from a text view of" in capsys.readouterr().err  # no pass before
    assert not (tmp_path / "cache").exists()
