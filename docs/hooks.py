"""mkdocs hooks: reference sections generated from the code at build time, so they cannot drift.

A page asks for a generated section with an HTML comment on a line of its own::

    <!-- ddcmh:cli-reference -->

``on_page_markdown`` replaces it before the page is rendered. The generators are plain
functions returning Markdown, so tests call them without mkdocs:

``cli-reference``, ``ddcmh-command-reference``, ``report-command-reference``,
``compare-command-reference``
    Every option of ``ddcmh-bench`` (``ddcmh_core.cli.bench.build_parser()``) and of ``ddcmh``
    (``ddcmh_core.cli.main.build_parser()``), per argument group and sub-command, and the full
    ``--help`` text.
``datasets``
    Every dataset that ddcmh registers (``ddcmh_datasets`` hook): files, sources, folders.
``dataset-keys``
    The array names the generic loader recognises in users' own files.
``hashers``
    Every hasher that ddcmh registers (``ddcmh_hashers`` hook): tags, hyper-parameters with
    their defaults and constraints (from the ``Params`` JSON schema), and the class docstring.
``config-file``
    The keys of a ``ddcmh-bench --config`` TOML file (``BenchConfig`` and ``DDCMHConfig``).
``conformance-checks``
    Every check of ``ddcmh_core.testing``, with the first line of its docstring.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

BUILTIN_DISTRIBUTION = "ddcmh"
MARKER = re.compile(r"^<!-- ddcmh:([a-z-]+) -->[ \t]*$", re.MULTILINE)
HELP_WIDTH = 78


def escape_markdown(text: str) -> str:
    """Escape the characters that Markdown (or HTML) would interpret in plain help text."""
    text = text.replace("\\", "\\\\")
    for character in "*_[]`":
        text = text.replace(character, "\\" + character)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def docstring_text(text: str) -> str:
    """Markdown for a line of reST-flavoured docstring text: ``literals`` and :role:`x` become code."""
    parts = re.split(r"(``.+?``|:[a-z]+:`[^`]+`)", text)
    converted = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            converted.append(escape_markdown(part))
        elif part.startswith("``"):
            converted.append(code(part[2:-2]))
        else:
            converted.append(code(part.split("`")[1].lstrip("~")))
    return "".join(converted)


URL = re.compile(r"https?://[^\s)]+")


def text_with_links(text: str) -> str:
    """Escape plain text but turn its URLs into links (``<https://...>``)."""
    parts = URL.split(text)
    urls = URL.findall(text)
    pieces = [escape_markdown(parts[0])]
    for url, rest in zip(urls, parts[1:], strict=True):
        pieces += [f"<{url}>", escape_markdown(rest)]
    return "".join(pieces)


def code(text: str) -> str:
    """Inline code, safe for any content (longer fences when the text holds backticks)."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


# ----------------------------------------------------------------------------- CLI reference
def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    formatter_class: Any = parser.formatter_class
    return formatter_class(prog=parser.prog, width=HELP_WIDTH)


def _describe_action(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    formatter = _formatter(parser)
    invocation = formatter._format_action_invocation(action)
    try:
        help_text = formatter._expand_help(action) if action.help else ""
    except (KeyError, TypeError, ValueError):  # a help string with a stray "%"
        help_text = action.help or ""
    if isinstance(action, argparse._SubParsersAction):
        lines = []
        for choice in action._choices_actions:
            summary = escape_markdown(choice.help) if choice.help else "see below"
            lines += [code(f"{parser.prog} {choice.dest}"), f":   {summary}", ""]
        return lines
    details = []
    shows_choices = action.metavar is None  # argparse then prints {a,b,c} in the invocation
    if action.choices is not None and not shows_choices:
        details.append("choices: " + ", ".join(code(str(choice)) for choice in action.choices))
    if isinstance(action, (argparse._AppendAction, argparse._AppendConstAction)):
        details.append("repeatable")
    has_default = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
    if has_default and "default" not in help_text.lower():
        details.append(f"default: {code(str(action.default))}")
    if action.required and action.option_strings:
        details.append("required")
    body = escape_markdown(help_text)
    extra = "; ".join(details)
    if extra:
        body = f"{body} ({extra})" if body else extra[:1].upper() + extra[1:] + "."
    body = body or "—"
    return [code(invocation), f":   {body}", ""]


def _parser_reference(parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = []
    if parser.description:
        lines += [escape_markdown(parser.description), ""]
    usage = _formatter(parser)
    usage.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    lines += ["```text", usage.format_help().strip(), "```", ""]
    subcommands: list[tuple[str, argparse.ArgumentParser]] = []
    for group in parser._action_groups:
        actions = [action for action in group._group_actions if action.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = group.title or "options"
        lines += [f"{'#' * level} {title[:1].upper() + title[1:]}", ""]
        if group.description:
            lines += [escape_markdown(group.description), ""]
        for action in actions:
            lines += _describe_action(parser, action)
            if isinstance(action, argparse._SubParsersAction):
                subcommands += list(action.choices.items())
    for name, subparser in subcommands:
        lines += [f"{'#' * level} {code(parser.prog + ' ' + name)}", ""]
        lines += _parser_reference(subparser, level + 1)
    if parser.epilog:
        lines += [escape_markdown(parser.epilog), ""]
    return lines


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and of its sub-commands (for the drift test)."""
    found = []
    for action in parser._actions:
        found += list(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                found += option_strings(subparser)
    return found


def cli_reference(parser: argparse.ArgumentParser | None = None, level: int = 3) -> str:
    """The reference of ``ddcmh-bench`` (or of ``parser``), generated from the argparse parser.

    Argument groups and sub-commands get headings of ``level``.
    """
    if parser is None:
        from ddcmh_core.cli.bench import build_parser

        parser = build_parser()
    lines = _parser_reference(parser, level=level)
    formatter_class: Any = parser.formatter_class
    parser.formatter_class = functools.partial(formatter_class, width=HELP_WIDTH)
    help_text = parser.format_help().rstrip()
    lines += [f'??? note "The full `{parser.prog} --help` text"', ""]
    indented = [f"    {line}" if line else "" for line in help_text.splitlines()]
    lines += ["    ```text", *indented, "    ```", ""]
    return "\n".join(lines)


def ddcmh_command_reference() -> str:
    """The reference of the ``ddcmh`` command (train, encode, search)."""
    from ddcmh_core.cli.main import build_parser

    return cli_reference(build_parser())


def report_command_reference() -> str:
    """The reference of ``ddcmh-bench report`` (results pages from run records)."""
    from ddcmh_core.cli.bench import build_report_parser

    return cli_reference(build_report_parser())


def compare_command_reference() -> str:
    """The reference of ``ddcmh-bench compare`` (which differences between two runs are real)."""
    from ddcmh_core.cli.bench import build_compare_parser

    return cli_reference(build_compare_parser())


def command_parsers() -> list[argparse.ArgumentParser]:
    """The parsers of every console script the CLI page documents (for the drift tests)."""
    from ddcmh_core.cli import bench, main

    return [
        bench.build_parser(),
        bench.build_report_parser(),
        bench.build_compare_parser(),
        main.build_parser(),
    ]


# ----------------------------------------------------------------------------- datasets
def _registered(entries: Iterable[Any]) -> list[Any]:
    return [entry for entry in entries if entry.plugin.distribution == BUILTIN_DISTRIBUTION]


def dataset_reference() -> str:
    """One section per dataset that ddcmh itself registers."""
    from ddcmh_core.data import DATA_DIR_ENV, DEFAULT_DATASET, STANDARD_PROTOCOLS, dataset_registry

    lines = []
    for entry in _registered(dataset_registry().entries()):
        spec = entry.spec
        lines += [f"### {code(spec.name)}", ""]
        if spec.summary:
            lines += [escape_markdown(spec.summary) + ".", ""]
        facts = []
        if spec.aliases:
            facts.append("Also called " + ", ".join(code(alias) for alias in spec.aliases) + ".")
        if spec.name == DEFAULT_DATASET:
            facts.append("The default dataset of `ddcmh-bench`.")
        if spec.folders:
            facts.append(
                "Found as " + " or ".join(code(folder + "/") for folder in spec.folders)
                + f" inside `--data-dir` or `${DATA_DIR_ENV}`."
            )
        if spec.defaults:
            facts.append(
                "Loader options of this name: "
                + ", ".join(code(f"{key}={value!r}") for key, value in spec.defaults.items())
                + "."
            )
        if facts:
            lines += [" ".join(facts), ""]
        protocol = STANDARD_PROTOCOLS.get(spec.name)
        if protocol is not None:
            lines += [_protocol_text(protocol), ""]
        if spec.files:
            lines += ["| file | or instead | what it holds |", "|---|---|---|"]
            for item in spec.files:
                alternatives = ", ".join(code(name) for name in item.alternatives) or "—"
                description = escape_markdown(item.description).replace("|", "\\|")
                if item.optional:
                    description = f"*(optional)* {description}"
                lines.append(f"| {code(item.name)} | {alternatives} | {description} |")
            lines.append("")
        elif not spec.needs_files:
            lines += ["No files needed: the data is fetched or embedded.", ""]
        if spec.sources:
            lines += ["Sources:", ""]
            lines += [f"- {text_with_links(source)}" for source in spec.sources]
            lines.append("")
        if spec.citation:
            lines += [f"Cite: {escape_markdown(spec.citation)}.", ""]
    return "\n".join(lines)


def _protocol_text(protocol: Any) -> str:
    queries = (
        f"{protocol.n_query:,} queries" if protocol.n_query is not None
        else f"{protocol.query_per_class} queries per class"
    )
    train = f"{protocol.n_train:,} training items" if protocol.n_train else "every other item for training"
    database = (
        "the database is every non-query item" if protocol.database_includes_train
        else "the database excludes the training items"
    )
    source = f" Source: {escape_markdown(protocol.source)}." if protocol.source else ""
    return f"**Standard split** ({code(protocol.name)}, seeded): {queries}, {train}; {database}.{source}"


def dataset_keys_reference() -> str:
    """The array names the generic loader looks for in users' own files."""
    from ddcmh_core.data import array_files

    def names(keys: Iterable[str]) -> str:
        return ", ".join(code(key) for key in keys)

    lines = [
        "| role | names looked for, in order of preference |",
        "|---|---|",
        f"| image view (raw pixels, features or image file names) | {names(array_files.IMAGE_KEYS)} |",
        f"| text view (features or raw strings) | {names(array_files.TEXT_KEYS)} |",
        f"| labels ({{0,1}} matrix or class ids) | {names(array_files.LABEL_KEYS)} |",
    ]
    for part, keys in array_files.SPLIT_KEYS.items():
        lines.append(f"| {part} rows (0-based indices, optional) | {names(keys)} |")
    lines.append("")
    lines += ["Files that carry their own split are recognised by these keys (image, text, labels):", ""]
    for title, parts in array_files.PRESPLIT_LAYOUTS:
        described = "; ".join(f"{part}: {names(keys)}" for part, keys in parts.items())
        lines.append(f"- {escape_markdown(title)}: {described}")
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- hashers
def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(code(repr(value)) for value in schema["enum"])
    if "const" in schema:
        return code(repr(schema["const"]))
    if "anyOf" in schema:
        return " or ".join(_schema_type(option) for option in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    return str(kind)


def _schema_bounds(schema: dict[str, Any]) -> str:
    bounds = []
    symbols = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
    for key, symbol in symbols.items():
        if key in schema:
            bounds.append(f"{symbol} {schema[key]}")
    return ", ".join(bounds)


def parameter_table(
    params_model: Any, skip: Iterable[str] = (), *, label: str = "hyper-parameter"
) -> list[str]:
    """A Markdown table of a pydantic ``Params`` model: name, type, default, bounds, description."""
    from pydantic import BaseModel

    schema = params_model.model_json_schema()
    skipped = set(skip)
    rows = []
    for name, field in schema.get("properties", {}).items():
        if name in skipped:
            continue
        model_field = params_model.model_fields[name]
        if model_field.is_required():
            default = "required"
        else:
            value = model_field.get_default(call_default_factory=True)
            default = "see below" if isinstance(value, BaseModel) else code(repr(value))
        description = docstring_text(field.get("description", "")).replace("|", "\\|")
        cells = [code(name), _schema_type(field), default, _schema_bounds(field), description]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [f"| {label} | type | default | bounds | meaning |", "|---|---|---|---|---|", *rows, ""]


def hasher_reference() -> str:
    """One section per hasher that ddcmh itself registers, with its hyper-parameters and docstring."""
    from ddcmh_core import HasherParams, hasher_registry

    common = set(HasherParams.model_fields)
    lines = ["## Hyper-parameters of every hasher", ""]
    lines += parameter_table(HasherParams)
    for entry in _registered(hasher_registry().entries()):
        spec = entry.spec
        hasher_class = spec.load()
        hasher = hasher_class(**spec.defaults)
        tags = hasher.tags()
        lines += [f"## {code(spec.name)}", ""]
        if spec.summary:
            lines += [docstring_text(spec.summary), ""]
        kind = "supervised (needs labels)" if tags["requires_labels"] else (
            "unsupervised, uses labels when given" if tags["uses_labels"] else "unsupervised"
        )
        facts = [
            f"**Kind:** {kind}.",
            "**Out-of-sample:** "
            + ("yes, `encode` works." if tags["supports_encode"] else "no (training codes only)."),
            f"**Class:** {code(spec.target)}.",
        ]
        if tags["bits_bounded_by_features"]:
            facts.append(
                "**Bits:** at most the number of features (the [kernel lift](#kernel-lift), "
                "`kernel_lift='rbf'`, gives more)."
            )
        if not tags["balanced_bits"]:
            facts.append("**Bit balance:** not aimed at (`balanced_bits=False`; the kit skips that check).")
        if spec.aliases:
            facts.append("**Also called:** " + ", ".join(code(alias) for alias in spec.aliases) + ".")
        if spec.defaults:
            facts.append(
                "**Defaults of this name:** "
                + ", ".join(code(f"{key}={value!r}") for key, value in spec.defaults.items())
                + "."
            )
        lines += [" ".join(facts), ""]
        lines += parameter_table(hasher_class.Params, skip=common)
        if not spec.defaults:  # a name with its own defaults (cca-itq) shares the class docstring
            lines += [
                f'??? info "The `{hasher_class.__name__}` class: method, references, parameters"',
                "",
                f"    ::: {spec.target.replace(':', '.')}",
                "        options:",
                "          show_root_heading: false",
                "          show_root_toc_entry: false",
                "          members: false",
                "          show_bases: false",
                "",
            ]
    return "\n".join(lines)


def method_reference() -> str:
    """One section per cross-modal method that ddcmh itself registers: tags, class, parameters."""
    from ddcmh_core import MethodParams, method_registry

    common = set(MethodParams.model_fields)
    lines = ["## Parameters of every method", ""]
    lines += parameter_table(MethodParams, label="parameter")
    for entry in _registered(method_registry().entries()):
        spec = entry.spec
        method_class = spec.load()
        tags = method_class.tags
        lines += [f"## {code(spec.name)}: {method_class.label()}", ""]
        if spec.summary:
            lines += [docstring_text(spec.summary), ""]
        kind = [
            "supervised (needs labels)" if tags.supervised else "unsupervised",
            "deep (networks, epochs, checkpoints)" if tags.deep else "shallow",
        ]
        if tags.uses_hasher:
            kind.append("takes a Stage-1 hasher (`--hasher`)")
        lines += [f"**Kind:** {', '.join(kind)}. **Class:** {code(spec.target)}.", ""]
        lines += parameter_table(method_class.Params, skip=common, label="parameter")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- config files
def config_reference() -> str:
    """The keys of a ``--config`` TOML file: the bench settings and the model's ``[model]`` table."""
    from ddcmh_core.bench.config import MODEL_KEYS_SET_BY_BENCH, BenchConfig
    from ddcmh_core.engine.config import NetworkConfig, TrainingConfig
    from ddcmh_core.methods.ddcmh import DDCMHConfig

    lines = ["### Top-level keys", ""]
    lines += parameter_table(BenchConfig, label="key")
    lines += [
        "### `[model]`: the DDCMH model",
        "",
        "Fields of `DDCMHConfig`, except "
        + ", ".join(code(key) for key in MODEL_KEYS_SET_BY_BENCH)
        + ", which the bench sets from its own keys.",
        "",
    ]
    lines += parameter_table(DDCMHConfig, skip=MODEL_KEYS_SET_BY_BENCH, label="key")
    lines += ["### `[model.image_network]`, `[model.text_network]`", ""]
    lines += parameter_table(NetworkConfig, label="key")
    lines += ["### `[model.image_training]`, `[model.text_training]`", ""]
    lines += parameter_table(TrainingConfig, label="key")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- conformance
def conformance_reference() -> str:
    """A table of every check of the conformance kit, in the order the kit runs them."""
    from ddcmh_core import testing

    lines = ["| check | kind | what it verifies |", "|---|---|---|"]
    for check in testing.ALL_CHECKS:
        kind = "API" if check in testing.API_CHECKS else "quality"
        summary = (check.__doc__ or "").strip().splitlines()[0] if check.__doc__ else ""
        lines.append(f"| {code(check.__name__)} | {kind} | {docstring_text(summary)} |")
    return "\n".join([*lines, ""])


GENERATORS: dict[str, Callable[[], str]] = {
    "cli-reference": cli_reference,
    "ddcmh-command-reference": ddcmh_command_reference,
    "report-command-reference": report_command_reference,
    "compare-command-reference": compare_command_reference,
    "datasets": dataset_reference,
    "dataset-keys": dataset_keys_reference,
    "hashers": hasher_reference,
    "methods": method_reference,
    "config-file": config_reference,
    "conformance-checks": conformance_reference,
}


def render_markers(markdown: str, source: str = "page") -> str:
    """Replace every ``<!-- ddcmh:NAME -->`` line by the generated section ``NAME``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"{source}: unknown generated section {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Fill in the generated sections of a page (the mkdocs ``on_page_markdown`` event)."""
    from mkdocs.exceptions import PluginError

    try:
        return render_markers(markdown, source=page.file.src_uri)
    except KeyError as error:
        raise PluginError(str(error.args[0])) from error
