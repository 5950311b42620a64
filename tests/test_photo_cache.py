"""The decoded-photo cache (ddcmh_core.engine.photo_cache) behind ImageFileSource, and huge photos."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddcmh_core.engine import photo_decoding
from ddcmh_core.engine.config import NetworkConfig
from ddcmh_core.engine.images import ImageFileSource, find_unreadable_images
from ddcmh_core.engine.photo_cache import DecodedPhotoCache, photo_cache_dir
from ddcmh_core.engine.sources import as_source
from ddcmh_core.errors import InputError

PLAIN = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # output = pixel / 255


def photo(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    pixels = (x * rng.uniform(0.2, 1.0) + y * rng.uniform(0.2, 1.0)) / 2 + rng.uniform(0, 60, size=(1, 1, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    return [photo(folder / f"{i}.jpg", 60 + 7 * i, 45 + 3 * i, i) for i in range(6)]


def cached_source(paths: list[Path], folder: Path, **options) -> ImageFileSource:
    return ImageFileSource(paths, image_size=24, resize_size=32, cache=folder, **PLAIN, **options)


def forbid_decoding(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a photo was decoded although the cache holds it")

    monkeypatch.setattr(photo_decoding, "decode_photo", refuse)


def test_first_pass_fills_and_publishes_then_no_photo_is_decoded(photos, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    source = cached_source(photos, folder)
    assert source.cache is not None and not source.cache.complete and not folder.exists()
    first = source.batch(np.array([4, 1, 2]), train=False)
    assert not source.cache.complete and not source.cache.path.exists()
    rest = source.batch(np.array([0, 3, 5]), train=False)
    assert source.cache.complete and source.cache.path.stat().st_size == 6 * 32 * 32 * 3
    assert [p.name for p in folder.iterdir()] == [source.cache.path.name]  # no partial file left
    forbid_decoding(monkeypatch)
    again = cached_source(photos, folder)
    assert again.cache is not None and again.cache.complete
    assert torch.equal(again.batch(np.array([4, 1, 2]), train=False), first)
    assert torch.equal(again.batch(np.array([0, 3, 5]), train=False), rest)
    torch.manual_seed(3)
    augmented = again.batch(np.arange(6), train=True)
    torch.manual_seed(3)
    assert torch.equal(again.batch(np.arange(6), train=True), augmented)
    assert augmented.shape == (6, 3, 24, 24) and not torch.equal(
        augmented, again.batch(np.arange(6), train=False)
    )


def test_cached_evaluation_batches_match_decoding_every_time(photos, tmp_path):
    plain = ImageFileSource(photos, image_size=24, resize_size=32, **PLAIN)
    cached = cached_source(photos, tmp_path / "cache")
    rows = np.arange(len(photos))
    direct, stored = plain.batch(rows, train=False), cached.batch(rows, train=False)
    # The same centre region; resampled in two steps instead of one.
    assert float((direct - stored).abs().mean()) < 2 / 255
    assert float((direct - stored).abs().max()) < 16 / 255


def test_an_edited_photo_gives_another_cache_file(photos, tmp_path):
    folder = tmp_path / "cache"
    before = cached_source(photos, folder)
    before.batch(np.arange(6), train=False)
    photo(photos[2], 90, 40, seed=99)
    os.utime(photos[2], ns=(1, 1))
    after = cached_source(photos, folder)
    assert after.cache is not None and before.cache is not None
    assert after.cache.path != before.cache.path and not after.cache.complete
    changed = after.batch(np.array([2]), train=False)
    assert not torch.equal(changed, before.batch(np.array([2]), train=False))


def test_a_damaged_cache_file_is_filled_again(photos, tmp_path):
    folder = tmp_path / "cache"
    source = cached_source(photos, folder)
    expected = source.batch(np.arange(6), train=False)
    assert source.cache is not None
    with open(source.cache.path, "r+b") as handle:
        handle.truncate(100)
    again = cached_source(photos, folder)
    assert again.cache is not None and not again.cache.complete
    assert torch.equal(again.batch(np.arange(6), train=False), expected)
    assert again.cache.complete and again.cache.path.stat().st_size == again.cache.n_bytes


def test_an_interrupted_fill_leaves_nothing_behind(photos, tmp_path):
    folder = tmp_path / "cache"
    source = cached_source(photos, folder)
    source.batch(np.array([0, 1]), train=True)
    assert any(p.name.endswith(".partial") for p in folder.iterdir())
    source.close()
    assert list(folder.iterdir()) == []


def test_pickled_source_reads_the_complete_file_without_copying_it(photos, tmp_path, monkeypatch):
    source = cached_source(photos, tmp_path / "cache")
    expected = source.batch(np.arange(6), train=False)
    payload = pickle.dumps(source)
    assert len(payload) < 6 * 32 * 32 * 3 / 2  # the array is not in the pickle
    forbid_decoding(monkeypatch)
    copy = pickle.loads(payload)
    assert torch.equal(copy.batch(np.arange(6), train=False), expected)


def test_network_settings_reach_the_source(photos, monkeypatch, tmp_path):
    monkeypatch.setenv("DDCMH_PHOTO_CACHE_DIR", str(tmp_path / "env-cache"))
    assert photo_cache_dir() == tmp_path / "env-cache"

    class Files:
        kind = "image-files"
        paths = photos

    network = NetworkConfig(architecture="cnn", backbone="resnet18", image_size=64, decode_workers=2)
    source = as_source(Files(), network)
    assert isinstance(source, ImageFileSource)
    assert (source.image_size, source.resize_size, source.n_workers) == (64, 73, 2)
    assert source.cache is not None and source.cache.path.parent == tmp_path / "env-cache"
    off = as_source(Files(), network.model_copy(update={"photo_cache": False}))
    assert isinstance(off, ImageFileSource) and off.cache is None
    encoding = as_source(Files(), network, training=False)  # one pass: nothing worth storing
    assert isinstance(encoding, ImageFileSource) and encoding.cache is None


def test_missing_photo_is_named_when_the_cache_key_is_computed(photos, tmp_path):
    photos[3].unlink()
    with pytest.raises(InputError, match=r"photo cache: 1 of 6 image files cannot be read: row 3: .*3\.jpg"):
        cached_source(photos, tmp_path / "cache")


def test_cache_shape_and_bytes(photos, tmp_path):
    cache = DecodedPhotoCache(photos, 40, directory=tmp_path)
    assert cache.shape == (6, 40, 40, 3) and cache.n_bytes == 6 * 40 * 40 * 3
    assert cache.missing(np.array([1, 4])).tolist() == [1, 4]


# ----------------------------------------------------------------------------------------------
# Huge photos: memory stays bounded
# ----------------------------------------------------------------------------------------------


def test_huge_png_is_refused_from_its_header(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000), 128).save(huge, compress_level=1)
    small = photo(tmp_path / "small.jpg", 50, 40, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        problems = find_unreadable_images([small, huge])
        assert [p for p, _ in problems] == [huge]
        assert "10000 x 10000 = 100.0 million pixels" in problems[0][1]
        source = ImageFileSource([small, huge], image_size=16, **PLAIN)
        with pytest.raises(InputError, match=r"huge\.png.*row 1.*more than the limit of 40\.0 million"):
            source.batch(np.array([0, 1]), train=False)


def test_large_jpeg_decodes_at_reduced_scale_within_the_limit(tmp_path):
    big = photo(tmp_path / "big.jpg", 2400, 1600, seed=2)
    assert find_unreadable_images([big], max_pixels=1_000_000) == []  # decoded at 1/8: 300 x 200
    source = ImageFileSource([big], image_size=32, max_pixels=1_000_000, **PLAIN)
    assert source.batch(np.array([0]), train=False).shape == (1, 3, 32, 32)
    as_png = tmp_path / "big.png"
    Image.open(big).save(as_png)
    assert [p for p, _ in find_unreadable_images([as_png], max_pixels=1_000_000)] == [as_png]
    with pytest.raises(InputError, match="argument 'max_pixels'"):
        ImageFileSource([big], image_size=32, max_pixels=0, **PLAIN)
