"""Bad photos in a folder dataset: each named with its reason, then skipped (reported) or refused.

A folder layout with good photos and six awkward ones: grey-scale, CMYK and 16-bit PNG photos
are usable (converted to RGB); corrupt, truncated and huge (10,000 x 10,000) ones are not.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddcmh_core.cli.bench import main as bench_main
from ddcmh_core.data import DatasetError, load_folder_layout
from ddcmh_core.data.folder import PHOTO_UNUSABLE
from ddcmh_core.engine.images import ImageFileSource

# PIL's own warning about the huge photo (over its 89-million-pixel default) is expected here
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

N_GOOD = 12
UNUSABLE = {"corrupt": "UnidentifiedImageError", "truncated": "truncated", "huge": "100.0 million pixels"}
USABLE = ("grey", "cmyk", "deep")


def _photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path, quality=90)


def _awkward(folder: Path) -> dict[str, Path]:
    """The six awkward photos, written into ``folder``; their paths by kind."""
    rng = np.random.default_rng(7)
    paths = {
        "grey": folder / "grey.jpg",
        "cmyk": folder / "cmyk.jpg",
        "deep": folder / "deep.png",
        "corrupt": folder / "corrupt.jpg",
        "truncated": folder / "truncated.jpg",
        "huge": folder / "huge.png",
    }
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8), mode="L").save(paths["grey"])
    Image.fromarray(rng.integers(0, 256, (40, 50, 4), dtype=np.uint8), mode="CMYK").save(paths["cmyk"])
    deep = rng.integers(0, 65536, (40, 50), dtype=np.uint16)
    Image.fromarray(deep).save(paths["deep"])
    assert Image.open(paths["deep"]).mode.startswith("I")  # really 16 bits per pixel on disk
    paths["corrupt"].write_bytes(b"GIF89a? no: neither a GIF nor a JPEG " * 20)
    whole = folder / "whole.jpg"
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(whole, quality=95)
    paths["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    Image.new("L", (10_000, 10_000), 90).save(paths["huge"], compress_level=1)
    return paths


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Wikipedia-layout folder: 12 good items, then the six awkward photos, two classes."""
    root = tmp_path_factory.mktemp("bad-photos")
    (root / "images").mkdir()
    (root / "texts").mkdir()
    (root / "categories.list").write_text("cats\ndogs\n")
    awkward = _awkward(root / "images")
    names = [f"good{number}" for number in range(N_GOOD)] + list(awkward)
    lines = []
    for number, name in enumerate(names):
        if name.startswith("good"):
            _photo(root / "images" / f"{name}.jpg", number)
        words = "whiskers purr meow" if number % 2 == 0 else "bark fetch wag"
        (root / "texts" / f"doc{number}.txt").write_text(f"{words} {words.split()[0]} item{number}")
        lines.append(f"doc{number}\t{name}\t{number % 2 + 1}")
    (root / "trainset_txt_img_cat.list").write_text("\n".join(lines) + "\n")
    return root


# the list line of each awkward photo (they follow the good ones, in _awkward's order)
LINE = {kind: N_GOOD + position + 1 for position, kind in enumerate(("grey", "cmyk", "deep", *UNUSABLE))}


def _load(folder: Path, **options: object):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_folder_layout(folder, split="holdout", holdout_fraction=0.25, **options)
    return dataset, [str(w.message) for w in caught]


def test_unusable_photos_are_skipped_each_with_its_reason(folder: Path) -> None:
    dataset, messages = _load(folder)
    assert dataset.n_items == N_GOOD + len(USABLE)
    kept = {Path(p).stem for p in dataset.image.paths}
    assert set(USABLE) <= kept and not kept & UNUSABLE.keys()
    skipped = {Path(item.path).stem: item for item in dataset.skipped}
    assert skipped.keys() == UNUSABLE.keys()
    for kind, reason in UNUSABLE.items():
        item = skipped[kind]
        assert item.reason.startswith(PHOTO_UNUSABLE) and reason in item.reason, item.reason
        assert (item.list_file, item.line) == ("trainset_txt_img_cat.list", LINE[kind])
    assert any("skipped 3 listed items" in message for message in messages), messages
    # the usable awkward photos reach the CNN pipeline as RGB batches
    rows = np.array([row for row, path in enumerate(dataset.image.paths) if Path(path).stem in USABLE])
    batch = ImageFileSource.for_backbone(dataset.image.paths, "mobilenet_v2", image_size=32).batch(
        rows, train=True
    )
    assert batch.shape == (3, 3, 32, 32) and bool(batch.isfinite().all())


def test_on_missing_error_lists_every_unusable_photo_before_anything_else(folder: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(folder, split="holdout", on_missing="error")
    message = str(caught.value)
    assert message.startswith("3 of 18 listed photos cannot be used")
    for kind, reason in UNUSABLE.items():
        assert f"line {LINE[kind]}: {folder / 'images' / kind}" in message and reason in message
    assert not any(kind in message for kind in USABLE)


def test_max_pixels_is_the_users_choice(folder: Path) -> None:
    dataset, _ = _load(folder, max_pixels=200_000_000)  # the huge photo is now allowed
    assert "huge" in {Path(p).stem for p in dataset.image.paths}
    assert {Path(item.path).stem for item in dataset.skipped} == {"corrupt", "truncated"}


def test_a_folder_whose_photos_all_fail_is_refused_with_the_first_reason(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    (root / "images").mkdir(parents=True)
    (root / "texts").mkdir()
    for number in range(2):
        (root / "images" / f"bad{number}.jpg").write_bytes(b"neither a JPEG nor anything else " * 10)
        (root / "texts" / f"doc{number}.txt").write_text("whiskers purr")
    (root / "trainset_txt_img_cat.list").write_text("doc0\tbad0\t1\ndoc1\tbad1\t1\n")
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(root, split="holdout")
    message = str(caught.value)
    assert message.startswith(f"broken: none of the 2 photos found can be used: {PHOTO_UNUSABLE} (")
    assert UNUSABLE["corrupt"] in message and str(root / "images" / "bad0.jpg") in message
    assert "\n" not in message


def _config(tmp_path: Path, folder: Path, on_missing: str) -> Path:
    """Stage 1 fits on 11 pairs here: the lifted ITQ has 11 anchor features, so at most 11 bits."""
    config = tmp_path / f"{on_missing}.toml"
    config.write_text(
        f'dataset = "{folder}"\nimage_features = "mobilenet_v2"\nmethods = ["ddcmh"]\nhashers = ["itq"]\n'
        f'bits = [8]\n[dataset_options]\nsplit = "holdout"\non_missing = "{on_missing}"\n'
    )
    return config


def test_bench_refuses_before_work_or_reports_what_it_left_out(folder, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    status = bench_main(["--config", str(_config(tmp_path, folder, "error")), "--out", str(out)])
    error = capsys.readouterr().err
    assert status == 2 and not out.exists()
    assert "3 of 18 listed photos cannot be used" in error
    assert all(f"{kind}." in error for kind in UNUSABLE)
    status = bench_main(["--config", str(_config(tmp_path, folder, "skip")), "--dry-run", "--no-calibration"])
    error = capsys.readouterr().err
    assert status == 0, error
    assert "left out 3 listed items whose photo cannot be used" in error
    for kind, reason in UNUSABLE.items():
        assert f"{kind}." in error and reason in error
