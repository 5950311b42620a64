"""Cross-modal datasets from named arrays in HDF5, MATLAB (v5 and v7.3) and ``.npz`` files.

:func:`load_array_files` is the engine behind the DCMH-family loaders of
:mod:`ddcmh_core.data.loaders`: it finds the image view, the text view and the labels by their
usual keys (``IAll``/``YAll``/``LAll``, ``images``/``tags``/``labels``, one file per key as in
``mirflickr25k-yall.mat``, the pre-split ``I_tr``/``I_te``/``I_db`` files, UCCH's
``VDatabase``/``VTest``), as raw images inside the file, image file names beside it, or
pre-extracted image features (``XAll``). :func:`~ddcmh_core.data.loaders.load_generic` reads
users' own files with it.

Common options
--------------
image : {"auto", "raw", "features", "paths", "none"}
    Which image view to use: raw pixels stored in the file, pre-extracted features, image files
    named in the file, or none (a partial dataset: text and labels only). ``"auto"`` takes the
    first available in that order.
text : {"auto", "features", "raw", "none"}
    Text features stored in the file (bag-of-words, tags), raw strings featurised by a
    :class:`~ddcmh_core.data.text.TextFeaturizer` fitted on the training items, or none.
image_key, text_key, labels_key : str
    Use these keys (``"key"`` or ``"file.mat:key"``) instead of the usual names.
protocol, seed, n_query, n_train
    The split (see :func:`~ddcmh_core.data.split.make_split`); by default the dataset's standard
    protocol with seed 0.
drop_unlabelled : bool
    Remove items without any label before splitting (they are otherwise reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from .build import build_dataset
from .dataset import CrossModalDataset, SkippedItem
from .errors import DatasetError, MissingFilesError
from .formats import ArrayEntry, ArrayFile, open_array_file
from .image_file_view import ImageFileView
from .split import STANDARD_PROTOCOLS, Split, SplitProtocol
from .text import TextFeaturizerParams
from .views import ConcatView, View

ImageChoice = Literal["auto", "raw", "features", "paths", "none"]
TextChoice = Literal["auto", "features", "raw", "none"]

IMAGE_KEYS = (
    "images", "IAll", "I", "image", "imgs", "img", "XAll", "X", "image_features", "img_feats",
    "FAll", "image_paths", "paths", "index", "all_imgs",
)  # fmt: skip
"""Usual names of the image view, in order of preference (raw, features or file names)."""
TEXT_KEYS = ("YAll", "tags", "T", "text", "texts", "Y", "tag", "caption", "captions", "all_tags")
"""Usual names of the text view (features or raw strings)."""
LABEL_KEYS = ("LAll", "labels", "L", "label", "category", "categories", "all_labels")
"""Usual names of the label matrix."""
SPLIT_KEYS = {
    "train": ("train_idx", "idx_train", "train_indices", "split/train"),
    "query": ("query_idx", "idx_query", "query_indices", "test_idx", "idx_test", "split/query"),
    "database": (
        "database_idx", "db_idx", "idx_database", "retrieval_idx", "database_indices", "split/database",
    ),
}  # fmt: skip
"""Keys of 0-based split index arrays stored next to the data (generic files)."""
PRESPLIT_LAYOUTS: tuple[tuple[str, dict[str, tuple[str, str, str]]], ...] = (
    (
        "pre-split (I_tr/I_te/I_db)",
        {
            "train": ("I_tr", "T_tr", "L_tr"),
            "query": ("I_te", "T_te", "L_te"),
            "database": ("I_db", "T_db", "L_db"),
        },
    ),
    (
        "pre-split (VDatabase/VTest)",
        {"database": ("VDatabase", "YDatabase", "databaseL"), "query": ("VTest", "YTest", "testL")},
    ),
)
"""Files that carry their own split: per part, the (image, text, labels) keys."""
ARRAY_SUFFIXES = (".mat", ".h5", ".hdf5", ".h5py", ".he5", ".npz")


# ---------------------------------------------------------------------------------- key lookup
class KeyIndex:
    """The named arrays of several files, looked up by key (``"key"`` or ``"file:key"``)."""

    def __init__(self, files: Sequence[ArrayFile]) -> None:
        self.files = list(files)
        self.by_key: dict[str, list[tuple[ArrayFile, ArrayEntry]]] = {}
        for array_file in self.files:
            for key, entry in array_file.entries().items():
                self.by_key.setdefault(key, []).append((array_file, entry))
        self._lower: dict[str, str] = {}
        for key in self.by_key:
            self._lower.setdefault(key.lower(), key)

    def listing(self) -> str:
        """``file: key (shape dtype), ...`` for error messages."""
        parts = []
        for array_file in self.files:
            shown = ", ".join(
                f"{entry.key} ({'x'.join(map(str, entry.shape))} {entry.dtype})"
                for entry in array_file.entries().values()
            )
            parts.append(f"{array_file.path.name}: {shown or 'no arrays'}")
        return "; ".join(parts)

    def lookup(self, key: str) -> tuple[ArrayFile, ArrayEntry] | None:
        """The array called ``key`` (exact name first, then case-insensitive), or None."""
        if ":" in key:
            file_name, _, inner = key.rpartition(":")
            for array_file in self.files:
                if array_file.path.name == file_name or str(array_file.path) == file_name:
                    return array_file, array_file.entry(inner)
            raise DatasetError(
                f"key {key!r}: no file named {file_name!r} among {[f.path.name for f in self.files]}"
            )
        found = self.by_key.get(key) or self.by_key.get(self._lower.get(key.lower(), ""), [])
        if not found:
            return None
        if len(found) > 1:
            raise DatasetError(
                f"key {key!r} is in several files ({', '.join(str(f.path) for f, _ in found)}); "
                f"name the one to use as 'file:key', e.g. '{found[0][0].path.name}:{key}'"
            )
        return found[0]

    def require(self, key: str, role: str) -> tuple[ArrayFile, ArrayEntry]:
        """Like :meth:`lookup`, but a missing key is an error naming the role and the keys found."""
        found = self.lookup(key)
        if found is None:
            raise DatasetError(
                f"{role}: key {key!r} not found; the files hold: {self.listing() or 'nothing'}"
            )
        return found

    def first(
        self, candidates: Sequence[str], kinds: Sequence[str], *, min_ndim: int = 0, max_ndim: int = 99
    ) -> tuple[ArrayFile, ArrayEntry] | None:
        """The first candidate key present with one of ``kinds`` and a fitting number of axes."""
        for key in candidates:
            found = self.lookup(key)
            if found is None:
                continue
            entry = found[1]
            if entry.kind in kinds and min_ndim <= len(entry.shape) <= max_ndim:
                return found
        return None


def _n_along(entry: ArrayEntry) -> tuple[int, ...]:
    """Possible item counts of an array: first and last axes (strings: their total count)."""
    if entry.kind == "strings":
        return (int(np.prod(entry.shape)),)
    if not entry.shape:
        return ()
    return (entry.shape[0], entry.shape[-1])


def _dense_array(value: Any) -> np.ndarray:
    return np.asarray(value.toarray()) if sp.issparse(value) else np.asarray(value)


def _where(found: tuple[ArrayFile, ArrayEntry]) -> str:
    return f"{found[0].path}:{found[1].key}"


def _resolve_count(
    labels: tuple[ArrayFile, ArrayEntry], others: dict[str, tuple[ArrayFile, ArrayEntry]]
) -> tuple[int, bool]:
    """Number of items, and whether the label matrix is stored transposed (classes x items)."""
    shape = labels[1].shape
    candidates = [(shape[0], False)]
    if len(shape) == 2 and shape[1] != shape[0]:
        candidates.append((shape[1], True))
    for count, transposed in candidates:
        if all(count in _n_along(found[1]) for found in others.values()):
            return count, transposed
    detail = "; ".join(
        [f"labels {_where(labels)} has shape {shape}"]
        + [f"{role} {_where(found)} has shape {found[1].shape}" for role, found in others.items()]
    )
    raise DatasetError(f"views disagree on the number of items: {detail}")


def _image_paths(
    names: Sequence[str], root: Path, on_missing: str, what: str
) -> tuple[list[Path], np.ndarray, list[SkippedItem]]:
    paths = []
    keep = []
    skipped = []
    for row, name in enumerate(names):
        path = Path(name.strip())
        if not path.is_absolute():
            path = root / path
        paths.append(path)
        if path.is_file():
            keep.append(row)
        else:
            skipped.append(
                SkippedItem(item=str(row), reason="image file missing", path=str(path), list_file=what)
            )
    if skipped and on_missing == "error":
        raise DatasetError(
            f"{what}: {len(skipped)} of {len(names)} image files are missing (first: row "
            f"{skipped[0].item}, {skipped[0].path}); pass on_missing_image='skip' to leave them out"
        )
    return paths, np.asarray(keep, dtype=np.int64), skipped


# ---------------------------------------------------------------------------------- core loader
def _stored_split(index: KeyIndex, n_items: int) -> Split | None:
    parts: dict[str, np.ndarray] = {}
    for part, candidates in SPLIT_KEYS.items():
        for key in candidates:
            found = index.lookup(key)
            if found is not None:
                values = np.asarray(found[0].array(found[1].key)).ravel()
                if values.size and not np.all(values == np.round(values)):
                    raise DatasetError(f"{_where(found)}: expected integer item indices, got {values.dtype}")
                parts[part] = values.astype(np.int64)
                break
    if not parts:
        return None
    if "query" not in parts or "train" not in parts:
        raise DatasetError(
            f"split stored in the file: expected at least train and query index arrays "
            f"(keys {SPLIT_KEYS['train'][0]!r}, {SPLIT_KEYS['query'][0]!r}), got {sorted(parts)}"
        )
    if "database" not in parts:
        parts["database"] = np.setdiff1d(np.arange(n_items), parts["query"])
    try:
        return Split(
            train=parts["train"],
            query=parts["query"],
            database=parts["database"],
            protocol="stored in file",
            n_items=n_items,
        )
    except DatasetError as exc:
        raise DatasetError(f"{exc} (split indices stored in the file must be 0-based)") from exc


def _load_presplit(
    index: KeyIndex,
    layout_name: str,
    layout: dict[str, tuple[str, str, str]],
    *,
    name: str,
    image: str,
    protocol: str | SplitProtocol | None,
    seed: int,
    n_train: int | None,
    options: dict[str, Any],
) -> CrossModalDataset:
    """A dataset from files that carry their own split (one of :data:`PRESPLIT_LAYOUTS`)."""
    parts = _read_presplit_parts(index, layout_name, layout, name=name, with_image=image != "none")
    return build_dataset(
        name=name,
        labels=parts.labels,
        image=ConcatView(parts.image) if parts.image else None,
        text=ConcatView(parts.text),
        split=_presplit_split(parts, layout_name, name=name, protocol=protocol, seed=seed, n_train=n_train),
        source={"files": [str(f.path) for f in index.files], "layout": layout_name, **options},
        labels_source=f"{name}: labels",
    )


@dataclass
class _PresplitParts:
    """The parts of a pre-split layout, stacked in the layout's order."""

    image: list[View]
    text: list[View]
    labels: np.ndarray
    rows: dict[str, np.ndarray]
    """Per part (``"train"``, ``"query"``, ``"database"``), its rows in the stacked dataset."""

    @property
    def n_items(self) -> int:
        """Rows of all parts together."""
        return len(self.labels)


