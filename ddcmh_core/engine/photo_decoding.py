"""Turning one photo file into a network input: decode, crop, resize, flip (Pillow and numpy only).

What a decoding worker runs, in a thread of the training process or in a worker process of
:class:`~ddcmh_core.engine.images.ImageFileSource` (``worker_processes=True``). The module
imports neither torch nor anything that loads it, so a worker process starts light; the random
draws of the augmentation are taken by the caller and passed in, so a photo comes out the same
in a thread or in a process. :func:`file_stats` gives the size and modification time of every
source photo, which the photo caches key their files by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


def _to_rgb(image: Any) -> Any:
    """Convert a Pillow image of any mode to RGB (alpha composited onto white)."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        # 16-bit data (also when Pillow reads it as 32-bit 'I'); 8-bit values stay as they are.
        top = 65535.0 if mode.startswith("I;16") or 255 < peak <= 65535 else max(peak, 255.0)
        grey = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


MAX_DECODED_PIXELS = 40_000_000
"""Default bound on the pixels one photo may decode to (about 120 MB as RGB); see :func:`decode_photo`."""


class PhotoTooLargeError(ValueError):
    """A photo would decode to more pixels than allowed (raised inside :func:`decode_photo`)."""


def decode_photo(path: Path, row: int, min_side: int, max_pixels: int = MAX_DECODED_PIXELS) -> Any:
    """Decode ``path`` as an RGB Pillow image whose shorter side stays >= ``min_side``.

    A JPEG is decoded at the smallest DCT scale that keeps ``min_side``, so a 10,000 x 10,000
    JPEG costs little; a photo that would still decode to more than ``max_pixels`` pixels (a huge
    PNG, say) is refused from its header, before any pixel is read, so that memory stays bounded.

    Raises
    ------
    InputError
        Naming the file and its row when it is missing, cannot be decoded or is too large.
    """
    from PIL import Image, ImageOps

    if not path.is_file():
        raise InputError(
            f"ImageFileSource: argument 'paths': expected an image file, got {str(path)!r} "
            f"(row {row}): no such file"
        )
    try:
        with Image.open(path) as image:
            if image.format == "JPEG" and min_side > 0:
                image.draft("RGB", (min_side, min_side))
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoTooLargeError(
                    f"{image.format} of {width} x {height} = {width * height / 1e6:.1f} million pixels to "
                    f"decode, more than the limit of {max_pixels / 1e6:.1f} million (resize the photo, or "
                    "raise max_pixels)"
                )
            image.load()
            oriented = ImageOps.exif_transpose(image)
            return _to_rgb(oriented)
    except InputError:
        raise
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise InputError(
            f"ImageFileSource: argument 'paths': expected a decodable image file, got {str(path)!r} "
            f"(row {row}): {type(exc).__name__}: {exc}"
        ) from exc


def _random_box(width: int, height: int, draws: np.ndarray, scale: tuple[float, float],
                ratio: tuple[float, float]) -> tuple[float, float, float, float]:  # fmt: skip
    """Random-resized-crop box (left, top, right, bottom) from pre-drawn uniforms.

    Same distribution as torchvision's ``RandomResizedCrop.get_params``: area fraction uniform in
    ``scale``, log aspect ratio uniform in ``log(ratio)``, up to 10 tries, then a centre crop with
    the aspect ratio clamped to ``ratio``. ``draws`` holds 4 uniforms in [0, 1) per try.
    """
    area = width * height
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for u_area, u_ratio, u_top, u_left in draws:
        target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
        aspect = math.exp(log_low + (log_high - log_low) * u_ratio)
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = math.floor(u_top * (height - h + 1))
            left = math.floor(u_left * (width - w + 1))
            return (left, top, left + w, top + h)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return (left, top, left + w, top + h)


def _centre_box(
    width: int, height: int, image_size: int, resize_size: int
) -> tuple[float, float, float, float]:
    """Box of the original image that a resize to ``resize_size`` and centre crop keep.

    Resampling this box straight to ``image_size`` does both steps in one resampling.
    """
    side = min(width, height) * image_size / resize_size
    left = (width - side) / 2
    top = (height - side) / 2
    return (left, top, left + side, top + side)


