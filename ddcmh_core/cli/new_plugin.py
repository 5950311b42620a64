"""The plugin starter: write a ready-to-install ``ddcmh-NAME`` hasher plugin package.

``ddcmh-bench --new-plugin NAME [--dir PATH]`` (or ``python -m ddcmh_core.cli.new_plugin NAME``)
creates ``PATH/ddcmh-NAME/``::

    ddcmh-NAME/
      pyproject.toml            setuptools; depends on ddcmh; entry point in the "ddcmh" group
      README.md                 install, check, adapt, publish
      .gitignore
      ddcmh_NAME/__init__.py    a Hasher subclass to fill in (works as is: random projections)
      ddcmh_NAME/plugin.py      the ddcmh_hashers hook implementation
      ddcmh_NAME/py.typed
      tests/test_conformance.py the one-line conformance test

The files are written into a temporary folder beside the target and renamed into place at the
end, so a failure never leaves a half-written package behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TextIO

from .._version import __version__
from ..errors import InputError
from ..plugins import check_kebab_name

EXIT_OK = 0
EXIT_USAGE = 2


@dataclass(frozen=True)
class PluginNames:
    """Every name derived from the hasher's kebab name.

    Attributes
    ----------
    name : str
        The hasher name users type (``my-lsh``); also the entry-point key.
    distribution : str
        The distribution (``ddcmh-my-lsh``), also the folder name.
    module : str
        The import package (``ddcmh_my_lsh``).
    class_name : str
        The Hasher subclass (``MyLsh``).
    """

    name: str
    distribution: str
    module: str
    class_name: str

    @classmethod
    def from_name(cls, name: str) -> PluginNames:
        """Validate ``name`` (lower-case kebab, without the ``ddcmh-`` prefix) and derive the rest.

        Raises
        ------
        InputError
            If ``name`` is not lower-case kebab or starts with ``ddcmh-``.
        """
        try:
            check_kebab_name(name)
        except ValueError:
            raise InputError(
                f"argument 'NAME': expected a lower-case kebab hasher name (letters, digits and "
                f"single hyphens, starting with a letter), like 'itq' or 'my-lsh', got {name!r}"
            ) from None
        if name == "ddcmh" or name.startswith("ddcmh-"):
            suggestion = name.removeprefix("ddcmh-") if name != "ddcmh" else "my-hasher"
            raise InputError(
                f"argument 'NAME': expected the hasher name without the 'ddcmh-' prefix (the "
                f"package is called ddcmh-NAME), got {name!r}; try {suggestion!r}"
            )
        parts = name.split("-")
        return cls(
            name=name,
            distribution=f"ddcmh-{name}",
            module="ddcmh_" + "_".join(parts),
            class_name="".join(part[:1].upper() + part[1:] for part in parts),
        )


# --------------------------------------------------------------------------------- templates
# ``$name``-style placeholders (string.Template); ``$$`` is a literal dollar sign.

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "ddcmh plugin: the '$name' Stage-1 hasher"
readme = "README.md"
requires-python = ">=3.10"
# TODO: add your name, a licence and the project's URL.
dependencies = [
    "ddcmh>=$ddcmh_version",
    "numpy>=1.24",
    "pydantic>=2.5",
]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# This table is what makes the plugin discoverable: ddcmh reads the "ddcmh" entry-point group.
[project.entry-points.ddcmh]
$name = "$module.plugin"

[tool.setuptools.packages.find]
include = ["$module*"]

[tool.setuptools.package-data]
$module = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

INIT = '''\
"""$distribution: the ``$name`` Stage-1 hasher for ddcmh."""

from __future__ import annotations

import numpy as np
from ddcmh_core import Hasher, HasherParams
from ddcmh_core.linalg import centred_projection, column_mean
from ddcmh_core.validation import FeatureMatrix
from pydantic import Field

__all__ = ["$class_name"]
__version__ = "0.1.0"


class $class_name(Hasher):
    """TODO: say in one line what the method does, and cite the paper it comes from.

    The starter code is a working hasher, sign random projections of the centred data
    (Charikar 2002): ``bit_t = [(x - mu)^T w_t > 0]`` with ``w_t ~ N(0, I)``. Replace it with
    your method, keep the conformance test green, and add tests of what makes the method right.

    Parameters
    ----------
    n_bits : int, default 32
        Code length (common to every hasher).
    seed : int, default 0
        Seed of every random draw; take them all from the ``rng`` given to ``_fit``.
    center : bool, default True
        Subtract the training mean before projecting. TODO: replace with your own
        hyper-parameters; document each one, its default and where the default comes from.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Training mean (zeros when ``center`` is False).
    projection_ : ndarray of shape (n_features, n_bits)
        The projection directions.
    """

    # TODO: set the class tags that describe your method (see ddcmh_core.Hasher). ddcmh reads them
    # through tags(); override tags() (starting from super().tags()) if one depends on a parameter.
    requires_labels = False  # fit needs a {0,1} label matrix (supervised method)
    uses_labels = False  # fit uses labels when they are given
    supports_encode = True  # there is an out-of-sample hash function (_project)
    bits_bounded_by_features = False  # n_bits cannot exceed the number of features (PCA-like)
    balanced_bits = True  # bits aim at being 1 on about half of the items (the kit checks it)

    class Params(HasherParams):
        """Hyper-parameters (n_bits and seed are inherited)."""

        # TODO: your hyper-parameters, each with a default, constraints and a description.
        center: bool = Field(True, description="Subtract the training mean before projecting.")

    params: Params

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        # X is a validated float64 ndarray or CSR matrix: never densify a sparse X of n rows
        # (ddcmh_core.linalg has sparse-safe helpers). labels is None or a {0,1} matrix.
        # Store the fitted state in attributes ending in "_" (arrays, numbers, strings):
        # that is what save() writes and ddcmh_core.load_hasher() restores.
        # TODO: replace with your training algorithm.
        n_features = X.shape[1]
        self.mean_ = column_mean(X) if self.params.center else np.zeros(n_features)
        self.projection_ = rng.standard_normal((n_features, self.n_bits))

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        # Real values of shape (n, n_bits); bit = 1 iff the value is > 0.
        # A discrete method also overrides _training_codes(self) to return its optimised codes.
        # TODO: replace with your hash function.
        return centred_projection(X, self.mean_, self.projection_)
'''

PLUGIN = '''\
"""Entry point of $distribution: one ``ddcmh_hashers`` hook implementation.