def _read_presplit_parts(
    index: KeyIndex, layout_name: str, layout: dict[str, tuple[str, str, str]], *, name: str, with_image: bool
) -> _PresplitParts:
    """Each part's views and labels, with their counts checked against each other."""
    image_parts: list[View] = []
    text_parts: list[View] = []
    label_parts = []
    rows = {}
    start = 0
    for part, (image_key, text_key, labels_key) in layout.items():
        labels_found = index.require(labels_key, f"{layout_name} labels of {part}")
        text_found = index.require(text_key, f"{layout_name} text of {part}")
        others = {"text": text_found}
        image_found = None
        if with_image:
            image_found = index.require(image_key, f"{layout_name} image of {part}")
            others["image"] = image_found
        count, transposed = _resolve_count(labels_found, others)
        labels = _dense_array(labels_found[0].array(labels_found[1].key))
        label_parts.append(labels.T if transposed else labels)
        text_parts.append(text_found[0].view(text_key, count))
        if image_found is not None:
            image_parts.append(image_found[0].view(image_key, count))
        rows[part] = np.arange(start, start + count)
        start += count
    try:
        labels_all = np.concatenate(label_parts)
    except ValueError as exc:
        raise DatasetError(
            f"{name}: {layout_name}: the label parts have incompatible shapes "
            f"{[p.shape for p in label_parts]}"
        ) from exc
    return _PresplitParts(image_parts, text_parts, labels_all, rows)


