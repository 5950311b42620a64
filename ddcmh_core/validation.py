"""Input validation shared by hashers and the engine.

Each function returns a clean array (float64 features, uint8 label matrices) or raises
:class:`~ddcmh_core.errors.InputError` with a message of the form
``"<owner>: argument '<name>': expected ..., got ..."``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp

from .errors import InputError

FeatureMatrix: TypeAlias = np.ndarray | sp.csr_matrix

MAX_MAGNITUDE = 1e15
"""Largest accepted absolute feature value. Beyond it, values are no meaningful features: they
overflow the float32 arithmetic of the networks (squares, sums of squares) and the hashers' Gram
matrices, and every code would come out as garbage."""


def _fail(owner: str, argument: str, message: str) -> InputError:
    return InputError(f"{owner}: argument {argument!r}: {message}")


def out_of_range(values: np.ndarray) -> np.ndarray:
    """Mask of the entries that are NaN, infinite or larger in magnitude than :data:`MAX_MAGNITUDE`."""
    with np.errstate(invalid="ignore"):
        return ~(np.abs(values) <= MAX_MAGNITUDE)


def check_numeric_dtype(dtype: np.dtype, *, owner: str, argument: str) -> None:
    """Refuse object, string, complex and other non-real dtypes with :class:`InputError`."""
    if dtype.kind == "c":
        raise _fail(owner, argument, f"expected real numbers, got complex values (dtype {dtype})")
    if dtype.kind not in "biuf":
        raise _fail(owner, argument, f"expected a numeric array, got dtype {dtype}")


def check_values(features: Any, *, owner: str, argument: str) -> None:
    """Check the dtype and the values of an in-memory matrix (ndarray or sparse); others pass.

    Raises
    ------
    InputError
        For a non-numeric or complex dtype, NaN or infinite values, or values larger in magnitude
        than :data:`MAX_MAGNITUDE` (the message gives the first offending row).
    """
    if sp.issparse(features):
        matrix = sp.csr_matrix(features)
        values = matrix.data
    elif isinstance(features, np.ndarray):
        matrix = values = features
    else:
        return
    check_numeric_dtype(values.dtype, owner=owner, argument=argument)
    if values.dtype.kind not in "fc":
        return
    bad = out_of_range(values)
    if not bad.any():
        return
    if sp.issparse(matrix):
        entry = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(matrix.indptr, entry, side="right") - 1)
        value = values[entry]
    else:
        position = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), bad.shape)
        row, value = int(position[0]), values[position]
    if not np.isfinite(value):
        raise _fail(owner, argument, f"expected finite values, got NaN or inf in row {row}")
    raise _fail(
        owner,
        argument,
        f"expected values of magnitude at most {MAX_MAGNITUDE:g}, got {value:g} in row {row} "
        "(such values overflow the computations); rescale the features",
    )


def check_not_constant(blocks: Iterable[Any], *, owner: str, argument: str) -> None:
    """Refuse training features whose rows are all the same (no hash function can separate them).

    Parameters
    ----------
    blocks : iterable of ndarray or sparse matrix
        Consecutive row blocks of the view (one block for an in-memory matrix); reading stops
        at the first row that differs from the first one, so a normal view costs one block.
    owner, argument : str
        For the message.

    Raises
    ------
    InputError
        If every row equals the first one.
    """
    first: Any = None
    for block in blocks:
        if block.shape[0] == 0:
            continue
        if first is None:
            first = block[:1]
        repeated = first[np.zeros(block.shape[0], dtype=np.intp)]
        differs = (block != repeated).nnz > 0 if sp.issparse(block) else bool(np.any(block != repeated))
        if differs:
            return
    raise _fail(
        owner,
        argument,
        "expected training rows that differ, got the same feature values in every row "
        "(constant features give every item the same code)",
    )


def check_features(
    features: Any,
    *,
    owner: str,
    argument: str = "X",
    n_features: int | None = None,
    min_samples: int = 1,
) -> FeatureMatrix:
    """Validate a feature matrix and return it as float64 (dense ndarray or CSR matrix).

    Parameters
    ----------
    features : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        The data. Sparse input stays sparse (a bag-of-words matrix must never be densified).
    owner : str
        Who validates (e.g. ``"ITQ"``); it starts the error message.
    argument : str, default "X"
        Name of the argument, for the error message.
    n_features : int, optional
        Required number of columns (the width seen at fit time).
    min_samples : int, default 1
        Smallest acceptable number of rows.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_matrix
        float64 features; a dense result is C-contiguous. The input is never modified.

    Raises
    ------
    InputError
        On a wrong number of dimensions, too few rows, a wrong width, a non-numeric or complex
        dtype, NaN / infinite values or values beyond :data:`MAX_MAGNITUDE` (the message gives
        the first offending row).
    """
    if sp.issparse(features):
        check_numeric_dtype(features.dtype, owner=owner, argument=argument)
        matrix = sp.csr_matrix(features, dtype=np.float64, copy=True)
        shape = matrix.shape
    else:
        try:
            array = np.asarray(features)
        except Exception as exc:  # ragged lists and the like
            raise _fail(owner, argument, f"expected a 2-D numeric array, got {exc}") from exc
        check_numeric_dtype(array.dtype, owner=owner, argument=argument)
        if array.ndim != 2:
            raise _fail(
                owner,
                argument,
                f"expected a 2-D array of shape (n_samples, n_features), got {array.ndim}-D "
                f"shape {array.shape}",
            )
        matrix = np.ascontiguousarray(array, dtype=np.float64)
        shape = matrix.shape
    if shape[0] < min_samples:
        raise _fail(owner, argument, f"expected at least {min_samples} rows, got {shape[0]}")
    if shape[1] < 1:
        raise _fail(owner, argument, "expected at least one feature column, got 0")
    if n_features is not None and shape[1] != n_features:
        raise _fail(
            owner,
            argument,
            f"expected {n_features} features (the width seen in fit), got {shape[1]}",
        )
    check_values(matrix, owner=owner, argument=argument)
    return matrix


def check_labels(
    labels: Any, *, owner: str, n_samples: int, argument: str = "labels", supervised: bool = False
) -> np.ndarray:
    """Validate a label matrix and return it as a C-contiguous uint8 {0,1} array.

    Parameters
    ----------
    labels : array-like or sparse matrix
        Either a {0,1} matrix of shape (n_samples, n_classes) (multi-hot) or a 1-D vector of
        non-negative integer class ids, which is turned into a one-hot matrix.
    owner : str
        Who validates; it starts the error message.
    n_samples : int
        Required number of rows (the number of feature rows).
    argument : str, default "labels"
        Name of the argument, for the error message.
    supervised : bool, default False
        The labels are a supervised method's only signal: a matrix without a single 1 is refused.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_classes), dtype uint8

    Raises
    ------
    InputError
        On a wrong row count, values other than 0 and 1, NaN, negative or fractional class ids,
        or (``supervised``) labels that are all zero.
    """
    matrix = _label_matrix(labels, owner=owner, n_samples=n_samples, argument=argument)
    if supervised and not matrix.any():
        raise _fail(
            owner,
            argument,
            f"expected at least one 1 in the label matrix (a supervised method learns from the labels), "
            f"got all zeros in {matrix.shape[0]} rows x {matrix.shape[1]} classes",
        )
    return matrix


def _label_matrix(labels: Any, *, owner: str, n_samples: int, argument: str) -> np.ndarray:
    if sp.issparse(labels):
        labels = labels.toarray()
    array = np.asarray(labels)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise _fail(owner, argument, f"expected a numeric label matrix, got dtype {array.dtype}")
    if array.ndim == 1:
        if array.shape[0] != n_samples:
            raise _fail(
                owner, argument, f"expected {n_samples} class ids (one per row of X), got {array.shape[0]}"
            )
        if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array != np.round(array)):
            raise _fail(owner, argument, "expected non-negative integer class ids in a 1-D vector")
        class_ids = array.astype(np.int64)
        one_hot = np.zeros((n_samples, int(class_ids.max(initial=0)) + 1), dtype=np.uint8)
        one_hot[np.arange(n_samples), class_ids] = 1
        return one_hot
    if array.ndim != 2:
        raise _fail(owner, argument, f"expected a 2-D {{0,1}} matrix, got {array.ndim}-D shape {array.shape}")
    if array.shape[0] != n_samples:
        raise _fail(
            owner,
            argument,
            f"expected {n_samples} rows (one per row of X), got {array.shape[0]}",
        )
    if array.shape[1] < 1:
        raise _fail(owner, argument, "expected at least one label column, got 0")
    if not np.all((array == 0) | (array == 1)):
        bad_row = int(np.flatnonzero(~np.all((array == 0) | (array == 1), axis=1))[0])
        raise _fail(owner, argument, f"expected only 0 and 1, got another value in row {bad_row}")
    return np.ascontiguousarray(array, dtype=np.uint8)
