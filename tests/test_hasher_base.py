"""The Hasher base class: parameters, validation, kernel lift, HDF5 files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pydantic
import pytest
import scipy.sparse as sp

from ddcmh_core import (
    HasherFileError,
    InputError,
    NotFittedError,
    get_hasher,
    load_hasher,
)
from ddcmh_core.hasher_file import FILE_FORMAT_VERSION
from ddcmh_core.kernels import AnchorRBFLift, KernelLifted
from ddcmh_core.testing import make_bow_data
from ddcmh_hashers.itq import ITQ
from ddcmh_hashers.lsh import LSH


@pytest.fixture(scope="module")
def corpus():
    return make_bow_data(n_samples=300, n_features=40)


def test_params_are_validated_and_frozen():
    hasher = ITQ(n_bits=24, seed=3)
    assert hasher.params.n_bits == 24 and hasher.n_bits == 24
    with pytest.raises(pydantic.ValidationError):
        hasher.params.n_bits = 8  # frozen
    with pytest.raises(InputError, match=r"ITQ: argument 'n_iter': unknown|ITQ: argument 'niter': unknown"):
        ITQ(niter=3)
    with pytest.raises(InputError, match=r"ITQ: argument 'n_bits': .*greater than or equal to 1.*got 0"):
        ITQ(n_bits=0)
    with pytest.raises(InputError, match=r"argument 'projection'"):
        ITQ(projection="lda")
    with pytest.raises(InputError, match=r"argument 'n_bits'"):
        ITQ(n_bits="many")


def test_repr_shows_changed_params():
    assert repr(ITQ(n_bits=64, n_iter=10)) == "ITQ(n_bits=64, n_iter=10)"


def test_bad_features_name_hasher_argument_and_expectation(corpus):
    features, _ = corpus
    dense = features.toarray()
    dense[7, 1] = np.inf
    expected = r"ITQ: argument 'X': expected finite values, got NaN or inf in row 7"
    with pytest.raises(InputError, match=expected):
        ITQ(n_bits=8).fit(dense)
    sparse = features.copy()
    sparse.data[sparse.indptr[11]] = np.nan
    with pytest.raises(InputError, match=r"row 11"):
        ITQ(n_bits=8).fit(sparse)
    with pytest.raises(InputError, match=r"expected a 2-D array.*got 3-D"):
        ITQ(n_bits=8).fit(np.zeros((4, 3, 2)))
    with pytest.raises(InputError, match=r"expected a numeric array"):
        ITQ(n_bits=8).fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InputError, match=r"expected at least 2 rows, got 1"):
        ITQ(n_bits=1).fit(np.ones((1, 5)))
    fitted = ITQ(n_bits=8).fit(features)
    with pytest.raises(InputError, match=r"expected 40 features \(the width seen in fit\), got 39"):
        fitted.encode(features[:, :39])


def test_bad_labels_are_refused(corpus):
    features, labels = corpus
    with pytest.raises(InputError, match=r"cca-itq: argument 'labels': expected 300 rows .* got 299"):
        get_hasher("cca-itq", n_bits=4).fit(features, labels[:299])
    bad = labels.astype(float)
    bad[5, 0] = 0.5
    with pytest.raises(InputError, match=r"expected only 0 and 1, got another value in row 5"):
        get_hasher("cca-itq", n_bits=4).fit(features, bad)
    with pytest.raises(InputError, match=r"argument 'labels': expected a \{0,1\} label matrix with 300 rows"):
        get_hasher("cca-itq", n_bits=4).fit(features)


def test_class_id_vectors_become_one_hot(corpus):
    features, labels = corpus
    class_ids = labels.argmax(axis=1)
    one_hot = np.eye(labels.shape[1], dtype=np.uint8)[class_ids]
    by_ids = get_hasher("cca-itq", n_bits=4).fit_encode(features, class_ids)
    by_matrix = get_hasher("cca-itq", n_bits=4).fit_encode(features, one_hot)
    assert np.array_equal(by_ids, by_matrix)


def test_too_many_bits_points_to_the_kernel_lift():
    features = np.random.default_rng(0).random((500, 10))  # like Wikipedia's 10-d LDA text
    with pytest.raises(InputError) as error:
        ITQ(n_bits=32).fit(features)
    message = str(error.value)
    assert "argument 'n_bits'" in message and "n_features (10)" in message
    assert "KernelLifted(hasher, n_anchors=1000)" in message and "kernel_lift='rbf'" in message
    lifted = get_hasher("itq", n_bits=32, kernel_lift="rbf", lift_anchors=200).fit(features)
    assert isinstance(lifted, KernelLifted) and isinstance(lifted.hasher_, ITQ)
    codes = lifted.encode(features)
    assert codes.shape == (500, 32)
    assert lifted.lift_.map_.anchors.shape == (200, 10)
    assert np.all(codes.mean(axis=0) > 0.05) and np.all(codes.mean(axis=0) < 0.95)


def test_kernel_lift_width_is_chosen_on_training_data():
    features = np.random.default_rng(1).random((300, 6))
    lift = AnchorRBFLift(n_anchors=50).fit(features)
    anchors = lift.map_.anchors
    squared = ((features[:, None, :] - anchors[None]) ** 2).sum(-1)
    assert lift.map_.bandwidth == pytest.approx(np.sqrt(squared.mean()))
    assert all(np.any(np.all(features == row, axis=1)) for row in anchors)  # anchors are training rows
    lifted = lift.transform(features)
    assert lifted.shape == (300, 50) and np.allclose(lifted.mean(axis=0), 0.0)  # centred by default
    # The wrapper's lift is this transformer, seeded with the inner hasher's seed.
    wrapped = KernelLifted(LSH(n_bits=16), n_anchors=50).fit(features)
    assert np.array_equal(wrapped.lift_.map_.anchors, anchors)
    assert np.array_equal(wrapped.encode(features), LSH(n_bits=16).fit(lifted).encode(lifted))


def test_kernel_lift_options_map_to_the_wrapper_in_one_place():
    lifted = get_hasher("lsh", n_bits=8, kernel_lift="rbf", lift_anchors=40)
    assert isinstance(lifted, KernelLifted) and lifted.n_anchors == 40 and lifted.name == "rbf+lsh"
    assert lifted.build_params() == {**LSH(n_bits=8).get_params(), "kernel_lift": "rbf", "lift_anchors": 40}
    assert type(get_hasher("lsh", n_bits=8, kernel_lift="none", lift_anchors=40)) is LSH
    with pytest.raises(InputError, match=r"argument 'kernel_lift'.*'none' or 'rbf'"):
        get_hasher("lsh", kernel_lift="poly")
    with pytest.raises(InputError, match="argument 'lift_anchors'"):
        get_hasher("lsh", kernel_lift="rbf", lift_anchors=1)
    with pytest.raises(InputError, match=r"'kernel_lift': unknown hyper-parameter.*KernelLifted"):
        ITQ(n_bits=8, kernel_lift="rbf")


def test_unfitted_hasher_raises():
    with pytest.raises(NotFittedError, match="call fit before encode"):
        ITQ().encode(np.ones((3, 3)))
    with pytest.raises(NotFittedError):
        ITQ().save("x.h5")


def test_refit_forgets_previous_state(corpus):
    features, _ = corpus
    hasher = ITQ(n_bits=8).fit(features)
    hasher.stale_ = np.zeros(3)
    hasher.fit(features)
    assert not hasattr(hasher, "stale_") and hasattr(hasher, "rotation_")


def test_save_is_atomic_and_load_restores(tmp_path, corpus):
    features, _ = corpus
    hasher = get_hasher("itq", n_bits=8, kernel_lift="rbf", lift_anchors=30).fit(features)
    path = hasher.save(tmp_path / "itq.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["itq.h5"]
    restored = load_hasher(path)
    assert restored.params == hasher.params
    assert np.array_equal(restored.encode(features), hasher.encode(features))
    with h5py.File(path) as handle:
        assert handle.attrs["hasher_name"] == "itq"
        assert handle.attrs["provider"] == "ddcmh"
        assert "pickle" not in str(dict(handle.attrs))


def test_lifted_hasher_files_keep_the_layout_of_files_saved_before_the_wrapper(tmp_path, corpus):
    features, _ = corpus
    lifted = get_hasher("itq", n_bits=8, kernel_lift="rbf", lift_anchors=30).fit(features)
    path = lifted.save(tmp_path / "lifted.h5")
    with h5py.File(path) as handle:  # what ddcmh wrote when kernel_lift was a field of every hasher
        params = json.loads(handle.attrs["params"])
        keys = json.loads(handle["state"].attrs["state_keys"])
        assert handle.attrs["hasher_class"] == "ddcmh_hashers.itq:ITQ"
    assert params["kernel_lift"] == "rbf" and params["lift_anchors"] == 30
    assert {"lift_", "n_features_in_", "rotation_"} <= set(keys)
    restored = load_hasher(path)
    assert isinstance(restored, KernelLifted) and restored.n_features_in_ == 40
    assert restored.hasher_.n_features_in_ == 30
    assert np.array_equal(restored.encode(features), lifted.encode(features))
    # A plain hasher saved then recorded kernel_lift="none" and lift_anchors in its params.
    plain = ITQ(n_bits=8).fit(features).save(tmp_path / "plain.h5")
    with h5py.File(plain, "a") as handle:
        handle.attrs["params"] = json.dumps(
            {**json.loads(handle.attrs["params"]), "kernel_lift": "none", "lift_anchors": 1000}
        )
    assert type(load_hasher(plain)) is ITQ
    # A lifted file without its feature map is refused, naming the attribute.
    with h5py.File(path, "a") as handle:
        del handle["state/lift_"]
        handle["state"].attrs["state_keys"] = json.dumps([key for key in keys if key != "lift_"])
    with pytest.raises(HasherFileError, match="fitted attribute 'lift_' is missing"):
        load_hasher(path)


def test_failed_save_leaves_nothing(tmp_path, corpus):
    features, _ = corpus
    hasher = ITQ(n_bits=8).fit(features)
    hasher.not_saveable_ = object()
    with pytest.raises(TypeError, match="not_saveable_"):
        hasher.save(tmp_path / "broken.h5")
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_bad_files(tmp_path, corpus):
    features, _ = corpus
    with pytest.raises(HasherFileError, match="no such file"):
        load_hasher(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(HasherFileError, match="not a readable HDF5 file"):
        load_hasher(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["data"] = np.arange(3)
    with pytest.raises(HasherFileError, match="not a ddcmh hasher file"):
        load_hasher(foreign)
    good = ITQ(n_bits=8).fit(features).save(tmp_path / "good.h5")
    future = tmp_path / "future.h5"
    future.write_bytes(good.read_bytes())
    with h5py.File(future, "a") as handle:
        handle.attrs["format_version"] = FILE_FORMAT_VERSION + 1
    with pytest.raises(HasherFileError, match="format version 2 is not supported"):
        load_hasher(future)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes())
    with h5py.File(truncated, "a") as handle:
        del handle["state/rotation_"]
    with pytest.raises(HasherFileError, match=r"'rotation_' .* is missing"):
        load_hasher(truncated)
    chopped = tmp_path / "chopped.h5"
    chopped.write_bytes(good.read_bytes()[:300])
    with pytest.raises(HasherFileError):
        load_hasher(chopped)
    unknown = tmp_path / "unknown.h5"
    unknown.write_bytes(good.read_bytes())
    with h5py.File(unknown, "a") as handle:
        handle.attrs["hasher_name"] = "no-such-hasher"
        handle.attrs["provider"] = "ddcmh-nowhere"
    with pytest.raises(HasherFileError, match=r"'no-such-hasher' \(from ddcmh-nowhere\) is not installed"):
        load_hasher(unknown)
    bad_params = tmp_path / "bad_params.h5"
    bad_params.write_bytes(good.read_bytes())
    with h5py.File(bad_params, "a") as handle:
        handle.attrs["params"] = '{"n_bits": -3}'
    with pytest.raises(HasherFileError, match="invalid stored hyper-parameters"):
        load_hasher(bad_params)


def test_dense_and_sparse_give_same_codes(corpus):
    features, _ = corpus
    sparse_codes = ITQ(n_bits=16).fit_encode(features)
    dense_codes = ITQ(n_bits=16).fit_encode(features.toarray())
    assert np.mean(sparse_codes == dense_codes) > 0.999
    assert sp.issparse(features)


def test_hasher_opt_kernel_lift_keeps_working_from_the_command_line(corpus):
    from ddcmh_core.bench.plan import resolve_hasher_options, validate_plan
    from ddcmh_core.cli.bench import build_parser, resolve_config
    from ddcmh_core.methods.ddcmh import DDCMH, _make_hasher

    arguments = ["--hasher", "itq,lsh", "--bits", "32", "--hasher-opt", "itq:kernel_lift=rbf"]
    arguments += ["--hasher-opt", "itq:lift_anchors=50", "--hasher-opt", "lift_anchors=60"]
    config = resolve_config(build_parser().parse_args(arguments))
    validate_plan(config)
    assert resolve_hasher_options(config, "itq") == {"kernel_lift": "rbf", "lift_anchors": 50}
    assert resolve_hasher_options(config, "lsh") == {"lift_anchors": 60}  # '*' options reach every hasher
    lifted = get_hasher("itq", n_bits=32, **resolve_hasher_options(config, "itq"))
    assert isinstance(lifted, KernelLifted) and lifted.n_anchors == 50
    assert type(get_hasher("lsh", n_bits=32, **resolve_hasher_options(config, "lsh"))) is LSH
    # ddcmh train passes --hasher-opt as DDCMH's hasher_params; the model file records build_params().
    model = DDCMH(hasher="itq", hasher_params={"kernel_lift": "rbf", "lift_anchors": 30}, n_bits=16)
    hasher = _make_hasher(model.params)
    assert isinstance(hasher, KernelLifted) and hasher.build_params()["lift_anchors"] == 30
    features, _ = corpus
    rebuilt = get_hasher("itq", **hasher.fit(features).build_params())
    assert isinstance(rebuilt, KernelLifted) and rebuilt.build_params() == hasher.build_params()


@pytest.mark.parametrize(
    ("name", "options", "shape", "words"),
    [
        ("itq", {}, (100, 8), "expected n_bits <= n_features (8)"),
        ("itq", {}, (12, 40), "expected more training rows than n_bits (16)"),
        ("itq", {"kernel_lift": "rbf", "lift_anchors": 10}, (100, 4), "the kernel lift gives 10 features"),
        ("ksh", {"n_anchors": 12}, (100, 4), "expected at most the number of anchors"),
    ],
)
def test_shape_problems_are_what_fit_would_raise(name, options, shape, words):
    hasher = get_hasher(name, n_bits=16, **options)
    problems = hasher.shape_problems(*shape)
    assert len(problems) == 1 and words in problems[0]
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape)
    labels = np.eye(2, dtype=np.uint8)[rng.integers(0, 2, shape[0])]
    with pytest.raises(InputError) as raised:
        hasher.fit(X, labels)
    assert words in str(raised.value)
    assert get_hasher(name, n_bits=8, **options).shape_problems(200, 64) == []  # fits: no problem