def _presplit_split(
    parts: _PresplitParts,
    layout_name: str,
    *,
    name: str,
    protocol: str | SplitProtocol | None,
    seed: int,
    n_train: int | None,
) -> Split:
    """The stored split; without a training part, a seeded draw of ``n_train`` database rows."""
    rows = parts.rows
    if "train" in rows:
        return Split(
            train=rows["train"],
            query=rows["query"],
            database=rows["database"],
            protocol=layout_name,
            n_items=parts.n_items,
        )
    base = protocol if isinstance(protocol, SplitProtocol) else STANDARD_PROTOCOLS.get(str(protocol or name))
    wanted = n_train or (base.n_train if base is not None else None)
    database = rows["database"]
    if wanted is not None and wanted > database.size:
        raise DatasetError(f"{name}: n_train={wanted} but the database part has only {database.size} items")
    rng = np.random.default_rng(seed)
    train = database if wanted is None else rng.choice(database, size=wanted, replace=False)
    return Split(
        train=train,
        query=rows["query"],
        database=database,
        protocol=f"{layout_name}, train drawn from database",
        seed=seed,
        n_items=parts.n_items,
    )


def _presplit_layout(index: KeyIndex) -> tuple[str, dict[str, tuple[str, str, str]]] | None:
    """The first of :data:`PRESPLIT_LAYOUTS` whose label and text keys are all in the files."""
    for layout_name, layout in PRESPLIT_LAYOUTS:
        keys = [key for triple in layout.values() for key in triple]
        if all(index.lookup(k) is not None for k in keys if k not in {t[0] for t in layout.values()}):
            return layout_name, layout
    return None


