"""Conformance kit for hashers: ``check_hasher`` and ``parametrize_with_hasher_checks``.

A plugin author's whole test file can be::

    from ddcmh_core.testing import parametrize_with_hasher_checks
    from ddcmh_foo import Foo

    @parametrize_with_hasher_checks([Foo(n_bits=16)])
    def test_conformance(hasher, check):
        check(hasher)

Every check takes an *unfitted* hasher, works on clones of it (the instance passed in is never
fitted or changed) and raises ``AssertionError`` with a message naming the hasher, the check and
the tag or option that would change the verdict. A check that does not apply to a hasher (by its
tags, or because the fitted hasher turns out to be a discrete method) raises :class:`CheckSkipped`
with the reason; ``parametrize_with_hasher_checks`` reports it as a skipped test and
:func:`check_hasher` as *skipped* in its :class:`ConformanceReport`, never as passed. Checks named
in ``expected_failed_checks`` are expected to fail, like scikit-learn's ``check_estimator``; one
that passes is reported (strictly, as a failure of the run). No check catches an exception it did
not expect. The data is a small synthetic bag-of-words corpus with multi-hot labels
(:func:`make_bow_data`), like the text view that Stage 1 sees.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from .errors import InputError, NotFittedError, UnsupportedOperationError
from .hasher import Hasher
from .hasher_file import load_hasher, registry_entry

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


class CheckSkipped(Exception):
    """A check does not apply to a hasher; the message is the reason (reported as *skipped*)."""


def _expected_failure_option(check: str) -> str:
    return f"expected_failed_checks={{{check!r}: '<why>'}}"


def _fail_message(hasher: Hasher, check: str, problem: str, remedy: str = "") -> str:
    """The failure message: the hasher, the check, the problem and what would change the verdict."""
    option = f"pass {_expected_failure_option(check)} to accept the failure knowingly"
    change = f"{remedy}; or {option}" if remedy else option
    return f"{hasher!r} failed {check}: {problem}. To change the verdict: {change}"


def _encodes(hasher: Hasher) -> bool:
    return hasher.tags()["supports_encode"]


def _no_encode_reason(hasher: Hasher) -> str | None:
    if _encodes(hasher):
        return None
    return "tag supports_encode=False: the hasher has no out-of-sample function, hence no encode(train)"


def _unbalanced_reason(hasher: Hasher) -> str | None:
    if hasher.tags()["balanced_bits"]:
        return None
    return "tag balanced_bits=False: the hasher does not aim at bits that are 1 on about half of the items"


def _skip_unless_applicable(hasher: Hasher, check: str) -> None:
    """Raise :class:`CheckSkipped` when the hasher's tags exempt it from ``check``."""
    reason = APPLICABILITY[check](hasher)
    if reason is not None:
        raise CheckSkipped(reason)


def check_params_round_trip(hasher: Hasher) -> None:
    """Parameters rebuild an equal hasher, ``build_params`` is JSON, unknown names are refused."""
    name = "check_params_round_trip"
    options = hasher.build_params()
    try:
        json.dumps(options)
    except TypeError as error:
        raise AssertionError(
            _fail_message(hasher, name, f"build_params() is not JSON-compatible ({error})",
                          "hyper-parameters must be JSON values (files and runs record them)")
        ) from None
    rebuilt = type(hasher)(**hasher.get_params(deep=False))
    assert rebuilt.build_params() == options, _fail_message(
        hasher, name, "rebuilding from get_params(deep=False) changed the parameters"
    )
    assert hasher.clone().build_params() == options, _fail_message(
        hasher, name, "clone() changed the parameters"
    )
    try:
        rebuilt.set_params(no_such_hyper_parameter=1)
    except InputError as error:
        assert "no_such_hyper_parameter" in str(error), _fail_message(
            hasher, name, f"the error does not name the unknown parameter: {error}"
        )
    else:
        raise AssertionError(_fail_message(hasher, name, "set_params accepted an unknown hyper-parameter"))
    assert rebuilt.build_params() == options, _fail_message(
        hasher, name, "a refused set_params changed the parameters"
    )


