"""Retrieval metrics over Hamming ranking: MAP@all, MAP@k, precision@N and precision-recall curves.

Protocol (METHOD.md §4): a query and a database item are relevant iff they share at least one
label (multi-label {0,1} matrices, dense or scipy sparse), or iff their class ids are equal
(single-label data given as 1-D integer vectors). The database is ranked by Hamming distance.
Any pair of views works (image→text, text→image, image→image, ...): the functions only see codes
and labels.

Ties
----
Hamming distances are integers in ``[0, n_bits]``, so many database items share a distance. Every
rank-based metric takes ``tie_policy``:

``"expected"`` (default)
    The exact expectation over a uniformly random order inside every group of tied items
    (McSherry & Najork, ECIR 2008). It does not depend on the database order. MAP@all uses the
    closed form with harmonic numbers of METHOD.md §4.4; truncated MAP@k conditions on the
    hypergeometric number of relevant items that the cut-off group contributes (derivation in
    :func:`ddcmh_core.evaluation.ties._expected_truncated_average_precision`); precision@N is
    linear, so its expectation is immediate.
``"index"``
    Ties ordered by database index (a stable sort by distance), what most published code
    computes (DCMH ``calc_map`` with a stable sort).

Queries without any relevant database item (R = 0) contribute AP = 0 and still count in the
mean, as in the reference code (DCMH); their number is reported in every result
(``n_queries_without_relevant``). No metric returns NaN.

Cost
----
Distances are computed from packed codes (XOR + popcount on 64-bit words), and no per-query
sort is needed for the ``"expected"`` policy: each query only needs its histogram of
(items, relevant items) per distance, counted with one ``bincount`` per block. Queries and the
database are processed in blocks whose scratch memory stays under ``memory_budget_mb``, on
``n_threads`` threads (numpy releases the GIL inside its kernels). The ``"index"`` policy needs
the order inside tie groups, which a stable radix sort of the small-integer distances gives in
linear time. Nothing ever allocates an n_queries x n_database float matrix.

The same algorithms run in torch when ``device`` is given (``"cuda"``, ``"cuda:1"``, or
``"cpu"`` to use torch on the CPU) or when the codes are CUDA tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.codes import (
    InvalidCodesError,
    available_cpus,
    check_codes,
    is_torch_tensor,
)
from ddcmh_core.evaluation.ranking import NumpyEngine, RankStatistics, TorchEngine
from ddcmh_core.evaluation.relevance import InvalidLabelsError, prepare_relevance
from ddcmh_core.evaluation.ties import expected_statistics

if TYPE_CHECKING:
    import torch

__all__ = [
    "TIE_POLICIES",
    "InvalidLabelsError",
    "MetricValue",
    "PrecisionAtN",
    "PrecisionRecallCurve",
    "TiePolicy",
    "mean_average_precision",
    "precision_at_n",
    "precision_recall_by_radius",
    "precision_within_radius",
    "random_code_floor",
]

TiePolicy = Literal["expected", "index"]
TIE_POLICIES: tuple[str, ...] = ("expected", "index")


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


def _rebuild_metric_value(
    value: float,
    name: str,
    tie_policy: str | None,
    per_query: np.ndarray,
    n_queries_without_relevant: int,
) -> MetricValue:
    return MetricValue(
        value,
        name=name,
        tie_policy=tie_policy,
        per_query=per_query,
        n_queries_without_relevant=n_queries_without_relevant,
    )


class MetricValue(float):
    """A metric's value that also says what it is and how ties were handled.

    It behaves as a plain ``float`` (arithmetic, comparison, formatting, ``np.isclose``), and
    carries the metric's name, the tie policy, the per-query values and the number of queries
    that have no relevant item in the database. Instances are immutable.

    Attributes
    ----------
    name : str
        The metric, e.g. ``"MAP@all"``, ``"MAP@50"`` or ``"precision within Hamming radius 2"``.
    tie_policy : str or None
        ``"expected"`` or ``"index"``; ``None`` for radius-based metrics, which ties do not affect.
    per_query : numpy.ndarray
        The value of each query (float64); their mean is the value.
    n_queries_without_relevant : int
        Queries with no relevant database item; each contributes 0 to the mean.
    """

    __slots__ = ("n_queries_without_relevant", "name", "per_query", "tie_policy")

    name: str
    tie_policy: str | None
    per_query: np.ndarray
    n_queries_without_relevant: int

    def __new__(
        cls,
        value: float,
        *,
        name: str,
        tie_policy: str | None,
        per_query: np.ndarray,
        n_queries_without_relevant: int,
    ) -> MetricValue:
        """Create the value; see the class docstring for the fields."""
        instance = super().__new__(cls, value)
        per_query = np.asarray(per_query, dtype=np.float64)
        per_query.flags.writeable = False
        object.__setattr__(instance, "name", name)
        object.__setattr__(instance, "tie_policy", tie_policy)
        object.__setattr__(instance, "per_query", per_query)
        object.__setattr__(instance, "n_queries_without_relevant", int(n_queries_without_relevant))
        return instance

    def __setattr__(self, attribute: str, value: Any) -> None:
        raise AttributeError(f"MetricValue is immutable; cannot set {attribute!r}")

    def __delattr__(self, attribute: str) -> None:
        raise AttributeError(f"MetricValue is immutable; cannot delete {attribute!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_metric_value,
            (
                float(self),
                self.name,
                self.tie_policy,
                self.per_query,
                self.n_queries_without_relevant,
            ),
        )

    @property
    def n_queries(self) -> int:
        """Number of queries averaged."""
        return int(self.per_query.shape[0])

    @property
    def value(self) -> float:
        """The value as a plain ``float``."""
        return float(self)

    def __repr__(self) -> str:
        return (
            f"MetricValue({float(self)!r}, name={self.name!r}, tie_policy={self.tie_policy!r}, "
            f"n_queries={self.n_queries}, "
            f"n_queries_without_relevant={self.n_queries_without_relevant})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (without the per-query values)."""
        return {
            "name": self.name,
            "value": float(self),
            "tie_policy": self.tie_policy,
            "n_queries": self.n_queries,
            "n_queries_without_relevant": self.n_queries_without_relevant,
        }


