"""The dataset abstraction every other part of ddcmh consumes.

A :class:`CrossModalDataset` has two views (``image`` and ``text`` — or any two modalities), a
multi-hot ``{0,1}`` label matrix, and a :class:`~ddcmh_core.data.split.Split` into train / query /
database. It carries a :class:`DatasetFingerprint` (sizes plus a content hash) that runs record.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import DatasetError, DatasetWarning
from .split import Split, make_split
from .text import TextFeaturizer
from .views import SparseView, View, as_view


def label_matrix(
    values: Any,
    *,
    source: str,
    n_items: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Turn stored labels into a C-contiguous ``uint8`` multi-hot matrix.

    Parameters
    ----------
    values : array-like or sparse
        Either a ``{0,1}`` matrix ``(n, c)`` (multi-hot), or class ids: a 1-D vector or an
        ``(n, 1)`` column of integers that are not all 0/1. Class ids become one-hot columns, one
        per distinct id in increasing order.
    source : str
        ``"file:key"``, for messages.
    n_items : int, optional
        Required number of rows.
    class_names : tuple of str, optional
        Names of the columns (checked against their number).

    Returns
    -------
    (labels, names)
        The matrix and the column names (the class ids as strings when none were given).

    Raises
    ------
    DatasetError
        Non-numeric, NaN, a wrong number of rows, or values other than 0 and 1 in a matrix
        (naming the first bad row and value).
    """
    if sp.issparse(values):
        values = values.toarray()
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DatasetError(f"{source}: expected numeric labels, got dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 1 and not np.isin(array, (0, 1)).all():
        array = array[:, 0]
    if array.ndim == 1:
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            bad = int(np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))[0])
            raise DatasetError(f"{source}: row {bad}: expected an integer class id, got {array[bad]}")
        ids, inverse = np.unique(array.astype(np.int64), return_inverse=True)
        matrix = np.zeros((array.shape[0], ids.shape[0]), dtype=np.uint8)
        matrix[np.arange(array.shape[0]), inverse] = 1
        names = class_names or tuple(str(i) for i in ids)
    elif array.ndim == 2:
        valid = (array == 0) | (array == 1)
        if not valid.all():
            row, column = (int(x[0]) for x in np.nonzero(~valid))
            raise DatasetError(
                f"{source}: row {row}, column {column}: expected labels in {{0, 1}} (multi-hot), "
                f"got {array[row, column]}"
            )
        matrix = np.ascontiguousarray(array, dtype=np.uint8)
        names = class_names or tuple(str(i) for i in range(matrix.shape[1]))
    else:
        raise DatasetError(
            f"{source}: expected a label matrix (n, classes) or a vector of class ids, got shape "
            f"{array.shape}"
        )
    if n_items is not None and matrix.shape[0] != n_items:
        raise DatasetError(f"{source}: expected {n_items} label rows, got {matrix.shape[0]}")
    if matrix.shape[1] == 0:
        raise DatasetError(f"{source}: expected at least one label column, got 0")
    if len(names) != matrix.shape[1]:
        raise DatasetError(f"{source}: {len(names)} class names for {matrix.shape[1]} label columns")
    return matrix, tuple(names)


@dataclass(frozen=True)
class DatasetFingerprint:
    """Sizes plus a content hash of a dataset, recorded by every run.

    Attributes
    ----------
    name : str
        The dataset's name.
    n_items, n_labels : int
        Sizes.
    views : dict
        Per view: kind, shape, dtype.
    sha256 : str
        Hash over the labels and both views' contents (image files: names and sizes).
    """

    name: str
    n_items: int
    n_labels: int
    views: dict[str, dict[str, Any]]
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "n_items": self.n_items,
            "n_labels": self.n_labels,
            "views": self.views,
            "sha256": self.sha256,
        }

    def __str__(self) -> str:
        shapes = ", ".join(f"{k} {'x'.join(map(str, v['shape'][1:])) or '-'}" for k, v in self.views.items())
        return (
            f"{self.name}: {self.n_items} items, {self.n_labels} labels, {shapes}, sha256 {self.sha256[:16]}"
        )


@dataclass(frozen=True)
class SkippedItem:
    """An item a loader left out, and why (e.g. its image file is missing)."""

    item: str
    reason: str
    path: str = ""
    list_file: str = ""
    line: int = 0


