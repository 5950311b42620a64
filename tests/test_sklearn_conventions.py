"""Hashers as scikit-learn estimators: params, clone, Pipeline, GridSearchCV, repr, saved-state size."""

from __future__ import annotations

import inspect
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn.exceptions
import sklearn.utils.estimator_checks as estimator_checks
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ddcmh_core import InputError, get_hasher, hasher_registry, load_hasher
from ddcmh_core.evaluation.metrics import mean_average_precision
from ddcmh_core.evaluation.scorers import make_map_scorer, map_scorer
from ddcmh_core.kernels import AnchorRBFLift, KernelLifted
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.itq import ITQ

DOCS_EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sklearn_hasher.py"
BUILTIN = sorted(
    entry.spec.name for entry in hasher_registry().entries() if entry.plugin.distribution == "ddcmh"
)
# Small settings that keep each built-in fast on small data (anchors at most the rows, few labelled).
FAST = {
    "agh": {"n_anchors": 10},
    "sdh": {"n_anchors": 20},
    "ksh": {"n_anchors": 20, "n_labelled": 60},
}


@pytest.fixture(scope="module")
def corpus():
    features, labels = make_bow_data(n_samples=300, n_features=40)
    return features.toarray(), labels


# ------------------------------------------------------------------------- parameters
def test_get_params_accepts_deep_and_lists_every_field():
    hasher = get_hasher("itq", n_bits=16)
    assert hasher.get_params(deep=True) == hasher.get_params(deep=False) == hasher.get_params()
    assert set(hasher.get_params()) == set(ITQ.Params.model_fields)
    assert hasher.get_params()["n_bits"] == 16 and hasher.get_params()["n_iter"] == 50


def test_set_params_validates_through_the_params_model():
    hasher = ITQ(n_bits=16)
    assert hasher.set_params(n_iter=5, seed=3) is hasher
    assert hasher.params.n_iter == 5 and hasher.params.seed == 3 and hasher.n_bits == 16
    assert isinstance(hasher.params, ITQ.Params) and hasher.set_params() is hasher


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"n_iterations": 5}, r"ITQ: argument 'n_iterations': unknown .*\(expected one of n_bits, .*n_iter"),
        ({"n_bits": 0}, r"ITQ: argument 'n_bits': .*greater than or equal to 1.*got 0"),
        ({"projection": "lda"}, r"ITQ: argument 'projection': .*got 'lda'"),
        ({"n_iter": 5, "seed": -1}, r"argument 'seed'"),
    ],
)  # fmt: skip
def test_set_params_refuses_bad_keys_and_values_and_changes_nothing(params, pattern):
    hasher = ITQ(n_bits=16, n_iter=7)
    with pytest.raises(InputError, match=pattern):
        hasher.set_params(**params)
    assert hasher.get_params() == ITQ(n_bits=16, n_iter=7).get_params()


def test_init_signature_lists_the_params_fields_with_their_defaults():
    signature = inspect.signature(ITQ)
    assert list(signature.parameters) == list(ITQ.Params.model_fields)
    assert signature.parameters["n_iter"].default == 50
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())


# ------------------------------------------------------------------------- clone and repr
def test_sklearn_clone_gives_an_unfitted_twin_with_the_registered_name(corpus):
    features, _ = corpus
    hasher = get_hasher("cca-itq", n_bits=8, n_iter=5)
    twin = clone(hasher)
    assert twin is not hasher and type(twin) is ITQ and twin.params == hasher.params
    assert twin.name == "cca-itq" and twin.params.projection == "cca"
    hasher.fit(features, np.arange(len(features)) % 3)
    fitted_twin = clone(hasher)
    assert hasher.is_fitted and not fitted_twin.is_fitted and fitted_twin.params == hasher.params


