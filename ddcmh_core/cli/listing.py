"""What ``--list-hashers``, ``--list-methods``, ``--list-plugins`` and ``--version`` print."""

from __future__ import annotations

import json
from typing import Any

from .._version import __version__
from ..plugins import (
    HasherRegistry,
    MethodRegistry,
    NameRegistry,
    RegisteredHasher,
    RegisteredMethod,
    method_registry,
)

COMMON_PARAMETERS = ("n_bits", "seed")
"""Hyper-parameters of every hasher (``HasherParams``), listed once below the table."""


def record_header(entry: RegisteredHasher | RegisteredMethod) -> dict[str, Any]:
    """What a listing says of any registered name: name, aliases, provider, summary, defaults."""
    return {
        "name": entry.spec.name,
        "aliases": list(entry.spec.aliases),
        "provider": entry.plugin.distribution,
        "provider_version": entry.plugin.version,
        "summary": entry.spec.summary,
        "defaults": dict(entry.spec.defaults),
    }


def unusable_names(registry: NameRegistry[Any]) -> dict[str, Any]:
    """The names nobody can use, for the listings; the other names work.

    ``conflicts`` are claimed by several plugins, ``broken_names`` twice by one plugin.
    """
    return {
        "conflicts": [
            {
                "name": name,
                "providers": [f"{entry.plugin.provider} ({entry.plugin.name})" for entry in entries],
            }
            for name, entries in sorted(registry.conflicts.items())
        ],
        "broken_names": [registry.problems[name] for name in sorted(registry.problems)],
    }


def unusable_lines(unusable: dict[str, Any]) -> list[str]:
    """Table lines for :func:`unusable_names`."""
    lines = [
        f"CONFLICT: {conflict['name']!r} is claimed by {' and '.join(conflict['providers'])}"
        for conflict in unusable["conflicts"]
    ]
    return lines + [f"BROKEN NAME: {message}" for message in unusable["broken_names"]]


def hasher_record(entry: RegisteredHasher) -> dict[str, Any]:
    """JSON-ready description of one registered hasher (loads its class)."""
    record = record_header(entry)
    try:
        hasher_class = entry.load()
        hasher = hasher_class(**entry.spec.defaults)
    except Exception as error:  # a broken hasher module must not take the listing down
        record.update(status="failed", error=str(error))
        return record
    tags = hasher.tags()  # the one source of tags, as the engine and the conformance kit read them
    record.update(
        status="ok",
        tags=tags,
        supervised=tags["requires_labels"],
        uses_labels=tags["uses_labels"],
        out_of_sample=tags["supports_encode"],
        bits_bounded_by_features=tags["bits_bounded_by_features"],
        hasher_class=entry.spec.target,
        params=hasher.get_params(),
        params_schema=hasher_class.Params.model_json_schema(),
    )
    return record


def list_hashers(registry: HasherRegistry, *, as_json: bool) -> str:
    """The ``--list-hashers`` output, a table or JSON."""
    records = [hasher_record(entry) for entry in registry.entries()]
    unusable = unusable_names(registry)
    if as_json:
        return json.dumps({"hashers": records, **unusable}, indent=2, default=str)
    lines = [f"{'name':<16} {'kind':<13} {'provider':<18} summary"]
    for record in records:
        if record["status"] != "ok":
            kind = "BROKEN"
        else:
            kind = "supervised" if record["supervised"] else "unsupervised"
        provider = f"{record['provider']} {record['provider_version']}"
        name = record["name"] + (f" ({', '.join(record['aliases'])})" if record["aliases"] else "")
        summary = record["summary"] if record["status"] == "ok" else record["error"]
        lines.append(f"{name:<16} {kind:<13} {provider:<18} {summary}")
        if record["status"] == "ok":
            parameters = ", ".join(
                f"{key}={value!r}" for key, value in record["params"].items() if key not in COMMON_PARAMETERS
            )
            if parameters:
                lines.append(f"{'':<16} {'':<13} {'':<18} params: {parameters}")
    lines += unusable_lines(unusable)
    lines.append("")
    lines.append(
        "Every hasher also takes n_bits and seed, and kernel_lift='rbf' (with lift_anchors, default 1000) "
        "first lifts its input to anchor RBF features (KernelLifted). Set them with --hasher-opt "
        "[HASHER:]KEY=VALUE; --list-hashers --json shows full schemas."
    )
    return "\n".join(lines)