def _find_labels(index: KeyIndex, labels_key: str | None, name: str) -> tuple[ArrayFile, ArrayEntry]:
    """The label matrix: ``labels_key``, or the first of :data:`LABEL_KEYS` present."""
    if labels_key is not None:
        return index.require(labels_key, "labels")
    found = index.first(LABEL_KEYS, ("numeric", "sparse"), max_ndim=2)
    if found is None:
        raise DatasetError(
            f"{name}: no label matrix found: expected one of the keys {', '.join(LABEL_KEYS)}; "
            f"the files hold: {index.listing()} (name it with labels_key=...)"
        )
    return found


def _find_text(
    index: KeyIndex, text: TextChoice, text_key: str | None, name: str
) -> tuple[ArrayFile, ArrayEntry] | None:
    """The text view asked for (None with ``text="none"``).

    ``text_key``, or the first of :data:`TEXT_KEYS` of a fitting kind; with ``text="auto"``,
    features before raw strings.
    """
    if text == "none":
        return None
    if text_key is not None:
        return index.require(text_key, "text")
    kinds = {
        "auto": ("numeric", "sparse", "strings"),
        "features": ("numeric", "sparse"),
        "raw": ("strings",),
    }
    preferred = index.first(TEXT_KEYS, ("numeric", "sparse")) if text == "auto" else None
    found = preferred or index.first(TEXT_KEYS, kinds[text])
    if found is None:
        raise DatasetError(
            f"{name}: no {'' if text == 'auto' else text + ' '}text view found: expected one "
            f"of the keys {', '.join(TEXT_KEYS)}; the files hold: {index.listing()} "
            "(name it with text_key=..., or pass text='none')"
        )
    return found


