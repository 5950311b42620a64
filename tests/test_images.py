"""Image files as a BatchSource (ddcmh_core.engine.images): decoding, transforms, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddcmh_core.engine.backbones import IMAGENET_MEAN, IMAGENET_STD
from ddcmh_core.engine.images import ImageFileSource, check_images, find_unreadable_images
from ddcmh_core.engine.sources import BatchSource
from ddcmh_core.errors import InputError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PASCAL_IMAGES = DATA / "pascal_sentence" / "images_partial"
WEB_NEWS_IMAGES = DATA / "web_news" / "images"

PLAIN = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # output = pixel / 255


def real_jpegs(folder: Path, count: int) -> list[Path]:
    if not folder.is_dir():
        pytest.skip(f"image data not found at {folder}")
    paths = sorted(folder.rglob("*.jpg"))[:count]
    if len(paths) < count:
        pytest.skip(f"fewer than {count} JPEGs in {folder}")
    return paths


def gradient_image(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    rgb = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                    np.full((height, width), 80.0)], axis=-1)  # fmt: skip
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


# ----------------------------------------------------------------------------------------------
# Real JPEGs
# ----------------------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("folder", [PASCAL_IMAGES, WEB_NEWS_IMAGES], ids=["pascal_sentence", "web_news"])
def test_real_jpegs_decode_to_normalised_batches(folder):
    paths = real_jpegs(folder, 12)
    source = ImageFileSource(paths, image_size=96, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert isinstance(source, BatchSource) and source.n_features is None and len(source) == 12
    rows = np.array([3, 0, 11, 5])
    batch = source.batch(rows, train=False)
    assert batch.shape == (4, 3, 96, 96) and batch.dtype == torch.float32
    assert torch.isfinite(batch).all()
    # ImageNet-normalised photos: roughly zero mean, unit spread, within the normalised [0, 1] range.
    low = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    high = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    for channel in range(3):
        values = batch[:, channel]
        assert values.min() >= low[channel] - 1e-5 and values.max() <= high[channel] + 1e-5
    assert abs(float(batch.mean())) < 1.0 and 0.3 < float(batch.std()) < 2.0
    assert torch.equal(source.batch(rows, train=False), batch), "evaluation batches are deterministic"
    single = source.batch(np.array([5]), train=False)
    assert torch.equal(single[0], batch[3]), "a row does not depend on its batch"
    # The centre crop matches the two-step reference (resize shorter side to 110, crop 96).
    reference = Image.open(paths[0]).convert("RGB")
    scale = 110 / min(reference.size)
    reference = reference.resize((round(reference.width * scale), round(reference.height * scale)),
                                 Image.Resampling.BILINEAR)  # fmt: skip
    left, top = (reference.width - 96) // 2, (reference.height - 96) // 2
    expected = np.asarray(reference.crop((left, top, left + 96, top + 96)), dtype=np.float32) / 255
    plain = ImageFileSource(paths[:1], image_size=96, **PLAIN).batch(np.array([0]), train=False)
    got = plain[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).mean() < 0.03


@pytest.mark.data
def test_training_batches_are_augmented_and_reproducible():
    paths = real_jpegs(WEB_NEWS_IMAGES, 6)
    source = ImageFileSource(paths, image_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    rows = np.arange(6)
    torch.manual_seed(3)
    first = source.batch(rows, train=True)
    torch.manual_seed(3)
    again = source.batch(rows, train=True)
    assert torch.equal(first, again), "augmentation depends only on the torch RNG state"
    other = source.batch(rows, train=True)
    assert not torch.equal(first, other)
    assert not torch.equal(first, source.batch(rows, train=False))
    frozen = ImageFileSource(paths, image_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD, augment=False)
    assert torch.equal(frozen.batch(rows, train=True), frozen.batch(rows, train=False))


def test_horizontal_flip_and_full_crop(tmp_path):
    path = tmp_path / "square.png"
    gradient_image(48, 48).save(path)
    source = ImageFileSource(
        [path], image_size=48, resize_size=48, scale=(1.0, 1.0), ratio=(1.0, 1.0), **PLAIN
    )
    plain = source.batch(np.array([0]), train=False)[0]
    torch.manual_seed(0)
    seen = set()
    for _ in range(24):
        out = source.batch(np.array([0]), train=True)[0]
        if torch.allclose(out, plain):
            seen.add("plain")
        elif torch.allclose(out, plain.flip(-1)):
            seen.add("flipped")
        else:
            raise AssertionError("a full-image crop must be the image or its mirror")
    assert seen == {"plain", "flipped"}


def test_random_crop_statistics(tmp_path):
    """Crops cover between 8% and 100% of the image (torchvision's default scale)."""
    from ddcmh_core.engine.photo_decoding import _random_box

    rng = np.random.default_rng(0)
    fractions, ratios = [], []
    for _ in range(2000):
        left, top, right, bottom = _random_box(400, 300, rng.random((10, 4)), (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= left < right <= 400 and 0 <= top < bottom <= 300
        fractions.append((right - left) * (bottom - top) / 120000)
        ratios.append((right - left) / (bottom - top))
    assert 0.075 <= min(fractions) and max(fractions) <= 1.0
    assert 0.3 < np.mean(fractions) < 0.6
    assert 0.74 <= np.percentile(ratios, 1) and np.percentile(ratios, 99) <= 1.35


# ----------------------------------------------------------------------------------------------
# Modes, EXIF orientation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    image = gradient_image(40, 30)
    if mode == "I;16":
        grey = (np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        converted = Image.fromarray(grey)
        assert converted.mode.startswith("I;16")
    else:
        converted = image.convert(mode)
    path = tmp_path / ("img.jpg" if mode == "CMYK" else "img.png")
    converted.save(path)
    source = ImageFileSource([path], image_size=24, **PLAIN)
    batch = source.batch(np.array([0]), train=False)
    assert batch.shape == (1, 3, 24, 24)
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    if mode in ("L", "I;16", "LA"):  # grey stays grey, 16-bit scaled to the 8-bit range
        assert torch.allclose(batch[0, 0], batch[0, 1]) and torch.allclose(batch[0, 1], batch[0, 2])
        assert float(batch.max()) > 0.5


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)
    batch = ImageFileSource([path], image_size=8, **PLAIN).batch(np.array([0]), train=False)
    assert torch.allclose(batch, torch.ones_like(batch))


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    decoded = ImageFileSource([path], image_size=8, **PLAIN).decode(0)
    assert decoded.size == (20, 40)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def good_image(path: Path) -> Path:
    gradient_image(32, 32).save(path)
    return path


def test_corrupt_file_error_names_the_file(tmp_path):
    good = good_image(tmp_path / "good.jpg")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    source = ImageFileSource([good, corrupt], image_size=16, **PLAIN)
    source.batch(np.array([0]), train=False)
    with pytest.raises(InputError, match=r"corrupt\.jpg.*row 1"):
        source.batch(np.array([0, 1]), train=False)
    with pytest.raises(InputError, match=r"corrupt\.jpg"):
        source.batch(np.array([1]), train=True)


def test_truncated_jpeg_is_reported(tmp_path):
    whole = good_image(tmp_path / "whole.jpg")
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated\.jpg"):
        ImageFileSource([truncated], image_size=16, **PLAIN).batch(np.array([0]), train=False)


def test_missing_file_error_names_the_file(tmp_path):
    source = ImageFileSource([tmp_path / "absent.png"], image_size=16, **PLAIN)
    with pytest.raises(InputError, match=r"absent\.png.*no such file"):
        source.batch(np.array([0]), train=False)


def test_check_images_reports_every_bad_file_at_once(tmp_path):
    good = [good_image(tmp_path / f"good{i}.png") for i in range(3)]
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    missing = tmp_path / "gone.jpg"
    paths = [good[0], corrupt, good[1], missing, text, good[2]]
    problems = find_unreadable_images(paths)
    assert [p for p, _ in problems] == [corrupt, missing, text]
    with pytest.raises(InputError, match="got 3 that cannot be read") as info:
        check_images(paths)
    for name in ("broken.png", "gone.jpg", "notes.jpg"):
        assert name in str(info.value)
    check_images(good)  # no error
    with pytest.raises(InputError, match=r"broken\.png"):
        ImageFileSource(paths, image_size=16, check=True, **PLAIN)


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="argument 'paths'"):
        ImageFileSource("one.jpg", image_size=16, **PLAIN)
    with pytest.raises(InputError, match="argument 'paths'"):
        ImageFileSource([], image_size=16, **PLAIN)
    with pytest.raises(InputError, match="argument 'image_size'"):
        ImageFileSource(["a.jpg"], image_size=0, **PLAIN)
    with pytest.raises(InputError, match="argument 'n_workers': expected an integer >= 1, got True"):
        ImageFileSource(["a.jpg"], image_size=16, n_workers=True, **PLAIN)
    with pytest.raises(InputError, match="argument 'resize_size'"):
        ImageFileSource(["a.jpg"], image_size=32, resize_size=16, **PLAIN)
    with pytest.raises(InputError, match="argument 'mean'"):
        ImageFileSource(["a.jpg"], image_size=16, mean=(0.5, 0.5), std=(1, 1, 1))
    with pytest.raises(InputError, match="argument 'std'"):
        ImageFileSource(["a.jpg"], image_size=16, mean=(0, 0, 0), std=(1, 0, 1))
    with pytest.raises(InputError, match="argument 'scale'"):
        ImageFileSource(["a.jpg"], image_size=16, scale=(0.5, 0.1), **PLAIN)
    source = ImageFileSource([good_image(tmp_path / "a.png")], image_size=16, **PLAIN)
    with pytest.raises(InputError, match="argument 'indices'"):
        source.batch(np.array([1]), train=False)


def test_for_backbone_and_pickling(tmp_path):
    paths = [good_image(tmp_path / f"{i}.png") for i in range(3)]
    lite = ImageFileSource.for_backbone(paths, "efficientnet_lite0")
    assert (lite.image_size, lite.resize_size) == (224, 256)
    assert lite.mean == pytest.approx((127 / 255,) * 3)
    small = ImageFileSource.for_backbone(paths, "resnet18", image_size=64, augment=False)
    assert (small.image_size, small.resize_size, small.augment) == (64, 73, False)
    first = small.batch(np.arange(3), train=False)
    copy = pickle.loads(pickle.dumps(small))
    assert torch.equal(copy.batch(np.arange(3), train=False), first)
    small.close()
    assert torch.equal(small.batch(np.arange(3), train=False), first), "threads restart after close()"
    with pytest.raises(InputError, match="argument 'backbone'"):
        ImageFileSource.for_backbone(paths, "vgg")


# ----------------------------------------------------------------------------------------------
# Worker processes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["decoded-each-time", "photo-cache"])
def test_worker_processes_give_the_photos_threads_give(noisy_photos, tmp_path: Path, cached: bool) -> None:
    paths = noisy_photos(10)
    options = {"image_size": 16, "resize_size": 20, "n_workers": 2, **PLAIN}
    batches = [np.array([3, 1, 4, 0]), np.array([9, 2, 7]), np.array([3, 1, 4, 0])]

    def read(**more) -> tuple[list[torch.Tensor], ImageFileSource]:
        cache = tmp_path / f"cache-{len(more)}" if cached else False
        source = ImageFileSource(paths, cache=cache, **options, **more)
        torch.manual_seed(0)
        return [source.batch(rows, train=train) for rows in batches for train in (True, False)], source

    in_threads, threads_source = read()
    in_processes, source = read(worker_processes=True)
    assert source._executor is not None and type(source._executor).__name__ == "ProcessPoolExecutor"
    for got, want in zip(in_processes, in_threads, strict=True):
        assert torch.equal(got, want)
    if cached:  # the squares the workers decoded were stored by this process; rows 5, 6, 8 were never read
        assert source.cache is not None and source.cache.missing(np.arange(10)).tolist() == [5, 6, 8]
    source.close()
    threads_source.close()
    assert source._executor is None


def test_a_bad_photo_in_a_worker_process_is_named(noisy_photos) -> None:
    paths = noisy_photos(6)
    paths[4].write_bytes(b"no longer a photo")
    options = {"image_size": 16, "resize_size": 20, "n_workers": 2, "worker_processes": True}
    source = ImageFileSource(paths, **options, **PLAIN)
    with pytest.raises(InputError, match=r"n4\.png.*row 4"):
        source.batch(np.array([0, 4, 5]), train=False)
    assert source.batch(np.array([0, 5]), train=False).shape == (2, 3, 16, 16)  # the pool still works
    source.close()


def test_a_worker_process_that_dies_is_reported_with_the_batch_and_the_pool_restarts(noisy_photos) -> None:
    import os
    import signal

    source = ImageFileSource(
        noisy_photos(6), image_size=16, resize_size=20, n_workers=2, worker_processes=True, **PLAIN
    )
    want = source.batch(np.array([0, 1, 2]), train=False)
    executor = source._executor
    assert executor is not None
    for pid in list(executor._processes):  # type: ignore[attr-defined]  # as the OOM killer would
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=r"worker process died.*n0\.png \(row 0\)"):
        source.batch(np.array([0, 1, 2]), train=False)
    assert torch.equal(source.batch(np.array([0, 1, 2]), train=False), want)  # a fresh pool
    source.close()


def test_the_network_settings_choose_worker_processes() -> None:
    from ddcmh_core.engine.config import NetworkConfig
    from ddcmh_core.engine.sources import image_source_options

    network = NetworkConfig(architecture="cnn", decode_workers=3, decode_processes=True)
    expected = {"cache": True, "scale": (0.08, 1.0), "n_workers": 3, "worker_processes": True}
    assert image_source_options(network) == expected
    assert "worker_processes" not in image_source_options(NetworkConfig(architecture="cnn"))


@pytest.mark.parametrize("crop_min_area", [0.08, 1.0])
def test_the_network_settings_choose_the_smallest_training_crop(tmp_path: Path, crop_min_area: float) -> None:
    from ddcmh_core.engine.config import NetworkConfig
    from ddcmh_core.engine.sources import image_source_options

    network = NetworkConfig(architecture="cnn", image_size=32, photo_cache=False, crop_min_area=crop_min_area)
    options = image_source_options(network)
    path = tmp_path / "square.png"  # square, as the photo cache keeps every photo's centre
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    source = ImageFileSource.for_backbone([path], "mobilenet_v2", **options)
    torch.manual_seed(4)
    views = [source.batch(np.array([0]), train=True)[0] for _ in range(16)]
    distinct = [view for n, view in enumerate(views) if not any(torch.equal(view, v) for v in views[:n])]
    if crop_min_area == 1.0:  # the whole photo every time, mirrored about half of the time
        assert len(distinct) == 2 and torch.equal(distinct[0], distinct[1].flip(-1))
    else:
        assert len(distinct) > 8
    with pytest.raises(ValueError, match="crop_min_area"):
        NetworkConfig(architecture="cnn", crop_min_area=0.0)
