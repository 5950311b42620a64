"""The dataset registry: built-ins through an entry point, plugins, names, paths, messages."""

from __future__ import annotations

import importlib.metadata as metadata
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import SHARED_DATA, builtin_registry, shared_dir

from ddcmh_core.data import (
    DEFAULT_DATASET,
    DatasetError,
    DatasetRegistry,
    DatasetSpec,
    MissingFilesError,
    dataset_registry,
    describe_datasets,
    load_dataset,
)
from ddcmh_core.errors import DuplicateNameError, UnknownNameError
from ddcmh_core.plugins import PluginInfo, load_entry_points

BUILTIN = [
    "iapr-tc12",
    "mirflickr25k",
    "ms-coco",
    "nus-wide",
    "nus-wide-tc10",
    "uci-mfeat",
    "web-news",
    "wikipedia",
]


@pytest.fixture(scope="module")
def registry() -> DatasetRegistry:
    return builtin_registry()


def test_builtin_names_aliases_and_listing(registry: DatasetRegistry) -> None:
    assert registry.names() == BUILTIN
    for alias, name in (
        ("mirflickr", "mirflickr25k"),
        ("COCO", "ms-coco"),
        ("NUS_WIDE", "nus-wide"),
        ("wiki", "wikipedia"),
    ):
        assert registry.get(alias).spec.name == name
    rows = describe_datasets(registry)
    assert [r["name"] for r in rows] == BUILTIN
    assert [r["name"] for r in rows if r["default"]] == [DEFAULT_DATASET] == ["uci-mfeat"]
    assert all(r["sources"] for r in rows)
    assert registry.get("nus-wide-tc10").spec.defaults == {"concepts": 10}


def test_unknown_name_lists_installed_datasets(registry: DatasetRegistry) -> None:
    with pytest.raises(
        UnknownNameError, match=r"unknown dataset 'flickr30k'. Installed datasets: iapr-tc12, mirflickr25k"
    ):
        load_dataset("flickr30k", registry=registry)
    with pytest.raises(UnknownNameError, match="no file or folder named 'flickr30k' exists"):
        load_dataset("flickr30k", registry=registry)
    with pytest.raises(MissingFilesError, match="no such file or folder"):
        load_dataset("some/dir/data.h5", registry=registry)