def _first_image_view(
    index: KeyIndex, image: ImageChoice, image_root: str | Path | None
) -> tuple[tuple[ArrayFile, ArrayEntry] | None, str, str]:
    """The first image view of the kinds asked for, its kind, and a hint for when there is none.

    With ``image="auto"``: raw images, else features, else file names of which one of the first
    20 exists (under ``image_root``, default the file's folder).
    """
    raw = index.first(IMAGE_KEYS, ("numeric",), min_ndim=3)
    features = index.first(IMAGE_KEYS, ("numeric", "sparse"), max_ndim=2)
    names_found = index.first(IMAGE_KEYS, ("strings",))
    order = ["raw", "features", "paths"] if image == "auto" else [image]
    options_found = {"raw": raw, "features": features, "paths": names_found}
    hint = ""
    for kind in order:
        candidate = options_found[kind]
        if candidate is None:
            continue
        if kind == "paths" and image == "auto":
            root = Path(image_root) if image_root else candidate[0].path.parent
            first_names = candidate[0].strings(candidate[1].key)[:20]
            if not any((root / n.strip()).is_file() for n in first_names):
                hint = (
                    f" Image file names are listed in {_where(candidate)}, but none of the "
                    f"first files exists under {root} (set image_root=...)."
                )
                continue
        return candidate, kind, hint
    return None, "none", hint


def _find_image(
    index: KeyIndex,
    image: ImageChoice,
    image_key: str | None,
    image_root: str | Path | None,
    *,
    name: str,
    searched: Path | None,
    missing_image_hint: str,
) -> tuple[tuple[ArrayFile, ArrayEntry] | None, str]:
    """The image view asked for and its kind (``"raw"``, ``"features"`` or ``"paths"``).

    ``image_key``, or the first view found by :func:`_first_image_view`; ``(None, "none")`` with
    ``image="none"``.

    Raises
    ------
    MissingFilesError
        No image view of the kinds asked for.
    """
    if image == "none":
        return None, "none"
    if image_key is not None:
        found = index.require(image_key, "image")
        entry = found[1]
        return found, (
            "paths" if entry.kind == "strings" else ("raw" if len(entry.shape) >= 3 else "features")
        )
    image_found, image_kind, image_hint = _first_image_view(index, image, image_root)
    if image_found is None:
        raise MissingFilesError(
            f"{name}: no {'' if image == 'auto' else image + ' '}image view found: expected raw "
            f"images or image features (keys {', '.join(IMAGE_KEYS)}) or image file names; the "
            f"files hold: {index.listing()}.{image_hint}{missing_image_hint} Pass image='none' to "
            "load the text view and the labels only.",
            dataset=name,
            searched=searched,
            missing=["image view"],
        )
    return image_found, image_kind


def _item_labels(
    labels_found: tuple[ArrayFile, ArrayEntry], others: dict[str, tuple[ArrayFile, ArrayEntry] | None]
) -> tuple[np.ndarray, int]:
    """The (items x labels) matrix, and the number of items the views agree on."""
    count, transposed = _resolve_count(
        labels_found, {role: found for role, found in others.items() if found is not None}
    )
    labels = _dense_array(labels_found[0].array(labels_found[1].key))
    return (labels.T if transposed else labels), count


def _text_view(
    text_found: tuple[ArrayFile, ArrayEntry] | None, count: int
) -> tuple[list[str] | None, View | None]:
    """Raw strings or a feature view of the text (neither without a text view)."""
    if text_found is None:
        return None, None
    if text_found[1].kind == "strings":
        return text_found[0].strings(text_found[1].key), None
    return None, text_found[0].view(text_found[1].key, count)


