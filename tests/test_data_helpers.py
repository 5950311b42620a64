"""Helpers of the data tests (writing MATLAB v7.3 files, locating ../shared/data), and their tests."""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from ddcmh_core.data import DatasetRegistry, open_array_file
from ddcmh_core.plugins import load_entry_points

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dir(folder: str) -> Path:
    """A real dataset folder of ../shared/data, or skip the test naming the missing folder."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (it exists only beside a ddcmh checkout)")
    return path


def builtin_registry() -> DatasetRegistry:
    """The built-in datasets, registered through a constructed entry point (as pyproject will)."""
    entry_point = metadata.EntryPoint(name="builtin-datasets", value="ddcmh_core.data.builtin", group="ddcmh")
    return DatasetRegistry.from_plugin_set(load_entry_points([entry_point]))


MAT73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
)


def write_mat73(path: Path, arrays: dict[str, Any]) -> Path:
    """Write arrays the way MATLAB ``save -v7.3`` does: HDF5 with a 512-byte MATLAB header,
    axes stored reversed, ``MATLAB_class`` attributes, sparse matrices as data/ir/jc groups and
    lists of strings as cell arrays of char references."""
    classes = {
        np.dtype(np.float64): "double",
        np.dtype(np.float32): "single",
        np.dtype(np.uint8): "uint8",
        np.dtype(np.int32): "int32",
        np.dtype(np.int64): "int64",
        np.dtype(np.bool_): "logical",
    }
    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        for name, value in arrays.items():
            if isinstance(value, list):
                references = []
                for number, text in enumerate(value):
                    codes = np.array([ord(c) for c in text], dtype=np.uint16).reshape(-1, 1)
                    char = refs.create_dataset(f"{name}_{number}", data=codes)
                    char.attrs["MATLAB_class"] = np.bytes_("char")
                    references.append(char.ref)
                cell = handle.create_dataset(
                    name, data=np.array(references, dtype=h5py.ref_dtype).reshape(1, -1)
                )
                cell.attrs["MATLAB_class"] = np.bytes_("cell")
            elif sp.issparse(value):
                csc = sp.csc_matrix(value)
                group = handle.create_group(name)
                group.attrs["MATLAB_class"] = np.bytes_("double")
                group.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
                group.create_dataset("data", data=csc.data.astype(np.float64))
                group.create_dataset("ir", data=csc.indices.astype(np.uint64))
                group.create_dataset("jc", data=csc.indptr.astype(np.uint64))
            else:
                array = np.asarray(value)
                dataset = handle.create_dataset(name, data=array.T if array.ndim > 1 else array)
                dataset.attrs["MATLAB_class"] = np.bytes_(classes[array.dtype])
    with path.open("r+b") as stream:
        stream.write(MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


# ---------------------------------------------------------------------------------- helper tests
def test_mat73_writer_makes_files_scipy_refuses_and_h5py_reads(tmp_path: Path) -> None:
    path = write_mat73(tmp_path / "a.mat", {"YAll": np.arange(6, dtype=np.float64).reshape(3, 2)})
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(str(path))
    with h5py.File(path, "r") as handle:
        assert handle["YAll"].shape == (2, 3)  # MATLAB's column-major layout
    opened = open_array_file(path)
    assert opened.format == "mat-v7.3"
    assert opened.entry("YAll").shape == (3, 2)
