"""The plugin starter: a generated package installs with pip, is found, and passes the kit."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wheel_build_problem

from ddcmh_core.cli import new_plugin
from ddcmh_core.cli.new_plugin import PluginNames, run_new_plugin, write_plugin_skeleton
from ddcmh_core.errors import InputError
from ddcmh_core.testing import ALL_CHECKS

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_command(name: str, directory: Path | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_new_plugin(name, directory, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def subprocess_env(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.mark.parametrize(
    ("name", "module", "class_name"),
    [
        ("my-lsh", "ddcmh_my_lsh", "MyLsh"),
        ("foo", "ddcmh_foo", "Foo"),
        ("pca2-rr", "ddcmh_pca2_rr", "Pca2Rr"),
    ],
)
def test_names_are_derived_from_the_kebab_name(name, module, class_name):
    names = PluginNames.from_name(name)
    assert (names.distribution, names.module, names.class_name) == (f"ddcmh-{name}", module, class_name)


def test_generated_package_has_the_expected_files_and_entry_point(tmp_path):
    package = write_plugin_skeleton("my-lsh", tmp_path)
    assert package == tmp_path / "ddcmh-my-lsh"
    assert tree(package) == [
        ".gitignore",
        "README.md",
        "ddcmh_my_lsh",
        "ddcmh_my_lsh/__init__.py",
        "ddcmh_my_lsh/plugin.py",
        "ddcmh_my_lsh/py.typed",
        "pyproject.toml",
        "tests",
        "tests/test_conformance.py",
    ]
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["name"] == "ddcmh-my-lsh"
    assert project["project"]["entry-points"]["ddcmh"] == {"my-lsh": "ddcmh_my_lsh.plugin"}
    assert any(dependency.startswith("ddcmh>=") for dependency in project["project"]["dependencies"])
    for source in package.rglob("*.py"):
        ast.parse(source.read_text(), filename=str(source))  # every template renders to valid Python
    assert "class MyLsh(Hasher):" in (package / "ddcmh_my_lsh" / "__init__.py").read_text()
    assert "parametrize_with_hasher_checks([MyLsh(n_bits=16)])" in (
        package / "tests" / "test_conformance.py"
    ).read_text()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")], "temporary folder left"


def test_command_prints_next_steps_and_creates_missing_folders(tmp_path):
    status, out, err = run_command("my-lsh", tmp_path / "a" / "b")
    assert status == 0, err
    assert (tmp_path / "a" / "b" / "ddcmh-my-lsh" / "pyproject.toml").is_file()
    assert "pip install -e" in out and "--list-hashers" in out


def test_an_existing_empty_target_folder_is_used(tmp_path):
    (tmp_path / "ddcmh-foo").mkdir()
    status, _, err = run_command("foo", tmp_path)
    assert status == 0, err
    assert (tmp_path / "ddcmh-foo" / "ddcmh_foo" / "plugin.py").is_file()


@pytest.mark.parametrize("bad_name", ["My-Lsh", "my_lsh", "1lsh", "my--lsh", "-lsh", "lsh-", "", "a b"])
def test_invalid_name_exits_2_and_writes_nothing(tmp_path, bad_name):
    status, out, err = run_command(bad_name, tmp_path)
    assert status == 2
    assert "argument 'NAME'" in err and "lower-case kebab" in err and repr(bad_name) in err
    assert out == ""
    assert tree(tmp_path) == []


def test_the_ddcmh_prefix_is_refused_with_a_suggestion(tmp_path):
    status, _, err = run_command("ddcmh-foo", tmp_path)
    assert status == 2
    assert "without the 'ddcmh-' prefix" in err and "'foo'" in err
    assert tree(tmp_path) == []


def test_non_empty_target_exits_2_and_is_left_untouched(tmp_path):
    target = tmp_path / "ddcmh-foo"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    status, _, err = run_command("foo", tmp_path)
    assert status == 2
    assert str(target) in err and "not empty" in err
    assert tree(tmp_path) == ["ddcmh-foo", "ddcmh-foo/mine.txt"]
    assert (target / "mine.txt").read_text() == "keep me"


def test_a_file_in_place_of_the_target_or_the_folder_exits_2(tmp_path):
    (tmp_path / "ddcmh-foo").write_text("a file")
    status, _, err = run_command("foo", tmp_path)
    assert status == 2 and "a file of that name exists" in err
    (tmp_path / "plain").write_text("a file")
    status, _, err = run_command("foo", tmp_path / "plain" / "sub")
    assert status == 2 and "is a file" in err
    assert tree(tmp_path) == ["ddcmh-foo", "plain"]


def test_unwritable_folder_exits_2_and_writes_nothing(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits: simulate what others see
            real_access = os.access
            monkeypatch.setattr(
                new_plugin.os,
                "access",
                lambda path, mode: False if Path(path) == locked else real_access(path, mode),
            )
        status, out, err = run_command("foo", locked / "deeper")
        assert status == 2
        assert "not writable" in err and str(locked) in err
        assert out == ""
        assert tree(locked) == []
    finally:
        locked.chmod(0o755)


def test_a_failure_while_writing_leaves_nothing_half_written(tmp_path, monkeypatch):
    real_write_text = Path.write_text
    written: list[str] = []

    def failing_write_text(self, data, *args, **kwargs):
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(self.name)
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing_write_text)
    status, _, err = run_command("foo", tmp_path / "new")
    assert status == 2
    assert "No space left on device" in err and "nothing was written" in err
    assert len(written) == 3
    assert tree(tmp_path) == [], "the temporary folder or the created --dir was left behind"


def test_write_plugin_skeleton_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="lower-case kebab"):
        write_plugin_skeleton("Bad", tmp_path)


def test_a_name_that_is_already_installed_is_written_with_a_warning(tmp_path):
    status, _, err = run_command("itq", tmp_path)
    assert status == 0
    assert "warning" in err and "'itq' is already installed" in err


def test_pip_installs_the_package_and_ddcmh_bench_lists_it(tmp_path):
    """A real pip install into a temporary folder; the hasher is found through its entry point."""
    problem = wheel_build_problem()
    if problem:
        pytest.skip(problem)
    package = write_plugin_skeleton("starter-check", tmp_path / "src")
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), str(package),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert (site / "ddcmh_starter_check" / "plugin.py").is_file()
    assert not (site / "ddcmh_core").exists(), "--no-deps must not reinstall ddcmh"
    script = Path(sys.executable).with_name("ddcmh-bench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ddcmh_core.cli.bench"]
    listing = subprocess.run(
        [*command, "--list-hashers"],
        capture_output=True, text=True, timeout=300, env=subprocess_env(site), cwd=tmp_path,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    line = next((row for row in listing.stdout.splitlines() if row.startswith("starter-check ")), None)
    assert line is not None, listing.stdout
    assert "ddcmh-starter-check 0.1.0" in line and "unsupervised" in line


def test_the_generated_conformance_test_passes(tmp_path):
    package = write_plugin_skeleton("starter-kit", tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
        capture_output=True, text=True, timeout=300, env=subprocess_env(package), cwd=package,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALL_CHECKS)} passed" in result.stdout, result.stdout


def test_ddcmh_bench_new_plugin_when_wired(tmp_path):
    from ddcmh_core.cli import bench

    options = {option for action in bench.build_parser()._actions for option in action.option_strings}
    if "--new-plugin" not in options:
        pytest.skip("ddcmh-bench --new-plugin is not wired into ddcmh_core.cli.bench yet")
    assert bench.main(["--new-plugin", "wired-check", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "ddcmh-wired-check" / "ddcmh_wired_check" / "__init__.py").is_file()
    assert bench.main(["--new-plugin", "Bad Name", "--dir", str(tmp_path)]) == 2
    assert bench.main(["--new-plugin", "wired-check", "--dir", str(tmp_path)]) == 2


def _readme_plugin_section() -> dict[str, str]:
    """The code blocks of README.md's "Hashers are plugins" section, by role."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Hashers are plugins", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    python = [code for language, code in blocks if language == "python"]
    return {
        "module": next(code for code in python if "class MyLSH" in code),
        "test": next(code for code in python if "parametrize_with_hasher_checks" in code),
        "pyproject": next(code for language, code in blocks if language == "toml"),
        "text": section,
    }


