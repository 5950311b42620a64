"""scikit-learn scorers built on the retrieval metrics, for tuning hashers with ``GridSearchCV``.

A scorer is a callable ``scorer(estimator, X, y) -> float`` (scikit-learn's protocol): it encodes
``X`` with the fitted estimator (a hasher, or a ``Pipeline`` whose last step is one), ranks the
codes of ``X`` against themselves by Hamming distance and returns their MAP with relevance from
the labels ``y`` (shared label for a {0,1} matrix, same class for a vector of class ids). Every
item of ``X`` is a query and the whole of ``X`` is the database, the item itself included, so the
score is comparable across candidates scored on the same fold. Higher is better.

Examples
--------
>>> from sklearn.model_selection import GridSearchCV
>>> from ddcmh_core import get_hasher
>>> from ddcmh_core.evaluation.scorers import make_map_scorer
>>> search = GridSearchCV(get_hasher("itq"), {"n_bits": [8, 16]}, scoring=make_map_scorer(), cv=3)
"""

from __future__ import annotations

from typing import Any

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.metrics import (
    TiePolicy,
    _check_positive_int,
    _check_tie_policy,
    mean_average_precision,
)

__all__ = ["MapScorer", "make_map_scorer", "map_scorer"]


class MapScorer:
    """Scores a fitted hasher by the MAP of the codes of ``X`` against themselves.

    Build it with :func:`make_map_scorer`.

    Parameters
    ----------
    k : int, optional
        Truncated MAP@k instead of MAP@all.
    tie_policy : {"expected", "index"}, default "expected"
        As in :func:`~ddcmh_core.evaluation.metrics.mean_average_precision`.
    """

    def __init__(self, k: int | None = None, tie_policy: TiePolicy = "expected") -> None:
        self.k = None if k is None else _check_positive_int(k, "k")
        self.tie_policy: TiePolicy = _check_tie_policy(tie_policy)  # type: ignore[assignment]

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        """MAP of ``estimator.transform(X)`` against itself, relevance from the labels ``y``.

        Parameters
        ----------
        estimator : Hasher or sklearn.pipeline.Pipeline
            Fitted; its ``transform`` returns {0,1} codes.
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_labels) or (n_samples,)
            {0,1} label matrix or class ids.

        Returns
        -------
        float
            The MAP, in [0, 1].

        Raises
        ------
        InputError
            ``y`` is None (the MAP needs labels).
        """
        if y is None:
            raise InputError(
                f"{self!r}: argument 'y': expected labels of the scored rows (a {{0,1}} matrix or "
                "class ids), got None; pass y to GridSearchCV.fit"
            )
        codes = estimator.transform(X)
        score = mean_average_precision(codes, codes, y, y, k=self.k, tie_policy=self.tie_policy)
        return float(score)

    def __repr__(self) -> str:
        options = [f"k={self.k}"] if self.k is not None else []
        if self.tie_policy != "expected":
            options.append(f"tie_policy={self.tie_policy!r}")
        return f"make_map_scorer({', '.join(options)})"


def make_map_scorer(*, k: int | None = None, tie_policy: TiePolicy = "expected") -> MapScorer:
    """A scikit-learn scorer: MAP of a fitted hasher's codes of ``X`` against themselves.

    Parameters
    ----------
    k : int, optional
        Score MAP@k instead of MAP@all.
    tie_policy : {"expected", "index"}, default "expected"
        Order of items at equal Hamming distance (see :mod:`ddcmh_core.evaluation.metrics`).

    Returns
    -------
    MapScorer
        ``scorer(estimator, X, y) -> float``, higher is better; pass it as ``scoring=`` to
        ``GridSearchCV``, ``cross_val_score`` and the like.

    Raises
    ------
    InputError
        ``k <= 0`` or an unknown ``tie_policy``.
    """
    return MapScorer(k=k, tie_policy=tie_policy)


map_scorer = make_map_scorer()
"""MAP@all with expected tie order: ``GridSearchCV(hasher, grid, scoring=map_scorer)``."""