``pyproject.toml`` names this module in the ``ddcmh`` entry-point group::

    [project.entry-points.ddcmh]
    $name = "$module.plugin"
"""

from __future__ import annotations

from collections.abc import Iterator

from ddcmh_core import HasherSpec, hookimpl


@hookimpl
def ddcmh_hashers() -> Iterator[HasherSpec]:
    """Offer the hasher under the name ``$name`` (its class is imported when it is used)."""
    yield HasherSpec(
        name="$name",
        hasher="$module:$class_name",
        summary="TODO: one line for ddcmh-bench --list-hashers.",
    )
'''

CONFORMANCE_TEST = """\
from ddcmh_core.testing import parametrize_with_hasher_checks

from $module import $class_name


@parametrize_with_hasher_checks([$class_name(n_bits=16)])
def test_conformance(hasher, check):
    check(hasher)
"""

README = """\
# $distribution

A [ddcmh](https://pypi.org/project/ddcmh/) plugin that adds the Stage-1 hasher `$name`.

TODO: describe the method, cite its paper and list its hyper-parameters.

## Install and check

```bash
pip install -e ".[test]"              # ddcmh must be installed (it is a dependency)
ddcmh-bench --list-hashers            # a line "$name ... $distribution 0.1.0 ..."
python -m pytest                      # the conformance kit, one test per check
```

Use it like any built-in hasher:

```python
import ddcmh_core

hasher = ddcmh_core.get_hasher("$name", n_bits=64, seed=0)
codes = hasher.fit_encode(train_texts)   # uint8 {0,1}, shape (n, 64)
```

## Where things are

| file | what to do there |
|---|---|
| `$module/__init__.py` | the `$class_name` hasher: fill in `Params`, `_fit` and `_project` (look for TODO) |
| `$module/plugin.py` | the `ddcmh_hashers` hook that yields the hasher's `HasherSpec`; write its summary |
| `pyproject.toml` | the entry point `[project.entry-points.ddcmh]`; add authors, licence, URL |
| `tests/test_conformance.py` | the conformance kit; add tests that pin properties of your method |

The starter hasher works as it is (sign random projections of the centred data), so the tests
pass before you change anything. Keep them passing while you replace it.

## Publish

```bash
python -m build && python -m twine upload dist/*
```

Users then `pip install $distribution` and the hasher appears in `ddcmh-bench --list-hashers`.
"""

GITIGNORE = """\
__pycache__/
*.egg-info/
build/
dist/
.pytest_cache/
"""


def render_plugin_files(names: PluginNames) -> dict[str, str]:
    """The files of the package, as ``{relative path: content}``.

    Parameters
    ----------
    names : PluginNames
        The derived names (:meth:`PluginNames.from_name`).
    """
    major, minor = [*__version__.split("."), "0"][:2]
    values = {
        "name": names.name,
        "distribution": names.distribution,
        "module": names.module,
        "class_name": names.class_name,
        "ddcmh_version": f"{major}.{minor}",
    }
    templates = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        f"{names.module}/__init__.py": INIT,
        f"{names.module}/plugin.py": PLUGIN,
        f"{names.module}/py.typed": "",
        "tests/test_conformance.py": CONFORMANCE_TEST,
    }
    return {path: Template(text).substitute(values) for path, text in templates.items()}


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InputError(f"{target}: expected a new folder, but a file of that name exists")
    if target.is_dir() and any(target.iterdir()):
        raise InputError(
            f"{target}: the folder exists and is not empty; choose another --dir or NAME, or "
            "remove it first (nothing was written)"
        )


def _make_parent(parent: Path) -> list[Path]:
    """Create ``parent`` and missing ancestors; return those created, deepest first."""
    created: list[Path] = []
    missing = parent
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    if not missing.is_dir():
        raise InputError(f"--dir {parent}: expected a folder, but {missing} is a file")
    if not os.access(missing, os.W_OK | os.X_OK):
        raise InputError(f"--dir {parent}: the folder {missing} is not writable (nothing was written)")
    for folder in reversed(created):
        folder.mkdir()
    return created


def write_plugin_skeleton(name: str, directory: str | os.PathLike[str] = ".") -> Path:
    """Write the package ``ddcmh-NAME/`` inside ``directory`` and return its path.

    Parameters
    ----------
    name : str
        The hasher name, lower-case kebab (``my-lsh``); the package is ``ddcmh-my-lsh`` with the
        module ``ddcmh_my_lsh`` and the class ``MyLsh``.
    directory : str or path-like, default "."
        The folder that receives ``ddcmh-NAME/`` (created when missing).

    Returns
    -------
    pathlib.Path
        The new package folder.

    Raises
    ------
    InputError
        If ``name`` is invalid, ``directory/ddcmh-NAME`` exists and is not empty, or
        ``directory`` cannot be written. Nothing is left behind in any of these cases: the
        files are written to a temporary folder beside the target and renamed into place.
    """
    names = PluginNames.from_name(name)
    files = render_plugin_files(names)
    parent = Path(directory).expanduser().absolute()
    target = parent / names.distribution
    _check_target(target)
    created = _make_parent(parent)
    staging = parent / f".{names.distribution}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        _check_target(target)  # again: another process may have created it meanwhile
        if target.is_dir():
            target.rmdir()  # empty (checked above); rename needs the name free on every system
        staging.rename(target)
    except OSError as error:
        raise InputError(
            f"--dir {parent}: cannot write the package there ({error.strerror or error}); "
            "nothing was written"
        ) from error
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return target


def next_steps(package: Path, names: PluginNames) -> str:
    """What to do after the package was written (printed by the command)."""
    return "\n".join(
        [
            f"Wrote {package}/ (hasher {names.name!r}, class {names.module}.{names.class_name}).",
            "Next:",
            f"  pip install -e '{package}[test]'",
            f"  ddcmh-bench --list-hashers          # shows {names.name}",
            f"  python -m pytest {package}/tests      # the conformance kit",
            f"Then replace the starter hasher in {names.module}/__init__.py (look for TODO).",
        ]
    )


def run_new_plugin(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    prog: str = "ddcmh-bench",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the starter as a command: write the package, print the next steps, return the exit status.

    Parameters
    ----------
    name : str
        The hasher name (``NAME`` of ``--new-plugin NAME``).
    directory : str or path-like, optional
        ``--dir PATH``; the current folder by default.
    prog : str
        Program name used in error messages.
    stdout, stderr : text streams, optional
        Where messages go (``sys.stdout`` / ``sys.stderr`` by default).

    Returns
    -------
    int
        0 on success, 2 on bad input (the message is on ``stderr``; nothing was written).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        package = write_plugin_skeleton(name, "." if directory is None else directory)
    except InputError as error:
        print(f"{prog}: error: {error}", file=err)
        return EXIT_USAGE
    names = PluginNames.from_name(name)
    print(next_steps(package, names), file=out)
    clash = _installed_provider(names.name)
    if clash:
        print(
            f"{prog}: warning: a hasher named {names.name!r} is already installed ({clash}); "
            "installing this plugin beside it makes the name ambiguous, so rename one of them",
            file=err,
        )
    return EXIT_OK


def _installed_provider(name: str) -> str:
    """The provider of an installed hasher called ``name`` ("" when none or unknown)."""
    try:
        from ..plugins import hasher_registry

        registry = hasher_registry()
        if name in registry:
            return registry.get(name).plugin.provider
    except Exception:  # a broken plugin set must not stop the starter
        return ""
    return ""


def add_new_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--new-plugin NAME`` and ``--dir PATH`` (an argument group) to a parser."""
    group = parser.add_argument_group("plugin starter")
    group.add_argument(
        "--new-plugin",
        metavar="NAME",
        help="write a ready-to-install hasher plugin package ddcmh-NAME/ (NAME is lower-case "
        "kebab, e.g. my-lsh) and exit",
    )
    group.add_argument(
        "--dir",
        metavar="PATH",
        default=None,
        help="folder that receives ddcmh-NAME/ with --new-plugin (default: the current folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Parser of the stand-alone form ``python -m ddcmh_core.cli.new_plugin NAME [--dir PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ddcmh_core.cli.new_plugin",
        description="Write a ready-to-install ddcmh hasher plugin package ddcmh-NAME/.",
    )
    parser.add_argument("name", metavar="NAME", help="hasher name, lower-case kebab (e.g. my-lsh)")
    parser.add_argument(
        "--dir", metavar="PATH", default=None, help="folder that receives ddcmh-NAME/ (default: .)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ddcmh_core.cli.new_plugin``; returns the exit status."""
    arguments = build_parser().parse_args(argv)
    return run_new_plugin(arguments.name, arguments.dir, prog="new_plugin")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
