"""Relevance of query-database pairs, prepared from label arrays for the retrieval metrics.

A query and a database item are relevant iff they share at least one label ({0,1} label matrices,
dense or scipy sparse), or iff their class ids are equal (1-D integer vectors); the protocol is
described in :mod:`ddcmh_core.evaluation.metrics`. :func:`prepare_relevance` validates the label
arrays against the codes and picks the fastest test for them: class ids are compared directly,
label matrices with few columns are packed into bit masks, wider ones go through a matrix product.
The ranking engines (:mod:`ddcmh_core.evaluation.ranking`) then ask the prepared
:class:`Relevance` for one block of pairs at a time; :func:`dense_labels_torch` moves the
prepared labels to torch for the torch engine.

This module is internal: :class:`InvalidLabelsError` is public API through
:mod:`ddcmh_core.evaluation.metrics`, which re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.codes import as_words, is_torch_tensor

if TYPE_CHECKING:
    import torch

# Label matrices with up to this many columns are packed into bit masks (one AND + test per
# 64 labels and pair); wider ones use a matrix product per block.
_MAX_PACKED_LABEL_COLUMNS = 256


class InvalidLabelsError(InputError):
    """Label arrays that do not have the documented format or do not match the codes."""


def _binary_label_matrix(labels: Any, name: str, n_rows: int) -> np.ndarray | scipy.sparse.csr_matrix:
    """Validate a {0,1} label matrix (dense or sparse) with ``n_rows`` rows."""
    if scipy.sparse.issparse(labels):
        matrix = scipy.sparse.csr_matrix(labels)
        matrix.eliminate_zeros()
        if matrix.nnz and not np.all(matrix.data == 1):
            raise InvalidLabelsError(
                f"{name}: expected a {{0,1}} label matrix, found stored values other than 0 "
                f"and 1, e.g. {matrix.data[matrix.data != 1][0]!r}"
            )
    else:
        matrix = np.asarray(labels)
        if matrix.dtype != np.bool_ and not (
            np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)
        ):
            raise InvalidLabelsError(f"{name}: expected a numeric {{0,1}} matrix, found dtype {matrix.dtype}")
        if matrix.dtype != np.bool_ and matrix.size and not np.all((matrix == 0) | (matrix == 1)):
            raise InvalidLabelsError(
                f"{name}: expected a {{0,1}} label matrix (or a 1-D vector of class ids), "
                f"found values other than 0 and 1"
            )
    if matrix.shape[0] != n_rows:
        raise InvalidLabelsError(
            f"{name}: expected {n_rows} rows (one per code), found {matrix.shape[0]} rows "
            f"(shape {matrix.shape})"
        )
    return matrix


@dataclass(frozen=True)
class Relevance:
    """Prepared labels that answer "is query i relevant to database item j" block by block.

    Built by :func:`prepare_relevance`.

    Attributes
    ----------
    kind : str
        ``"classes"`` (1-D class ids, relevant iff equal), ``"bitmask"`` (label sets packed into
        unsigned words, relevant iff the AND is non-zero) or ``"matrix"`` (relevant iff the label
        product is positive).
    query : Any
        The queries' prepared labels: int64 class ids, packed words of shape
        ``(n_queries, n_words)``, or a float32 matrix (dense or scipy sparse).
    database : Any
        The database items' prepared labels, in the same form as ``query``.
    """

    kind: str
    query: Any
    database: Any

    def block(self, queries: slice, items: slice, out: np.ndarray, scratch: np.ndarray) -> None:
        """Write the relevance of ``queries x items`` into the boolean ``out``."""
        if self.kind == "classes":
            np.equal(self.query[queries, None], self.database[None, items], out=out)
        elif self.kind == "bitmask":
            n_words = self.query.shape[1]
            np.bitwise_and(self.query[queries, 0, None], self.database[None, items, 0], out=scratch)
            for word in range(1, n_words):
                any_shared = np.bitwise_and(self.query[queries, word, None], self.database[None, items, word])
                np.bitwise_or(scratch, any_shared, out=scratch)
            np.not_equal(scratch, 0, out=out)
        else:
            product = self.query[queries] @ self.database[items].T
            if scipy.sparse.issparse(product):
                product = product.toarray()
            np.greater(product, 0, out=out)

    @property
    def scratch_dtype(self) -> np.dtype[Any]:
        """Dtype of the scratch buffer :meth:`block` needs."""
        return self.query.dtype if self.kind == "bitmask" else np.dtype(np.uint8)


def prepare_relevance(query_labels: Any, database_labels: Any, n_queries: int, n_database: int) -> Relevance:
    """Validate the label arrays against the codes and pick the fastest relevance test.

    Parameters
    ----------
    query_labels : array_like, scipy.sparse matrix or torch.Tensor
        {0,1} label matrix with ``n_queries`` rows, or a 1-D vector of integer class ids.
    database_labels : array_like, scipy.sparse matrix or torch.Tensor
        Same form as ``query_labels``, with ``n_database`` rows.
    n_queries : int
        Number of query codes.
    n_database : int
        Number of database codes.

    Returns
    -------
    Relevance
        Class ids, label sets packed into bit masks (up to ``_MAX_PACKED_LABEL_COLUMNS`` label
        columns), or float32 label matrices.

    Raises
    ------
    InvalidLabelsError
        Labels of the wrong form, dtype, number of rows or columns, or with values other than
        0 and 1.
    """
    if is_torch_tensor(query_labels):
        query_labels = query_labels.detach().cpu().numpy()
    if is_torch_tensor(database_labels):
        database_labels = database_labels.detach().cpu().numpy()
    query_ndim = len(query_labels.shape) if hasattr(query_labels, "shape") else np.ndim(query_labels)
    database_ndim = (
        len(database_labels.shape) if hasattr(database_labels, "shape") else np.ndim(database_labels)
    )
    if query_ndim == 1 or database_ndim == 1:
        if query_ndim != 1 or database_ndim != 1:
            raise InvalidLabelsError(
                "query_labels, database_labels: expected both 1-D class-id vectors or both 2-D "
                f"{{0,1}} label matrices, found {query_ndim}-D and {database_ndim}-D"
            )
        classes = []
        for labels, name, n_rows in (
            (query_labels, "query_labels", n_queries),
            (database_labels, "database_labels", n_database),
        ):
            vector = np.asarray(labels)
            if not np.issubdtype(vector.dtype, np.integer):
                raise InvalidLabelsError(f"{name}: expected integer class ids, found dtype {vector.dtype}")
            if vector.shape[0] != n_rows:
                raise InvalidLabelsError(
                    f"{name}: expected {n_rows} class ids (one per code), found {vector.shape[0]}"
                )
            classes.append(np.ascontiguousarray(vector, dtype=np.int64))
        return Relevance("classes", classes[0], classes[1])
    if query_ndim != 2 or database_ndim != 2:
        raise InvalidLabelsError(
            f"query_labels, database_labels: expected 2-D {{0,1}} label matrices (or 1-D class ids), "
            f"found {query_ndim}-D and {database_ndim}-D"
        )
    query_matrix = _binary_label_matrix(query_labels, "query_labels", n_queries)
    database_matrix = _binary_label_matrix(database_labels, "database_labels", n_database)
    if query_matrix.shape[1] != database_matrix.shape[1]:
        raise InvalidLabelsError(
            f"database_labels: expected {query_matrix.shape[1]} label columns like query_labels, "
            f"found {database_matrix.shape[1]}"
        )
    if query_matrix.shape[1] <= _MAX_PACKED_LABEL_COLUMNS:
        packed = []
        for matrix in (query_matrix, database_matrix):
            dense = matrix.toarray() if isinstance(matrix, scipy.sparse.csr_matrix) else matrix
            packed.append(as_words(np.packbits(dense.astype(bool, copy=False), axis=1)))
        return Relevance("bitmask", packed[0], packed[1])
    as_float = [
        matrix.astype(np.float32) if scipy.sparse.issparse(matrix) else np.asarray(matrix, np.float32)
        for matrix in (query_matrix, database_matrix)
    ]
    return Relevance("matrix", as_float[0], as_float[1])


def dense_labels_torch(relevance: Relevance, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Move prepared labels to torch: class ids as int64, label sets as dense float32.

    Parameters
    ----------
    relevance : Relevance
        Labels prepared by :func:`prepare_relevance`.
    device : torch.device
        Where the tensors go.

    Returns
    -------
    tuple of torch.Tensor
        The query and the database labels.
    """
    import torch

    if relevance.kind == "classes":
        return (
            torch.as_tensor(relevance.query, device=device),
            torch.as_tensor(relevance.database, device=device),
        )
    tensors = []
    for prepared in (relevance.query, relevance.database):
        if relevance.kind == "bitmask":
            as_bytes = np.ascontiguousarray(prepared).view(np.uint8)
            dense = np.unpackbits(as_bytes, axis=1).astype(np.float32)
        else:
            dense = prepared.toarray() if scipy.sparse.issparse(prepared) else prepared
        tensors.append(torch.as_tensor(dense, dtype=torch.float32, device=device))
    return tensors[0], tensors[1]