def test_repr_shows_only_non_default_params_also_inside_a_pipeline():
    assert repr(get_hasher("itq")) == "ITQ()"
    assert repr(get_hasher("cca-itq", n_bits=16)) == "ITQ(n_bits=16, projection='cca')"
    pipeline = make_pipeline(StandardScaler(), get_hasher("sdh", n_bits=16, n_anchors=50))
    assert "('sdh', SDH(n_anchors=50, n_bits=16))" in repr(pipeline)  # scikit-learn sorts them
    assert "n_anchors" in pipeline._repr_html_()  # the notebook display lists the parameters


# ------------------------------------------------------------------------- Pipeline
def test_pipeline_transform_returns_the_codes(corpus):
    features, _ = corpus
    train, new = features[:200], features[200:]
    pipeline = make_pipeline(StandardScaler(), get_hasher("itq", n_bits=16)).fit(train)
    codes = pipeline.transform(new)
    assert codes.dtype == np.uint8 and codes.shape == (100, 16) and set(np.unique(codes)) <= {0, 1}
    scaler = StandardScaler().fit(train)
    by_hand = get_hasher("itq", n_bits=16).fit(scaler.transform(train))
    np.testing.assert_array_equal(codes, by_hand.encode(scaler.transform(new)))
    np.testing.assert_array_equal(pipeline.fit_transform(train), pipeline.transform(train))


def test_fit_transform_is_fit_then_transform_for_a_discrete_method(corpus):
    features, labels = corpus
    hasher = get_hasher("sdh", n_bits=8, n_anchors=50)
    codes = hasher.fit_transform(features, labels)
    np.testing.assert_array_equal(codes, hasher.transform(features))
    np.testing.assert_array_equal(codes, hasher.encoded_training_codes_)


def test_unfitted_transform_raises_sklearn_not_fitted_error(corpus):
    features, _ = corpus
    with pytest.raises(sklearn.exceptions.NotFittedError, match="call fit before encode"):
        get_hasher("itq", n_bits=8).transform(features)


# ------------------------------------------------------------------------- kernel lift
def test_anchor_rbf_lift_is_a_scikit_learn_transformer(corpus):
    features, _ = corpus
    lift = AnchorRBFLift(n_anchors=30, seed=2)
    assert lift.get_params() == {"n_anchors": 30, "seed": 2, "center": True}
    assert repr(lift) == "AnchorRBFLift(n_anchors=30, seed=2)"
    with pytest.raises(sklearn.exceptions.NotFittedError, match="call fit before transform"):
        lift.transform(features)
    lifted = clone(lift).fit(features).transform(features)
    assert lifted.shape == (len(features), 30) and np.allclose(lifted.mean(axis=0), 0.0)
    raw = clone(lift).set_params(center=False).fit(features).transform(features)
    assert np.all((raw > 0) & (raw <= 1))  # uncentred RBF similarities
    assert list(lift.fit(features).get_feature_names_out()[:2]) == ["anchorrbflift0", "anchorrbflift1"]
    with pytest.raises(InputError, match=r"argument 'X'.*40 features"):
        lift.transform(features[:, :-1])
    with pytest.raises(InputError, match=r"AnchorRBFLift: argument 'n_anchors'.*got 1"):
        AnchorRBFLift(n_anchors=1).fit(features)