def check_unfitted_errors(hasher: Hasher) -> None:
    """A new hasher is not fitted and refuses to encode (NotFittedError, or Unsupported without encode)."""
    name = "check_unfitted_errors"
    fresh = hasher.clone()
    assert not fresh.is_fitted, _fail_message(hasher, name, "fitted after __init__")
    features, _ = _data_for(hasher)
    expected: type[Exception] = NotFittedError if _encodes(fresh) else UnsupportedOperationError
    try:
        fresh.encode(features)
    except expected:
        pass
    else:
        problem = (
            "encode before fit did not raise NotFittedError"
            if _encodes(fresh)
            else "tag supports_encode is False but encode worked"
        )
        remedy = "" if _encodes(fresh) else "declare supports_encode = True if encode is meant to work"
        raise AssertionError(_fail_message(hasher, name, problem, remedy))


def check_codes_format(hasher: Hasher) -> None:
    """Codes are C-contiguous uint8 {0,1} of shape (n, n_bits); fit returns self."""
    features, labels = _data_for(hasher)
    fresh = hasher.clone()
    assert fresh.fit(features, labels if fresh.tags()["uses_labels"] else None) is fresh, _fail_message(
        hasher, "check_codes_format", "fit did not return self"
    )
    outputs = [("training codes", fresh.training_codes_)]
    if _encodes(fresh):
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
    remedy = "draw every random number from the rng given to _fit (seeded by the seed parameter)"
    assert np.array_equal(codes_first, codes_second), _fail_message(
        hasher, "check_deterministic", "two fits with the same seed gave different codes", remedy
    )
    if _encodes(hasher):
        assert np.array_equal(first.encode(features), second.encode(features)), _fail_message(
            hasher, "check_deterministic", "two fits with the same seed encode differently", remedy
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
        if _encodes(fresh):
            fresh.encode(data)
        same = (
            (before != data).nnz == 0 if sp.issparse(data) else np.array_equal(before, data)
        )
        assert same and np.array_equal(labels_before, labels), _fail_message(
            hasher, "check_no_input_mutation", f"the {type(data).__name__} input was modified",
            "copy the input before changing it",
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
            "centre sparse data with ddcmh_core.linalg.centred_projection instead of densifying",
        )


def check_hdf5_round_trip(hasher: Hasher) -> None:
    """``save`` then ``load_hasher`` restores params, encodes identically, stores no per-row state.

    A registered hasher is loaded by the name in its file; an unregistered class (a hasher under
    development) with ``hasher_class=``. Any error of saving or loading fails the check.
    """
    name = "check_hdf5_round_trip"
    features, labels = _data_for(hasher)
    fitted = hasher.clone()
    _fit_encode(fitted, features, labels)
    registered = registry_entry(fitted) is not None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hasher.h5"
        fitted.save(path)
        restored = load_hasher(path) if registered else load_hasher(path, hasher_class=type(fitted))
    assert type(restored) is type(fitted) and restored.build_params() == fitted.build_params(), (
        _fail_message(hasher, name, "the loaded hasher has another class or other parameters")
    )
    saved_rows = [attribute for attribute in fitted.training_only_attributes if hasattr(restored, attribute)]
    assert not saved_rows, _fail_message(
        hasher, name, f"the file holds per-training-row attributes {saved_rows}",
        "name them in the class's training_only_attributes",
    )
    if _encodes(fitted):
        assert np.array_equal(restored.encode(features), fitted.encode(features)), _fail_message(
            hasher, name, "the loaded hasher encodes differently",
            "keep what encode needs in fitted attributes ending in '_' (or restore it in set_fitted_state)",
        )


def check_label_requirement(hasher: Hasher) -> None:
    """Supervised hashers refuse missing or misshapen labels; the others fit without labels.

    ``requires_labels``: no labels and labels with a row too few raise :class:`InputError` naming
    ``labels``. ``uses_labels`` without ``requires_labels``: fitting without labels works and
    misshapen labels are refused. Neither: the codes are the same with and without labels.
    """
    name = "check_label_requirement"
    features, labels = _data_for(hasher)
    tags = hasher.tags()
    refused: list[tuple[np.ndarray | None, str]] = [(labels[:-1], "labels with one row too few")]
    if tags["requires_labels"]:
        refused.append((None, "no labels"))
    elif tags["uses_labels"]:
        hasher.clone().fit(features)
    else:
        with_labels = hasher.clone().fit_encode(features, labels)
        without = hasher.clone().fit_encode(features)
        assert np.array_equal(with_labels, without), _fail_message(
            hasher, name, "codes changed with labels although the tag uses_labels is False",
            "declare uses_labels = True (or requires_labels = True) when fit uses labels",
        )
        return
    for bad_labels, what in refused:
        try:
            hasher.clone().fit(features, bad_labels)
        except InputError as error:
            assert "labels" in str(error), _fail_message(
                hasher, name, f"the error for {what} does not name 'labels': {error}"
            )
        else:
            remedy = "declare requires_labels = False if fit needs no labels" if bad_labels is None else ""
            raise AssertionError(_fail_message(hasher, name, f"fit accepted {what}", remedy))


def check_bad_input(hasher: Hasher) -> None:
    """NaN, 1-D input and a wrong width at encode time raise InputError naming 'X'."""
    features, labels = _data_for(hasher)
    dense = features.toarray()
    with_nan = dense.copy()
    with_nan[3, 2] = np.nan
    remedy = "let the base class's fit and encode validate X (do not override them)"
    for bad, what in ((with_nan, "NaN"), (dense[0], "1-D input")):
        try:
            hasher.clone().fit(bad, labels)
        except InputError as error:
            assert "'X'" in str(error), _fail_message(
                hasher, "check_bad_input", f"error for {what} does not name 'X': {error}", remedy
            )
        else:
            raise AssertionError(_fail_message(hasher, "check_bad_input", f"fit accepted {what}", remedy))
    if _encodes(hasher):
        fitted = hasher.clone()
        _fit_encode(fitted, features, labels)
        try:
            fitted.encode(dense[:, :-1])
        except InputError:
            pass
        else:
            raise AssertionError(
                _fail_message(hasher, "check_bad_input", "encode accepted a wrong number of features", remedy)
            )


def check_encode_matches_training_codes(hasher: Hasher) -> None:
    """Encoding the training set gives the training codes (skipped for discrete methods).

    Skipped without an out-of-sample function (tag ``supports_encode`` False), and when the
    fitted hasher's ``_training_codes`` returns optimised codes, which ``encode`` need not
    reproduce.
    """
    name = "check_encode_matches_training_codes"
    _skip_unless_applicable(hasher, name)
    features, labels = _data_for(hasher)
    fitted = hasher.clone()
    codes = _fit_encode(fitted, features, labels)
    if fitted._training_codes() is not None:
        raise CheckSkipped(
            "_training_codes() returns optimised codes (a discrete method), which encode(train) need not "
            "reproduce"
        )
    assert np.array_equal(codes, fitted.encode(features)), _fail_message(
        hasher, name, "encode(train) differs from the training codes",
        "return optimised training codes from _training_codes() if they are meant to differ",
    )


def check_no_constant_bits(hasher: Hasher) -> None:
    """Every bit takes both values on the training set."""
    features, labels = _data_for(hasher)
    codes = _fit_encode(hasher.clone(), features, labels)
    constant = np.flatnonzero(codes.min(axis=0) == codes.max(axis=0))
    assert constant.size == 0, _fail_message(
        hasher, "check_no_constant_bits", f"bits {constant.tolist()} are constant (no tag exempts this)"
    )


def check_bit_balance(hasher: Hasher) -> None:
    """Every bit is 1 on between 5 % and 95 % of the training items (for ``balanced_bits`` hashers)."""
    name = "check_bit_balance"
    _skip_unless_applicable(hasher, name)
    features, labels = _data_for(hasher)
    codes = _fit_encode(hasher.clone(), features, labels)
    ones = codes.mean(axis=0)
    bad = np.flatnonzero((ones < MIN_BIT_BALANCE) | (ones > 1 - MIN_BIT_BALANCE))
    assert bad.size == 0, _fail_message(
        hasher,
        name,
        f"bits {bad.tolist()} are unbalanced (fractions of ones {np.round(ones[bad], 3).tolist()}, "
        f"expected between {MIN_BIT_BALANCE} and {1 - MIN_BIT_BALANCE})",
        "declare the tag balanced_bits = False on the class (or in tags()) if the method does not aim at "
        "balanced bits",
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

APPLICABILITY: dict[str, Callable[[Hasher], str | None]] = {
    "check_encode_matches_training_codes": _no_encode_reason,
    "check_bit_balance": _unbalanced_reason,
}
"""Checks that the tags can rule out: name -> function giving the reason to skip, or None."""

ExpectedFailures = Mapping[str, str] | Callable[[Hasher], Mapping[str, str]] | None


def check_plan(hasher: Hasher) -> list[tuple[HasherCheck, str | None]]:
    """Every check with the reason its tags rule it out (None when it applies), in kit order."""
    return [(check, APPLICABILITY.get(check.__name__, lambda _: None)(hasher)) for check in ALL_CHECKS]


def hasher_checks(hasher: Hasher) -> list[HasherCheck]:
    """The checks that apply to ``hasher`` by its tags."""
    return [check for check, reason in check_plan(hasher) if reason is None]


def _expected_failures(hasher: Hasher, expected_failed_checks: ExpectedFailures) -> dict[str, str]:
    """``expected_failed_checks`` for ``hasher``, validated: known check names, non-empty reasons."""
    chosen = expected_failed_checks(hasher) if callable(expected_failed_checks) else expected_failed_checks
    expected = dict(chosen or {})
    known = [check.__name__ for check in ALL_CHECKS]
    for check, why in expected.items():
        if check not in known:
            raise InputError(
                f"argument 'expected_failed_checks': expected names of checks ({', '.join(known)}), "
                f"got {check!r}"
            )
        if not isinstance(why, str) or not why.strip():
            raise InputError(
                f"argument 'expected_failed_checks': expected a reason (a non-empty string) for {check!r}, "
                f"got {why!r}"
            )
    return expected


CheckStatus = Literal["passed", "skipped", "failed", "xfailed", "xpassed"]


@dataclass(frozen=True)
class CheckResult:
    """What one check did: ``status`` and the reason or the failure message in ``detail``."""

    check: str
    status: CheckStatus
    detail: str = ""


@dataclass(frozen=True)
class ConformanceReport:
    """The outcome of :func:`check_hasher`: one :class:`CheckResult` per check, in kit order.

    ``passed`` checks ran to the end; ``skipped`` ones did not apply (the detail says why);
    ``failed`` ones raised (an ``AssertionError`` or any other exception); ``xfailed`` ones failed
    as ``expected_failed_checks`` said; ``xpassed`` ones were expected to fail and passed, which
    fails the run (like pytest's ``xfail(strict=True)``).
    """

    hasher: str
    results: tuple[CheckResult, ...]

    def names(self, status: CheckStatus) -> list[str]:
        """The checks with this status."""
        return [result.check for result in self.results if result.status == status]

    @property
    def ok(self) -> bool:
        """No check failed and no expected failure passed."""
        return not self.names("failed") and not self.names("xpassed")

    def __str__(self) -> str:
        counts = ", ".join(
            f"{len(self.names(status))} {status}"
            for status in ("passed", "skipped", "failed", "xfailed", "xpassed")
        )
        lines = [f"conformance of {self.hasher}: {counts}"]
        for result in self.results:
            detail = f": {result.detail}" if result.detail else ""
            lines.append(f"  {result.status.upper():<8} {result.check}{detail}")
        return "\n".join(lines)


def _run_one(
    check: HasherCheck, hasher: Hasher, why_expected: str | None
) -> tuple[CheckResult, BaseException | None]:
    """Run one check; the result and the exception of an unexpected failure (else None)."""
    name = check.__name__
    try:
        check(hasher)
    except CheckSkipped as skipped:
        return CheckResult(name, "skipped", str(skipped)), None
    except AssertionError as error:
        if why_expected is not None:
            return CheckResult(name, "xfailed", f"expected: {why_expected}"), None
        return CheckResult(name, "failed", str(error)), error
    except Exception as error:  # not an expected failure: reported as a failure, with its type
        return CheckResult(name, "failed", f"raised {type(error).__name__}: {error}"), error
    if why_expected is not None:
        problem = (
            f"{name} passed although expected_failed_checks says it fails ({why_expected}); "
            "remove it from expected_failed_checks"
        )
        return CheckResult(name, "xpassed", problem), None
    return CheckResult(name, "passed"), None


def check_hasher(
    hasher: Hasher,
    expected_failed_checks: ExpectedFailures = None,
    *,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Run every conformance check that applies to ``hasher`` and report each one.

    Parameters
    ----------
    hasher : Hasher
        An unfitted hasher instance with the hyper-parameters to check; it is not modified.
    expected_failed_checks : dict or callable, optional
        ``{"check_name": "why"}`` (or a function of the hasher returning one): checks expected to
        fail, reported as *xfailed*; one that passes is *xpassed* and fails the run.
    raise_on_failure : bool, default True
        Raise ``AssertionError`` (with the whole report) when a check failed or an expected failure
        passed; otherwise only return the report.

    Returns
    -------
    ConformanceReport
        One result per check: passed, skipped (with the reason), failed, xfailed or xpassed.

    Raises
    ------
    InputError
        ``expected_failed_checks`` names an unknown check or gives no reason.
    AssertionError
        See ``raise_on_failure``; chained to the first failure's exception.
    """
    expected = _expected_failures(hasher, expected_failed_checks)
    results = []
    first_error: BaseException | None = None
    for check, reason in check_plan(hasher):
        if reason is not None:
            results.append(CheckResult(check.__name__, "skipped", reason))
            continue
        result, error = _run_one(check, hasher, expected.get(check.__name__))
        results.append(result)
        first_error = first_error or error
    report = ConformanceReport(repr(hasher), tuple(results))
    if raise_on_failure and not report.ok:
        raise AssertionError(str(report)) from first_error
    return report


def _pytest_check(check: HasherCheck) -> HasherCheck:
    """``check`` with :class:`CheckSkipped` turned into ``pytest.skip`` (same name, same docstring)."""
    import pytest

    @functools.wraps(check)
    def run(hasher: Hasher) -> None:
        try:
            check(hasher)
        except CheckSkipped as skipped:
            pytest.skip(str(skipped))

    return run


def parametrize_with_hasher_checks(
    hashers: Sequence[Hasher], expected_failed_checks: ExpectedFailures = None
) -> Any:
    """A ``pytest.mark.parametrize`` over (hasher, check) pairs, one test per check.

    The decorated test takes the arguments ``hasher`` and ``check`` and calls ``check(hasher)``.
    Test ids read ``<hasher name>-<check name>``. A check that the hasher's tags rule out is a
    skipped test with the reason, as is one that finds out it does not apply once the hasher is
    fitted; a check in ``expected_failed_checks`` is marked ``xfail(strict=True)``.

    Parameters
    ----------
    hashers : sequence of Hasher
        Unfitted hashers to check.
    expected_failed_checks : dict or callable, optional
        As in :func:`check_hasher`.
    """
    import pytest

    cases = []
    for hasher in hashers:
        expected = _expected_failures(hasher, expected_failed_checks)
        for check, reason in check_plan(hasher):
            marks: list[Any] = []
            if reason is not None:
                marks.append(pytest.mark.skip(reason=reason))
            elif check.__name__ in expected:
                why = expected[check.__name__]
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
            cases.append(
                pytest.param(hasher, _pytest_check(check), id=f"{hasher.name}-{check.__name__}", marks=marks)
            )
    return pytest.mark.parametrize(("hasher", "check"), cases)
