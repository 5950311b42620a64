"""The plugin system: entry-point discovery, isolation of failures, conflicts, listings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pydantic
import pytest

import ddcmh_core
from ddcmh_core import (
    DuplicateNameError,
    HasherSpec,
    UnknownNameError,
    get_hasher,
    hasher_registry,
    load_hasher,
)
from ddcmh_core.cli.bench import main as bench_main

GOOD_PLUGIN = """
from ddcmh_core import HasherSpec, hookimpl
from ddcmh_hashers.lsh import LSH


class ShiftedLSH(LSH):
    '''LSH from a third-party distribution.'''


@hookimpl
def ddcmh_hashers():
    yield HasherSpec(name="{name}", hasher=ShiftedLSH, summary="third-party LSH")
"""


def test_builtins_come_through_the_entry_point():
    registry = hasher_registry()
    builtin = [p for p in registry.plugins if p.distribution == "ddcmh" and p.name == "builtin"]
    assert len(builtin) == 1
    assert builtin[0].value == "ddcmh_hashers.plugin"
    assert {"lsh", "pcah", "itq", "cca-itq"} <= set(builtin[0].provides["ddcmh_hashers"])
    assert registry.get("pca-itq").spec.name == "itq"


def test_importing_ddcmh_core_loads_no_plugin():
    code = (
        "import sys, ddcmh_core; "
        "print(any(m.startswith('ddcmh_hashers') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_plugin_that_fails_to_import_is_reported_and_isolated(fake_distributions):
    fake_distributions.add("ddcmh-broken", "ddcmh_broken", "raise ImportError('needs libfoo')")
    fake_distributions.add("ddcmh-good", "ddcmh_good", GOOD_PLUGIN.format(name="good-lsh"))
    registry = hasher_registry()
    broken = next(p for p in registry.plugins if p.distribution == "ddcmh-broken")
    assert broken.status == "failed"
    assert "ImportError: needs libfoo" in broken.error
    assert "good-lsh" in registry.names() and "itq" in registry.names()
    with pytest.raises(UnknownNameError, match=r"failed to load: ddcmh-broken 1\.0"):
        registry.get("broken-thing")


def test_hook_that_raises_or_yields_garbage_is_isolated(fake_distributions):
    fake_distributions.add(
        "ddcmh-raising",
        "ddcmh_raising",
        """
        from ddcmh_core import hookimpl

        @hookimpl
        def ddcmh_hashers():
            raise RuntimeError("boom")
        """,
    )
    fake_distributions.add(
        "ddcmh-garbage",
        "ddcmh_garbage",
        """
        from ddcmh_core import hookimpl

        @hookimpl
        def ddcmh_hashers():
            return ["not a spec"]
        """,
    )
    registry = hasher_registry()
    status = {p.distribution: p for p in registry.plugins}
    assert status["ddcmh-raising"].status == "failed"
    assert "RuntimeError: boom" in status["ddcmh-raising"].error
    assert status["ddcmh-garbage"].status == "failed"
    assert "expected HasherSpec" in status["ddcmh-garbage"].error
    assert "itq" in registry.names()


def test_two_plugins_claiming_one_name_is_an_error_naming_both(fake_distributions):
    fake_distributions.add("ddcmh-alpha", "ddcmh_alpha", GOOD_PLUGIN.format(name="twin"))
    fake_distributions.add("ddcmh-beta", "ddcmh_beta", GOOD_PLUGIN.format(name="twin"))
    registry = hasher_registry()
    assert "twin" not in registry.names()
    with pytest.raises(DuplicateNameError) as error:
        registry.get("twin")
    assert "ddcmh-alpha 1.0" in str(error.value) and "ddcmh-beta 1.0" in str(error.value)
    assert "lsh" in registry.names()


def test_plugin_claiming_a_builtin_name_conflicts(fake_distributions):
    fake_distributions.add("ddcmh-itq2", "ddcmh_itq2", GOOD_PLUGIN.format(name="itq"))
    with pytest.raises(DuplicateNameError, match=r"ddcmh 0\.1\.0.*ddcmh-itq2 1\.0|ddcmh-itq2.*ddcmh "):
        get_hasher("itq")


def test_unknown_name_lists_installed_hashers():
    with pytest.raises(UnknownNameError) as error:
        get_hasher("itqq")
    message = str(error.value)
    assert "unknown hasher 'itqq'" in message and "itq" in message and "lsh" in message


def test_third_party_hasher_round_trips_through_hdf5(fake_distributions, tmp_path):
    fake_distributions.add("ddcmh-good", "ddcmh_good", GOOD_PLUGIN.format(name="good-lsh"))
    features = np.random.default_rng(0).random((50, 12))
    hasher = get_hasher("good-lsh", n_bits=8).fit(features)
    path = hasher.save(tmp_path / "good.h5")
    import h5py

    with h5py.File(path) as handle:
        assert handle.attrs["hasher_name"] == "good-lsh"
        assert handle.attrs["provider"] == "ddcmh-good"
        assert handle.attrs["provider_version"] == "1.0"
    assert np.array_equal(load_hasher(path).encode(features), hasher.encode(features))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "ITQ", "hasher": "a.b:C"},
        {"name": "my_hasher", "hasher": "a.b:C"},
        {"name": "ok", "hasher": "not an import path"},
        {"name": "ok", "hasher": dict},
        {"name": "ok", "hasher": "a.b:C", "aliases": ("Bad Alias",)},
        {"name": "ok", "hasher": "a.b:C", "unknown_field": 1},
    ],
)
def test_hasher_spec_is_validated(kwargs):
    with pytest.raises(pydantic.ValidationError):
        HasherSpec(**kwargs)


def test_hasher_spec_is_frozen():
    spec = HasherSpec(name="x", hasher="a.b:C")
    with pytest.raises(pydantic.ValidationError):
        spec.name = "y"  # type: ignore[misc]


def _run_cli(*args, extra_path=None):
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "ddcmh_core.cli.bench", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_cli_listings_survive_a_broken_plugin(fake_distributions):
    fake_distributions.add("ddcmh-broken", "ddcmh_broken", "raise ImportError('needs libfoo')")
    plugins = _run_cli("--list-plugins", "--json", extra_path=fake_distributions.site)
    assert plugins.returncode == 0, plugins.stderr
    records = {r["distribution"]: r for r in json.loads(plugins.stdout)["plugins"]}
    assert records["ddcmh-broken"]["status"] == "failed"
    assert "needs libfoo" in records["ddcmh-broken"]["error"]
    assert records["ddcmh"]["status"] == "loaded"
    hashers = _run_cli("--list-hashers", extra_path=fake_distributions.site)
    assert hashers.returncode == 0 and "itq" in hashers.stdout
    version = _run_cli("--version", extra_path=fake_distributions.site)
    assert "ddcmh-broken 1.0 (failed to load)" in version.stdout


def test_list_hashers_json_describes_each_hasher(capsys):
    assert bench_main(["--list-hashers", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)["hashers"]}
    itq = records["itq"]
    assert itq["provider"] == "ddcmh" and itq["provider_version"] == ddcmh_core.__version__
    assert itq["supervised"] is False and records["cca-itq"]["supervised"] is True
    assert itq["aliases"] == ["pca-itq"]
    assert itq["params_schema"]["additionalProperties"] is False
    assert "n_iter" in itq["params_schema"]["properties"]
    assert records["cca-itq"]["params"]["projection"] == "cca"


def test_list_hashers_table_shows_conflicts(fake_distributions, capsys):
    fake_distributions.add("ddcmh-alpha", "ddcmh_alpha", GOOD_PLUGIN.format(name="twin"))
    fake_distributions.add("ddcmh-beta", "ddcmh_beta", GOOD_PLUGIN.format(name="twin"))
    assert bench_main(["--list-hashers"]) == 0
    out = capsys.readouterr().out
    assert "CONFLICT: 'twin'" in out and "ddcmh-alpha" in out and "ddcmh-beta" in out
