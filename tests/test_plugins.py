"""The plugin system: entry-point discovery, isolation of failures, conflicts, listings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest

import ddcmh_core
from ddcmh_core import (
    DuplicateNameError,
    HasherSpec,
    MethodSpec,
    UnknownNameError,
    get_hasher,
    hasher_registry,
    hookimpl,
    load_hasher,
)
from ddcmh_core.cli.bench import main as bench_main
from ddcmh_core.cli.listing import list_hashers, list_plugins
from ddcmh_core.errors import PluginError
from ddcmh_core.plugins import HasherRegistry, MethodRegistry, PluginSet, load_entry_points

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
    code = "import sys, ddcmh_core; print(any(m.startswith('ddcmh_hashers') for m in sys.modules))"
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


# -- broken plugins built in-process: each reported with its distribution, the others keep working --


class FakeDistribution:
    """What ``EntryPoint.dist`` gives: the distribution's metadata name and version."""

    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    """An entry point of the ``ddcmh`` group whose ``load()`` returns ``plugin``."""

    def __init__(self, name: str, plugin: object, distribution: str, version: str = "1.0") -> None:
        self.name, self.value, self.plugin = name, f"{name}_module", plugin
        self.dist = FakeDistribution(distribution, version)

    def load(self) -> object:
        return self.plugin


class Hashers:
    """A plugin object whose ``ddcmh_hashers`` yields the given records."""

    def __init__(self, *specs: HasherSpec) -> None:
        self.specs = specs

    @hookimpl
    def ddcmh_hashers(self):
        yield from self.specs


class WrongSignature:
    @hookimpl
    def ddcmh_hashers(self, config):  # the hook specification takes no argument
        return []


class MisspeltHook:
    @hookimpl
    def ddcmh_hasher(self):
        return []


class InvalidClass:
    @hookimpl
    def ddcmh_hashers(self):
        yield HasherSpec(name="not-a-hasher", hasher=dict)


class Methods:
    @hookimpl
    def ddcmh_methods(self):
        yield MethodSpec(name="dup-method", method="ddcmh_core.methods.dcmh:DCMH")
        yield MethodSpec(name="dup-method", method="ddcmh_core.methods.ddcmh:DDCMH")


def good_lsh(name: str) -> HasherSpec:
    return HasherSpec(name=name, hasher="ddcmh_hashers.lsh:LSH", summary="LSH under another name")


def loaded(*entry_points: FakeEntryPoint) -> tuple[PluginSet, HasherRegistry]:
    plugins = load_entry_points(
        [FakeEntryPoint("good", Hashers(good_lsh("good-lsh")), "ddcmh-good"), *entry_points]
    )
    return plugins, HasherRegistry.from_plugin_set(plugins)


