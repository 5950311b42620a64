"""The image-files view: photos decoded (and optionally resized) on the fly with Pillow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError
from .views import Block, View, row_indices


class ImageFileView(View):
    """Image files decoded on the fly (Pillow), optionally resized to a fixed size.

    Parameters
    ----------
    paths : sequence of path
        One image file per item.
    size : (height, width), optional
        Resize every image to this size (bilinear). Without a size, :meth:`take` works only when
        all requested images have the same size; :meth:`read` always works.
    mode : str, default "RGB"
        Pillow mode every image is converted to (``"RGB"`` gives 3 channels, ``"L"`` one).
    source : str
        Origin, for messages.

    Notes
    -----
    :meth:`take` returns ``uint8`` arrays ``(n, H, W, C)``. A file that is missing or fails to
    decode raises :class:`DatasetError` naming the file and the row. The content hash covers the
    relative file names and sizes (decoding every image to hash it would be far too slow for
    large collections).
    """

    kind = "image-files"

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        size: tuple[int, int] | None = None,
        mode: str = "RGB",
        source: str = "",
    ) -> None:
        super().__init__(source or "image files")
        self.paths = tuple(Path(p) for p in paths)
        if size is not None:
            if len(size) != 2 or min(int(s) for s in size) < 1:
                raise DatasetError(f"{self.source}: size: expected (height, width) > 0, got {size!r}")
            size = (int(size[0]), int(size[1]))
        self.size = size
        self.mode = mode
        self._channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "I": 1, "F": 1}.get(mode, 3)

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        if self.size is None:
            return (len(self.paths),)
        return (len(self.paths), self.size[0], self.size[1], self._channels)

    @property
    def n_features(self) -> int:  # noqa: D102
        return int(np.prod(self.shape[1:])) if self.size else 1

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return np.dtype(np.uint8)

    @property
    def is_lazy(self) -> bool:  # noqa: D102
        return True

    def resized(self, size: tuple[int, int] | None) -> ImageFileView:
        """The same files, resized to ``size`` = (height, width) when read."""
        return ImageFileView(self.paths, size=size, mode=self.mode, source=self.source)

    def default_block_rows(self) -> int:  # noqa: D102
        return 256

    def read(self, row: int) -> Any:
        """Decode image ``row`` as a ``PIL.Image.Image`` in :attr:`mode` (not resized).

        Raises
        ------
        DatasetError
            If the file is missing or cannot be decoded; the message names the file and the row.
        """
        from PIL import Image

        path = self.paths[int(row)]
        if not path.is_file():
            raise DatasetError(f"{path}: row {row}: image file is missing")
        try:
            with Image.open(path) as image:
                image.load()
                return image.convert(self.mode)
        except Exception as exc:
            raise DatasetError(
                f"{path}: row {row}: expected a decodable image file, got {type(exc).__name__}: {exc}"
            ) from exc

    def array(self, row: int) -> np.ndarray:
        """Image ``row`` as a ``uint8`` array ``(H, W, C)``, resized when :attr:`size` is set."""
        from PIL import Image

        image = self.read(row)
        if self.size is not None and (image.height, image.width) != self.size:
            image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        data = np.asarray(image, dtype=np.uint8)
        return data.reshape(data.shape[0], data.shape[1], -1)

    def _take(self, rows: np.ndarray) -> Block:
        images = [self.array(int(r)) for r in rows]
        if not images:
            shape = self.shape[1:] if self.size else (0, 0, self._channels)
            return np.zeros((0, *shape), dtype=np.uint8)
        first = images[0].shape
        for position, image in enumerate(images):
            if image.shape != first:
                raise DatasetError(
                    f"{self.source}: images of different sizes: row {int(rows[0])} "
                    f"({self.paths[int(rows[0])]}) is {first[0]}x{first[1]}, row "
                    f"{int(rows[position])} ({self.paths[int(rows[position])]}) is "
                    f"{image.shape[0]}x{image.shape[1]}; give the view a size, e.g. "
                    "view.resized((224, 224))"
                )
        return np.stack(images)

    def verify(
        self, rows: Any = None, *, n_workers: int | None = None, max_pixels: int | None = None
    ) -> list[tuple[int, str, str]]:
        """Decode the given images (all by default); ``(row, path, reason)`` for each that fails.

        Every file is checked as the CNN image pipeline reads it
        (:func:`ddcmh_core.engine.images.unreadable_rows`): missing, undecodable (corrupt or
        truncated) and too large (more than ``max_pixels`` pixels to decode, default
        :data:`ddcmh_core.engine.images.MAX_DECODED_PIXELS`) files are reported, each with its
        reason; grey-scale, CMYK and 16-bit photos decode (converted to RGB). ``n_workers``
        threads decode (default ``min(8, cpu_count)``).
        """
        from ..engine.images import MAX_DECODED_PIXELS, unreadable_rows

        index = row_indices(rows, self.n_rows, source=self.source)
        found = unreadable_rows(
            [self.paths[int(row)] for row in index],
            n_workers=n_workers,
            max_pixels=MAX_DECODED_PIXELS if max_pixels is None else max_pixels,
        )
        return [(int(index[position]), str(path), reason) for position, path, reason in found]

    def select(self, rows: Any) -> View:  # noqa: D102
        index = row_indices(rows, self.n_rows, source=self.source)
        return ImageFileView(
            [self.paths[i] for i in index], size=self.size, mode=self.mode, source=self.source
        )

    def describe(self) -> dict[str, Any]:  # noqa: D102
        info = super().describe()
        info.update(size=None if self.size is None else list(self.size), mode=self.mode)
        return info

    def update_hash(self, digest: Any) -> None:  # noqa: D102
        digest.update(f"image-files|{self.mode}|{self.size}|{len(self.paths)}".encode())
        if not self.paths:
            return
        root = os.path.commonpath([str(p.parent) for p in self.paths])
        for path in self.paths:
            size = path.stat().st_size if path.is_file() else -1
            digest.update(f"{Path(os.path.relpath(path, root)).as_posix()}|{size}\n".encode())