def test_kernel_lifted_clones_and_tunes_through_nested_parameters(corpus):
    features, labels = corpus
    wrapped = KernelLifted(get_hasher("itq", n_bits=8), n_anchors=60)
    assert repr(wrapped) == "KernelLifted(ITQ(n_bits=8), n_anchors=60)" and wrapped.name == "rbf+itq"
    params = wrapped.get_params(deep=True)
    assert params["n_anchors"] == 60 and params["hasher__n_bits"] == 8
    assert params["hasher"] is wrapped.hasher
    twin = clone(wrapped.fit(features))
    assert not twin.is_fitted and twin.hasher is not wrapped.hasher
    assert twin.build_params() == wrapped.build_params()
    twin.set_params(hasher__n_iter=3, n_anchors=40)
    assert twin.hasher.params.n_iter == 3 and twin.n_anchors == 40 and twin.params.n_anchors == 40
    with pytest.raises(InputError, match="argument 'n_anchor'"):
        twin.set_params(n_anchor=3)
    with pytest.raises(InputError, match="argument 'n_anchors'"):
        twin.set_params(n_anchors=1)
    assert twin.n_anchors == 40  # unchanged by the refused values
    direct = KernelLifted(ITQ(n_bits=8), n_anchors=30)
    direct.hasher.set_params(n_bits=4)  # the wrapper follows its inner hasher
    assert direct.n_bits == 4 and direct.fit(features).encode(features).shape == (len(features), 4)
    assert direct.params.n_bits == 4
    search = GridSearchCV(
        KernelLifted(get_hasher("itq")), {"n_anchors": [20, 60], "hasher__n_bits": [4, 8]},
        scoring=map_scorer, cv=2, error_score="raise",
    )
    search.fit(features, labels)
    assert set(search.best_params_) == {"n_anchors", "hasher__n_bits"}
    assert isinstance(search.best_estimator_, KernelLifted) and search.best_estimator_.is_fitted


# ------------------------------------------------------------------------- scorer and search
def test_map_scorer_is_the_map_of_the_codes_against_themselves(corpus):
    features, labels = corpus
    hasher = get_hasher("itq", n_bits=16).fit(features[:200])
    held_out, held_labels = features[200:], labels[200:]
    codes = hasher.transform(held_out)
    expected = float(mean_average_precision(codes, codes, held_labels, held_labels))
    assert map_scorer(hasher, held_out, held_labels) == pytest.approx(expected)
    at_10 = float(mean_average_precision(codes, codes, held_labels, held_labels, k=10))
    assert make_map_scorer(k=10)(hasher, held_out, held_labels) == pytest.approx(at_10)
    assert 0.0 < at_10 <= 1.0 and repr(make_map_scorer(k=10)) == "make_map_scorer(k=10)"


def test_map_scorer_refuses_bad_arguments(corpus):
    features, _ = corpus
    hasher = get_hasher("itq", n_bits=8).fit(features)
    with pytest.raises(InputError, match=r"argument 'y': expected labels .*got None"):
        map_scorer(hasher, features)
    with pytest.raises(InputError, match=r"k: expected a positive integer, found 0"):
        make_map_scorer(k=0)
    with pytest.raises(InputError, match=r"tie_policy"):
        make_map_scorer(tie_policy="random")


def test_grid_search_with_the_map_scorer_prefers_more_bits(corpus):
    features, labels = corpus
    search = GridSearchCV(
        make_pipeline(StandardScaler(), get_hasher("itq")),
        {"itq__n_bits": [1, 16]},
        scoring=map_scorer,
        cv=3,
        error_score="raise",
    )
    search.fit(features, labels)
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 0.05, scores
    assert search.best_params_ == {"itq__n_bits": 16}
    assert search.best_estimator_[-1].n_bits == 16 and search.best_estimator_[-1].is_fitted


def test_grid_search_over_a_supervised_hasher_passes_labels_to_fit(corpus):
    features, labels = corpus
    class_ids = labels.argmax(axis=1)
    search = GridSearchCV(
        get_hasher("cca-itq", n_bits=2), {"n_bits": [2, 4]}, scoring=map_scorer, cv=2, error_score="raise"
    )
    search.fit(features, class_ids)
    assert search.best_estimator_.params.projection == "cca" and search.best_estimator_.name == "cca-itq"
    folds = cross_val_score(
        get_hasher("sdh", n_bits=8, n_anchors=40), features, labels, scoring=map_scorer, cv=2
    )
    assert folds.shape == (2,) and np.all((folds > 0) & (folds <= 1))


