"""Conformance kit for hashers: ``check_hasher`` and ``parametrize_with_hasher_checks``.

A plugin author's whole test file can be::

    from ddcmh_core.testing import parametrize_with_hasher_checks
    from ddcmh_foo import Foo

    @parametrize_with_hasher_checks([Foo(n_bits=16)])
    def test_conformance(hasher, check):
        check(hasher)

Every check takes an *unfitted* hasher, works on clones of it (the instance passed in is never
fitted or changed) and raises ``AssertionError`` with a message naming the hasher and the check.
The data is a small synthetic bag-of-words corpus with multi-hot labels (:func:`make_bow_data`),
like the text view that Stage 1 sees.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import InputError, NotFittedError, UnsupportedOperationError
from .hasher import Hasher
from .hasher_file import load_hasher

HasherCheck = Callable[[Hasher], None]

MIN_BIT_BALANCE = 0.05
"""Every bit must be 1 on at least this fraction (and at most 1 minus it) of the training items."""
MIN_SPARSE_DENSE_AGREEMENT = 0.99
"""Fraction of bits that must agree between sparse and dense input (rounding may flip a few)."""


def make_bow_data(
    n_samples: int = 400,
    n_features: int = 64,
    n_classes: int = 5,
    seed: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """A synthetic bag-of-words corpus whose words depend on multi-hot labels.

    Each item has one or two labels; each label prefers its own block of words, and a few
    background words appear everywhere. Counts are Poisson.

    Parameters
    ----------
    n_samples, n_features, n_classes : int
        Corpus size, vocabulary size, number of labels.
    seed : int
        Seed of the generator.

    Returns
    -------
    features : scipy.sparse.csr_matrix of shape (n_samples, n_features), float64 counts
    labels : ndarray of shape (n_samples, n_classes), uint8 {0,1}
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros((n_samples, n_classes), dtype=np.uint8)
    labels[np.arange(n_samples), rng.integers(0, n_classes, n_samples)] = 1
    second = rng.random(n_samples) < 0.3
    labels[np.flatnonzero(second), rng.integers(0, n_classes, int(second.sum()))] = 1
    topic_words = np.zeros((n_classes, n_features))
    block = max(n_features // n_classes, 1)
    for label in range(n_classes):
        topic_words[label, label * block : (label + 1) * block] = 1.0
    rates = 0.6 * labels @ topic_words / labels.sum(axis=1, keepdims=True) + 0.05
    counts = rng.poisson(rates * 3.0)
    return sp.csr_matrix(counts.astype(np.float64)), labels


def _data_for(hasher: Hasher) -> tuple[sp.csr_matrix, np.ndarray]:
    return make_bow_data(n_features=max(64, 2 * hasher.n_bits))


def _fit_encode(hasher: Hasher, features: Any, labels: np.ndarray) -> np.ndarray:
    return hasher.fit_encode(features, labels if hasher.tags()["uses_labels"] else None)


def _fail_message(hasher: Hasher, check: str, problem: str) -> str:
    return f"{hasher!r} failed {check}: {problem}"


def check_params_round_trip(hasher: Hasher) -> None:
    """``get_params`` is JSON-compatible, rebuilds an equal hasher and unknown keys are refused."""
    import json

    params = hasher.get_params()
    json.dumps(params)
    rebuilt = type(hasher)(**params)
    assert rebuilt.params == hasher.params, _fail_message(
        hasher, "check_params_round_trip", "rebuilding from get_params() changed the params"
    )
    assert hasher.clone().params == hasher.params
    try:
        type(hasher)(**params, no_such_hyper_parameter=1)
    except InputError as error:
        assert "no_such_hyper_parameter" in str(error), _fail_message(
            hasher, "check_params_round_trip", f"error does not name the parameter: {error}"
        )
    else:
        raise AssertionError(
            _fail_message(hasher, "check_params_round_trip", "an unknown hyper-parameter was accepted")
        )


def check_unfitted_errors(hasher: Hasher) -> None:
    """A new hasher is not fitted and refuses to encode or save."""
    fresh = hasher.clone()
    assert not fresh.is_fitted, _fail_message(hasher, "check_unfitted_errors", "fitted after __init__")
    features, _ = _data_for(hasher)
    if fresh.supports_encode:
        try:
            fresh.encode(features)
        except NotFittedError:
            pass
        else:
            raise AssertionError(
                _fail_message(hasher, "check_unfitted_errors", "encode before fit did not raise")
            )
    else:
        try:
            fresh.encode(features)
        except UnsupportedOperationError:
            pass
        else:
            raise AssertionError(
                _fail_message(
                    hasher, "check_unfitted_errors", "supports_encode is False but encode worked"
                )
            )


def check_codes_format(hasher: Hasher) -> None:
    """Codes are C-contiguous uint8 {0,1} of shape (n, n_bits); fit returns self."""
    features, labels = _data_for(hasher)
    fresh = hasher.clone()
    assert fresh.fit(features, labels if fresh.tags()["uses_labels"] else None) is fresh
    outputs = [("training codes", fresh.training_codes_)]
    if fresh.supports_encode:
        outputs.append(("encode", fresh.encode(features[:50])))
    for what, codes in outputs:
        expected_rows = features.shape[0] if what == "training codes" else 50
        problem = None
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8:
            problem = f"{what} are {type(codes).__name__} {getattr(codes, 'dtype', '')}, expected uint8"
        elif codes.shape != (expected_rows, hasher.n_bits):
            problem = f"{what} have shape {codes.shape}, expected {(expected_rows, hasher.n_bits)}"
        elif not codes.flags.c_contiguous:
            problem = f"{what} are not C-contiguous"
        elif not np.all((codes == 0) | (codes == 1)):
            problem = f"{what} hold values other than 0 and 1"
        assert problem is None, _fail_message(hasher, "check_codes_format", str(problem))


def check_deterministic(hasher: Hasher) -> None:
    """Two fits with the same seed give identical codes (and encodings)."""
    features, labels = _data_for(hasher)
    first, second = hasher.clone(), hasher.clone()
    codes_first = _fit_encode(first, features, labels)
    codes_second = _fit_encode(second, features, labels)
    assert np.array_equal(codes_first, codes_second), _fail_message(
        hasher, "check_deterministic", "two fits with the same seed gave different codes"
    )
    if hasher.supports_encode:
        assert np.array_equal(first.encode(features), second.encode(features)), _fail_message(
            hasher, "check_deterministic", "two fits with the same seed encode differently"
        )


def check_no_input_mutation(hasher: Hasher) -> None:
    """Neither fit nor encode changes the arrays passed in (dense and sparse)."""
    features, labels = _data_for(hasher)
    dense = features.toarray()
    for data in (features, dense):
        before = data.copy()
        labels_before = labels.copy()
        fresh = hasher.clone()
        _fit_encode(fresh, data, labels)
        if fresh.supports_encode:
            fresh.encode(data)
        same = (
            (before != data).nnz == 0 if sp.issparse(data) else np.array_equal(before, data)
        )
        assert same and np.array_equal(labels_before, labels), _fail_message(
            hasher, "check_no_input_mutation", f"the {type(data).__name__} input was modified"
        )


def check_float32_and_float64(hasher: Hasher) -> None:
    """float32 and float64 copies of the same (exactly representable) data give the same codes."""
    features, labels = _data_for(hasher)
    dense = features.toarray()
    codes64 = _fit_encode(hasher.clone(), dense.astype(np.float64), labels)
    codes32 = _fit_encode(hasher.clone(), dense.astype(np.float32), labels)
    assert np.array_equal(codes64, codes32), _fail_message(
        hasher, "check_float32_and_float64", "float32 and float64 inputs gave different codes"
    )


def check_sparse_input(hasher: Hasher) -> None:
    """Sparse (CSR, CSC) and dense input give the same codes, up to rare rounding flips."""
    features, labels = _data_for(hasher)
    dense_codes = _fit_encode(hasher.clone(), features.toarray(), labels)
    for sparse in (features, features.tocsc()):
        sparse_codes = _fit_encode(hasher.clone(), sparse, labels)
        agreement = float(np.mean(sparse_codes == dense_codes))
        assert agreement >= MIN_SPARSE_DENSE_AGREEMENT, _fail_message(
            hasher,
            "check_sparse_input",
            f"{sparse.format} input agrees with dense input on {agreement:.1%} of the bits",
        )


def check_hdf5_round_trip(hasher: Hasher) -> None:
    """``save`` then ``load_hasher`` restores params, encodes identically, stores no per-row state."""
    features, labels = _data_for(hasher)
    fitted = hasher.clone()
    _fit_encode(fitted, features, labels)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hasher.h5"
        fitted.save(path)
        try:
            restored = load_hasher(path)
        except Exception:
            restored = load_hasher(path, hasher_class=type(fitted))
    assert type(restored) is type(fitted) and restored.params == fitted.params, _fail_message(
        hasher, "check_hdf5_round_trip", "the loaded hasher has another class or other params"
    )
    saved_rows = [name for name in fitted.training_only_attributes if hasattr(restored, name)]
    assert not saved_rows, _fail_message(
        hasher, "check_hdf5_round_trip", f"the file holds per-training-row attributes {saved_rows}"
    )
    if fitted.supports_encode:
        assert np.array_equal(restored.encode(features), fitted.encode(features)), _fail_message(
            hasher, "check_hdf5_round_trip", "the loaded hasher encodes differently"
        )


def check_label_requirement(hasher: Hasher) -> None:
    """Supervised hashers refuse missing or misshapen labels; unsupervised ones ignore labels."""
    features, labels = _data_for(hasher)
    if hasher.labels_required():
        for bad_labels, what in ((None, "no labels"), (labels[:-1], "one row too few")):
            try:
                hasher.clone().fit(features, bad_labels)
            except InputError as error:
                assert "labels" in str(error), _fail_message(
                    hasher, "check_label_requirement", f"error does not name 'labels': {error}"
                )
            else:
                raise AssertionError(
                    _fail_message(hasher, "check_label_requirement", f"fit accepted {what}")
                )
    elif not hasher.tags()["uses_labels"]:
        with_labels = hasher.clone().fit_encode(features, labels)
        without = hasher.clone().fit_encode(features)
        assert np.array_equal(with_labels, without), _fail_message(
            hasher, "check_label_requirement", "an unsupervised hasher changed with labels"
        )


def check_bad_input(hasher: Hasher) -> None:
    """NaN, 1-D input and a wrong width at encode time raise InputError naming 'X'."""
    features, labels = _data_for(hasher)
    dense = features.toarray()
    with_nan = dense.copy()
    with_nan[3, 2] = np.nan
    for bad, what in ((with_nan, "NaN"), (dense[0], "1-D input")):
        try:
            hasher.clone().fit(bad, labels)
        except InputError as error:
            assert "'X'" in str(error), _fail_message(
                hasher, "check_bad_input", f"error for {what} does not name 'X': {error}"
            )
        else:
            raise AssertionError(_fail_message(hasher, "check_bad_input", f"fit accepted {what}"))
    if hasher.supports_encode:
        fitted = hasher.clone()
        _fit_encode(fitted, features, labels)
        try:
            fitted.encode(dense[:, :-1])
        except InputError:
            pass
        else:
            raise AssertionError(
                _fail_message(hasher, "check_bad_input", "encode accepted a wrong number of features")
            )


def check_encode_matches_training_codes(hasher: Hasher) -> None:
    """For hashers without optimised codes, encoding the training set gives the training codes."""
    if not hasher.supports_encode:
        return
    features, labels = _data_for(hasher)
    fitted = hasher.clone()
    codes = _fit_encode(fitted, features, labels)
    if fitted._training_codes() is not None:
        return  # discrete method: optimised codes may legitimately differ from encode(train)
    assert np.array_equal(codes, fitted.encode(features)), _fail_message(
        hasher, "check_encode_matches_training_codes", "encode(train) differs from training codes"
    )


def check_no_constant_bits(hasher: Hasher) -> None:
    """Every bit takes both values on the training set."""
    features, labels = _data_for(hasher)
    codes = _fit_encode(hasher.clone(), features, labels)
    constant = np.flatnonzero(codes.min(axis=0) == codes.max(axis=0))
    assert constant.size == 0, _fail_message(
        hasher, "check_no_constant_bits", f"bits {constant.tolist()} are constant"
    )


def check_bit_balance(hasher: Hasher) -> None:
    """Every bit is 1 on between 5 % and 95 % of the training items (for ``balanced_bits`` hashers)."""
    if not hasher.tags()["balanced_bits"]:
        return
    features, labels = _data_for(hasher)
    codes = _fit_encode(hasher.clone(), features, labels)
    ones = codes.mean(axis=0)
    bad = np.flatnonzero((ones < MIN_BIT_BALANCE) | (ones > 1 - MIN_BIT_BALANCE))
    assert bad.size == 0, _fail_message(
        hasher,
        "check_bit_balance",
        f"bits {bad.tolist()} are unbalanced (fractions of ones {np.round(ones[bad], 3).tolist()})",
    )


API_CHECKS: tuple[HasherCheck, ...] = (
    check_params_round_trip,
    check_unfitted_errors,
    check_codes_format,
    check_deterministic,
    check_no_input_mutation,
    check_float32_and_float64,
    check_sparse_input,
    check_hdf5_round_trip,
    check_label_requirement,
    check_bad_input,
    check_encode_matches_training_codes,
)
QUALITY_CHECKS: tuple[HasherCheck, ...] = (check_no_constant_bits, check_bit_balance)
ALL_CHECKS: tuple[HasherCheck, ...] = API_CHECKS + QUALITY_CHECKS


def hasher_checks(hasher: Hasher) -> Iterable[HasherCheck]:
    """The checks that apply to ``hasher`` (currently all of them)."""
    return ALL_CHECKS


def check_hasher(hasher: Hasher) -> None:
    """Run every conformance check on ``hasher``; raise AssertionError at the first failure.

    Parameters
    ----------
    hasher : Hasher
        An unfitted hasher instance with the hyper-parameters to check; it is not modified.
    """
    for check in hasher_checks(hasher):
        check(hasher)


def parametrize_with_hasher_checks(hashers: Sequence[Hasher]) -> Any:
    """A ``pytest.mark.parametrize`` over (hasher, check) pairs, one test per check.

    The decorated test takes the arguments ``hasher`` and ``check`` and calls ``check(hasher)``.
    Test ids read ``<hasher name>-<check name>``.

    Parameters
    ----------
    hashers : sequence of Hasher
        Unfitted hashers to check.
    """
    import pytest

    cases = []
    for hasher in hashers:
        for check in hasher_checks(hasher):
            cases.append(pytest.param(hasher, check, id=f"{hasher.name}-{check.__name__}"))
    return pytest.mark.parametrize(("hasher", "check"), cases)
