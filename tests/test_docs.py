"""The documentation: its code runs, its generated references are complete, the site builds strictly."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import wheel_build_problem

from ddcmh_core import hookspecs
from ddcmh_core.testing import ALL_CHECKS

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
TUTORIAL = DOCS / "tutorial" / "ddcmh-pca-rr"
SNIPPET = re.compile(r'--8<-- "([^"]+)"')


def load_module(name: str, path: Path, package_dir: Path | None = None) -> ModuleType:
    locations = [str(package_dir)] if package_dir is not None else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def docs_hooks():
    return load_module("ddcmh_docs_hooks", DOCS / "hooks.py")


@pytest.fixture(scope="module")
def pca_rr():
    """The tutorial's plugin package, imported from docs/tutorial without installing it."""
    package_dir = TUTORIAL / "ddcmh_pca_rr"
    try:
        yield load_module("ddcmh_pca_rr", package_dir / "__init__.py", package_dir)
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == "ddcmh_pca_rr"]:
            del sys.modules[name]


def env_with_path(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep docs/tutorial free of __pycache__
    return env


# ------------------------------------------------------------------------- the tutorial's code
@pytest.mark.parametrize("check", ALL_CHECKS, ids=[check.__name__ for check in ALL_CHECKS])
def test_tutorial_hasher_passes_the_conformance_kit(pca_rr, check):
    check(pca_rr.PCARR(n_bits=16))


def test_tutorial_plugin_own_tests_pass():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=300, cwd=TUTORIAL, env=env_with_path(TUTORIAL),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d+ passed", result.stdout) and "failed" not in result.stdout


def test_tutorial_plugin_installs_is_listed_and_its_example_runs(tmp_path):
    problem = wheel_build_problem()
    if problem:
        pytest.skip(problem)
    source = tmp_path / "ddcmh-pca-rr"  # a copy: pip builds in the source tree
    shutil.copytree(TUTORIAL, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), str(source),
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "ddcmh_core.cli.bench", "--list-hashers"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env_with_path(site),
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    pattern = r"^pca-rr\s+unsupervised\s+ddcmh-pca-rr 0\.1\.0"
    assert re.search(pattern, listing.stdout, re.MULTILINE), listing.stdout
    example = subprocess.run(
        [sys.executable, str(TUTORIAL / "examples" / "try_it.py")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env_with_path(site),
    )  # fmt: skip
    assert example.returncode == 0, example.stderr
    assert example.stdout.startswith("(500, 16) uint8\n")
    # The output shown on the tutorial page is the output of the code it shows.
    tutorial_page = (DOCS / "plugins" / "tutorial.md").read_text()
    assert example.stdout.strip() in tutorial_page
    by_name = subprocess.run(
        [sys.executable, str(TUTORIAL / "examples" / "use_it.py")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env_with_path(site),
    )  # fmt: skip
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.strip() == "PCARR random"


def test_quickstart_own_data_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "own_data.py")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env_with_path(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = re.search(r"image->text MAP@all ([\d.]+) \(random codes: ([\d.]+)\)", result.stdout)
    assert found, result.stdout
    assert float(found.group(1)) > float(found.group(2)) + 0.05, "the example should beat random codes"
    assert (tmp_path / "ddcmh-model.h5").is_file()


# ------------------------------------------------------------------------- generated references
@pytest.mark.parametrize("command", ["ddcmh-bench", "ddcmh"])
def test_cli_reference_names_every_option_of_the_parser(docs_hooks, command):
    parser = {parser.prog: parser for parser in docs_hooks.command_parsers()}[command]
    page = docs_hooks.cli_reference(parser)

    def has_term(option: str) -> bool:  # a definition-list term such as `-h, --help` or `--bits B`
        term = rf"^`[^`\n]*(?<![\w-]){re.escape(option)}(?![\w-])[^`\n]*`$"
        return re.search(term, page, re.MULTILINE) is not None

    missing = [option for option in docs_hooks.option_strings(parser) if not has_term(option)]
    assert not missing, f"options missing from the CLI reference: {missing}"


def test_cli_reference_renders_groups_choices_and_subcommands(docs_hooks):
    import argparse

    parser = argparse.ArgumentParser(prog="tool", description="Does <things> *well*.")
    group = parser.add_argument_group("inputs")
    group.add_argument("--mode", choices=["a", "b"], default="a", help="the mode (default: %(default)s)")
    group.add_argument("--tag", action="append", metavar="T", help="a tag")
    subcommands = parser.add_subparsers(dest="command")
    sub = subcommands.add_parser("run", help="run it")
    sub.add_argument("--fast", action="store_true", help="go fast")
    page = docs_hooks.cli_reference(parser)
    assert "### Inputs" in page and "`--mode {a,b}`" in page and "the mode (default: a)" in page
    assert "default: `a`" not in page  # the help text already says it
    assert "`--tag T`" in page and "repeatable" in page
    assert "### `tool run`" in page and "`--fast`" in page
    assert "`tool run`\n:   run it" in page
    assert "&lt;things&gt; \\*well\\*" in page
    assert docs_hooks.option_strings(parser) == ["-h", "--help", "--mode", "--tag", "-h", "--help", "--fast"]


def test_generated_references_cover_every_builtin(docs_hooks):
    from ddcmh_core import hasher_registry, method_registry
    from ddcmh_core.data import dataset_registry

    hashers = docs_hooks.hasher_reference()
    for entry in hasher_registry().entries():
        if entry.plugin.distribution == "ddcmh":
            assert f"## `{entry.spec.name}`" in hashers
    datasets = docs_hooks.dataset_reference()
    for entry in dataset_registry().entries():
        if entry.plugin.distribution == "ddcmh":
            assert f"### `{entry.spec.name}`" in datasets
            for source in entry.spec.sources:
                assert source.split()[0] in datasets
    methods = docs_hooks.method_reference()
    for entry in method_registry().entries():
        if entry.plugin.distribution == "ddcmh":
            assert f"## `{entry.spec.name}`: " in methods
    checks = docs_hooks.conformance_reference()
    for check in ALL_CHECKS:
        assert f"`{check.__name__}`" in checks


def test_config_file_example_is_valid_and_every_key_is_documented(docs_hooks):
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    from ddcmh_core import get_hasher
    from ddcmh_core.bench.config import BenchConfig
    from ddcmh_core.methods.ddcmh import DDCMHConfig

    settings = tomllib.loads((DOCS / "examples" / "bench.toml").read_text())
    config = BenchConfig(**settings)
    DDCMHConfig(**config.model)
    for name, options in config.hasher_options.items():
        get_hasher(name, **options)
    reference = docs_hooks.config_reference()
    for key in [*BenchConfig.model_fields, *DDCMHConfig.model_fields]:
        assert f"`{key}`" in reference


def test_unknown_generated_section_is_an_error(docs_hooks):
    with pytest.raises(KeyError, match="no-such-section"):
        docs_hooks.render_markers("text\n<!-- ddcmh:no-such-section -->\n", source="page.md")
    assert docs_hooks.render_markers("no markers here") == "no markers here"


def test_docstring_text_turns_rest_literals_into_code(docs_hooks):
    text = docs_hooks.docstring_text("``fit`` returns :class:`~x.Hasher` *a*")
    assert text == "`fit` returns `x.Hasher` \\*a\\*"


# ------------------------------------------------------------------------- hand-written pages
def test_quickstart_shows_the_readme_commands():
    """The quickstart starts with the README's two commands: install-and-run, and the test command."""
    readme = (REPO_ROOT / "README.md").read_text()
    quickstart = (DOCS / "quickstart.md").read_text()
    test_block = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.DOTALL)
    assert test_block, "README.md lost its test-command block"
    run_block = re.search(r"```bash\n(pip install [^\n]*ddcmh-bench)\n```", readme)
    assert run_block, "README.md lost its install-and-run command"
    for command in (run_block.group(1), test_block.group(1).strip()):
        assert f"```bash\n{command}\n```" in quickstart, f"docs/quickstart.md does not show {command!r}"



def test_every_conformance_check_is_explained(docs_hooks):
    """Like datasette's test_docs: a new check must come with its explanation."""
    page = (DOCS / "conformance.md").read_text()
    undocumented = [check.__name__ for check in ALL_CHECKS if f"`{check.__name__}`\n:   " not in page]
    assert not undocumented, f"add these checks to docs/conformance.md: {undocumented}"


def test_every_hook_is_documented():
    hooks = [name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(function, "ddcmh_spec")]  # fmt: skip
    assert "ddcmh_hashers" in hooks
    page = (DOCS / "plugins" / "tutorial.md").read_text()
    undocumented = [name for name in hooks if f"`{name}()`\n:   " not in page]
    assert not undocumented, f"add these hooks to the hooks reference of the tutorial: {undocumented}"


def test_every_snippet_exists_and_every_generated_section_is_known(docs_hooks):
    for page in DOCS.rglob("*.md"):
        text = page.read_text()
        for target in SNIPPET.findall(text):
            path = target.rsplit(":", 1)[0] if re.search(r":[a-z-]+$", target) else target
            assert (REPO_ROOT / path).is_file(), f"{page}: snippet {target!r} not found"
            if path != target:
                section = target.rsplit(":", 1)[1]
                assert f"--8<-- [start:{section}]" in (REPO_ROOT / path).read_text(), (page, target)
        for name in docs_hooks.MARKER.findall(text):
            assert name in docs_hooks.GENERATORS, f"{page}: unknown generated section {name!r}"


# ------------------------------------------------------------------------- the site
def test_site_builds_with_warnings_as_errors(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "pymdownx"):
        pytest.importorskip(module, reason=f"the docs extra is not installed ({module})")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env_with_path(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = load_module("ddcmh_docs_hooks_site", DOCS / "hooks.py")
    cli_page = (site / "cli" / "index.html").read_text()
    for parser in hooks.command_parsers():
        for option in hooks.option_strings(parser):
            assert option in cli_page, f"{parser.prog} {option} missing from the built CLI page"
    tutorial = (site / "plugins" / "tutorial" / "index.html").read_text()
    assert "PCARR" in tutorial and "ddcmh_hashers" in tutorial
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "--8&lt;--" not in text and "--8<--" not in text, f"{page}: an unresolved snippet"
        assert "<!-- ddcmh:" not in text, f"{page}: an unfilled generated section"
    api = (site / "python-api" / "index.html").read_text()
    documented = (
        "ddcmh_core.Hasher", "ddcmh_core.testing.check_hasher",
        "ddcmh_core.evaluation.metrics.mean_average_precision",
        "ddcmh_core.evaluation.index.HammingIndex", "ddcmh_core.methods.ddcmh.DDCMH",
    )  # fmt: skip
    for name in documented:
        assert f'id="{name}"' in api, f"{name} missing from the API reference"