def test_a_name_registered_twice_by_one_plugin_is_broken_and_everything_else_works():
    twice = Hashers(
        good_lsh("twin"), good_lsh("other"), HasherSpec(name="twin", hasher="ddcmh_hashers.itq:ITQ")
    )
    plugins, registry = loaded(FakeEntryPoint("twice", twice, "ddcmh-twice", "2.5"))
    assert "twin" not in registry.names() and {"good-lsh", "other"} <= set(registry.names())
    with pytest.raises(DuplicateNameError) as error:
        registry.get("twin")
    message = str(error.value)
    assert "hasher name 'twin' is registered 2 times by ddcmh-twice 2.5 (entry point 'twice')" in message
    assert "ddcmh_hashers.lsh:LSH" in message and "ddcmh_hashers.itq:ITQ" in message
    info = next(p for p in plugins.plugins if p.distribution == "ddcmh-twice")
    assert info.status == "loaded" and info.problems == [registry.problems["twin"]]
    assert "BROKEN NAME: hasher name 'twin' is registered 2 times by ddcmh-twice 2.5" in list_hashers(
        registry, as_json=False
    )
    assert "problem: hasher name 'twin'" in list_plugins(registry, as_json=False)
    assert registry.create("other", n_bits=8).n_bits == 8


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (
            WrongSignature(),
            "register: PluginValidationError: Plugin 'ddcmh-bad:bad' for hook 'ddcmh_hashers'",
        ),
        (
            MisspeltHook(),
            "register: PluginError: hook implementation(s) ddcmh_hasher match no ddcmh hook; "
            "the hooks are ddcmh_datasets, ddcmh_hashers, ddcmh_methods",
        ),
        (InvalidClass(), "ddcmh_hashers: invalid HasherSpec: hasher: Value error, hasher must be a"),
    ],
    ids=["hookimpl with a wrong signature", "misspelt hook", "spec naming a non-hasher class"],
)
def test_a_plugin_refused_by_pluggy_or_by_its_records_fails_alone(plugin, error):
    plugins, registry = loaded(FakeEntryPoint("bad", plugin, "ddcmh-bad", "0.3"))
    bad = next(p for p in plugins.plugins if p.distribution == "ddcmh-bad")
    assert bad.status == "failed" and bad.version == "0.3"
    assert bad.error.startswith(error)
    refused_at_registration = error.startswith("register:")
    assert (plugins.manager.get_plugin("ddcmh-bad:bad") is None) == refused_at_registration
    assert registry.names() == ["good-lsh"]
    assert registry.create("good-lsh", n_bits=8).n_bits == 8
    with pytest.raises(UnknownNameError, match=r"Plugins that failed to load: ddcmh-bad 0\.3 \("):
        registry.get("not-a-hasher")
    assert "ddcmh-bad" in list_plugins(registry, as_json=False) and "error: " in list_plugins(
        registry, as_json=False
    )


def test_a_lazy_import_path_to_a_non_hasher_breaks_only_that_name_and_names_the_provider():
    lazy = Hashers(HasherSpec(name="lazy-bad", hasher="json:JSONDecoder"), good_lsh("lazy-good"))
    _, registry = loaded(FakeEntryPoint("lazy", lazy, "ddcmh-lazy", "3.1"))
    with pytest.raises(PluginError) as error:
        registry.create("lazy-bad")
    assert str(error.value) == (
        "hasher 'lazy-bad': 'json:JSONDecoder' is not a Hasher subclass; "
        "provided by ddcmh-lazy 3.1 (entry point 'lazy')"
    )
    listing = list_hashers(registry, as_json=False)
    assert "lazy-bad" in listing and "BROKEN" in listing and "provided by ddcmh-lazy 3.1" in listing
    assert registry.create("lazy-good", n_bits=8).n_bits == 8


def test_methods_follow_the_same_path():
    plugins = load_entry_points([FakeEntryPoint("methods", Methods(), "ddcmh-methods", "1.2")])
    registry = MethodRegistry.from_plugin_set(plugins)
    with pytest.raises(
        DuplicateNameError, match=r"method name 'dup-method' is registered 2 times by ddcmh-methods 1\.2"
    ):
        registry.get("dup-method")


def test_hooks_are_called_through_the_pluggy_relay_one_plugin_per_call():
    plugins = load_entry_points(
        [
            FakeEntryPoint("one", Hashers(good_lsh("one-lsh")), "ddcmh-one"),
            FakeEntryPoint("two", Hashers(good_lsh("two-lsh")), "ddcmh-two"),
        ]
    )
    calls: list[tuple[str, list[str]]] = []
    plugins.manager.add_hookcall_monitoring(
        lambda hook_name, implementations, kwargs: calls.append(
            (hook_name, [implementation.plugin_name for implementation in implementations])
        ),
        lambda outcome, hook_name, implementations, kwargs: None,
    )
    registry = HasherRegistry.from_plugin_set(plugins)
    assert calls == [("ddcmh_hashers", ["ddcmh-one:one"]), ("ddcmh_hashers", ["ddcmh-two:two"])]
    entry = registry.get("two-lsh")  # each result carries its provider
    assert (entry.plugin.name, entry.plugin.distribution, entry.plugin.version) == ("two", "ddcmh-two", "1.0")
    assert entry.plugin.plugin_name == "ddcmh-two:two" and plugins.info_for(
        plugins.manager.get_plugin("ddcmh-two:two")
    )


