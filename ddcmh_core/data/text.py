"""Text featurisers: raw texts to sparse bag-of-words / tf-idf rows, fitted on training texts only.

Tokenisation and counting go through scikit-learn's ``CountVectorizer``; the weighting (binary,
counts or tf-idf with scikit-learn's smoothed idf) and the row normalisation are applied here, so
that a fitted featuriser is fully described by its parameters, its vocabulary and its idf vector
(:meth:`TextFeaturizer.to_state` / :meth:`TextFeaturizer.from_state`, JSON-ready, no pickle).

Analyzers
---------
``"word"``
    English (or any space-separated language): scikit-learn's word tokens, lower-cased.
``"char"``
    Character n-grams, for Chinese and other languages written without spaces (Web News);
    default n-gram range (1, 2).
``"tags"``
    Comma-separated tag lists (MIRFLICKR ``all_tags.txt``): each stripped, lower-cased tag is one
    term.
``"auto"``
    ``"char"`` when at least 20 % of the letters of the training texts are CJK ideographs or kana,
    else ``"word"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from .errors import DatasetError

CJK_PATTERN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
LETTER_PATTERN = re.compile(r"[^\W\d_]")


def cjk_fraction(texts: Sequence[str], *, sample: int = 200) -> float:
    """Fraction of letters that are CJK ideographs, kana or hangul in the first ``sample`` texts."""
    letters = cjk = 0
    for text in texts[:sample]:
        letters += len(LETTER_PATTERN.findall(text))
        cjk += len(CJK_PATTERN.findall(text))
    return cjk / letters if letters else 0.0


class TextFeaturizerParams(BaseModel):
    """Settings of a :class:`TextFeaturizer` (validated, frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weighting: Literal["tfidf", "count", "binary"] = Field(
        "tfidf",
        description="Term weights: tf-idf (smoothed idf, as scikit-learn), raw counts, or 0/1.",
    )
    analyzer: Literal["auto", "word", "char", "tags"] = Field(
        "auto", description="Word tokens, character n-grams, comma-separated tags, or auto-detect."
    )
    ngram_range: tuple[int, int] | None = Field(
        None, description="n-gram range; default (1, 1) for words and tags, (1, 2) for characters."
    )
    min_df: int = Field(1, ge=1, description="Keep terms found in at least this many training texts.")
    max_df: float = Field(1.0, gt=0.0, le=1.0, description="Drop terms in more than this fraction of texts.")
    max_features: int | None = Field(
        None, ge=1, description="Keep only the most frequent terms (by training corpus count)."
    )
    lowercase: bool = Field(True, description="Lower-case before tokenising.")
    stop_words: Literal["english"] | None = Field(
        None, description="Drop English stop words (word analyzer)."
    )
    tag_separator: str = Field(",", min_length=1, description="Separator of the tags analyzer.")
    sublinear_tf: bool = Field(False, description="Use 1 + log(tf) instead of tf (tf-idf only).")
    norm: Literal["l2", "l1", "none", "auto"] = Field(
        "auto", description="Row normalisation; 'auto' is l2 for tf-idf and none otherwise."
    )

    @model_validator(mode="after")
    def _check_ngrams(self) -> TextFeaturizerParams:
        if self.ngram_range is not None and not 1 <= self.ngram_range[0] <= self.ngram_range[1]:
            raise ValueError(f"ngram_range must satisfy 1 <= min <= max, got {self.ngram_range}")
        return self


class TextFeaturizer:
    """Bag-of-words / tf-idf featuriser for raw texts, fitted on the training texts only.

    Parameters
    ----------
    params : TextFeaturizerParams or dict, optional
        Settings; keyword arguments override them (``TextFeaturizer(analyzer="char")``).

    Attributes
    ----------
    vocabulary_ : list of str
        Terms, in column order (after :meth:`fit`).
    idf_ : ndarray of shape (n_terms,)
        ``ln((1 + n) / (1 + df)) + 1`` from the training texts (tf-idf only; ones otherwise).
    analyzer_ : str
        The analyzer actually used (``"auto"`` resolved).

    Examples
    --------
    >>> featurizer = TextFeaturizer(analyzer="word", weighting="binary")
    >>> featurizer.fit_transform(["a red car", "a blue car"]).toarray()
    array([[0., 1., 1.],
           [1., 1., 0.]])
    """

    def __init__(self, params: TextFeaturizerParams | dict[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(params, TextFeaturizerParams):
            base = params.model_dump()
        else:
            base = dict(params or {})
        try:
            self.params = TextFeaturizerParams(**{**base, **overrides})
        except ValueError as exc:
            raise DatasetError(f"TextFeaturizer: {exc}") from exc
        self.vocabulary_: list[str] | None = None
        self.idf_: np.ndarray | None = None
        self.analyzer_: str | None = None

    def __repr__(self) -> str:
        fitted = "unfitted" if self.vocabulary_ is None else f"{len(self.vocabulary_)} terms"
        return f"TextFeaturizer({self.params!r}, {fitted})"

    # ------------------------------------------------------------------ internals
    def _resolve_analyzer(self, texts: Sequence[str]) -> str:
        if self.params.analyzer != "auto":
            return self.params.analyzer
        return "char" if cjk_fraction(texts) >= 0.2 else "word"

    def _vectorizer(self, vocabulary: list[str] | None = None, *, fitting: bool = False) -> CountVectorizer:
        params = self.params
        analyzer = self.analyzer_
        options: dict[str, Any] = {
            "lowercase": params.lowercase,
            "dtype": np.float64,
            "vocabulary": vocabulary,
        }
        if fitting:
            options.update(min_df=params.min_df, max_df=params.max_df, max_features=params.max_features)
        if analyzer == "tags":
            separator = params.tag_separator
            lower = params.lowercase

            def split_tags(text: str) -> list[str]:
                tags = (tag.strip() for tag in text.split(separator))
                return [tag.lower() if lower else tag for tag in tags if tag]

            options.update(analyzer=split_tags)
        elif analyzer == "char":
            options.update(analyzer="char", ngram_range=params.ngram_range or (1, 2))
        else:
            options.update(
                analyzer="word",
                ngram_range=params.ngram_range or (1, 1),
                stop_words=params.stop_words,
            )
        return CountVectorizer(**options)

    @staticmethod
    def _check_texts(texts: Any, what: str) -> list[str]:
        if isinstance(texts, str):
            raise DatasetError(f"TextFeaturizer: {what}: expected a sequence of strings, got one string")
        result = list(texts)
        for row, text in enumerate(result):
            if not isinstance(text, str):
                raise DatasetError(
                    f"TextFeaturizer: {what}: row {row}: expected a string, got {type(text).__name__}"
                )
        return result

    def _weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        params = self.params
        matrix = sp.csr_matrix(counts, dtype=np.float64)
        if params.weighting == "binary":
            matrix.data[:] = 1.0
        elif params.weighting == "tfidf":
            if params.sublinear_tf:
                np.log(matrix.data, out=matrix.data)
                matrix.data += 1.0
            assert self.idf_ is not None
            matrix = sp.csr_matrix(matrix @ sp.diags(self.idf_))
        norm = params.norm
        if norm == "auto":
            norm = "l2" if params.weighting == "tfidf" else "none"
        if norm != "none":
            matrix = sp.csr_matrix(normalize(matrix, norm=norm, copy=False))
        matrix.sort_indices()
        return matrix

    # ------------------------------------------------------------------ API
    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        """Learn the vocabulary (and idf) from the **training** texts.

        Raises
        ------
        DatasetError
            If no term survives (empty texts, or ``min_df`` too high).
        """
        texts = self._check_texts(texts, "training texts")
        if not texts:
            raise DatasetError("TextFeaturizer: training texts: expected at least one text, got none")
        self.analyzer_ = self._resolve_analyzer(texts)
        vectorizer = self._vectorizer(fitting=True)
        try:
            counts = vectorizer.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary
            raise DatasetError(
                f"TextFeaturizer: training texts: expected at least one term with analyzer "
                f"{self.analyzer_!r} and min_df={self.params.min_df}, got none ({exc})"
            ) from exc
        terms = vectorizer.get_feature_names_out()
        self.vocabulary_ = [str(term) for term in terms]
        n_texts = counts.shape[0]
        document_frequency = np.bincount(sp.csr_matrix(counts).indices, minlength=len(terms))
        if self.params.weighting == "tfidf":
            self.idf_ = np.log((1.0 + n_texts) / (1.0 + document_frequency)) + 1.0
        else:
            self.idf_ = np.ones(len(terms))
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Featurise texts with the fitted vocabulary: a float64 CSR matrix ``(n, n_terms)``."""
        if self.vocabulary_ is None:
            from ..errors import NotFittedError

            raise NotFittedError("TextFeaturizer: call fit() on the training texts first")
        texts = self._check_texts(texts, "texts")
        counts = self._vectorizer(self.vocabulary_).transform(texts)
        return self._weight(counts)

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """:meth:`fit` then :meth:`transform` on the same texts."""
        return self.fit(texts).transform(texts)

    @property
    def n_features(self) -> int:
        """Number of terms (columns) after fitting."""
        return 0 if self.vocabulary_ is None else len(self.vocabulary_)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready fitted state: parameters, resolved analyzer, vocabulary, idf."""
        if self.vocabulary_ is None or self.idf_ is None:
            from ..errors import NotFittedError

            raise NotFittedError("TextFeaturizer: nothing to save before fit()")
        return {
            "params": self.params.model_dump(mode="json"),
            "analyzer": self.analyzer_,
            "vocabulary": list(self.vocabulary_),
            "idf": self.idf_.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextFeaturizer:
        """Rebuild a fitted featuriser from :meth:`to_state` output."""
        params = dict(state["params"])
        if params.get("ngram_range") is not None:
            params["ngram_range"] = tuple(params["ngram_range"])
        featurizer = cls(params)
        featurizer.analyzer_ = state["analyzer"]
        featurizer.vocabulary_ = list(state["vocabulary"])
        featurizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
        return featurizer
