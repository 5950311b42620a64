"""Loaders on the real files of ../shared/data (skipped, naming the folder, when it is absent)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from test_data_helpers import builtin_registry, shared_dir, write_mat73

from ddcmh_core.data import (
    DatasetError,
    DatasetRegistry,
    DatasetWarning,
    HDF5View,
    MissingFilesError,
    Split,
    load_dataset,
    load_folder_layout,
)
from ddcmh_core.data.loaders import load_mirflickr25k, load_wikipedia

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def registry() -> DatasetRegistry:
    return builtin_registry()


# ---------------------------------------------------------------------------------- Wikipedia
def test_wikipedia_standard_split_and_class_counts(registry: DatasetRegistry) -> None:
    folder = shared_dir("wikipedia")
    dataset = load_dataset("wikipedia", data_dir=folder.parent, registry=registry)
    assert dataset.n_items == 2866 and dataset.n_labels == 10
    assert dataset.label_names[:3] == ("art", "biology", "geography")
    assert dataset.image.shape == (2866, 128) and dataset.text.shape == (2866, 10)
    split = dataset.split
    assert split.sizes == {"train": 2173, "query": 693, "database": 2173, "validation": 0}
    assert np.array_equal(split.database, split.train) and split.protocol == "wikipedia-lists"
    train_counts = dataset.labels[split.train].sum(axis=0).tolist()
    assert train_counts == [138, 272, 244, 248, 202, 178, 186, 144, 214, 347]
    assert dataset.labels[split.query].sum(axis=0).tolist() == [34, 88, 96, 85, 65, 58, 51, 41, 71, 104]
    features = scipy.io.loadmat(folder / "raw_features.mat")
    assert np.array_equal(dataset.image.take(split.query), features["I_te"])
    assert np.array_equal(dataset.text.take(split.train), features["T_tr"])
    assert dataset.item_ids[0] == "b3150b0c281960b6a6d33407824fd40a-3"
    assert dataset.view_kinds == {"image": "dense", "text": "dense"}


def test_wikipedia_list_and_matrix_mismatch(tmp_path: Path) -> None:
    folder = shared_dir("wikipedia")
    for name in ("raw_features.mat", "categories.list", "testset_txt_img_cat.list"):
        (tmp_path / name).symlink_to(folder / name)
    lines = (folder / "trainset_txt_img_cat.list").read_text().splitlines()
    (tmp_path / "trainset_txt_img_cat.list").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(
        DatasetError, match=r"raw_features.mat:I_tr has 2173 rows but .*trainset_txt_img_cat.list lists 2172"
    ):
        load_wikipedia(tmp_path)
    (tmp_path / "trainset_txt_img_cat.list").write_text(lines[0].rsplit("\t", 1)[0] + "\t11\n")
    with pytest.raises(
        DatasetError, match=r"trainset_txt_img_cat.list: line 1: expected a class between 1 and 10, got 11"
    ):
        load_wikipedia(tmp_path)


def test_wikipedia_lists_that_name_no_item_are_refused_by_name(tmp_path: Path) -> None:
    # The lists are read before the feature file, so an empty stand-in for it is enough; without
    # a categories file this was once a bare "max() arg is an empty sequence".
    (tmp_path / "raw_features.mat").write_bytes(b"")
    (tmp_path / "trainset_txt_img_cat.list").write_text("\n")
    (tmp_path / "testset_txt_img_cat.list").write_text("")
    with pytest.raises(DatasetError) as caught:
        load_wikipedia(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'trainset_txt_img_cat.list'}: no item is listed (nor in testset_txt_img_cat.list); "
        "expected lines of 3 fields (text_id, image_id, class)"
    )


# ---------------------------------------------------------------------------------- MIRFLICKR
def test_mirflickr_text_and_labels_load_exactly(registry: DatasetRegistry) -> None:
    folder = shared_dir("mirflickr25k")
    with pytest.raises(MissingFilesError) as caught:
        load_dataset("mirflickr25k", data_dir=folder, registry=registry)
    message = str(caught.value)
    assert "no image view found" in message and "image='none'" in message
    assert "[found]   mirflickr25k-lall.mat" in message and "[missing] mirflickr25k-iall.mat" in message
    assert "https://press.liacs.nl/mirflickr/" in message
    dataset = load_dataset("mirflickr", data_dir=folder.parent, image="none", registry=registry)
    tags = scipy.io.loadmat(folder / "mirflickr25k-yall.mat")["YAll"]
    labels = scipy.io.loadmat(folder / "mirflickr25k-lall.mat")["LAll"]
    assert dataset.text.shape == (20015, 1386) and dataset.labels.shape == (20015, 24)
    assert dataset.text.is_sparse and dataset.text.dtype == np.uint8
    assert np.array_equal(dataset.text.take(None).toarray(), tags)
    assert np.array_equal(dataset.labels, labels) and int(dataset.labels.sum()) == 75640
    assert dataset.unlabelled.size == 0 and dataset.view_kinds["image"] == "missing"
    assert dataset.split.sizes == {"train": 10000, "query": 2000, "database": 18015, "validation": 0}
    with pytest.raises(DatasetError, match="the image view is missing"):
        dataset.require_views()


def test_mirflickr_raw_tags_reproduce_the_tag_matrix() -> None:
    folder = shared_dir("mirflickr25k")
    raw = load_mirflickr25k(folder, image="none", text="raw")
    tags = scipy.io.loadmat(folder / "mirflickr25k-yall.mat")["YAll"]
    ours = raw.text.take(None).toarray().astype(np.uint8)
    assert raw.text_featurizer is not None and raw.text_featurizer.analyzer_ == "tags"
    # the 1,386 DCMH tags are exactly the distinct tags of all_tags.txt, in another column order
    theirs = {tags[:, j].tobytes() for j in range(tags.shape[1])}
    assert ours.shape == tags.shape and all(ours[:, j].tobytes() in theirs for j in range(ours.shape[1]))


def test_mirflickr_v73_copy_reads_lazily_and_identically(tmp_path: Path) -> None:
    folder = shared_dir("mirflickr25k")
    tags = scipy.io.loadmat(folder / "mirflickr25k-yall.mat")["YAll"]
    labels = scipy.io.loadmat(folder / "mirflickr25k-lall.mat")["LAll"]
    write_mat73(tmp_path / "mirflickr25k-yall.mat", {"YAll": tags})
    write_mat73(tmp_path / "mirflickr25k-lall.mat", {"LAll": labels})
    dataset = load_mirflickr25k(tmp_path, image="none")
    assert isinstance(dataset.text, HDF5View) and dataset.text.shape == (20015, 1386)
    rows = dataset.split.train[::97]
    assert np.array_equal(dataset.text.take(rows), tags[rows])
    v5 = load_mirflickr25k(folder, image="none", sparse_text=False)
    assert dataset.fingerprint.sha256 == v5.fingerprint.sha256
    assert dataset.split == v5.split


def test_split_file_reevaluates_a_run(tmp_path: Path) -> None:
    dataset = load_mirflickr25k(shared_dir("mirflickr25k"), image="none", seed=11).resplit(seed=11)
    carved = dataset.with_split(dataset.split.carve_validation(1000, seed=2))
    path = carved.save_split(tmp_path / "split.npz")
    assert Split.load(path) == carved.split
    assert np.isin(carved.split.validation, dataset.split.train).all()


# ---------------------------------------------------------------------------------- Web News
def test_web_news_missing_images_are_skipped_and_reported(registry: DatasetRegistry) -> None:
    folder = shared_dir("web_news")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset("web-news", data_dir=folder.parent, registry=registry)
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert any("skipped 1800 listed items (image file missing" in m for m in messages)
    assert any("testset_txt_img_cat.list has no loadable item" in m for m in messages)
    assert dataset.n_items == 400 and dataset.labels.sum(axis=0).tolist() == [40] * 10
    assert len(dataset.skipped) == 1800
    assert {s.list_file for s in dataset.skipped} == {"trainset_txt_img_cat.list", "testset_txt_img_cat.list"}
    assert dataset.split.sizes == {"train": 320, "query": 80, "database": 320, "validation": 0}
    assert dataset.text_featurizer is not None and dataset.text_featurizer.analyzer_ == "char"
    assert dataset.view_kinds == {"image": "image-files", "text": "sparse"}
    assert dataset.image.resized((32, 32)).take([0, 399]).shape == (2, 32, 32, 3)
    # the featuriser saw no query text
    query_only = set()
    for row in dataset.split.query:
        query_only |= set(dataset.texts[row])
    train_chars = set("".join(dataset.texts[r] for r in dataset.split.train))
    unseen = query_only - train_chars
    assert not unseen & set(dataset.text_featurizer.vocabulary_)


def test_web_news_subset_list_and_explicit_errors() -> None:
    folder = shared_dir("web_news")
    with pytest.warns(DatasetWarning) as caught:
        subset = load_folder_layout(folder, train_list="trainset_subset40_with_images.list", seed=3)
    assert any("holdout" in str(w.message) for w in caught)
    assert subset.n_items == 400 and not [s for s in subset.skipped if s.list_file.startswith("trainset")]
    with pytest.raises(
        DatasetError, match=r"trainset_txt_img_cat.list: line \d+: item \d+: image file missing"
    ):
        load_folder_layout(folder, on_missing="error")
    with pytest.raises(DatasetError, match="split='lists' but the test list has no loadable item"):
        load_folder_layout(folder, split="lists")


def test_wikipedia_style_folder_with_raw_texts(tmp_path: Path) -> None:
    """The folder layout with English XML texts, as in the original Wikipedia release."""
    from PIL import Image

    (tmp_path / "images" / "art").mkdir(parents=True)
    (tmp_path / "images" / "music").mkdir(parents=True)
    (tmp_path / "texts").mkdir()
    (tmp_path / "categories.list").write_text("art\nmusic\n")
    rows = {"train": [], "test": []}
    for number in range(12):
        category = ("art", "music")[number % 2]
        part = "test" if number >= 8 else "train"
        Image.new("RGB", (10, 8), (number * 20, 0, 0)).save(
            tmp_path / "images" / category / f"img{number}.jpg"
        )
        words = "painting canvas gallery" if category == "art" else "symphony concert violin"
        (tmp_path / "texts" / f"doc{number}.xml").write_text(
            "<?xml version='1.0'?><document><title>t</title>"
            f"<text>{words} item{number} &amp; more</text></document>"
        )
        rows[part].append(f"doc{number}\timg{number}\t{number % 2 + 1}")
    (tmp_path / "trainset_txt_img_cat.list").write_text("\n".join(rows["train"]) + "\n")
    (tmp_path / "testset_txt_img_cat.list").write_text("\n".join(rows["test"]) + "\n")
    dataset = load_wikipedia(tmp_path)  # no raw_features.mat: the raw folder layout
    assert dataset.n_items == 12 and dataset.split.sizes["query"] == 4
    assert dataset.texts[0] == "painting canvas gallery item0 & more"
    assert "painting" in dataset.text_featurizer.vocabulary_
    assert dataset.image.take([0, 1]).shape == (2, 8, 10, 3)


def _two_class_folder(root: Path, train: range, test: range, *, no_image=(), no_text=()) -> Path:
    """A folder layout of cats and dogs: item n is doc<n>.txt + images/<class>/img<n>.jpg, class n % 2 + 1.

    ``train`` and ``test`` number the items of each list (no test list when ``test`` is empty); the
    items in ``no_image`` / ``no_text`` are listed without that file.
    """
    from PIL import Image

    (root / "texts").mkdir(parents=True)
    (root / "categories.list").write_text("cats\ndogs\n")
    for list_name, numbers in (("trainset_txt_img_cat.list", train), ("testset_txt_img_cat.list", test)):
        for number in numbers:
            category = ("cats", "dogs")[number % 2]
            if number not in no_image:
                (root / "images" / category).mkdir(parents=True, exist_ok=True)
                image = Image.new("RGB", (6, 4), (number * 10, 0, 0))
                image.save(root / "images" / category / f"img{number}.jpg")
            if number not in no_text:
                words = ("whiskers purr", "bark fetch")[number % 2]
                (root / "texts" / f"doc{number}.txt").write_text(f"{words} item{number}")
        if numbers:
            (root / list_name).write_text("".join(f"doc{n}\timg{n}\t{n % 2 + 1}\n" for n in numbers))
    return root


def test_folder_layout_reports_each_missing_file_or_refuses_with_the_first(tmp_path: Path) -> None:
    with pytest.raises(MissingFilesError, match=r"^absent: folder .*absent does not exist$"):
        load_folder_layout(tmp_path / "absent")
    folder = _two_class_folder(tmp_path / "pets", range(8), range(8, 12), no_image={3}, no_text={5})
    with pytest.raises(
        DatasetError, match=r"^pets: argument 'split': expected 'auto', 'lists' or 'holdout', got 'random'$"
    ):
        load_folder_layout(folder, split="random")
    with pytest.warns(DatasetWarning, match="skipped 2 listed items"):
        dataset = load_folder_layout(folder)
    assert dataset.n_items == 10 and dataset.split.protocol == "lists"
    assert dataset.split.sizes == {"train": 6, "query": 4, "database": 6, "validation": 0}
    assert {s.list_file for s in dataset.skipped} == {"trainset_txt_img_cat.list"}
    assert [(s.item, s.reason, s.path, s.line) for s in dataset.skipped] == [
        ("doc3", "image file missing", str(folder / "images" / "dogs" / "img3.jpg"), 4),
        ("doc5", "text file missing", str(folder / "texts" / "doc5.txt"), 6),
    ]
    assert dataset.labels.sum(axis=0).tolist() == [6, 4] and dataset.label_names == ("cats", "dogs")
    assert dataset.text_featurizer.params.min_df == 2  # the folder layout's default
    with pytest.warns(DatasetWarning):
        assert load_folder_layout(folder, text_features={"min_df": 1}).text_featurizer.params.min_df == 1
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(folder, on_missing="error")
    assert str(caught.value) == (
        f"{folder / 'trainset_txt_img_cat.list'}: line 4: item doc3: image file missing "
        f"({folder / 'images' / 'dogs' / 'img3.jpg'}); 2 listed items in all (pass on_missing='skip' "
        "to leave them out)"
    )
    (folder / "testset_txt_img_cat.list").write_text("doc8\timg8\t1\ndoc9\timg9\t3\n")
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(folder)
    assert str(caught.value) == (
        f"{folder / 'testset_txt_img_cat.list'}: line 2: expected a class between 1 and 2, got 3"
    )
    empty = _two_class_folder(tmp_path / "empty", range(0), range(0))
    (empty / "trainset_txt_img_cat.list").write_text("")
    (empty / "categories.list").unlink()
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(empty)  # no categories file either: once a bare max() of nothing
    assert str(caught.value) == (
        f"{empty / 'trainset_txt_img_cat.list'}: no item is listed; expected lines of 3 fields "
        "(text_id, image_id, class)"
    )
    nothing = _two_class_folder(tmp_path / "bare", range(3), range(0), no_image={0, 1, 2})
    with pytest.raises(MissingFilesError) as missing:
        load_folder_layout(nothing)
    assert str(missing.value) == (
        f"bare: none of the 3 listed items has both its image and its text under {nothing} "
        f"(first missing: {nothing / 'images' / 'cats' / 'img0.jpg'})"
    )


def test_folder_layout_split_falls_back_to_a_holdout_only_when_asked_or_needed(tmp_path: Path) -> None:
    folder = _two_class_folder(tmp_path / "pets", range(10), range(10, 18), no_image=set(range(10)))
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(folder, split="lists")
    assert str(caught.value) == (
        "pets: split='lists' but the train list has no loadable item; use split='holdout'"
    )
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        dataset = load_folder_layout(folder, holdout_fraction=0.5, seed=4)
    holdouts = [w for w in caught_warnings if "holdout" in str(w.message)]
    assert [str(w.message) for w in holdouts] == [
        "pets: trainset_txt_img_cat.list has no loadable item, so the split is a seeded "
        "class-stratified holdout (50% of each class as queries, seed 4)"
    ]
    assert holdouts[0].category is DatasetWarning and holdouts[0].filename == __file__  # the caller's line
    assert dataset.split.protocol == "holdout-0.5" and dataset.split.seed == 4
    assert dataset.split.sizes == {"train": 4, "query": 4, "database": 4, "validation": 0}
    with pytest.raises(DatasetError) as caught:
        load_folder_layout(folder, split="holdout", holdout_fraction=1.0)
    assert str(caught.value) == "pets: holdout_fraction: expected a value in (0, 1), got 1.0"