def test_the_readme_plugin_section_installs_from_a_clean_folder(tmp_path):
    """The README's module, whole pyproject.toml and test, laid out as the README says.

    The test file sits beside the module (the layout that made setuptools refuse an
    auto-discovered flat layout); the folder is installed with pip into a --target folder, then
    ddcmh-bench lists the hasher and the conformance test passes on the installed copy, each in
    a fresh process.
    """
    problem = wheel_build_problem()
    if problem:
        pytest.skip(problem)
    section = _readme_plugin_section()
    assert "ddcmh-bench --new-plugin my-lsh" in section["text"]
    package = tmp_path / "ddcmh-my-lsh"
    package.mkdir()
    (package / "pyproject.toml").write_text(section["pyproject"])
    (package / "ddcmh_my_lsh.py").write_text(section["module"])
    (package / "test_my_lsh.py").write_text(section["test"])
    checks_folder = tmp_path / "checks"  # away from the source, so that the installed copy is tested
    checks_folder.mkdir()
    (checks_folder / "test_my_lsh.py").write_text(section["test"])
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), str(package),
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert (site / "ddcmh_my_lsh.py").is_file() and not (site / "test_my_lsh.py").exists()
    listing = subprocess.run(
        [sys.executable, "-m", "ddcmh_core.cli.bench", "--list-hashers"],
        capture_output=True, text=True, timeout=300, env=subprocess_env(site), cwd=tmp_path,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert any(row.startswith("my-lsh ") for row in listing.stdout.splitlines()), listing.stdout
    checks = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(checks_folder)],
        capture_output=True, text=True, timeout=300, env=subprocess_env(site), cwd=tmp_path,
    )  # fmt: skip
    assert checks.returncode == 0, checks.stdout + checks.stderr
    assert f"{len(ALL_CHECKS)} passed" in checks.stdout, checks.stdout


def test_the_readme_names_the_real_starter_command():
    from ddcmh_core.cli import bench

    options = {option for action in bench.build_parser()._actions for option in action.option_strings}
    assert "--new-plugin" in options
    assert "ddcmh-bench --new-plugin" in _readme_plugin_section()["text"]