def _image_view(
    image_found: tuple[ArrayFile, ArrayEntry] | None,
    image_kind: str,
    count: int,
    *,
    image_root: str | Path | None,
    image_size: tuple[int, int] | None,
    on_missing_image: str,
) -> tuple[View | None, np.ndarray | None, list[SkippedItem]]:
    """The image view, the rows whose image file exists (file names only) and the skipped rows."""
    if image_found is None:
        return None, None, []
    if image_kind != "paths":
        return image_found[0].view(image_found[1].key, count), None, []
    names = image_found[0].strings(image_found[1].key)
    root = Path(image_root) if image_root else image_found[0].path.parent
    image_paths, keep, skipped = _image_paths(names, root, on_missing_image, _where(image_found))
    return ImageFileView(image_paths, size=image_size, source=_where(image_found)), keep, skipped


def load_array_files(
    files: Sequence[str | Path],
    *,
    name: str,
    image: ImageChoice = "auto",
    text: TextChoice = "auto",
    image_key: str | None = None,
    text_key: str | None = None,
    labels_key: str | None = None,
    image_root: str | Path | None = None,
    image_size: tuple[int, int] | None = None,
    on_missing_image: Literal["skip", "error"] = "skip",
    protocol: str | SplitProtocol | None = None,
    seed: int = 0,
    n_query: int | None = None,
    n_train: int | None = None,
    text_features: TextFeaturizerParams | dict[str, Any] | None = None,
    drop_unlabelled: bool = False,
    sparse_text: bool | Literal["auto"] = "auto",
    missing_image_hint: str = "",
) -> CrossModalDataset:
    """Load a dataset from array files (``.mat`` v5/v7.3, HDF5, ``.npz``, ``.txt`` lists).

    The keys of all files are pooled; each role (image, text, labels) is the first usual key
    present (:data:`IMAGE_KEYS`, :data:`TEXT_KEYS`, :data:`LABEL_KEYS`) unless a key is given.
    Files that carry their own split (:data:`PRESPLIT_LAYOUTS`, or index arrays named as in
    :data:`SPLIT_KEYS`) keep it; otherwise a split is drawn under ``protocol`` (see the module
    docstring for the options).

    Raises
    ------
    DatasetError
        Unknown format, missing or misnamed keys (the message lists the keys found), views whose
        item counts disagree, labels outside {0,1}, NaN/inf features, ...
    MissingFilesError
        When no image view is found and ``image`` is not ``"none"``.
    """
    paths = [Path(f) for f in files]
    index = KeyIndex([open_array_file(p) for p in paths])
    options = {"image": image, "text": text}
    if image_key is None and text_key is None and labels_key is None:
        presplit = _presplit_layout(index)
        if presplit is not None:
            return _load_presplit(
                index, *presplit, name=name, image=image, protocol=protocol, seed=seed, n_train=n_train,
                options=options,
            )  # fmt: skip
    labels_found = _find_labels(index, labels_key, name)
    text_found = _find_text(index, text, text_key, name)
    image_found, image_kind = _find_image(
        index, image, image_key, image_root, name=name, searched=paths[0].parent if paths else None,
        missing_image_hint=missing_image_hint,
    )  # fmt: skip
    labels, count = _item_labels(labels_found, {"text": text_found, "image": image_found})
    texts, text_view = _text_view(text_found, count)
    image_view, keep, skipped = _image_view(
        image_found, image_kind, count, image_root=image_root, image_size=image_size,
        on_missing_image=on_missing_image,
    )  # fmt: skip
    split = _stored_split(index, count)
    used = {
        role: _where(found)
        for role, found in (("image", image_found), ("text", text_found), ("labels", labels_found))
        if found is not None
    }
    return build_dataset(
        name=name,
        labels=labels,
        image=image_view,
        text=text_view,
        texts=texts,
        split=split,
        protocol=protocol,
        seed=seed,
        n_query=n_query,
        n_train=n_train,
        keep=keep if skipped else None,
        skipped=skipped,
        text_features=text_features,
        drop_unlabelled=drop_unlabelled,
        sparse_text=sparse_text,
        labels_source=used["labels"],
        source={
            "files": [str(p) for p in paths],
            "formats": {f.path.name: f.format for f in index.files},
            "keys": used,
            "image_kind": image_kind,
            "missing_view_hint": "reload with image='auto' once the image files are available",
            **options,
        },
    )


# ---------------------------------------------------------------------------------- generic files
