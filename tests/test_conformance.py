"""The conformance kit: run over every registered hasher, and what it reports."""

from __future__ import annotations

import importlib
import textwrap

import pytest

from ddcmh_core import HasherFileError, InputError, get_hasher, hasher_registry
from ddcmh_core.kernels import KernelLifted
from ddcmh_core.testing import (
    ALL_CHECKS,
    APPLICABILITY,
    CheckSkipped,
    check_bit_balance,
    check_hasher,
    check_plan,
    parametrize_with_hasher_checks,
)
from ddcmh_hashers.lsh import LSH

REGISTRY = hasher_registry()
HASHERS = [REGISTRY.create(name, n_bits=16) for name in REGISTRY.names()]
LIFTED = get_hasher("itq", n_bits=16, kernel_lift="rbf", lift_anchors=100)


@parametrize_with_hasher_checks([*HASHERS, LIFTED])
def test_registered_hasher_conforms(hasher, check):
    check(hasher)


def test_every_builtin_hasher_and_the_example_plugin_are_checked():
    builtin = {entry.spec.name for entry in REGISTRY.entries() if entry.plugin.distribution == "ddcmh"}
    assert builtin == {
        "agh", "cca-itq", "cosdish", "dsh", "isohash", "itq", "ksh", "lfh", "lsh", "pcah", "sdh", "sh",
        "sph",
    }
    assert REGISTRY.get("sklsh").plugin.distribution == "ddcmh-example"  # plugins/ddcmh-example
    assert "sklsh" in {hasher.name for hasher in HASHERS}


@pytest.mark.parametrize("hasher", [*HASHERS, LIFTED], ids=lambda hasher: hasher.name)
def test_checks_are_skipped_exactly_when_the_tags_rule_them_out(hasher):
    tags = hasher.tags()
    skipped = {check.__name__: reason for check, reason in check_plan(hasher) if reason is not None}
    expected = set()
    if not tags["balanced_bits"]:
        expected.add("check_bit_balance")
    if not tags["supports_encode"]:
        expected.add("check_encode_matches_training_codes")
    assert set(skipped) == expected
    for name, reason in skipped.items():
        assert reason.startswith("tag ") and "=False" in reason
        with pytest.raises(CheckSkipped, match=reason):  # called directly, the check skips too
            {check.__name__: check for check in ALL_CHECKS}[name](hasher)


def test_the_report_counts_as_passed_only_checks_that_ran_to_the_end(monkeypatch):
    finished = []

    def spy(check):
        def run(hasher):
            check(hasher)
            finished.append(check.__name__)

        run.__name__ = check.__name__
        return run

    monkeypatch.setattr("ddcmh_core.testing.ALL_CHECKS", tuple(spy(check) for check in ALL_CHECKS))
    for hasher in (get_hasher("sh", n_bits=8), get_hasher("sdh", n_bits=8, n_anchors=40)):
        finished.clear()
        report = check_hasher(hasher)
        assert report.ok and set(report.names("passed")) == set(finished)
        assert len(report.results) == len(ALL_CHECKS)
    # SDH optimises its codes (found once fitted) and declares balanced_bits=False.
    assert report.names("skipped") == ["check_encode_matches_training_codes", "check_bit_balance"]
    assert "discrete method" in report.results[-3].detail and "balanced_bits" in report.results[-1].detail
    sh_report = check_hasher(get_hasher("sh", n_bits=8))
    assert sh_report.names("skipped") == ["check_bit_balance"]
    assert "SKIPPED  check_bit_balance: tag balanced_bits=False" in str(sh_report)


UNBALANCED_PLUGIN = '''
"""A shift-invariant kernel LSH whose bits are unbalanced by design (a plugin written from the docs)."""

import numpy as np

from ddcmh_core.hasher import Hasher
from ddcmh_core.linalg import matmul


class CrestLSH(Hasher):
    """bit = [cos(w'x + b) > 0.99]: 1 near the crest of a random Fourier feature, on about 4.5 % of items."""

    balanced_bits = False  # a bit is 1 only near the crest of its cosine

    def _fit(self, X, labels, rng):
        self.projection_ = 3.0 * rng.standard_normal((X.shape[1], self.n_bits))
        self.phase_ = rng.uniform(0.0, 2.0 * np.pi, self.n_bits)

    def _project(self, X):
        return np.cos(matmul(X, self.projection_) + self.phase_) - 0.99


class UndeclaredCrestLSH(CrestLSH):
    """The same bits without the declaration."""

    balanced_bits = True
'''


