"""Every ``ddcmh-bench`` command shown in README.md and docs/ still parses and plans.

Each documented command is run as written, with ``--dry-run --no-calibration`` added to the run
commands: the flags are parsed, the plan is validated, the data are loaded and every cell's
constraints are checked against them, and nothing is trained. Listing commands run as they are.
Placeholders for a data folder (``DATA``, ``DIR``, ``path/to/wikipedia``, ...) become
``../shared/data``; a command that needs a file the page creates first (``run.toml``,
``my_pairs.h5``) or a plugin the page builds (``pca-rr``, ``my-lsh``) is skipped with that reason.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from ddcmh_core.cli.bench import SUBCOMMANDS, main

REPO_ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDERS = {
    "path/to/wikipedia": "wikipedia",
    "PATH/TO/wikipedia": "wikipedia",
    "../shared/data/wikipedia": "wikipedia",
    "DATA": "wikipedia",
    "DIR": "wikipedia",
}
NOT_IN_THE_SHARED_COPY = ("mirflickr25k",)  # its shared copy has the text view and labels only
NEEDS_THE_PAGE = ("run.toml", "my_pairs.h5", "pca-rr", "my-lsh", "--new-plugin", "NAME")
LISTING = ("--list-hashers", "--list-methods", "--list-plugins", "--list-datasets", "--version")


def _documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split("#", 1)[0].strip()
                for part in command.split("&&"):
                    if part.strip().startswith("ddcmh-bench"):
                        found.append((str(page.relative_to(REPO_ROOT)), part.strip()))
    return found


@pytest.mark.parametrize(("page", "command"), _documented_commands(), ids=lambda value: value[:70])
def test_documented_command_parses_and_plans(page: str, command: str, tmp_path: Path, capsys) -> None:
    if any(marker in command for marker in NEEDS_THE_PAGE):
        pytest.skip(f"{page}: needs a file or plugin its page creates first")
    if any(name in command for name in NOT_IN_THE_SHARED_COPY):
        pytest.skip(f"{page}: the shared copy of the dataset lacks the image view this command needs")
    arguments = shlex.split(command)[1:]
    if arguments[:1] and arguments[0] in SUBCOMMANDS:
        pytest.skip(f"{page}: `ddcmh-bench {arguments[0]}` is exercised by tests/test_bench_report.py")
    for index, argument in enumerate(arguments):
        if argument in PLACEHOLDERS or argument.startswith("~/data/"):
            folder = PLACEHOLDERS.get(argument) or argument.rsplit("/", 1)[-1]
            if not (SHARED_DATA / folder).is_dir():
                pytest.skip(f"real dataset folder {SHARED_DATA / folder} is absent")
            arguments[index] = str(SHARED_DATA / folder)
    if "--dataset" in arguments and "--data-dir" not in arguments:
        arguments += ["--data-dir", str(SHARED_DATA)]
    if not any(flag in arguments for flag in LISTING):
        arguments += ["--dry-run", "--no-calibration"]
    status = main(arguments)
    captured = capsys.readouterr()
    assert status == 0, f"{page}: `{command}` exited {status}: {captured.err[-2000:]}"
