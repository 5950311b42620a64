"""Hashers as scikit-learn estimators: parameters, clone, Pipeline, kernel lift, GridSearchCV with MAP.

The docs page "Hashers" shows this file in pieces; the test suite runs it whole
(tests/test_sklearn_conventions.py). The data is a small synthetic corpus, so it runs in seconds.
"""

from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ddcmh_core import InputError, get_hasher
from ddcmh_core.evaluation.scorers import make_map_scorer, map_scorer
from ddcmh_core.kernels import AnchorRBFLift, KernelLifted
from ddcmh_core.testing import make_bow_data

# --8<-- [start:params]
hasher = get_hasher("itq", n_bits=16)
print(hasher)  # ITQ(n_bits=16): the repr shows the parameters that differ from the defaults
print(hasher.get_params()["n_iter"])  # every parameter, defaults included
hasher.set_params(n_iter=20)  # validated by the hasher's pydantic Params model
try:
    hasher.set_params(n_iterations=20)
except InputError as error:  # unknown name or invalid value: nothing is changed
    print(error)
twin = clone(hasher)  # a new, unfitted ITQ(n_bits=16, n_iter=20)
# --8<-- [end:params]

# --8<-- [start:pipeline]
features, labels = make_bow_data(n_samples=600, n_features=64)  # word counts, {0,1} labels
X = features.toarray()
train, test = X[:450], X[450:]
train_labels, test_labels = labels[:450], labels[450:]

pipeline = make_pipeline(StandardScaler(), get_hasher("itq", n_bits=16))
pipeline.fit(train)
test_codes = pipeline.transform(test)  # uint8 {0,1}, shape (150, 16)

# A supervised hasher takes the labels as y:
supervised = make_pipeline(StandardScaler(), get_hasher("cca-itq", n_bits=4))
train_codes = supervised.fit_transform(train, train_labels)
# --8<-- [end:pipeline]

# --8<-- [start:lift]
# Ten dense features cannot give ITQ 32 bits (PCA has 10 directions): lift them to anchor RBF
# features first. As a Pipeline step, scaler -> lift -> ITQ, whose transform returns the codes:
dense = X[:, :10]
lifted = make_pipeline(StandardScaler(), AnchorRBFLift(n_anchors=200, seed=0), get_hasher("itq", n_bits=32))
lifted_codes = lifted.fit(dense[:450]).transform(dense[450:])  # uint8 {0,1}, shape (150, 32)

# Or as one hasher that carries its lift into its hasher file (what --hasher-opt itq:kernel_lift=rbf
# and get_hasher("itq", kernel_lift="rbf", lift_anchors=200) build):
wrapped = KernelLifted(get_hasher("itq", n_bits=32), n_anchors=200)
wrapped_codes = wrapped.fit(dense[:450]).transform(dense[450:])
print(wrapped.name, wrapped.get_params(deep=False)["n_anchors"])  # rbf+itq 200
# --8<-- [end:lift]

# --8<-- [start:search]
search = GridSearchCV(
    make_pipeline(StandardScaler(), get_hasher("itq")),
    {"itq__n_bits": [8, 16, 32], "itq__n_iter": [5, 50]},
    scoring=map_scorer,  # MAP of each held-out fold's codes against themselves, by label
    cv=3,
)
search.fit(train, train_labels)
print(search.best_params_, search.best_estimator_)
held_out_map = make_map_scorer()(search.best_estimator_, test, test_labels)
print(f"held-out MAP@all {held_out_map:.3f}")
# --8<-- [end:search]
