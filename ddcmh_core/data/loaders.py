"""Loaders of the field's standard datasets.

* :func:`load_wikipedia` — Rasiwasia et al. 2010: ``raw_features.mat`` + the two list files
  (standard 2,173 / 693 split: test = queries, train = database); or, when the raw images and
  texts are there instead, the folder layout (:func:`~ddcmh_core.data.folder.load_folder_layout`).
* :func:`load_mirflickr25k`, :func:`load_nus_wide`, :func:`load_iapr_tc12`, :func:`load_ms_coco` —
  the DCMH-family layouts, found by their usual file names in the data folder and read by
  :func:`~ddcmh_core.data.array_files.load_array_files` (whose options they take).
* :func:`load_generic` — users' own HDF5 / ``.mat`` / ``.npz`` files with named arrays, or a
  folder of them, or a folder in the Wikipedia layout.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .array_files import ARRAY_SUFFIXES, KeyIndex, TextChoice, load_array_files
from .build import build_dataset
from .dataset import CrossModalDataset
from .errors import DatasetError, MissingFilesError
from .formats import open_array_file
from .split import Split
from .views import ConcatView, View

MIRFLICKR_FILES = (
    "mirflickr25k-*.mat", "mirflickr25k*.h5", "mirflickr25k*.hdf5", "mirflickr25k*.h5py",
    "flickr-25k.mat", "flickr25k*.mat", "flickr25k*.h5", "imglist.mat", "taglist.mat",
    "labellist.mat", "mir_cnn.mat", "raw_mir.mat", "all_labels.txt", "all_tags.txt", "all_imgs.txt",
)  # fmt: skip
NUS_WIDE_FILES = {
    21: (
        "nus-wide-tc21-*.mat", "nus-wide-tc21*.h5", "imglist21.mat", "taglist21.mat",
        "labellist21.mat", "nus_cnn.mat", "raw_nus.mat", "nus-wide.mat", "nus-wide-21*.mat",
        "nus-wide*.h5", "nus-wide*.hdf5",
    ),
    10: ("nus-wide-tc10-*.mat", "nus-wide-tc10*.h5", "nus-wide-tc10*.hdf5"),
}  # fmt: skip
IAPR_FILES = ("iapr-tc12*.mat", "iapr*.h5", "iapr*.hdf5", "iapr*.mat")
MS_COCO_FILES = (
    "mscoco*.h5py", "mscoco*.h5", "mscoco*.hdf5", "mscoco*.mat", "coco*.mat", "coco*.h5",
    "coco*.hdf5", "raw_coco.mat", "coco_cnn.mat",
)  # fmt: skip


def _find_files(data_dir: str | Path | None, patterns: Sequence[str], dataset: str) -> list[Path]:
    """The files of ``data_dir`` whose names match ``patterns`` (case-insensitive)."""
    if data_dir is None:
        raise MissingFilesError(
            f"{dataset}: no data folder given (pass data_dir=... / --data-dir, or set DDCMH_DATA_DIR)",
            dataset=dataset,
            missing=list(patterns),
        )
    root = Path(data_dir).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise MissingFilesError(
            f"{dataset}: data folder {root} does not exist",
            dataset=dataset,
            searched=root,
            missing=list(patterns),
        )
    found = []
    for path in sorted(root.iterdir()):
        if path.is_file() and any(fnmatch.fnmatch(path.name.lower(), p) for p in patterns):
            found.append(path)
    if not found:
        raise MissingFilesError(
            f"{dataset}: none of the expected files is in {root} (looked for {', '.join(patterns)})",
            dataset=dataset,
            searched=root,
            missing=list(patterns),
        )
    return found


def load_generic(path: str | Path, *, name: str | None = None, **options: Any) -> CrossModalDataset:
    """Load users' own data: one array file, or a folder of them (or a Wikipedia-style folder).

    Parameters
    ----------
    path : path
        An ``.h5``/``.hdf5``/``.mat``/``.npz`` file with named arrays (image, text, labels and
        optionally split index arrays), or a folder holding such files or a ``*_txt_img_cat.list``
        folder layout.
    name : str, optional
        Dataset name (default: the file or folder name).
    **options
        See :func:`load_array_files` (or :func:`~ddcmh_core.data.folder.load_folder_layout`).
    """
    path = Path(path).expanduser()
    dataset_name = name or path.stem
    if path.is_dir():
        if (path / "raw_features.mat").is_file() and (path / "trainset_txt_img_cat.list").is_file():
            return load_wikipedia(path, **options)
        if any(path.glob("*_txt_img_cat.list")):
            from .folder import load_folder_layout

            return load_folder_layout(path, name=dataset_name, **options)
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in ARRAY_SUFFIXES)
        if not files:
            raise MissingFilesError(
                f"{path}: expected array files ({', '.join(ARRAY_SUFFIXES)}) or a folder layout with "
                "trainset_txt_img_cat.list / testset_txt_img_cat.list, found neither",
                searched=path,
            )
        return load_array_files(files, name=dataset_name, **options)
    if not path.exists():
        raise MissingFilesError(f"{path}: no such file or folder", searched=path.parent, missing=[path.name])
    return load_array_files([path], name=dataset_name, **options)


# ---------------------------------------------------------------------------------- named datasets


def load_mirflickr25k(
    data_dir: str | Path | None, *, text: TextChoice = "auto", **options: Any
) -> CrossModalDataset:
    """MIRFLICKR-25K (the DCMH 20,015-item version, 24 labels, 1,386-d tag bag-of-words).

    Files (any of the DCMH-family layouts): ``mirflickr25k-{iall,yall,lall}.mat`` (and
    ``-iall-vgg.mat``), ``FLICKR-25K.mat``, ``imgList/tagList/labelList.mat``, ``mir_cnn.mat`` /
    ``raw_mir.mat``, or the text files ``all_tags.txt``, ``all_labels.txt``, ``all_imgs.txt``.
    ``text="raw"`` featurises the raw tags of ``all_tags.txt`` (one term per tag, binary).
    Standard split: 2,000 queries, 10,000 training items, database = the 18,015 non-queries.
    """
    files = _find_files(data_dir, MIRFLICKR_FILES, "mirflickr25k")
    if text == "raw":
        options.setdefault("text_features", {"analyzer": "tags", "weighting": "binary"})
    options.setdefault("protocol", "mirflickr25k")
    return load_array_files(files, name="mirflickr25k", text=text, **options)


def load_nus_wide(
    data_dir: str | Path | None, *, concepts: Literal["auto", 10, 21] = "auto", **options: Any
) -> CrossModalDataset:
    """NUS-WIDE with the 21 most frequent concepts (DCMH) or the 10-concept TC-10 set.

    Files: ``nus-wide-tc21-*.mat`` / ``imgList21.mat``, ``tagList21.mat``, ``labelList21.mat`` /
    ``nus_cnn.mat`` / ``raw_nus.mat`` (21 concepts), or ``nus-wide-tc10-{iall,yall,lall}.mat``
    (10 concepts). ``concepts="auto"`` takes the 21-concept files when present.
    Standard split: 2,100 queries, 10,500 training items, the rest as database.
    """
    options.setdefault("protocol", "nus-wide")
    if concepts == "auto":
        try:
            files = _find_files(data_dir, NUS_WIDE_FILES[21], "nus-wide")
        except MissingFilesError:
            files = _find_files(data_dir, NUS_WIDE_FILES[10], "nus-wide")
    else:
        if concepts not in NUS_WIDE_FILES:
            raise DatasetError(f"nus-wide: argument 'concepts': expected 'auto', 10 or 21, got {concepts!r}")
        files = _find_files(data_dir, NUS_WIDE_FILES[int(concepts)], "nus-wide")
    return load_array_files(files, name="nus-wide", **options)


def load_iapr_tc12(data_dir: str | Path | None, **options: Any) -> CrossModalDataset:
    """IAPR TC-12, from UCCH's ``iapr-tc12-rand.mat`` or ``iapr-tc12*`` files with the usual keys.

    ``iapr-tc12-rand.mat`` holds ``VDatabase``/``YDatabase``/``databaseL`` and
    ``VTest``/``YTest``/``testL``; other files hold ``IAll``/``YAll``/``LAll``.
    Standard split: 2,000 queries, 10,000 training items drawn from the rest, the rest as database
    (the pre-split file's test part is the query set).
    """
    files = _find_files(data_dir, IAPR_FILES, "iapr-tc12")
    options.setdefault("protocol", "iapr-tc12")
    return load_array_files(files, name="iapr-tc12", **options)


def load_ms_coco(data_dir: str | Path | None, **options: Any) -> CrossModalDataset:
    """MS-COCO, from UCCH's HDF5 file, BMC's pre-split files or ``mscoco*`` files.

    Files: ``MSCOCO_deep_doc2vec_data_rand.h5py`` (``XAll``/``YAll``/``LAll``), ``coco_cnn.mat`` /
    ``raw_coco.mat`` (pre-split ``I_tr``/``I_te``/``I_db``...) or ``mscoco*`` files with the usual keys.

    Standard split (MITH, CLIP family): 5,000 queries, 10,000 training items, the rest as database.
    """
    files = _find_files(data_dir, MS_COCO_FILES, "ms-coco")
    options.setdefault("protocol", "ms-coco")
    return load_array_files(files, name="ms-coco", **options)


def load_wikipedia(
    data_dir: str | Path | None,
    *,
    features_file: str = "raw_features.mat",
    train_list: str = "trainset_txt_img_cat.list",
    test_list: str = "testset_txt_img_cat.list",
    categories: str = "categories.list",
    drop_unlabelled: bool = False,
    **options: Any,
) -> CrossModalDataset:
    """The Wikipedia dataset (Rasiwasia et al. 2010), standard 2,173 / 693 split.

    With ``raw_features.mat`` (``I_tr``/``I_te``: 128-d SIFT bag-of-words; ``T_tr``/``T_te``:
    10-d LDA topics): items are the training list then the test list, in list order; queries =
    the test items, training set = database = the training items. Without it, but with
    ``images/`` and ``texts/`` folders, the raw folder layout is loaded instead (see
    :func:`~ddcmh_core.data.folder.load_folder_layout`; ``options`` go there).
    """
    if data_dir is None:
        raise MissingFilesError(
            "wikipedia: no data folder given (pass data_dir=... / --data-dir, or set DDCMH_DATA_DIR)",
            dataset="wikipedia",
            missing=[features_file, train_list, test_list],
        )
    root = Path(data_dir).expanduser()
    features = root / features_file
    if not features.is_file():
        if (root / "images").is_dir() and (root / "texts").is_dir():
            from .folder import load_folder_layout

            return load_folder_layout(
                root, name="wikipedia", train_list=train_list, test_list=test_list,
                categories=categories, drop_unlabelled=drop_unlabelled, **options,
            )  # fmt: skip
        raise MissingFilesError(
            f"wikipedia: {features} not found (nor images/ and texts/ folders)",
            dataset="wikipedia",
            searched=root,
            missing=[features_file, train_list, test_list],
        )
    if options:
        raise DatasetError(
            f"wikipedia: options {sorted(options)} apply to the raw folder layout only; the "
            "feature file has a fixed split (use dataset.resplit(...) to draw another)"
        )
    return _load_wikipedia_features(
        root, features, train_list=train_list, test_list=test_list, categories=categories,
        drop_unlabelled=drop_unlabelled,
    )  # fmt: skip


def _load_wikipedia_features(
    root: Path, features: Path, *, train_list: str, test_list: str, categories: str, drop_unlabelled: bool
) -> CrossModalDataset:
    """Wikipedia from its feature file: the training list's items, then the test list's, as queries."""
    from .folder import count_listed_classes, read_categories, read_list

    train_rows = read_list(root / train_list)
    test_rows = read_list(root / test_list)
    names = read_categories(root / categories)
    n_classes = count_listed_classes(root, [(train_list, train_rows), (test_list, test_rows)], names)
    train_ids = np.asarray([row[3] - 1 for row in train_rows], dtype=np.int64)
    test_ids = np.asarray([row[3] - 1 for row in test_rows], dtype=np.int64)
    index = KeyIndex([open_array_file(features)])
    blocks = {}
    for key, rows, list_name in (
        ("I_tr", train_rows, train_list), ("I_te", test_rows, test_list),
        ("T_tr", train_rows, train_list), ("T_te", test_rows, test_list),
    ):  # fmt: skip
        found = index.require(key, "wikipedia features")
        view = found[0].view(key)
        if view.n_rows != len(rows):
            raise DatasetError(
                f"{features}:{key} has {view.n_rows} rows but {root / list_name} lists {len(rows)} items"
            )
        blocks[key] = view
    n_train, n_test = len(train_rows), len(test_rows)
    labels = np.zeros((n_train + n_test, n_classes), dtype=np.uint8)
    labels[np.arange(n_train + n_test), np.concatenate([train_ids, test_ids])] = 1
    split = Split(
        train=np.arange(n_train),
        query=np.arange(n_train, n_train + n_test),
        database=np.arange(n_train),
        protocol="wikipedia-lists",
        n_items=n_train + n_test,
    )
    image = ConcatView([blocks["I_tr"], blocks["I_te"]], source=f"{features}:I_tr+I_te")
    text = ConcatView([blocks["T_tr"], blocks["T_te"]], source=f"{features}:T_tr+T_te")
    return build_dataset(
        name="wikipedia",
        labels=labels,
        label_names=names,
        image=_dense(image),
        text=_dense(text),
        item_ids=[row[1] for row in train_rows + test_rows],
        split=split,
        drop_unlabelled=drop_unlabelled,
        sparse_text=False,
        source={
            "files": [str(features), str(root / train_list), str(root / test_list)],
            "layout": "wikipedia features (raw_features.mat)",
        },
    )


def _dense(view: View) -> View:
    from .views import DenseView

    return DenseView(np.asarray(view.to_numpy()), view.source, check=False)