@dataclass(frozen=True)
class PrecisionAtN:
    """Precision and recall of the top-N retrieved items, for several N.

    Attributes
    ----------
    n_values : numpy.ndarray
        The cut-offs N (int64), as given.
    precision : numpy.ndarray
        Mean over queries of (relevant items in the top N) / N.
    recall : numpy.ndarray
        Mean over queries of (relevant items in the top N) / R; a query with R = 0 counts 0.
    tie_policy : str
        ``"expected"`` or ``"index"``.
    per_query_precision : numpy.ndarray
        Shape ``(n_queries, len(n_values))``.
    n_queries_without_relevant : int
        Queries with R = 0.
    """

    n_values: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    tie_policy: str
    per_query_precision: np.ndarray
    n_queries_without_relevant: int


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Precision and recall of Hamming-ball retrieval for every radius 0..n_bits.

    Attributes
    ----------
    radii : numpy.ndarray
        ``0, 1, ..., n_bits``.
    precision : numpy.ndarray
        Precision at each radius (see ``average``). Empty retrieval counts as precision 0.
    recall : numpy.ndarray
        Recall at each radius (see ``average``). No relevant item counts as recall 0.
    average : str
        ``"micro"``: pooled over all query-item pairs (DCMH ``calcPreRecRadiusLabel.m``);
        ``"macro"``: the mean of the per-query values.
    n_queries_without_relevant : int
        Queries with R = 0.
    """

    radii: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    average: str
    n_queries_without_relevant: int


# --------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------


def _check_tie_policy(tie_policy: str) -> str:
    if tie_policy not in TIE_POLICIES:
        raise InputError(
            f"tie_policy: expected one of {', '.join(map(repr, TIE_POLICIES))}, found {tie_policy!r}"
        )
    return tie_policy


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name}: expected a positive integer, found {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluation:
    engine: NumpyEngine | TorchEngine
    n_queries: int
    n_database: int
    n_bits: int


def _check_torch_codes(codes: torch.Tensor, name: str, n_bits: int | None) -> torch.Tensor:
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise InvalidCodesError(
            f"{name}: expected a 2-D tensor of shape (n, n_bits), found shape {tuple(codes.shape)}"
        )
    if n_bits is not None and codes.shape[1] != n_bits:
        raise InvalidCodesError(f"{name}: expected {n_bits} bits per code, found {codes.shape[1]}")
    if codes.numel() and not bool(((codes == 0) | (codes == 1)).all()):
        raise InvalidCodesError(f"{name}: expected only 0 and 1, found other values")
    return codes


def _prepare(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    device: Any,
    memory_budget_mb: float,
    n_threads: int | None,
) -> _Evaluation:
    """Validate inputs and build the engine (numpy, or torch on ``device``)."""
    if not memory_budget_mb > 0:
        raise InputError(f"memory_budget_mb: expected a positive number, found {memory_budget_mb!r}")
    threads = available_cpus() if n_threads is None else _check_positive_int(n_threads, "n_threads")
    budget = int(memory_budget_mb * 2**20)
    on_cuda = any(
        is_torch_tensor(codes) and codes.device.type == "cuda" for codes in (query_codes, database_codes)
    )
    if device is None and on_cuda:
        device = next(codes.device for codes in (query_codes, database_codes) if is_torch_tensor(codes))
    if device is None:
        queries = check_codes(query_codes, name="query_codes")
        database = check_codes(database_codes, name="database_codes")
        _check_same_bits(queries.shape[1], database.shape[1])
        relevance = prepare_relevance(query_labels, database_labels, len(queries), len(database))
        engine: NumpyEngine | TorchEngine = NumpyEngine(queries, database, relevance, budget, threads)
        return _Evaluation(engine, len(queries), len(database), queries.shape[1])

    import torch

    target = torch.device(device)
    tensors = []
    for codes, name in ((query_codes, "query_codes"), (database_codes, "database_codes")):
        if is_torch_tensor(codes):
            tensors.append(_check_torch_codes(codes, name, None).to(target))
        else:
            tensors.append(torch.as_tensor(check_codes(codes, name=name), device=target))
    _check_same_bits(int(tensors[0].shape[1]), int(tensors[1].shape[1]))
    relevance = prepare_relevance(query_labels, database_labels, len(tensors[0]), len(tensors[1]))
    engine = TorchEngine(tensors[0], tensors[1], relevance, budget, target)
    return _Evaluation(engine, len(tensors[0]), len(tensors[1]), int(tensors[0].shape[1]))


def _check_same_bits(query_bits: int, database_bits: int) -> None:
    if query_bits != database_bits:
        raise InvalidCodesError(
            f"database_codes: expected {query_bits} bits per code like query_codes, found {database_bits}"
        )


def _statistics(
    evaluation: _Evaluation, tie_policy: str, k: int | None, n_values: np.ndarray | None
) -> RankStatistics:
    if evaluation.n_database == 0 or evaluation.n_queries == 0:
        zeros = np.zeros(evaluation.n_queries)
        hits = None if n_values is None else np.zeros((evaluation.n_queries, n_values.size))
        return RankStatistics(np.zeros(evaluation.n_queries, np.int64), zeros, zeros, hits)
    if tie_policy == "index":
        return evaluation.engine.index_order_statistics(k, n_values)
    counts, relevant = evaluation.engine.bucket_histograms()
    return expected_statistics(counts, relevant, k, n_values)


def mean_average_precision(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    k: int | None = None,
    tie_policy: TiePolicy = "expected",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> MetricValue:
    """Mean average precision of Hamming ranking: MAP@all, or truncated MAP@k.

    Parameters
    ----------
    query_codes : array_like or torch.Tensor
        {0,1} codes of shape ``(n_queries, n_bits)``.
    database_codes : array_like or torch.Tensor
        {0,1} codes of shape ``(n_database, n_bits)``.
    query_labels : array_like or scipy.sparse matrix
        {0,1} label matrix of shape ``(n_queries, n_labels)`` (relevant = share a label), or a
        1-D vector of integer class ids (relevant = same class).
    database_labels : array_like or scipy.sparse matrix
        Same form as ``query_labels``, with ``n_database`` rows.
    k : int, optional
        When given, truncated MAP@k (METHOD.md §4.5): ``AP@k = (1/R_k) sum_{i<=k} rel_i P@i``
        with ``R_k`` the relevant items in the top k, and ``AP@k = 0`` when ``R_k = 0`` (DJSRH
        ``calculate_top_map``). ``k`` larger than the database ranks it all.
    tie_policy : {"expected", "index"}, default "expected"
        ``"expected"``: exact expectation over random orders inside tie groups; ``"index"``:
        ties in database-index order. See the module docstring.
    device : str or torch.device, optional
        Run the torch kernels on this device (``"cuda"``, ``"cpu"``, ...). By default numpy
        kernels run on the CPU, unless the codes are CUDA tensors.
    memory_budget_mb : float, default 256
        Bound on the scratch memory of the blocked computation.
    n_threads : int, optional
        CPU threads for the numpy kernels; defaults to the CPUs available to the process.

    Returns
    -------
    MetricValue
        A float (the MAP) that also carries ``name`` (``"MAP@all"`` or ``"MAP@<k>"``),
        ``tie_policy``, ``per_query`` APs and ``n_queries_without_relevant`` (queries with R = 0,
        which count as AP = 0).

    Raises
    ------
    InvalidCodesError
        Codes that are not {0,1} matrices, or bit lengths that differ.
    InvalidLabelsError
        Labels with the wrong number of rows or columns, or values other than 0 and 1.
    InputError
        ``k <= 0``, an unknown ``tie_policy``, or a non-positive budget.

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.array([[0, 0], [0, 1], [1, 1]], dtype=np.uint8)
    >>> labels = np.array([[1, 0], [1, 0], [0, 1]])
    >>> result = mean_average_precision(codes[:1], codes, labels[:1], labels)
    >>> float(result), result.name, result.tie_policy
    (1.0, 'MAP@all', 'expected')
    """
    _check_tie_policy(tie_policy)
    if k is not None:
        k = _check_positive_int(k, "k")
    evaluation = _prepare(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    statistics = _statistics(evaluation, tie_policy, k, None)
    per_query = statistics.average_precision if k is None else statistics.truncated_average_precision
    assert per_query is not None
    return MetricValue(
        float(per_query.mean()) if per_query.size else 0.0,
        name="MAP@all" if k is None else f"MAP@{k}",
        tie_policy=tie_policy,
        per_query=per_query,
        n_queries_without_relevant=int(np.count_nonzero(statistics.n_relevant == 0)),
    )


def precision_at_n(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    n_values: Sequence[int] | np.ndarray,
    *,
    tie_policy: TiePolicy = "expected",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> PrecisionAtN:
    """Precision@N and recall@N curves of Hamming ranking.

    Parameters
    ----------
    query_codes, database_codes, query_labels, database_labels
        As in :func:`mean_average_precision`.
    n_values : sequence of int
        Cut-offs N, each in ``[1, n_database]``.
    tie_policy : {"expected", "index"}, default "expected"
        How ties at the cut-off are ordered; ``"expected"`` gives the exact expectation.
    device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    PrecisionAtN
        Mean precision and recall per cut-off, per-query precision, and the tie policy.
    """
    _check_tie_policy(tie_policy)
    evaluation = _prepare(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    cutoffs = np.asarray(n_values)
    if (
        cutoffs.ndim != 1
        or cutoffs.size == 0
        or not np.issubdtype(cutoffs.dtype, np.integer)
        or cutoffs.min() < 1
        or cutoffs.max() > evaluation.n_database
    ):
        raise InputError(
            f"n_values: expected a non-empty 1-D sequence of integers in [1, n_database="
            f"{evaluation.n_database}], found {np.asarray(n_values)!r}"
        )
    cutoffs = cutoffs.astype(np.int64)
    statistics = _statistics(evaluation, tie_policy, None, cutoffs)
    assert statistics.hits_at_n is not None
    per_query_precision = statistics.hits_at_n / cutoffs[None, :]
    n_relevant = statistics.n_relevant[:, None].astype(np.float64)
    per_query_recall = np.divide(
        statistics.hits_at_n, n_relevant, out=np.zeros_like(per_query_precision), where=n_relevant > 0
    )
    no_queries = np.zeros(cutoffs.size)
    return PrecisionAtN(
        n_values=cutoffs,
        precision=per_query_precision.mean(axis=0) if len(per_query_precision) else no_queries,
        recall=per_query_recall.mean(axis=0) if len(per_query_recall) else no_queries,
        tie_policy=tie_policy,
        per_query_precision=per_query_precision,
        n_queries_without_relevant=int(np.count_nonzero(statistics.n_relevant == 0)),
    )


def _radius_cumulative_counts(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    device: Any,
    memory_budget_mb: float,
    n_threads: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query and radius: items and relevant items within the radius, and R."""
    evaluation = _prepare(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    if evaluation.n_database == 0 or evaluation.n_queries == 0:
        empty = np.zeros((evaluation.n_queries, evaluation.n_bits + 1), dtype=np.int64)
        return empty, empty, np.zeros(evaluation.n_queries, dtype=np.int64)
    counts, relevant = evaluation.engine.bucket_histograms()
    return np.cumsum(counts, axis=1), np.cumsum(relevant, axis=1), relevant.sum(axis=1)


def precision_recall_by_radius(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    average: Literal["micro", "macro"] = "micro",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> PrecisionRecallCurve:
    """Precision and recall of Hamming-ball retrieval for every radius ``0..n_bits``.

    Ties do not matter here: a ball includes all items at distance ``<= radius``.

    Parameters
    ----------
    query_codes, database_codes, query_labels, database_labels
        As in :func:`mean_average_precision`.
    average : {"micro", "macro"}, default "micro"
        ``"micro"`` pools all query-item pairs (DCMH ``calcPreRecRadiusLabel.m``): precision =
        relevant retrieved pairs / retrieved pairs. ``"macro"`` averages per-query precision and
        recall. An empty retrieval has precision 0; no relevant item means recall 0.
    device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    PrecisionRecallCurve
        Radii, precision, recall and the averaging rule.
    """
    if average not in ("micro", "macro"):
        raise InputError(f"average: expected 'micro' or 'macro', found {average!r}")
    retrieved, retrieved_relevant, n_relevant = _radius_cumulative_counts(
        query_codes, database_codes, query_labels, database_labels, device, memory_budget_mb, n_threads
    )
    if average == "micro":
        pooled_retrieved = retrieved.sum(axis=0).astype(np.float64)
        pooled_hits = retrieved_relevant.sum(axis=0).astype(np.float64)
        total_relevant = float(n_relevant.sum())
        precision = np.divide(
            pooled_hits, pooled_retrieved, out=np.zeros_like(pooled_hits), where=pooled_retrieved > 0
        )
        recall = pooled_hits / total_relevant if total_relevant > 0 else np.zeros_like(pooled_hits)
    else:
        hits = retrieved_relevant.astype(np.float64)
        per_query_precision = np.divide(hits, retrieved, out=np.zeros_like(hits), where=retrieved > 0)
        relevant_column = n_relevant[:, None]
        per_query_recall = np.divide(
            hits, relevant_column, out=np.zeros_like(hits), where=relevant_column > 0
        )
        precision = per_query_precision.mean(axis=0) if len(hits) else np.zeros(hits.shape[1])
        recall = per_query_recall.mean(axis=0) if len(hits) else np.zeros(hits.shape[1])
    return PrecisionRecallCurve(
        radii=np.arange(retrieved.shape[1]),
        precision=precision,
        recall=recall,
        average=average,
        n_queries_without_relevant=int(np.count_nonzero(n_relevant == 0)),
    )


def precision_within_radius(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    *,
    radius: int = 2,
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> MetricValue:
    """Mean precision of the items within Hamming distance ``radius`` of each query.

    A query that retrieves nothing within the radius counts as precision 0 (the common rule in
    hashing evaluation code); so do queries without relevant items. Ties do not matter.

    Parameters
    ----------
    query_codes, database_codes, query_labels, database_labels
        As in :func:`mean_average_precision`.
    radius : int, default 2
        Hamming radius (inclusive), ``>= 0``.
    device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    MetricValue
        Named ``"precision within Hamming radius <radius>"``, ``tie_policy=None``.
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise InputError(f"radius: expected a non-negative integer, found {radius!r}")
    retrieved, retrieved_relevant, n_relevant = _radius_cumulative_counts(
        query_codes, database_codes, query_labels, database_labels, device, memory_budget_mb, n_threads
    )
    column = min(int(radius), retrieved.shape[1] - 1)
    within = retrieved[:, column]
    hits = retrieved_relevant[:, column].astype(np.float64)
    per_query = np.divide(hits, within, out=np.zeros_like(hits), where=within > 0)
    return MetricValue(
        float(per_query.mean()) if per_query.size else 0.0,
        name=f"precision within Hamming radius {radius}",
        tie_policy=None,
        per_query=per_query,
        n_queries_without_relevant=int(np.count_nonzero(n_relevant == 0)),
    )


def random_code_floor(
    query_labels: Any,
    database_labels: Any,
    n_bits: int,
    *,
    seed: int = 0,
    k: int | None = None,
    tie_policy: TiePolicy = "expected",
    device: Any = None,
    memory_budget_mb: float = 256.0,
    n_threads: int | None = None,
) -> MetricValue:
    """MAP of uniformly random codes on the same split: the chance level to report beside MAP.

    On densely labelled data the floor is far above 0 (about 0.55 on MIRFLICKR-25K), so every
    report shows it next to the model's MAP (METHOD.md §4.7).

    Parameters
    ----------
    query_labels, database_labels
        As in :func:`mean_average_precision`; they fix the numbers of queries and items.
    n_bits : int
        Code length of the random codes.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` that draws the codes (queries first).
    k, tie_policy, device, memory_budget_mb, n_threads
        As in :func:`mean_average_precision`.

    Returns
    -------
    MetricValue
        Named like ``"MAP@all of random 64-bit codes (seed 0)"``.
    """
    n_bits = _check_positive_int(n_bits, "n_bits")
    rng = np.random.default_rng(seed)
    query_codes = rng.integers(0, 2, size=(query_labels.shape[0], n_bits), dtype=np.uint8)
    database_codes = rng.integers(0, 2, size=(database_labels.shape[0], n_bits), dtype=np.uint8)
    result = mean_average_precision(
        query_codes,
        database_codes,
        query_labels,
        database_labels,
        k=k,
        tie_policy=tie_policy,
        device=device,
        memory_budget_mb=memory_budget_mb,
        n_threads=n_threads,
    )
    return MetricValue(
        float(result),
        name=f"{result.name} of random {n_bits}-bit codes (seed {seed})",
        tie_policy=result.tie_policy,
        per_query=result.per_query,
        n_queries_without_relevant=result.n_queries_without_relevant,
    )
