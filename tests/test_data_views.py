"""Views: row selection without loading everything, lazy HDF5 windows, images, hashing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from PIL import Image

from ddcmh_core.data import (
    ConcatView,
    DatasetError,
    DenseView,
    HDF5View,
    ImageFileView,
    SparseView,
    as_view,
)


@pytest.fixture
def matrix() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((103, 7))


def test_dense_and_sparse_take_any_order_with_repeats(matrix: np.ndarray) -> None:
    rows = np.array([5, 0, 99, 5, 42])
    dense = DenseView(matrix)
    assert np.array_equal(dense.take(rows), matrix[rows])
    sparse = SparseView(sp.csr_matrix(matrix))
    block = sparse.take(rows)
    assert sp.issparse(block) and np.allclose(block.toarray(), matrix[rows])
    assert dense.shape == (103, 7) and sparse.shape == (103, 7)
    assert np.array_equal(dense.take(np.arange(103) % 2 == 0), matrix[::2])
    assert np.array_equal(dense.take(slice(10, 20)), matrix[10:20])


def test_row_selection_errors_name_the_view(matrix: np.ndarray) -> None:
    view = DenseView(matrix, "file.mat:X")
    with pytest.raises(DatasetError, match=r"file.mat:X: row index 103 is out of range for 103 rows"):
        view.take([0, 103])
    with pytest.raises(DatasetError, match="out of range"):
        view.take([-1])
    with pytest.raises(DatasetError, match="integer indices"):
        view.take([0.5])


def test_nan_in_memory_names_row_and_column(matrix: np.ndarray) -> None:
    bad = matrix.copy()
    bad[17, 3] = np.inf
    with pytest.raises(DatasetError, match=r"src: row 17, column 3: expected finite"):
        DenseView(bad, "src")
    sparse = sp.csr_matrix(bad)
    with pytest.raises(DatasetError, match=r"row 17, column 3"):
        SparseView(sparse, "src")


@pytest.mark.parametrize("window", [1, 4, 16, 1000])
def test_hdf5_view_reads_windows_like_numpy(tmp_path: Path, matrix: np.ndarray, window: int) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data/text", data=matrix, chunks=(8, 7))
    view = HDF5View(path, "data/text", block_rows=window)
    assert view.shape == (103, 7) and view.is_lazy
    rows = np.array([102, 3, 3, 50, 0, 51, 52, 7])
    assert np.array_equal(view.take(rows), matrix[rows])
    assert np.array_equal(view.take(None), matrix)
    assert np.array_equal(view.select(rows).take([1, 0]), matrix[[3, 102]])
    streamed = np.vstack([block for _, block in view.iter_blocks(10)])
    assert np.array_equal(streamed, matrix)
    assert view.take([]).shape == (0, 7)


def test_hdf5_view_of_matlab_layout_transposes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    features = rng.random((20, 5))
    images = rng.integers(0, 255, size=(20, 6, 4, 3), dtype=np.uint8)  # n, H, W, C
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as handle:
        handle["YAll"] = features.T  # MATLAB n x d stored as (d, n)
        handle["IAll"] = np.transpose(images, (0, 3, 2, 1))  # MATLAB H x W x 3 x n stored (n, 3, W, H)
    text = HDF5View(path, "YAll", row_axis=1, reverse_item_axes=True)
    assert text.shape == (20, 5)
    assert np.array_equal(text.take([4, 2]), features[[4, 2]])
    pixels = HDF5View(path, "IAll", row_axis=0, reverse_item_axes=True)
    assert pixels.shape == (20, 6, 4, 3)
    assert np.array_equal(pixels.take([19, 0]), images[[19, 0]])


def test_hdf5_view_reports_nan_with_file_key_row(tmp_path: Path, matrix: np.ndarray) -> None:
    bad = matrix.copy()
    bad[60, 2] = np.nan
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as handle:
        handle["X"] = bad
    view = HDF5View(path, "X")  # nothing read yet: construction does not scan the data
    assert np.array_equal(view.take([1, 2]), bad[[1, 2]])
    with pytest.raises(DatasetError, match=r"bad.h5:X: row 60, column 2: expected finite"):
        view.take([59, 60])
    with pytest.raises(DatasetError, match=r"row 60"):
        list(view.iter_blocks(16))


def test_hdf5_view_rejects_missing_and_non_numeric_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as handle:
        handle["names"] = np.array([b"a", b"b"])
    with pytest.raises(DatasetError, match="key 'names': expected a numeric dataset"):
        HDF5View(path, "names")
    with pytest.raises(DatasetError, match="key 'nope': expected a numeric HDF5 dataset, got nothing"):
        HDF5View(path, "nope")


def test_same_values_hash_the_same_in_memory_and_in_hdf5(tmp_path: Path, matrix: np.ndarray) -> None:
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as handle:
        handle["X"] = matrix
    assert HDF5View(path, "X", block_rows=7).content_hash() == DenseView(matrix).content_hash()
    changed = matrix.copy()
    changed[0, 0] += 1e-9
    assert DenseView(changed).content_hash() != DenseView(matrix).content_hash()


def test_concat_view_maps_rows_to_parts(matrix: np.ndarray) -> None:
    first, second = DenseView(matrix[:40]), DenseView(matrix[40:])
    both = ConcatView([first, second])
    rows = np.array([80, 3, 40, 39, 3])
    assert both.shape == (103, 7) and np.array_equal(both.take(rows), matrix[rows])
    sparse = ConcatView([SparseView(matrix[:40]), SparseView(matrix[40:])])
    assert np.allclose(sparse.take(rows).toarray(), matrix[rows])
    with pytest.raises(DatasetError, match="item shape"):
        ConcatView([first, DenseView(matrix[:, :3])])


def _write_images(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for number, size in enumerate([(8, 6), (8, 6), (5, 9)]):
        path = folder / f"{number}.png"
        Image.fromarray(np.full((*size, 3), 40 * number, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_image_files_decode_resize_and_report_errors(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img")
    broken = tmp_path / "img" / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    view = ImageFileView([*paths, broken, tmp_path / "img" / "gone.jpg"])
    assert view.shape == (5,) and view.dtype == np.uint8
    assert view.take([0, 1]).shape == (2, 8, 6, 3)
    with pytest.raises(DatasetError, match="images of different sizes"):
        view.take([0, 2])
    sized = view.resized((4, 4))
    block = sized.take([0, 2])
    assert block.shape == (2, 4, 4, 3) and block[1].min() == 80
    with pytest.raises(DatasetError, match=r"broken.jpg: row 3: expected a decodable image file"):
        sized.take([3])
    with pytest.raises(DatasetError, match=r"gone.jpg: row 4: image file is missing"):
        sized.take([4])
    failures = view.verify()
    assert [row for row, _, _ in failures] == [3, 4]


def test_as_view_wraps_arrays_and_sparse() -> None:
    assert isinstance(as_view(np.zeros((2, 2))), DenseView)
    assert isinstance(as_view(sp.eye(3, format="csr")), SparseView)
    with pytest.raises(DatasetError, match="numeric"):
        as_view(np.array([["a"], ["b"]]))


def test_the_file_backed_views_keep_their_old_import_path():
    import ddcmh_core.data.views as views_module
    from ddcmh_core.data import HDF5View, ImageFileView
    from ddcmh_core.data.views import HDF5View as OldHDF5View
    from ddcmh_core.data.views import ImageFileView as OldImageFileView

    assert OldHDF5View is HDF5View and OldImageFileView is ImageFileView
    assert HDF5View.__module__ == "ddcmh_core.data.hdf5_view"
    assert ImageFileView.__module__ == "ddcmh_core.data.image_file_view"
    with pytest.raises(AttributeError, match="no attribute 'PhotoView'"):
        views_module.PhotoView  # noqa: B018