def test_missing_files_message_names_files_and_sources(
    registry: DatasetRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DDCMH_DATA_DIR", raising=False)
    with pytest.raises(MissingFilesError) as caught:
        load_dataset("nus-wide", registry=registry)
    message = str(caught.value)
    assert "no data folder given" in message and "needs:" in message
    assert "nus-wide-tc21-lall.mat or nus-wide-tc10-lall.mat" in message
    assert "https://lms.comp.nus.edu.sg/" in message and "DDCMH_DATA_DIR" in message
    with pytest.raises(MissingFilesError, match=r"(?s)\[missing\] raw_features.mat.*svcl.ucsd.edu"):
        load_dataset("wikipedia", data_dir=tmp_path, registry=registry)


def test_data_root_from_the_environment(registry: DatasetRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_dir("wikipedia")
    monkeypatch.setenv("DDCMH_DATA_DIR", str(SHARED_DATA))
    dataset = load_dataset("wikipedia", registry=registry)
    assert dataset.n_items == 2866
    assert registry.get("wikipedia").spec.resolve_data_dir(None) == SHARED_DATA / "wikipedia"


def test_a_path_loads_a_generic_file(registry: DatasetRegistry, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.h5"
    import h5py

    with h5py.File(path, "w") as handle:
        handle["image"] = rng.random((50, 6))
        handle["text"] = rng.random((50, 4))
        handle["labels"] = (rng.random((50, 3)) < 0.5).astype(np.uint8) | np.eye(3, dtype=np.uint8)[
            np.arange(50) % 3
        ]
    dataset = load_dataset(str(path), registry=registry, n_query=5, n_train=20)
    assert dataset.name == "mine" and dataset.split.sizes["query"] == 5
    assert dataset.view_kinds == {"image": "hdf5", "text": "hdf5"}


PLUGIN = """
import numpy as np
from ddcmh_core import hookimpl
from ddcmh_core.data import DatasetSpec, CrossModalDataset, make_split

def load_toy(data_dir, *, n_items=20, seed=0):
    labels = np.eye(2, dtype=np.uint8)[np.arange(n_items) % 2]
    return CrossModalDataset(
        name="toy", image=np.ones((n_items, 3)), text=np.zeros((n_items, 2)), labels=labels,
        split=make_split(n_items, n_query=4, seed=seed),
    )

@hookimpl
def ddcmh_datasets():
    yield DatasetSpec(name="toy", loader="{module}:load_toy", summary="a toy", aliases=("toy-set",))
"""

BROKEN = """
from ddcmh_core import hookimpl

@hookimpl
def ddcmh_datasets():
    raise RuntimeError("cannot list datasets")
"""


def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]) -> DatasetRegistry:
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source.replace("{module}", name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [metadata.EntryPoint(name="builtin-datasets", value="ddcmh_core.data.builtin", group="ddcmh")]
    points += [metadata.EntryPoint(name=name, value=name, group="ddcmh") for name in modules]
    return DatasetRegistry.from_plugin_set(load_entry_points(points))


def test_a_plugin_adds_a_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _plugins(tmp_path, monkeypatch, {"ddcmh_toydata": PLUGIN})
    assert "toy" in registry.names() and "uci-mfeat" in registry.names()
    dataset = load_dataset("toy-set", registry=registry, n_items=30)
    assert dataset.n_items == 30 and dataset.split.sizes["query"] == 4
    with pytest.raises(
        DatasetError, match=r"dataset 'toy': unknown option\(s\) colour; options: n_items, seed"
    ):
        load_dataset("toy", registry=registry, colour="red")


def test_a_failing_plugin_is_isolated_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _plugins(tmp_path, monkeypatch, {"ddcmh_brokendata": BROKEN})
    assert registry.names() == BUILTIN
    with pytest.raises(UnknownNameError, match=r"Plugins that failed to load: .*cannot list datasets"):
        registry.get("anything")


def test_duplicate_names_name_every_provider() -> None:
    first = PluginInfo(name="a", value="a", distribution="ddcmh-a", version="1.0")
    second = PluginInfo(name="b", value="b", distribution="ddcmh-b", version="2.0")
    spec = DatasetSpec(name="same", loader="pkg.a:load")
    other = DatasetSpec(name="other", loader="pkg.b:load", aliases=("same",))
    registry = DatasetRegistry([(spec, first), (other, second)])
    with pytest.raises(
        DuplicateNameError, match=r"'same' is claimed by 2 plugins: ddcmh-a 1.0 .*pkg.a:load.*ddcmh-b 2.0"
    ):
        registry.get("same")
    assert registry.names() == ["other"]


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="lower-case kebab"):
        DatasetSpec(name="My Data", loader="a.b:c")
    with pytest.raises(ValueError, match=r"must look like 'package\.module:function'"):
        DatasetSpec(name="x", loader="not a path")
    spec = DatasetSpec(name="x", loader="ddcmh_core.nowhere:load")
    with pytest.raises(Exception, match=r"cannot import 'ddcmh_core\.nowhere:load'"):
        spec.load_loader()


def test_installed_entry_point_registers_the_builtins() -> None:
    declared = [ep for ep in metadata.entry_points(group="ddcmh") if ep.value == "ddcmh_core.data.builtin"]
    if not declared:
        pytest.skip(
            "entry point builtin-datasets = 'ddcmh_core.data.builtin' not yet declared in pyproject.toml"
        )
    assert set(BUILTIN) <= set(dataset_registry(refresh=True).names())