def test_a_hook_returning_a_single_record_is_a_clear_plugin_error():
    class ReturnsOne:
        @hookimpl
        def ddcmh_hashers(self):
            return good_lsh("single")

    plugins, registry = loaded(FakeEntryPoint("single", ReturnsOne(), "ddcmh-single"))
    failed = next(p for p in plugins.plugins if p.distribution == "ddcmh-single")
    assert (
        failed.error == "ddcmh_hashers: PluginError: hook ddcmh_hashers returned HasherSpec, expected an "
        "iterable of HasherSpec (yield each record)"
    )
    assert registry.names() == ["good-lsh"]


# -- the same through a real entry point, and the command line ---------------------------------------

TWICE_PLUGIN = """
from ddcmh_core import HasherSpec, hookimpl


@hookimpl
def ddcmh_hashers():
    yield HasherSpec(name="twice", hasher="ddcmh_hashers.lsh:LSH")
    yield HasherSpec(name="twice", hasher="ddcmh_hashers.pcah:PCAH")
    yield HasherSpec(name="once", hasher="ddcmh_hashers.lsh:LSH")
    yield HasherSpec(name="not-a-hasher", hasher="json:JSONDecoder")
"""


def test_installed_plugin_with_a_name_twice_lists_the_problem_and_exits_2_only_for_that_name(
    fake_distributions, tmp_path, capsys
):
    fake_distributions.add("ddcmh-twice", "ddcmh_twice", TWICE_PLUGIN, version="4.0")
    assert bench_main(["--list-hashers"]) == 0
    out = capsys.readouterr().out
    assert "BROKEN NAME: hasher name 'twice' is registered 2 times by ddcmh-twice 4.0" in out
    assert "once" in out and "itq" in out
    status = bench_main(["--hasher", "twice", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "hasher name 'twice' is registered 2 times by ddcmh-twice 4.0 (entry point" in err
    assert not (tmp_path / "out").exists()
    assert get_hasher("once", n_bits=8).name == "once"
    assert bench_main(["--hasher", "not-a-hasher", "--out", str(tmp_path / "out")]) == 2
    assert "is not a Hasher subclass; provided by ddcmh-twice 4.0 (entry point" in capsys.readouterr().err


def test_the_registry_names_hashers_through_a_public_constructor(tmp_path):
    hasher = get_hasher("cca-itq", n_bits=8)
    assert hasher.registered_name == "cca-itq" and hasher.name == "cca-itq"
    assert hasher.clone().registered_name == "cca-itq"
    plain = type(hasher)(n_bits=8)
    assert plain.registered_name is None and plain.name == type(hasher).__name__
    features = np.random.default_rng(1).random((60, 10))
    labels = np.eye(3)[np.arange(60) % 3]
    path = hasher.fit(features, labels).save(tmp_path / "cca.h5")
    assert load_hasher(path).registered_name == "cca-itq"


def test_only_the_hasher_classes_set_the_private_registered_name():
    root = Path(ddcmh_core.__file__).parent
    setters = {
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if re.search(r"\._registry_name\s*=(?!=)", path.read_text())
    }
    assert setters <= {"hasher.py", "kernels.py"}, setters


def test_list_plugins_runs_every_hook_so_a_broken_method_hook_shows(fake_distributions, capsys):
    fake_distributions.add(
        "ddcmh-mixed",
        "ddcmh_mixed",
        """
        from ddcmh_core import HasherSpec, hookimpl

        @hookimpl
        def ddcmh_hashers():
            yield HasherSpec(name="mixed-lsh", hasher="ddcmh_hashers.lsh:LSH")

        @hookimpl
        def ddcmh_methods():
            raise RuntimeError("method hook broken")
        """,
    )
    assert bench_main(["--list-plugins", "--json"]) == 0
    records = {r["distribution"]: r for r in json.loads(capsys.readouterr().out)["plugins"]}
    assert records["ddcmh-mixed"]["status"] == "failed"
    assert records["ddcmh-mixed"]["error"] == "ddcmh_methods: RuntimeError: method hook broken"
    assert records["ddcmh"]["provides"]["ddcmh_methods"] == ["ddcmh", "dcmh"]
