"""Shared fixtures: fake plugin distributions on sys.path, and the real-data folder."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ddcmh_core.plugins import plugin_set
from ddcmh_core.testing import make_bow_data

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several test processes share the cores: one thread each avoids oversubscription, which
    # slows small matrix products by an order of magnitude.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)

# Decoded-photo caches of the tests' photos go to a throwaway folder, not the user's cache
# (subprocesses inherit the variable).
if "DDCMH_PHOTO_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["DDCMH_PHOTO_CACHE_DIR"] = tempfile.mkdtemp(prefix="ddcmh-test-photos-")
    atexit.register(shutil.rmtree, os.environ["DDCMH_PHOTO_CACHE_DIR"], True)  # by its creator only

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(folder: str) -> Path:
    """Path of a real dataset folder in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real dataset folder {path} is absent (only present beside a ddcmh checkout)")
    return path


def wheel_build_problem() -> str | None:
    """Why ``pip install --no-build-isolation`` cannot build a setuptools project here, or None."""
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed (the test extra installs it)"
    version = tuple(int(part) for part in re.findall(r"\d+", setuptools.__version__)[:2])
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:
        return (
            f"setuptools {setuptools.__version__} builds wheels only with the 'wheel' package; "
            "install the test extra (setuptools>=70.1)"
        )
    return None


class FakeDistributions:
    """Writes installed-looking distributions (dist-info + module) into one site folder."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.modules: list[str] = []

    def add(self, distribution: str, module: str, source: str, *, version: str = "1.0") -> None:
        (self.site / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[ddcmh]\n{module} = {module}\n")
        self.modules.append(module)
        importlib.invalidate_caches()
        plugin_set(refresh=True)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a module of small fits, restored afterwards.

    Avoids oversubscription when test files run side by side; a module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_distributions(tmp_path):
    """Fake plugin distributions visible to importlib.metadata for the duration of a test."""
    site = tmp_path / "site"
    site.mkdir()
    sys.path.insert(0, str(site))
    fakes = FakeDistributions(site)
    try:
        yield fakes
    finally:
        sys.path.remove(str(site))
        for module in fakes.modules:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()
        plugin_set(refresh=True)


TINY_CONFIG = """
[model]
image_network = { hidden_sizes = [32] }
text_network = { hidden_sizes = [32] }
image_training = { max_epochs = 3, patience = 2, batch_size = 64 }
text_training = { max_epochs = 3, patience = 2, batch_size = 64 }
"""


@pytest.fixture
def tiny_dataset(tmp_path):
    """A small two-view .npz dataset and a TOML file of small networks for ddcmh-bench runs."""
    texts, labels = make_bow_data(n_samples=240, n_features=40, n_classes=4, seed=3)
    rng = np.random.default_rng(0)
    images = labels @ rng.standard_normal((4, 16)) * 2 + rng.standard_normal((240, 16))
    path = tmp_path / "tiny.npz"
    np.savez(path, image=images, text=texts.toarray(), labels=labels)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    return path, config


@pytest.fixture
def noisy_photos(tmp_path: Path) -> Callable[[int], list[Path]]:
    """A writer of ``count`` small PNG photos of seeded noise (30 x 40 pixels) into ``tmp_path``."""

    def write(count: int) -> list[Path]:
        from PIL import Image

        rng = np.random.default_rng(3)
        paths = []
        for number in range(count):
            path = tmp_path / f"n{number}.png"
            Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
            paths.append(path)
        return paths

    return write