@pytest.fixture()
def unbalanced_plugin(tmp_path, monkeypatch):
    (tmp_path / "crest_lsh.py").write_text(textwrap.dedent(UNBALANCED_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module("crest_lsh")


def test_a_plugin_with_unbalanced_bits_that_declares_it_passes(unbalanced_plugin):
    report = check_hasher(unbalanced_plugin.CrestLSH(n_bits=16))
    assert report.ok and report.names("skipped") == ["check_bit_balance"]
    assert "balanced_bits=False" in report.results[-1].detail
    assert len(report.names("passed")) == len(ALL_CHECKS) - 1


def test_undeclared_unbalanced_bits_fail_naming_the_tag_and_the_option(unbalanced_plugin):
    hasher = unbalanced_plugin.UndeclaredCrestLSH(n_bits=16)
    with pytest.raises(AssertionError) as failure:
        check_bit_balance(hasher)
    message = str(failure.value)
    assert "failed check_bit_balance: bits" in message and "are unbalanced" in message
    assert "declare the tag balanced_bits = False" in message
    assert "expected_failed_checks={'check_bit_balance': '<why>'}" in message
    report = check_hasher(hasher, raise_on_failure=False)
    assert not report.ok and report.names("failed") == ["check_bit_balance"]
    expected = check_hasher(hasher, expected_failed_checks={"check_bit_balance": "crest bits, by design"})
    assert expected.ok and expected.names("xfailed") == ["check_bit_balance"]


def test_an_expected_failure_that_passes_fails_the_run():
    with pytest.raises(AssertionError, match=r"XPASSED  check_deterministic: .*remove it from expected"):
        check_hasher(LSH(n_bits=8), expected_failed_checks={"check_deterministic": "it is not"})
    with pytest.raises(InputError, match=r"argument 'expected_failed_checks'.*got 'check_speed'"):
        check_hasher(LSH(n_bits=8), expected_failed_checks={"check_speed": "slow"})
    with pytest.raises(InputError, match=r"expected a reason .* for 'check_bit_balance'"):
        check_hasher(LSH(n_bits=8), expected_failed_checks={"check_bit_balance": ""})


class UnloadableLSH(LSH):
    """Saves fine; its state cannot be restored."""

    def set_fitted_state(self, state):
        raise InputError("UnloadableLSH: argument 'state': this hasher cannot be restored")


def test_no_check_swallows_an_exception(monkeypatch):
    import ddcmh_core.testing as kit

    real_load = kit.load_hasher

    def load_by_class_only(path, hasher_class=None):
        if hasher_class is None:
            raise HasherFileError(f"{path}: loading by the recorded name fails")
        return real_load(path, hasher_class=hasher_class)

    with monkeypatch.context() as patch:  # a registered hasher that does not load by its name fails
        patch.setattr(kit, "load_hasher", load_by_class_only)
        with pytest.raises(HasherFileError, match="loading by the recorded name fails"):
            kit.check_hdf5_round_trip(get_hasher("lsh", n_bits=8))
    report = check_hasher(UnloadableLSH(n_bits=8), raise_on_failure=False)
    assert report.names("failed") == ["check_hdf5_round_trip"]
    failure = next(result for result in report.results if result.status == "failed")
    assert failure.detail.startswith("raised HasherFileError:") and "cannot be restored" in failure.detail
    with pytest.raises(AssertionError) as raised:
        check_hasher(UnloadableLSH(n_bits=8))
    assert type(raised.value.__cause__).__name__ == "HasherFileError"


def test_the_kit_reads_the_tags_of_the_instance():
    cca = get_hasher("cca-itq", n_bits=4)
    assert cca.tags()["requires_labels"] and not get_hasher("itq").tags()["uses_labels"]
    lifted = KernelLifted(cca, n_anchors=50)
    assert lifted.tags() == {**cca.tags(), "bits_bounded_by_features": False}
    assert set(APPLICABILITY) <= {check.__name__ for check in ALL_CHECKS}
    assert all(reason is None for _, reason in check_plan(lifted))


def test_the_listing_shows_the_tags_the_kit_reads():
    from ddcmh_core.cli.listing import hasher_record

    for entry in REGISTRY.entries():
        record = hasher_record(entry)
        tags = REGISTRY.create(entry.spec.name).tags()
        assert record["tags"] == tags and record["supervised"] == tags["requires_labels"]
    cca = hasher_record(REGISTRY.get("cca-itq"))
    assert cca["tags"]["requires_labels"] and cca["tags"]["uses_labels"] and cca["supervised"]