@dataclass(frozen=True)
class PhotoRecipe:
    """How a photo becomes a network input: the sizes, the crop distribution, the decoding bound.

    Attributes
    ----------
    image_size : int
        Side of the square network input.
    resize_size : int
        Shorter side before the evaluation centre crop (and side of a cached square).
    scale, ratio : (float, float)
        Area-fraction and aspect-ratio ranges of the training crop.
    max_pixels : int
        Photos that would decode to more pixels are refused.
    squares : bool
        Whether the photo passes through a stored ``resize_size`` square (the decoded-photo cache).
    """

    image_size: int
    resize_size: int
    scale: tuple[float, float]
    ratio: tuple[float, float]
    max_pixels: int
    squares: bool


def decode_square(path: Path, row: int, recipe: PhotoRecipe) -> np.ndarray:
    """Photo ``row`` as the ``resize_size`` centre square the decoded-photo cache stores (uint8 HWC)."""
    from PIL import Image

    image = decode_photo(path, row, recipe.resize_size, recipe.max_pixels)
    width, height = image.size
    box = _centre_box(width, height, recipe.resize_size, recipe.resize_size)
    size = (recipe.resize_size, recipe.resize_size)
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR, box=box), dtype=np.uint8)


def prepare_photo(
    path: Path,
    row: int,
    recipe: PhotoRecipe,
    draws: np.ndarray | None,
    flip: bool,
    square: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Photo ``row`` as an ``image_size`` uint8 HWC array, and the square decoded on the way.

    Parameters
    ----------
    path : Path
        The photo file.
    row : int
        Its row (named in error messages).
    recipe : PhotoRecipe
    draws : ndarray of shape (tries, 4) or None
        Uniforms of the random resized crop; None takes the evaluation centre crop.
    flip : bool
        Mirror the result horizontally.
    square : ndarray, optional
        The photo's stored square (``recipe.squares``): no file is read.

    Returns
    -------
    (ndarray, ndarray or None)
        The network input, and the square decoded now when ``recipe.squares`` and none was given
        (for the caller to store), else None.

    Raises
    ------
    InputError
        Naming the file and its row when it is missing, cannot be decoded or is too large.
    """
    from PIL import Image

    decoded = None
    if recipe.squares:
        if square is None:
            square = decoded = decode_square(path, row, recipe)
        image = Image.fromarray(square)
    else:
        image = decode_photo(path, row, recipe.resize_size, recipe.max_pixels)
    width, height = image.size
    if draws is None:
        box = _centre_box(width, height, recipe.image_size, recipe.resize_size)
    else:
        box = _random_box(width, height, draws, recipe.scale, recipe.ratio)
    out = image.resize((recipe.image_size, recipe.image_size), Image.Resampling.BILINEAR, box=box)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out, dtype=np.uint8), decoded


# ------------------------------------------------------------------ worker processes
_WORKER_PHOTOS: tuple[tuple[Path, ...], PhotoRecipe] | None = None


def start_worker(paths: tuple[Path, ...], recipe: PhotoRecipe) -> None:
    """Initializer of a decoding worker process: keep the file list and the recipe for its jobs."""
    global _WORKER_PHOTOS
    _WORKER_PHOTOS = (paths, recipe)


def worker_job(
    row: int, draws: np.ndarray | None, flip: bool, square: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`prepare_photo` of ``row`` in a worker process started by :func:`start_worker`."""
    assert _WORKER_PHOTOS is not None, "start_worker was not run in this process"
    paths, recipe = _WORKER_PHOTOS
    return prepare_photo(paths[row], row, recipe, draws, flip, square)


def file_stats(paths: Sequence[Path], *, what: str) -> list[tuple[str, int, int]]:
    """``(resolved path, size, modification time in ns)`` of every file, for cache keys.

    Parameters
    ----------
    paths : sequence of Path
    what : str
        What needs the files, at the start of the error message (e.g. ``"frozen features"``).

    Raises
    ------
    InputError
        One error listing every missing or unreadable file (the first five, with their rows).
    """
    stats, missing = [], []
    for row, path in enumerate(paths):
        try:
            status = path.stat()
        except OSError as error:
            missing.append(f"row {row}: {path} ({error.strerror or error})")
            continue
        stats.append((str(path.resolve()), status.st_size, status.st_mtime_ns))
    if missing:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{what}: {len(missing)} of {len(paths)} image files cannot be read: {shown}")
    return stats