def method_record(entry: RegisteredMethod) -> dict[str, Any]:
    """JSON-ready description of one registered cross-modal method (loads its class)."""
    record = record_header(entry)
    try:
        method_class = entry.load()
        params = method_class.Params.model_validate(entry.spec.defaults)
    except Exception as error:  # a broken method module must not take the listing down
        record.update(status="failed", error=str(error))
        return record
    record.update(
        status="ok",
        label=method_class.label(),
        method_class=entry.spec.target,
        tags=method_class.tags.as_dict(),
        params=params.model_dump(mode="json"),
        params_schema=method_class.Params.model_json_schema(),
    )
    return record


def list_methods(registry: MethodRegistry, *, as_json: bool) -> str:
    """The ``--list-methods`` output, a table or JSON."""
    records = [method_record(entry) for entry in registry.entries()]
    unusable = unusable_names(registry)
    if as_json:
        return json.dumps({"methods": records, **unusable}, indent=2, default=str)
    lines = [f"{'name':<12} {'kind':<26} {'provider':<18} summary"]
    for record in records:
        if record["status"] != "ok":
            kind, summary = "BROKEN", record["error"]
        else:
            tags = record["tags"]
            kind = ", ".join(
                [
                    "supervised" if tags["supervised"] else "unsupervised",
                    "deep" if tags["deep"] else "shallow",
                    *(["+ hasher"] if tags["uses_hasher"] else []),
                ]
            )
            summary = record["summary"]
        provider = f"{record['provider']} {record['provider_version']}"
        name = record["name"] + (f" ({', '.join(record['aliases'])})" if record["aliases"] else "")
        lines.append(f"{name:<12} {kind:<26} {provider:<18} {summary}")
    lines += unusable_lines(unusable)
    lines += [
        "",
        "Run them with ddcmh-bench --method NAME[,NAME...] (or 'all'); set parameters with --method-opt "
        "METHOD:KEY=VALUE. --list-methods --json shows full schemas.",
    ]
    return "\n".join(lines)


def list_plugins(registry: HasherRegistry, *, as_json: bool) -> str:
    """The ``--list-plugins`` output: every entry point of the ``ddcmh`` group and its status.

    The method and dataset hooks of the installed plugins run first, so that what each plugin
    provides, and a hook that fails, show for every hook and not only for ``ddcmh_hashers``.
    """
    from ..data import dataset_registry

    method_registry()
    dataset_registry()
    records = [plugin.as_dict() for plugin in registry.plugins]
    if as_json:
        return json.dumps({"plugins": records}, indent=2)
    lines = [f"{'distribution':<22} {'version':<10} {'entry point':<18} {'status':<7} provides"]
    for record in records:
        provides = ", ".join(name for names in record["provides"].values() for name in names)
        lines.append(
            f"{record['distribution']:<22} {record['version']:<10} {record['entry_point']:<18} "
            f"{record['status']:<7} {provides or '-'}"
        )
        if record["error"]:
            lines.append(f"    error: {record['error']}")
        lines.extend(f"    problem: {problem}" for problem in record["problems"])
    return "\n".join(lines)


def version_text(registry: HasherRegistry) -> str:
    """``ddcmh-bench --version``: ddcmh's version and the installed plugins."""
    plugins = sorted(
        {
            f"{plugin.distribution} {plugin.version}"
            + ("" if plugin.status == "loaded" else " (failed to load)")
            for plugin in registry.plugins
            if plugin.distribution != "ddcmh"
        }
    )
    return f"ddcmh {__version__}; plugins: {', '.join(plugins) if plugins else 'none'}"


def list_datasets(*, as_json: bool) -> str:
    """The ``--list-datasets`` output: registered datasets, their files and official sources."""
    from ..data import describe_datasets

    records = describe_datasets()
    if as_json:
        return json.dumps({"datasets": records}, indent=2, default=str)
    lines = []
    for record in records:
        name = str(record.get("name", "?")) + (" (default)" if record.get("default") else "")
        lines.append(f"{name:<24} {record.get('summary', '')}")
        if record.get("aliases"):
            lines.append(f"{'':<4}aliases: {', '.join(record['aliases'])}")
        files = ", ".join(record.get("files", [])) or "-"
        needed = "needs" if record.get("needs_files", True) else "optional"
        lines.append(f"{'':<4}files ({needed}): {files}")
        lines += [f"{'':<4}source: {source}" for source in record.get("sources", [])]
    lines += [
        "",
        "ddcmh-bench --dataset NAME --data-dir DIR loads one; --list-datasets --json gives the same as JSON.",
    ]
    return "\n".join(lines)
