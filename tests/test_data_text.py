"""Text featurisers: words, Chinese character n-grams, tags; fitted on training texts only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from ddcmh_core.data import DatasetError, TextFeaturizer
from ddcmh_core.errors import NotFittedError

ENGLISH = [
    "The cathedral was built in the twelfth century",
    "A football match between two rival clubs",
    "The orchestra played a symphony by Mahler",
    "The club won the football league",
]


def test_tfidf_matches_scikit_learn() -> None:
    ours = TextFeaturizer(analyzer="word").fit_transform(ENGLISH)
    reference = TfidfVectorizer().fit_transform(ENGLISH)
    assert ours.dtype == np.float64 and sp.issparse(ours)
    assert np.allclose(ours.toarray(), reference.toarray())


def test_vocabulary_comes_from_training_texts_only() -> None:
    featurizer = TextFeaturizer(analyzer="word", weighting="binary").fit(ENGLISH[:2])
    assert "symphony" not in featurizer.vocabulary_
    rows = featurizer.transform(ENGLISH[2:])
    assert rows.shape == (2, featurizer.n_features)
    assert rows[0].nnz == 1  # only "the" of the unseen text is a training term


def test_chinese_is_detected_and_cut_into_character_ngrams() -> None:
    texts = ["国庆长假期间建设者坚守岗位", "中国女排夺得世界杯冠军", "教育部发布新的高考改革方案"]
    featurizer = TextFeaturizer().fit(texts)
    assert featurizer.analyzer_ == "char"
    assert {"国", "国庆", "冠军"} <= set(featurizer.vocabulary_)
    assert TextFeaturizer().fit(ENGLISH).analyzer_ == "word"


def test_tags_analyzer_keeps_multiword_tags() -> None:
    tags = ["sky,sunset, Night Sky", "cat,,kitten", ""]
    matrix = TextFeaturizer(analyzer="tags", weighting="binary").fit_transform(tags)
    featurizer = TextFeaturizer(analyzer="tags", weighting="binary").fit(tags)
    assert featurizer.vocabulary_ == ["cat", "kitten", "night sky", "sky", "sunset"]
    assert matrix.toarray().sum(axis=1).tolist() == [3, 2, 0]


def test_state_round_trip_is_json_and_exact() -> None:
    featurizer = TextFeaturizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit(ENGLISH)
    state = json.loads(json.dumps(featurizer.to_state()))
    restored = TextFeaturizer.from_state(state)
    assert np.allclose(restored.transform(ENGLISH).toarray(), featurizer.transform(ENGLISH).toarray())


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        TextFeaturizer().transform(["x"])
    with pytest.raises(DatasetError, match="expected at least one term"):
        TextFeaturizer(analyzer="word").fit(["a", "b"])  # single letters are no word tokens
    with pytest.raises(DatasetError, match="row 1: expected a string, got int"):
        TextFeaturizer().fit(["fine text", 3])
    with pytest.raises(DatasetError, match="ngram_range"):
        TextFeaturizer(ngram_range=(2, 1))
    with pytest.raises(DatasetError, match="weighting"):
        TextFeaturizer(weighting="bm25")
