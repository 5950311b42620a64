"""Shared last step of every loader: filter rows, draw or restrict the split, featurise raw texts."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .dataset import CrossModalDataset, SkippedItem, label_matrix
from .errors import DatasetError, DatasetWarning
from .split import Split, SplitProtocol, make_split
from .text import TextFeaturizer, TextFeaturizerParams
from .views import DenseView, SparseView, View


def dense_to_csr(array: np.ndarray) -> sp.csr_matrix:
    """CSR copy of a dense 2-D array in one pass over the data (faster than via COO).

    A Fortran-ordered array (what ``scipy.io.loadmat`` returns) is read in its own memory order
    (as the CSC form of the matrix), so it is never copied densely.
    """
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        transposed = dense_to_csr(array.T)
        return sp.csr_matrix(
            sp.csc_matrix((transposed.data, transposed.indices, transposed.indptr), shape=array.shape)
        )
    array = np.ascontiguousarray(array)
    n_rows, n_cols = array.shape
    flat = np.flatnonzero(array)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat // max(n_cols, 1), minlength=n_rows), out=indptr[1:])
    index_type = np.int32 if max(n_cols, flat.size) < 2**31 else np.int64
    return sp.csr_matrix(
        (array.reshape(-1)[flat], (flat % max(n_cols, 1)).astype(index_type), indptr.astype(index_type)),
        shape=array.shape,
    )


def maybe_sparse(view: View | None, sparse_text: bool | str) -> View | None:
    """Turn an in-memory dense 2-D view into CSR when asked (or, for "auto", when < 5 % non-zero)."""
    if view is None or not isinstance(view, DenseView) or view.array.ndim != 2:
        return view
    if sparse_text == "auto":
        density = np.count_nonzero(view.array) / max(1, view.array.size)
        convert = bool(density < 0.05)
    else:
        convert = bool(sparse_text)
    if not convert:
        return view
    return SparseView(dense_to_csr(view.array), view.source, check=False)


def generic_protocol(n_items: int) -> SplitProtocol:
    """The split protocol of users' files that carry no split of their own.

    10 % queries (at most 2,000), at most 10,000 training items, and all non-query items as the
    database (DCMH-like).
    """
    n_query = min(2000, max(1, n_items // 10))
    n_train = min(10000, max(1, n_items - n_query))
    return SplitProtocol(
        name="generic-random",
        n_query=n_query,
        n_train=n_train,
        source="ddcmh default for files without a split: 10% queries (at most 2,000), at most "
        "10,000 training items, database = all non-query items",
    )


def build_dataset(
    *,
    name: str,
    labels: Any,
    image: View | None,
    text: View | None,
    texts: Sequence[str] | None = None,
    label_names: tuple[str, ...] | None = None,
    item_ids: Sequence[str] | None = None,
    split: Split | None = None,
    protocol: str | SplitProtocol | None = None,
    seed: int = 0,
    n_query: int | None = None,
    n_train: int | None = None,
    keep: np.ndarray | None = None,
    skipped: Sequence[SkippedItem] = (),
    text_features: TextFeaturizerParams | dict[str, Any] | None = None,
    drop_unlabelled: bool = False,
    sparse_text: bool | str = "auto",
    source: dict[str, Any] | None = None,
    labels_source: str = "labels",
) -> CrossModalDataset:
    """Assemble a :class:`CrossModalDataset` from resolved parts.

    Rows not in ``keep`` (and, with ``drop_unlabelled``, rows without labels) are removed first;
    then a fixed ``split`` is renumbered, or a split is drawn under ``protocol`` with ``seed``;
    then raw ``texts`` (when there is no text view) are featurised with a
    :class:`TextFeaturizer` fitted on the training texts only.
    """
    source = dict(source or {})
    matrix, names = label_matrix(labels, source=labels_source, class_names=label_names)
    n_items = matrix.shape[0]
    rows = np.arange(n_items) if keep is None else np.asarray(keep, dtype=np.int64)
    if drop_unlabelled:
        labelled = matrix[rows].sum(axis=1) > 0
        dropped = int((~labelled).sum())
        if dropped:
            rows = rows[labelled]
            source["dropped_unlabelled"] = dropped
    if rows.size == 0:
        raise DatasetError(f"{name}: no item left to load (all were skipped)")
    filtered = rows.size != n_items or not np.array_equal(rows, np.arange(n_items))
    if filtered:
        matrix = matrix[rows]
        image = None if image is None else image.select(rows)
        text = None if text is None else text.select(rows)
        texts = None if texts is None else [texts[i] for i in rows]
        item_ids = None if item_ids is None else [item_ids[i] for i in rows]
        if split is not None:
            split = split.restrict(rows)
    if split is None:
        if protocol is None and n_query is None:
            protocol = generic_protocol(matrix.shape[0])
        split = make_split(matrix, protocol, seed=seed, n_query=n_query, n_train=n_train)
    featurizer = None
    if text is None and texts is not None:
        featurizer = TextFeaturizer(text_features)
        featurizer.fit([texts[i] for i in split.train])
        text = SparseView(featurizer.transform(texts), f"{name}: text (featurised raw texts)")
        source["text_featurizer"] = {
            "analyzer": featurizer.analyzer_,
            "n_terms": featurizer.n_features,
            "fitted_on": "train",
        }
    text = maybe_sparse(text, sparse_text)
    if skipped:
        first = skipped[0]
        warnings.warn(
            f"{name}: skipped {len(skipped)} listed items ({first.reason}; first: item {first.item}"
            f"{' -> ' + first.path if first.path else ''}); see dataset.skipped",
            DatasetWarning,
            stacklevel=3,
        )
    return CrossModalDataset(
        name=name,
        image=image,
        text=text,
        labels=matrix,
        split=split,
        label_names=names,
        item_ids=None if item_ids is None else tuple(item_ids),
        texts=None if texts is None else list(texts),
        text_featurizer=featurizer,
        skipped=tuple(skipped),
        source=source,
    )
