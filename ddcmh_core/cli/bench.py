"""``ddcmh-bench``: compare cross-modal retrieval built on single-modal hashers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import DdcmhError
from ..plugins import hasher_registry
from . import listing

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also the source of the CLI reference in the docs)."""
    parser = argparse.ArgumentParser(
        prog="ddcmh-bench",
        description=(
            "Train DDCMH cross-modal hashing on top of single-modal hashers and report "
            "image->text and text->image retrieval."
        ),
    )
    info = parser.add_argument_group("listing")
    info.add_argument(
        "--list-hashers", action="store_true", help="list the installed hashers and exit"
    )
    info.add_argument(
        "--list-plugins",
        action="store_true",
        help="list the installed plugin distributions (with load failures) and exit",
    )
    info.add_argument("--json", action="store_true", help="print listings as JSON")
    info.add_argument(
        "--version", action="store_true", help="print the versions of ddcmh and its plugins"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddcmh-bench``; returns the exit status."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        registry = hasher_registry()
        if arguments.version:
            print(listing.version_text(registry))
            return 0
        if arguments.list_hashers:
            print(listing.list_hashers(registry, as_json=arguments.json))
            return 0
        if arguments.list_plugins:
            print(listing.list_plugins(registry, as_json=arguments.json))
            return 0
        parser.error("nothing to do yet: use --list-hashers, --list-plugins or --version")
    except DdcmhError as error:
        print(f"ddcmh-bench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