@dataclass(eq=False)
class CrossModalDataset:
    """Two views, a ``{0,1}`` label matrix and a train / query / database split.

    Parameters
    ----------
    name : str
        Dataset name (``"mirflickr25k"``, or the file name for generic files).
    image : View or None
        First view ("image"). ``None`` only for a partial dataset loaded on purpose
        (``image="none"``), e.g. MIRFLICKR tags and labels without images.
    text : View or None
        Second view ("text").
    labels : ndarray (n_items, n_labels) uint8
        Multi-hot labels.
    split : Split
        Train / query / database (/ validation) indices; see :meth:`with_split`.
    label_names : tuple of str
        Column names of ``labels``.
    item_ids : tuple of str, optional
        An id per item (file names, list ids).
    texts : list of str, optional
        The raw texts when the text view was featurised from them.
    text_featurizer : TextFeaturizer, optional
        The featuriser that made the text view (fitted on ``split.train`` texts only).
    skipped : tuple of SkippedItem
        Items the loader left out, with reasons.
    source : dict
        Files, keys, format and loader options (JSON-ready), recorded with runs.
    view_names : (str, str)
        Names of the two views (default ``("image", "text")``).

    Notes
    -----
    Rows without any label are allowed at load time (a warning gives their number, and
    :attr:`unlabelled` their indices); :meth:`drop_unlabelled` removes them. The reconstruction
    step of DDCMH refuses them (METHOD.md §2 decision 4).
    """

    name: str
    image: View | None
    text: View | None
    labels: np.ndarray
    split: Split
    label_names: tuple[str, ...] = ()
    item_ids: tuple[str, ...] | None = None
    texts: list[str] | None = None
    text_featurizer: TextFeaturizer | None = None
    skipped: tuple[SkippedItem, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    view_names: tuple[str, str] = ("image", "text")

    def __post_init__(self) -> None:
        if self.image is not None:
            self.image = as_view(self.image, f"{self.name}: {self.view_names[0]}")
        if self.text is not None:
            self.text = as_view(self.text, f"{self.name}: {self.view_names[1]}")
        if self.image is None and self.text is None:
            raise DatasetError(f"{self.name}: expected at least one view, got none")
        labels, names = label_matrix(
            self.labels, source=f"{self.name}: labels", class_names=tuple(self.label_names) or None
        )
        self.labels = labels
        self.label_names = names
        n_items = labels.shape[0]
        counts = {"labels": n_items}
        for view_name, view in zip(self.view_names, (self.image, self.text), strict=True):
            if view is not None:
                counts[f"{view_name} ({view.source})"] = view.n_rows
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{k} has {v}" for k, v in counts.items())
            raise DatasetError(f"{self.name}: views and labels disagree on the number of items: {detail}")
        if self.item_ids is not None and len(self.item_ids) != n_items:
            raise DatasetError(f"{self.name}: item_ids: expected {n_items} ids, got {len(self.item_ids)}")
        if self.split.n_items is not None and self.split.n_items != n_items:
            raise DatasetError(
                f"{self.name}: the split refers to {self.split.n_items} items, the dataset has {n_items}"
            )
        if self.split.n_items is None:
            self.split = replace(self.split, n_items=n_items)
        if self.unlabelled.size:
            warnings.warn(
                f"{self.name}: {self.unlabelled.size} of {n_items} items have no label at all "
                f"(first: row {int(self.unlabelled[0])}); DDCMH's reconstruction refuses them: call "
                "dataset.drop_unlabelled() or load with drop_unlabelled=True",
                DatasetWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ sizes and views
    @property
    def n_items(self) -> int:
        """Number of items (rows of every view and of ``labels``)."""
        return int(self.labels.shape[0])

    @property
    def n_labels(self) -> int:
        """Number of label columns."""
        return int(self.labels.shape[1])

    @property
    def views(self) -> dict[str, View | None]:
        """``{view name: view}`` (a missing view is None)."""
        return dict(zip(self.view_names, (self.image, self.text), strict=True))

    @property
    def view_kinds(self) -> dict[str, str]:
        """``{view name: kind}`` with kinds ``dense``, ``sparse``, ``hdf5``, ``image-files``, ``missing``."""
        return {name: "missing" if view is None else view.kind for name, view in self.views.items()}

    @cached_property
    def unlabelled(self) -> np.ndarray:
        """Indices of the items without any label."""
        return np.flatnonzero(self.labels.sum(axis=1) == 0)

    def require_views(self, *names: str) -> None:
        """Raise :class:`DatasetError` if one of the named views (default: both) is missing."""
        for name in names or self.view_names:
            if self.views.get(name) is None:
                raise DatasetError(
                    f"{self.name}: the {name} view is missing (loaded as a partial dataset); "
                    f"{self.source.get('missing_view_hint', 'load it with both views')}"
                )

    # ------------------------------------------------------------------ derived datasets
    def subset(self, rows: Any, *, name: str | None = None) -> CrossModalDataset:
        """The dataset restricted to ``rows`` (in that order); the split is renumbered."""
        from .views import row_indices

        index = row_indices(rows, self.n_items, source=self.name)
        return CrossModalDataset(
            name=name or self.name,
            image=None if self.image is None else self.image.select(index),
            text=None if self.text is None else self.text.select(index),
            labels=self.labels[index],
            split=self.split.restrict(index),
            label_names=self.label_names,
            item_ids=None if self.item_ids is None else tuple(self.item_ids[i] for i in index),
            texts=None if self.texts is None else [self.texts[i] for i in index],
            text_featurizer=self.text_featurizer,
            skipped=self.skipped,
            source=dict(self.source),
            view_names=self.view_names,
        )

    def drop_unlabelled(self) -> CrossModalDataset:
        """The dataset without its unlabelled items; ``source["dropped_unlabelled"]`` says how many."""
        if not self.unlabelled.size:
            return self
        kept = np.setdiff1d(np.arange(self.n_items), self.unlabelled)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)
            result = self.subset(kept)
        result.source["dropped_unlabelled"] = int(self.unlabelled.size)
        return result

    def with_split(self, split: Split, *, refit_text: bool = True) -> CrossModalDataset:
        """The same data with another split.

        When the text view was featurised from raw texts, the featuriser is fitted again on the
        new split's training texts (``refit_text=True``), so no query text leaks into it.
        """
        text = self.text
        featurizer = self.text_featurizer
        if refit_text and self.texts is not None and featurizer is not None:
            featurizer = TextFeaturizer(featurizer.params)
            featurizer.fit([self.texts[i] for i in split.train])
            text = SparseView(featurizer.transform(self.texts), f"{self.name}: text (featurised)")
        result = replace(self, split=split, text=text, text_featurizer=featurizer)
        result.__dict__.pop("fingerprint", None)
        return result

    def resplit(self, protocol: Any = None, *, seed: int = 0, **options: Any) -> CrossModalDataset:
        """:func:`~ddcmh_core.data.make_split` on this dataset, then :meth:`with_split`."""
        return self.with_split(make_split(self, protocol, seed=seed, **options))

    # ------------------------------------------------------------------ provenance
    @cached_property
    def fingerprint(self) -> DatasetFingerprint:
        """Sizes plus a sha256 of the labels and both views (computed once, streaming)."""
        digest = hashlib.sha256()
        digest.update(f"labels|{self.labels.shape}".encode())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        views: dict[str, dict[str, Any]] = {}
        for name, view in self.views.items():
            digest.update(f"|view {name}|".encode())
            if view is None:
                views[name] = {"kind": "missing", "shape": [self.n_items], "dtype": ""}
                continue
            view.update_hash(digest)
            views[name] = {"kind": view.kind, "shape": list(view.shape), "dtype": str(view.dtype)}
        return DatasetFingerprint(
            name=self.name,
            n_items=self.n_items,
            n_labels=self.n_labels,
            views=views,
            sha256=digest.hexdigest(),
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for run files: name, sizes, views, split, source, skipped count."""
        return {
            "name": self.name,
            "n_items": self.n_items,
            "n_labels": self.n_labels,
            "label_names": list(self.label_names),
            "views": {name: None if view is None else view.describe() for name, view in self.views.items()},
            "split": self.split.to_dict(),
            "n_unlabelled": int(self.unlabelled.size),
            "n_skipped": len(self.skipped),
            "text_featurizer": None
            if self.text_featurizer is None
            else self.text_featurizer.params.model_dump(mode="json"),
            "source": self.source,
        }

    def save_split(self, path: str | Path) -> Path:
        """Write :attr:`split` with this dataset's fingerprint (see :meth:`Split.save`)."""
        return self.split.save(path, dataset_fingerprint=self.fingerprint.sha256)

    def __repr__(self) -> str:
        kinds = ", ".join(
            f"{name}={'missing' if view is None else f'{view.kind}{view.shape}'}"
            for name, view in self.views.items()
        )
        return (
            f"CrossModalDataset({self.name!r}, n_items={self.n_items}, n_labels={self.n_labels}, "
            f"{kinds}, split={self.split!r})"
        )
