"""Array files (.mat v5 / v7.3, HDF5, npz) and the DCMH-family layouts, on synthetic files,
including every kind of bad input the loaders must name."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from PIL import Image
from test_data_helpers import write_mat73

from ddcmh_core.data import (
    DatasetError,
    DatasetWarning,
    MissingFilesError,
    load_array_files,
    load_generic,
    open_array_file,
)
from ddcmh_core.data.loaders import load_iapr_tc12, load_mirflickr25k, load_ms_coco, load_nus_wide

N = 60


@pytest.fixture
def parts() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    labels = (rng.random((N, 5)) < 0.3).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 0] = 1
    return {
        "images": rng.integers(0, 256, size=(N, 8, 6, 3), dtype=np.uint8),
        "features": rng.standard_normal((N, 12)),
        "tags": (rng.random((N, 30)) < 0.1).astype(np.uint8),
        "labels": labels,
    }


def _options() -> dict[str, int]:
    return {"n_query": 10, "n_train": 30}


# ---------------------------------------------------------------------------------- formats
def test_v5_v73_hdf5_npz_give_identical_datasets(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    matlab_images = np.transpose(parts["images"], (1, 2, 3, 0))  # MATLAB H x W x 3 x n
    v5 = tmp_path / "v5.mat"
    scipy.io.savemat(v5, {"IAll": matlab_images, "YAll": parts["tags"], "LAll": parts["labels"]})
    v73 = write_mat73(
        tmp_path / "v73.mat", {"IAll": matlab_images, "YAll": parts["tags"], "LAll": parts["labels"]}
    )
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as handle:
        handle["images"] = parts["images"]
        handle["tags"] = parts["tags"]
        handle["labels"] = parts["labels"]
    npz = tmp_path / "data.npz"
    np.savez(npz, images=parts["images"], tags=parts["tags"], labels=parts["labels"])
    loaded = {}
    for path in (v5, v73, plain, npz):
        dataset = load_generic(path, **_options())
        assert dataset.image is not None and dataset.text is not None
        assert dataset.image.shape == (N, 8, 6, 3), path
        assert np.array_equal(dataset.image.take([5, 1]), parts["images"][[5, 1]]), path
        assert np.array_equal(np.asarray(sp.csr_matrix(dataset.text.take(None)).toarray()), parts["tags"])
        assert np.array_equal(dataset.labels, parts["labels"])
        loaded[path.name] = dataset
    assert loaded["v73.mat"].image.kind == "hdf5"  # read lazily from the file
    assert loaded["v5.mat"].image.kind == "dense"
    assert loaded["v73.mat"].fingerprint.sha256 == loaded["plain.h5"].fingerprint.sha256
    assert loaded["v5.mat"].fingerprint.sha256 == loaded["data.npz"].fingerprint.sha256
    assert open_array_file(v73).format == "mat-v7.3" and open_array_file(plain).format == "hdf5"


def test_v73_dcmh_single_file_with_transposed_matrices(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    # jiangqy/DCMH FLICKR-25K.mat: images (H x W x 3 x n), YAll (n x d), LAll (n x c), saved -v7.3
    path = write_mat73(
        tmp_path / "FLICKR-25K.mat",
        {
            "images": np.transpose(parts["images"], (1, 2, 3, 0)),
            "YAll": parts["tags"].astype(np.float64),
            "LAll": parts["labels"].astype(np.float64),
        },
    )
    with h5py.File(path, "r") as handle:
        assert handle["YAll"].shape == (30, N)
    dataset = load_mirflickr25k(tmp_path, protocol=None, n_query=10, n_train=20)
    assert dataset.image.kind == "hdf5" and dataset.image.shape == (N, 8, 6, 3)
    assert np.array_equal(dataset.image.take([7]), parts["images"][[7]])
    assert np.array_equal(dataset.text.take([3, 9]), parts["tags"][[3, 9]].astype(np.float64))
    assert dataset.split.sizes["query"] == 10 and dataset.split.sizes["train"] == 20
    assert dataset.source["keys"]["image"].endswith("FLICKR-25K.mat:images")


def test_per_file_layout_prefers_raw_images_then_features(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    write_mat73(tmp_path / "mirflickr25k-iall.mat", {"IAll": np.transpose(parts["images"], (1, 2, 3, 0))})
    scipy.io.savemat(tmp_path / "mirflickr25k-iall-vgg.mat", {"XAll": parts["features"]})
    scipy.io.savemat(tmp_path / "mirflickr25k-yall.mat", {"YAll": parts["tags"]})
    scipy.io.savemat(tmp_path / "mirflickr25k-lall.mat", {"LAll": parts["labels"]})
    raw = load_mirflickr25k(tmp_path, protocol=None, **_options())
    assert raw.image.shape == (N, 8, 6, 3) and raw.source["image_kind"] == "raw"
    assert raw.text.kind == "dense"  # 10 % non-zero: kept dense (CSR only below 5 %)
    features = load_mirflickr25k(tmp_path, image="features", protocol=None, **_options())
    assert features.image.shape == (N, 12)
    assert np.allclose(features.image.take(None), parts["features"])


def test_torchcmh_nus_layout_and_sparse_v73_text(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    write_mat73(tmp_path / "tagList21.mat", {"tags": sp.csr_matrix(parts["tags"].astype(np.float64))})
    scipy.io.savemat(tmp_path / "labelList21.mat", {"labels": parts["labels"]})
    scipy.io.savemat(tmp_path / "imgList21.mat", {"imgs": parts["features"]})
    dataset = load_nus_wide(tmp_path, protocol=None, **_options())
    assert dataset.name == "nus-wide" and dataset.text.is_sparse
    assert np.array_equal(dataset.text.take(None).toarray(), parts["tags"])


def test_nus_tc10_files_are_found_with_concepts_10(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    for suffix, key, value in (
        ("xall-vgg", "XAll", parts["features"]),
        ("yall", "YAll", parts["tags"]),
        ("lall", "LAll", parts["labels"]),
    ):
        scipy.io.savemat(tmp_path / f"nus-wide-tc10-{suffix}.mat", {key: value})
    assert load_nus_wide(tmp_path, concepts=10, protocol=None, **_options()).n_items == N
    assert load_nus_wide(tmp_path, protocol=None, **_options()).n_labels == 5  # auto falls back to TC-10


def test_presplit_bmc_layout_keeps_its_split(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    tr, te, db = slice(0, 30), slice(30, 40), slice(0, 60)
    scipy.io.savemat(
        tmp_path / "coco_cnn.mat",
        {
            f"{view}_{part}": value[rows]
            for part, rows in (("tr", tr), ("te", te), ("db", db))
            for view, value in (("I", parts["features"]), ("T", parts["tags"]), ("L", parts["labels"]))
        },
    )
    dataset = load_ms_coco(tmp_path)
    assert dataset.n_items == 100
    assert dataset.split.sizes == {"train": 30, "query": 10, "database": 60, "validation": 0}
    assert np.allclose(dataset.image.take(dataset.split.query), parts["features"][te])
    assert np.array_equal(dataset.labels[dataset.split.database], parts["labels"])


def test_ucch_iapr_layout_draws_train_from_database(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    scipy.io.savemat(
        tmp_path / "iapr-tc12-rand.mat",
        {
            "VDatabase": parts["features"][:50],
            "YDatabase": parts["tags"][:50],
            "databaseL": parts["labels"][:50],
            "VTest": parts["features"][50:], "YTest": parts["tags"][50:], "testL": parts["labels"][50:],
        },
    )  # fmt: skip
    dataset = load_iapr_tc12(tmp_path, n_train=20, seed=4)
    split = dataset.split
    assert split.sizes == {"train": 20, "query": 10, "database": 50, "validation": 0}
    assert split.database_includes_train
    assert np.allclose(dataset.image.take(split.query), parts["features"][50:])
    again = load_iapr_tc12(tmp_path, n_train=20, seed=4)
    assert np.array_equal(again.split.train, split.train)


def test_ucch_layout_refuses_more_training_items_than_the_database_holds(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    scipy.io.savemat(
        tmp_path / "iapr-tc12-rand.mat",
        {
            "VDatabase": parts["features"][:50], "YDatabase": parts["tags"][:50],
            "databaseL": parts["labels"][:50],
            "VTest": parts["features"][50:], "YTest": parts["tags"][50:], "testL": parts["labels"][50:],
        },
    )  # fmt: skip
    with pytest.raises(DatasetError, match=r"n_train=51 but the database part has only 50 items"):
        load_iapr_tc12(tmp_path, n_train=51)


def test_presplit_parts_with_different_label_columns_are_named(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    five, four = parts["labels"], parts["labels"][:, :4]
    scipy.io.savemat(
        tmp_path / "coco_cnn.mat",
        {
            "I_tr": parts["features"][:30], "T_tr": parts["tags"][:30], "L_tr": five[:30],
            "I_te": parts["features"][30:40], "T_te": parts["tags"][30:40], "L_te": four[30:40],
            "I_db": parts["features"], "T_db": parts["tags"], "L_db": five,
        },
    )  # fmt: skip
    with pytest.raises(DatasetError, match=r"label parts have incompatible shapes \[\(30, 5\), \(10, 4\)"):
        load_ms_coco(tmp_path)


def test_image_paths_beside_the_file_with_missing_images_skipped(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    (tmp_path / "mirflickr").mkdir()
    names = [f"mirflickr/im{i + 1}.jpg" for i in range(N)]
    for i, name in enumerate(names):
        if i % 10 != 3:  # six images missing
            Image.fromarray(parts["images"][i]).save(tmp_path / name)
    write_mat73(tmp_path / "imgList.mat", {"FAll": names})
    scipy.io.savemat(tmp_path / "tagList.mat", {"YAll": parts["tags"]})
    scipy.io.savemat(tmp_path / "labelList.mat", {"LAll": parts["labels"]})
    with pytest.warns(DatasetWarning, match=r"skipped 6 listed items \(image file missing; first: item 3"):
        dataset = load_mirflickr25k(tmp_path, protocol=None, **_options())
    assert dataset.n_items == N - 6 and dataset.image.kind == "image-files"
    assert [s.item for s in dataset.skipped] == ["3", "13", "23", "33", "43", "53"]
    assert dataset.image.take([0]).shape == (1, 8, 6, 3)
    kept = np.array([i for i in range(N) if i % 10 != 3])
    assert np.array_equal(dataset.labels, parts["labels"][kept])
    with pytest.raises(DatasetError, match="6 of 60 image files are missing"):
        load_mirflickr25k(tmp_path, on_missing_image="error", protocol=None, **_options())


def test_split_stored_in_a_generic_file(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    path = tmp_path / "mine.npz"
    np.savez(
        path, image=parts["features"], text=parts["tags"], labels=parts["labels"],
        train_idx=np.arange(10, 40), query_idx=np.arange(10),
    )  # fmt: skip
    dataset = load_generic(path)
    assert dataset.name == "mine" and dataset.split.protocol == "stored in file"
    assert dataset.split.sizes == {"train": 30, "query": 10, "database": 50, "validation": 0}
    generic = load_generic(tmp_path / "mine.npz", n_query=5)  # explicit sizes do not override a stored split
    assert generic.split.sizes["query"] == 10


def test_generic_default_split_and_raw_text_featurised_on_train_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts = np.array([f"word{i % 7} common token{i}" for i in range(80)])
    path = tmp_path / "own.npz"
    np.savez(path, image=rng.random((80, 4)), text=texts, labels=np.arange(80) % 4)
    dataset = load_generic(path, text_features={"weighting": "binary"})
    assert dataset.split.sizes["query"] == 8  # 10 % of the items
    vocabulary = set(dataset.text_featurizer.vocabulary_)
    train_terms = {f"token{i}" for i in dataset.split.train}
    query_terms = {f"token{i}" for i in dataset.split.query}
    assert train_terms <= vocabulary and not query_terms & vocabulary
    assert dataset.labels.shape == (80, 4)  # class ids became one-hot columns


# ---------------------------------------------------------------------------------- bad input
def test_wrong_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.mat"
    path.write_text("this is not a mat file\n")
    with pytest.raises(DatasetError, match=r"data.mat: expected a MATLAB .mat file \(v5 or v7.3\), an HDF5"):
        load_generic(path)
    with pytest.raises(MissingFilesError, match="no such file"):
        load_generic(tmp_path / "absent.h5")


def test_missing_and_misnamed_keys_list_what_the_file_holds(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    path = tmp_path / "odd.mat"
    scipy.io.savemat(path, {"pictures": parts["features"], "words": parts["tags"], "LAll": parts["labels"]})
    with pytest.raises(
        DatasetError, match=r"no text view found: expected one of the keys YAll.*odd.mat: pictures \(60x12"
    ):
        load_generic(path)
    with pytest.raises(DatasetError, match=r"text: key 'YAll' not found; the files hold: odd.mat: pictures"):
        load_generic(path, text_key="YAll", image_key="pictures")
    dataset = load_generic(path, text_key="words", image_key="pictures", **_options())
    assert dataset.text.shape == (N, 30)
    scipy.io.savemat(tmp_path / "nolabels.mat", {"XAll": parts["features"], "YAll": parts["tags"]})
    with pytest.raises(DatasetError, match=r"no label matrix found: expected one of the keys LAll"):
        load_generic(tmp_path / "nolabels.mat")
    with pytest.raises(MissingFilesError, match=r"no image view found.*Pass image='none'"):
        load_generic(tmp_path / "odd.mat", text_key="words")


def test_image_file_names_found_nowhere_are_refused_naming_where_they_were_looked_for(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    (tmp_path / "pics").mkdir()
    names = [f"im{i}.png" for i in range(N)]  # lossless: the pixels read back exactly
    for i, name in enumerate(names):
        Image.fromarray(parts["images"][i]).save(tmp_path / "pics" / name)
    path = tmp_path / "listed.npz"
    np.savez(path, paths=np.array(names), tags=parts["tags"], labels=parts["labels"])
    with pytest.raises(MissingFilesError) as caught:
        load_generic(path)
    assert str(caught.value) == (
        "listed: no image view found: expected raw images or image features (keys images, IAll, I, "
        "image, imgs, img, XAll, X, image_features, img_feats, FAll, image_paths, paths, index, "
        "all_imgs) or image file names; the files hold: listed.npz: paths (60 <U8), tags (60x30 uint8), "
        f"labels (60x5 uint8). Image file names are listed in {path}:paths, but none of the first files "
        f"exists under {tmp_path} (set image_root=...). Pass image='none' to load the text view and the "
        "labels only."
    )
    found = load_generic(path, image_root=tmp_path / "pics", **_options())
    named = load_generic(path, image_key="paths", image_root=tmp_path / "pics", **_options())
    for dataset in (found, named):
        assert dataset.image.kind == "image-files" and dataset.source["image_kind"] == "paths"
        assert dataset.source["keys"]["image"] == f"{path}:paths" and not dataset.skipped
    assert np.array_equal(found.image.take([0, 7]), parts["images"][[0, 7]])
    with pytest.raises(DatasetError, match=r"listed: no raw text view found: expected one of the keys YAll,"):
        load_generic(path, text="raw", image_root=tmp_path / "pics")


def test_views_whose_row_counts_disagree(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    path = tmp_path / "short.mat"
    scipy.io.savemat(path, {"XAll": parts["features"][:59], "YAll": parts["tags"], "LAll": parts["labels"]})
    with pytest.raises(
        DatasetError,
        match=r"views disagree on the number of items: labels .*short.mat:LAll has shape \(60, 5\)"
        r".*image .*XAll has shape \(59, 12\)",
    ):
        load_generic(path)


def test_labels_not_binary_name_row_and_value(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    labels = parts["labels"].copy()
    labels[7, 2] = 2
    path = tmp_path / "labels.mat"
    scipy.io.savemat(path, {"XAll": parts["features"], "YAll": parts["tags"], "LAll": labels})
    with pytest.raises(
        DatasetError, match=r"labels.mat:LAll: row 7, column 2: expected labels in \{0, 1\}.*got 2"
    ):
        load_generic(path)


def test_unlabelled_items_are_reported_and_can_be_dropped(
    tmp_path: Path, parts: dict[str, np.ndarray]
) -> None:
    labels = parts["labels"].copy()
    labels[[4, 9, 11]] = 0
    path = tmp_path / "l.mat"
    scipy.io.savemat(path, {"XAll": parts["features"], "YAll": parts["tags"], "LAll": labels})
    with pytest.warns(DatasetWarning, match=r"3 of 60 items have no label at all \(first: row 4\)"):
        dataset = load_generic(path, **_options())
    assert dataset.unlabelled.tolist() == [4, 9, 11]
    dropped = dataset.drop_unlabelled()
    assert dropped.n_items == 57 and dropped.source["dropped_unlabelled"] == 3
    assert dropped.unlabelled.size == 0 and dropped.split.n_items == 57
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)
        clean = load_generic(path, drop_unlabelled=True, **_options())
    assert clean.n_items == 57 and clean.split.sizes["query"] == 10


def test_nan_in_features_names_file_key_and_row(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    features = parts["features"].copy()
    features[33, 1] = np.nan
    v5 = tmp_path / "nan.mat"
    scipy.io.savemat(v5, {"XAll": features, "YAll": parts["tags"], "LAll": parts["labels"]})
    with pytest.raises(
        DatasetError, match=r"nan.mat:XAll: row 33, column 1: expected finite feature values, got nan"
    ):
        load_generic(v5)
    v73 = write_mat73(
        tmp_path / "nan73.mat", {"XAll": features, "YAll": parts["tags"], "LAll": parts["labels"]}
    )
    lazy = load_generic(v73, **_options())  # lazy view: checked when the rows are read
    with pytest.raises(DatasetError, match=r"nan73.mat:XAll: row 33, column 1"):
        lazy.image.take(np.arange(N))


def test_object_arrays_in_npz_are_refused(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(
        path, image=parts["features"], text=np.array([{"a": 1}] * N, dtype=object), labels=parts["labels"]
    )
    with pytest.raises(DatasetError, match=r"pickled\.npz"):
        load_generic(path)


def test_named_dataset_folder_without_files(tmp_path: Path) -> None:
    with pytest.raises(MissingFilesError, match=r"mirflickr25k: none of the expected files is in"):
        load_mirflickr25k(tmp_path)
    with pytest.raises(MissingFilesError, match="no data folder given"):
        load_mirflickr25k(None)


def test_same_key_in_two_files_must_be_named(tmp_path: Path, parts: dict[str, np.ndarray]) -> None:
    scipy.io.savemat(
        tmp_path / "a.mat", {"XAll": parts["features"], "YAll": parts["tags"], "LAll": parts["labels"]}
    )
    scipy.io.savemat(tmp_path / "b.mat", {"YAll": parts["tags"]})
    with pytest.raises(DatasetError, match=r"key 'YAll' is in several files .* 'a.mat:YAll'"):
        load_generic(tmp_path)
    dataset = load_array_files(
        [tmp_path / "a.mat", tmp_path / "b.mat"], name="x", text_key="b.mat:YAll", **_options()
    )
    assert dataset.source["keys"]["text"].endswith("b.mat:YAll")