# ------------------------------------------------------------------------- scikit-learn's own checks
# The checks of sklearn.utils.estimator_checks that apply to a hasher. Left out on purpose: checks
# of error-message wording (ddcmh's messages name the argument, expectation and value found),
# check_no_attributes_set_in_init and check_do_not_raise_errors_in_init_or_set_params (the params
# are validated by pydantic in __init__ and set_params, by design), check_fit_score_takes_y (the
# second argument of fit is named ``labels``; it is passed by position), and checks on 1 feature
# (PCA-based hashers need n_bits <= n_features).
SKLEARN_CHECKS = [
    "check_get_params_invariance",
    "check_set_params",
    "check_parameters_default_constructible",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_transformer_general",
    "check_transformers_unfitted",
    "check_estimators_pickle",
    "check_estimator_sparse_matrix",
    "check_methods_subset_invariance",
    "check_methods_sample_order_invariance",
    "check_pipeline_consistency",
    "check_dict_unchanged",
]


@pytest.mark.parametrize("check_name", SKLEARN_CHECKS)
@pytest.mark.parametrize("name", BUILTIN)
def test_sklearn_estimator_checks(name, check_name):
    check = getattr(estimator_checks, check_name, None)
    if check is None:
        pytest.skip(f"scikit-learn has no {check_name}")
    hasher = get_hasher(name, n_bits=2, **FAST.get(name, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(type(hasher).__name__, hasher)


@pytest.mark.parametrize("check_name", SKLEARN_CHECKS)
def test_sklearn_estimator_checks_of_the_lift(check_name):
    check = getattr(estimator_checks, check_name, None)
    if check is None:
        pytest.skip(f"scikit-learn has no {check_name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for estimator in (AnchorRBFLift(n_anchors=10), KernelLifted(ITQ(n_bits=2), n_anchors=20)):
            check(type(estimator).__name__, estimator)


# ------------------------------------------------------------------------- saved state
@pytest.mark.parametrize("name", BUILTIN)
def test_saved_file_does_not_grow_with_the_training_rows(name, tmp_path):
    sizes = []
    for n_samples in (1_000, 20_000):
        features, labels = make_bow_data(n_samples=n_samples, n_features=16, n_classes=4, seed=1)
        hasher = get_hasher(name, n_bits=8, **FAST.get(name, {}))
        hasher.fit(features, labels if hasher.tags()["uses_labels"] else None)
        assert hasher.training_codes_.shape == (n_samples, 8)  # still there in memory
        path = hasher.save(tmp_path / f"{name}-{n_samples}.h5")
        sizes.append(path.stat().st_size)
    assert abs(sizes[1] - sizes[0]) <= 512, f"{name}: {sizes[0]} bytes for 1,000 rows, {sizes[1]} for 20,000"


def test_training_only_attributes_are_kept_in_memory_but_not_saved(corpus, tmp_path):
    features, labels = corpus
    hasher = get_hasher("sdh", n_bits=8, n_anchors=40).fit(features, labels)
    assert {"training_codes_", "encoded_training_codes_", "codes_"} <= set(hasher.training_only_attributes)
    assert hasher.codes_.shape == (len(features), 8)
    assert not set(hasher.training_only_attributes) & set(hasher.fitted_state())
    restored = load_hasher(hasher.save(tmp_path / "sdh.h5"))
    np.testing.assert_array_equal(restored.encode(features), hasher.encode(features))


# ------------------------------------------------------------------------- the docs
def test_docs_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = runpy.run_path(str(DOCS_EXAMPLE), run_name="__main__")
    output = capsys.readouterr().out
    assert output.splitlines()[0] == "ITQ(n_bits=16)"
    assert "argument 'n_iterations': unknown hyper-parameter" in output
    assert names["twin"].params.n_iter == 20 and not names["twin"].is_fitted
    assert names["test_codes"].shape == (150, 16) and names["train_codes"].shape == (450, 4)
    assert set(names["search"].best_params_) == {"itq__n_bits", "itq__n_iter"}
    assert names["lifted_codes"].shape == names["wrapped_codes"].shape == (150, 32)
    assert "rbf+itq 200" in output
    assert 0.0 < names["held_out_map"] <= 1.0
