"""Reports of a ``ddcmh-bench`` run: the Markdown table (also printed) and PNG plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from ..errors import InputError
from ..files import atomic_path
from .peers import Peers, peer_lines

TASKS = ("image->text", "text->image")
TASK_TITLES = {
    "image->text": "Image query → text database",
    "text->image": "Text query → image database",
    "text->text": "Text query → text database (single-modal, for reference)",
}

FIXED_LABELS = {"stage1": "Stage-1 text codes", "random": "random codes (floor)"}
ROW_ORDER = {"ddcmh": 0, "stage1": 1, "random": 3}
"""DDCMH rows first, then the Stage-1 rows, then every other method by name, then the floor."""


def method_label(results: dict[str, Any], method: str, hasher: str | None = None) -> str:
    """How tables and plots name a method (``DDCMH + itq``, ``DCMH``, a plugin's own label)."""
    described = results.get("methods", {}).get(method, {})
    label = FIXED_LABELS.get(method) or described.get("label") or method
    return label + (f" + {hasher}" if hasher and method != "stage1" else "")


def _value(records: Sequence[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for record in records:
        if all(record.get(key) == value for key, value in match.items()):
            return record
    return None


@dataclass(frozen=True)
class References:
    """Values measured elsewhere (e.g. a method's reference code) shown beside a run's rows.

    Read by :func:`load_references` from a TOML file with a ``[protocol]`` table (free text on how
    the values were measured; ``source`` names it, ``tolerance`` is the agreed difference) and one
    ``[methods.NAME]`` table per method mapping a code length to ``[image->text, text->image]``.
    """

    path: str
    protocol: dict[str, Any]
    values: dict[str, dict[int, dict[str, float]]]

    def value(self, method: str, bits: int, task: str) -> float | None:
        """The reference value of a cell, or None."""
        return self.values.get(method, {}).get(bits, {}).get(task)


def load_references(path: str | Path) -> References:
    """Reference values from a TOML file (see :class:`References`).

    Raises
    ------
    InputError
        Naming the file and the entry that is malformed.
    """
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"--references {source}: cannot read it as TOML: {error}") from None
    values: dict[str, dict[int, dict[str, float]]] = {}
    for method, cells in raw.get("methods", {}).items():
        for bits, pair in cells.items():
            if not (str(bits).isdigit() and isinstance(pair, list) and len(pair) == len(TASKS)):
                raise InputError(
                    f"--references {source}: methods.{method}.{bits}: expected bits = "
                    f"[image->text, text->image], got {pair!r}"
                )
            values.setdefault(method, {})[int(bits)] = dict(zip(TASKS, map(float, pair), strict=True))
    return References(path=str(path), protocol=dict(raw.get("protocol", {})), values=values)


def _cell(record: dict[str, Any] | None, n_seeds: int, floor: dict[str, Any] | None = None) -> str:
    if record is None:
        return "—"
    text = f"{record['value']:.4f} ± {record['std']:.4f}" if n_seeds > 1 else f"{record['value']:.4f}"
    return text + (" (at floor)" if floor is not None and at_floor(record, floor) else "")


def at_floor(record: dict[str, Any], floor: dict[str, Any]) -> bool:
    """Whether a cell's mean is within two standard deviations of the random-code floor's.

    The deviation combines the cell's spread over seeds and the floor's (zero with one seed).
    """
    spread = math.hypot(record.get("std") or 0.0, floor.get("std") or 0.0)
    return bool(record["value"] <= floor["value"] + 2 * spread)


def _map(
    results: dict[str, Any], method: str, hasher: str | None, bits: int, task: str
) -> dict[str, Any] | None:
    """The tie-aware MAP@all record of one cell."""
    return _value(
        results["records"], method=method, hasher=hasher, bits=bits, task=task, metric="map@all",
        tie_policy="expected",
    )  # fmt: skip


def _row_label(results: dict[str, Any], method: str, hasher: str | None) -> str:
    """A table row's name: the method's label, or the hasher's for Stage-1 codes alone."""
    if method == "stage1":
        return f"{hasher} text codes (Stage 1 alone)"
    return method_label(results, method, hasher)


def _ordered(pairs: set[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """(method, hasher) pairs in row order: DDCMH, Stage 1, the other methods by name, the floor."""
    return sorted(pairs, key=lambda item: (ROW_ORDER.get(item[0], 2), item[0], item[1] or ""))


def _rows(results: dict[str, Any], task: str) -> list[tuple[str, str | None, str]]:
    present = {(r["method"], r["hasher"]) for r in results["records"] if r["task"] == task}
    return [(_row_label(results, method, hasher), hasher, method) for method, hasher in _ordered(present)]


def markdown_report(
    results: dict[str, Any],
    out_dir: Path | None = None,
    references: References | None = None,
    peers: Peers | None = None,
) -> str:
    """The results table in Markdown, with a short guide to reading it.

    A cell within two standard deviations of the random-code floor is marked "(at floor)". With
    ``references``, a table sets each method that has reference values beside them; with
    ``peers``, the values papers report on the same dataset follow in a table of their own,
    marked "reported, not re-run".
    """
    config = results["config"]
    bits = config["bits"]
    n_seeds = config["seeds"]
    dataset = results["dataset"]
    split = dataset["split"]
    lines = [
        f"# ddcmh-bench: {dataset['name']}",
        "",
        f"MAP@all over the whole database ranked by Hamming distance (tie-aware expected MAP; relevant = "
        f"shares a label). {split['query']} queries, {split['database']} database items, "
        f"{split['train']} training pairs. "
        + (f"Mean ± std over {n_seeds} seeds. " if n_seeds > 1 else "One seed. ")
        + "Higher is better; the random-code floor is what codes carrying no information score; "
        "a cell within two standard deviations of it is marked (at floor).",
    ]
    if not results.get("complete", True):
        lines += ["", "**Partial results: the run was interrupted; run the same command again to resume.**"]
    for task in ("image->text", "text->image", "text->text"):
        rows = _rows(results, task)
        if not rows:
            continue
        title = TASK_TITLES[task]
        lines += ["", f"## {title}", "", "| method | " + " | ".join(f"{b} bits" for b in bits) + " |"]
        lines.append("|---|" + "---|" * len(bits))
        for label, hasher, method in rows:
            cells = [
                _cell(
                    _map(results, method, hasher, b, task),
                    n_seeds,
                    None if method == "random" else _map(results, "random", None, b, task),
                )
                for b in bits
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if references is not None:
        lines += _reference_lines(results, references, bits)
    if peers is not None:
        lines += peer_lines(peers, dataset["name"])
    lines += _fit_time_lines(results, bits)
    lines += _tuning_lines(results.get("tuning", []))
    index_rows = [r for r in results["records"] if r["tie_policy"] == "index" and r["metric"] == "map@all"]
    if index_rows:
        lines += [
            "",
            "MAP@all with ties broken by database index (what most published code computes), "
            "MAP@k, P@N and precision within Hamming radius 2 are in results.json.",
        ]
    machine = filter(None, (f"Device: {results['device']}.", threads_line(results), time_line(results)))
    lines += ["", " ".join(machine)]
    if out_dir is not None:
        lines += [
            f"Files in {out_dir}: results.json (every metric, config, versions, split), results.md "
            "(this table), map_vs_bits.png, pr_curves.png, precision_at_n.png, split.h5 (the split's "
            "indices), cells/ (cached cells: rerun to resume)."
        ]
    return "\n".join(lines) + "\n"


def threads_line(results: dict[str, Any]) -> str:
    """The threads per process the trained cells ran with ('' for results that did not keep them).

    One count reads ``Threads per process: 2.``; a run whose cells ran with several counts (a
    resumed run with another ``--threads``) lists how many cells ran with each, since another count
    sums in another order and can move one seed's MAP in the second decimal.
    """
    counts: dict[str, int] = results.get("threads") or {}
    recorded = {key: number for key, number in counts.items() if key != "unrecorded"}
    if not recorded:
        return ""
    if len(counts) == 1:
        (threads,) = recorded
        return f"Threads per process: {threads}."
    parts = [
        f"{number} cell{'s' if number != 1 else ''} with {key} thread{'s' if key != '1' else ''}"
        for key, number in recorded.items()
    ]
    if "unrecorded" in counts:
        parts.append(f"{counts['unrecorded']} from before thread counts were kept")
    return (
        f"Threads per process: {', '.join(parts)}; another thread count sums in another order, which "
        "can move one seed's MAP in the second decimal."
    )


def time_line(results: dict[str, Any]) -> str:
    """The run's time, honestly labelled.

    ``wall_seconds`` is the wall time of the session that wrote the results. When that session
    reused cells computed before (a resumed run, or cells run by ``--jobs`` worker processes), it
    is far below the cells' own times, so the line gives the cells' compute time instead and says
    why; a run computed in one session gives its wall time.
    """
    wall, compute = results.get("wall_seconds"), results.get("cell_seconds")
    if not compute:
        return f"Wall time: {wall:.0f} s." if wall is not None else "Time not recorded."
    jobs = max(1, int(results.get("config", {}).get("jobs") or 1))
    if wall is not None and wall * jobs >= 0.9 * compute:
        return f"Wall time: {wall:.0f} s (the cells' own times add up to {compute:.0f} s)." + _resumed_note(
            results
        )
    return (
        f"Compute time: {compute:.0f} s, the sum of the cells' own times, each measured in the process "
        "that computed it. The session that wrote these results reused cells computed earlier (a "
        "resumed run, or --jobs worker processes), so its own wall time is not the run's."
        + _resumed_note(results)
    )


def _resumed_note(results: dict[str, Any]) -> str:
    """The sentence on cells that resumed an interrupted process (empty when none did)."""
    resumed = results.get("resumed_cells") or {}
    count = int(resumed.get("cells", 0))
    if not count:
        return ""
    cells = "1 cell" if count == 1 else f"{count} cells"
    interruptions = "the interruption" if count == 1 else "the interruptions"
    return (
        f" {cells} resumed from checkpoints after an interruption; the times above include the "
        f"{float(resumed['earlier_seconds']):.0f} s spent before {interruptions}."
    )


def _reference_lines(results: dict[str, Any], references: References, bits: Sequence[int]) -> list[str]:
    """Each method with reference values: this run's mean, the reference and the difference."""
    methods = sorted({r["method"] for r in results["records"]} & set(references.values))
    if not methods:
        return []
    tolerance = references.protocol.get("tolerance")
    lines = [
        "",
        f"## Against the reference values ({references.protocol.get('source', references.path)})",
        "",
        f"Each cell: this run's mean MAP@all, then (reference value, difference). Reference protocol: "
        f"{references.protocol.get('protocol', 'see ' + references.path)}."
        + (f" Differences beyond ±{tolerance} are marked ✗." if tolerance is not None else ""),
    ]
    for task in TASKS:
        header = "| method | " + " | ".join(f"{b} bits" for b in bits) + " |"
        lines += ["", f"**{TASK_TITLES[task]}**", "", header]
        lines.append("|---|" + "---|" * len(bits))
        for method in methods:
            cells = []
            for b in bits:
                record, reference = _map(results, method, None, b, task), references.value(method, b, task)
                if record is None or reference is None:
                    cells.append("—" if record is None else f"{record['value']:.4f} (no reference)")
                    continue
                difference = record["value"] - reference
                mark = " ✗" if tolerance is not None and abs(difference) > tolerance else ""
                cells.append(f"{record['value']:.4f} ({reference:.3f}, {difference:+.3f}){mark}")
            lines.append(f"| {method_label(results, method)} | " + " | ".join(cells) + " |")
    return lines


def render_page(
    records: Sequence[dict[str, Any]],
    *,
    title: str,
    command: str,
    references: References | None = None,
    peers: Peers | None = None,
    plots: Sequence[str] | None = None,
) -> str:
    """A documentation page from run records: one section per record, provenance first.

    ``command`` is the ``ddcmh-bench report`` command line that regenerates the page; it is written
    into the page (a test reruns it and compares). ``peers`` adds each record's dataset's reported
    values (see :mod:`ddcmh_core.bench.peers`); ``plots`` are the paths (relative to the page) of
    each record's MAP plot, shown under its tables.
    """
    lines = [f"# {title}", "", f"<!-- generated by: {command} -->", ""]
    lines.append(f"Generated by `{command}` from committed records; do not edit.")
    for index, record in enumerate(records):
        body = markdown_report(record, references=references, peers=peers).splitlines()[1:]  # own title
        demoted = ["#" + line if line.startswith("#") else line for line in body]
        lines += ["", *_provenance_lines(record), *demoted]
        if plots is not None:
            lines += ["", f"![MAP@all against code length: {record['dataset']['name']}]({plots[index]})"]
    return "\n".join(lines).rstrip() + "\n"


def _provenance_lines(record: dict[str, Any]) -> list[str]:
    """Heading and provenance of one record's section."""
    config, dataset, versions = record["config"], record["dataset"], record.get("versions", {})
    shown = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()) if version)
    return [
        f"## {record.get('title') or dataset['name']}",
        "",
        f"Command: `{record.get('command', 'not recorded')}`",
        "",
        f"Run of {record.get('created', '?')} on {record.get('device', '?')}; versions: {shown or '?'}; "
        f"dataset fingerprint sha256 {dataset['fingerprint']['sha256'][:16]}; split checksum "
        f"{str(dataset['split'].get('checksum', dataset['split'].get('sha256', '?')))[:16]}; "
        f"seeds {config['seeds']}; bits {config['bits']}.",
    ]


def _seconds(value: float) -> str:
    """A fit time: one decimal, two below a second (shallow methods fit in milliseconds)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _fit_time_lines(results: dict[str, Any], bits: Sequence[int]) -> list[str]:
    """Each trained method's fit time per code length (mean over seeds, seconds)."""
    timings = results.get("fit_seconds", [])
    if not timings:
        return []
    lines = [
        "",
        "## Fit time (seconds, mean over seeds)",
        "",
        "| method | " + " | ".join(f"{b} bits" for b in bits) + " |",
        "|---|" + "---|" * len(bits),
    ]
    for method, hasher in _ordered({(t["method"], t["hasher"]) for t in timings}):
        by_bits = {t["bits"]: t["mean"] for t in timings if (t["method"], t["hasher"]) == (method, hasher)}
        cells = [_seconds(by_bits[b]) if b in by_bits else "—" for b in bits]
        lines.append(f"| {_row_label(results, method, hasher)} | " + " | ".join(cells) + " |")
    return lines


def _tuning_lines(tuning: Sequence[dict[str, Any]]) -> list[str]:
    """Per hasher, every candidate's mean validation score per code length, the chosen in bold."""
    from ..tuning import describe_overrides

    if not tuning:
        return []
    lines = [
        "",
        f"## Hyper-parameters chosen on the validation split (objective: {tuning[0]['objective']})",
        "",
        "Mean validation score over the seeds of every candidate; the DDCMH rows above are those of "
        "the candidate in bold, chosen per hasher and code length. The query set played no part in "
        "the choice."
        + (
            " Successive halving: after each seed only the best third of the candidates still racing "
            "ran the next seed; a score marked (k seeds) is the mean over the k seeds its candidate ran."
            if tuning[0].get("strategy") == "halving"
            else ""
        ),
    ]
    by_hasher: dict[str, list[dict[str, Any]]] = {}
    for record in tuning:
        by_hasher.setdefault(record["hasher"], []).append(record)
    for hasher, records in by_hasher.items():
        records = sorted(records, key=lambda record: record["bits"])
        lines += ["", f"**{hasher}**", ""]
        lines += ["| candidate | " + " | ".join(f"{r['bits']} bits" for r in records) + " |"]
        lines.append("|---|" + "---|" * len(records))
        for index, candidate in enumerate(records[0]["candidates"]):
            cells = []
            for record in records:
                entry = record["candidates"][index]
                score, ran = entry["mean_score"], len(entry["scores"])
                full = max(len(other["scores"]) for other in record["candidates"])
                text = "not run" if score is None else f"{score:.4f}"
                if score is not None and ran < full:
                    text += f" ({ran} seed{'s' if ran > 1 else ''})"
                cells.append(f"**{text}**" if record["chosen"] == index else text)
            label = describe_overrides(candidate["overrides"])
            lines.append(f"| {index + 1}. {label} | " + " | ".join(cells) + " |")
    return lines


def _plot_tasks(results: dict[str, Any], peers: Peers | None) -> list[str]:
    """The tasks a MAP plot shows: the run's cross-modal ones (else its own), then its peers'."""
    present = {r["task"] for r in results["records"]}
    shown = {task for task in TASKS if task in present} or present
    if peers is not None:
        shown |= {task for peer in peers.of(results["dataset"]["name"]) for task in peer.values}
    return [task for task in TASK_TITLES if task in shown]


AT_FLOOR_LEGEND = "hollow: at the random-code floor (within 2 sd)"


def _plot_run_rows(axis: Any, results: dict[str, Any], task: str, colours: dict[str, Any]) -> None:
    """One task's rows against code length; points at the random-code floor drawn hollow."""
    bits = results["config"]["bits"]
    for label, hasher, method in _rows(results, task):
        found = [(b, _map(results, method, hasher, b, task)) for b in bits]
        points = [(b, p) for b, p in found if p is not None]
        xs, ys = [b for b, _ in points], [p["value"] for _, p in points]
        if method == "random":
            axis.plot(xs, ys, "--", color="0.5", marker="o", label=label)
            continue
        axis.plot(xs, ys, "-", marker="o", color=colours[label], label=label)
        floors = [_map(results, "random", None, b, task) for b, _ in points]
        flat = [(b, p["value"]) for (b, p), f in zip(points, floors, strict=True) if f and at_floor(p, f)]
        if flat:
            axis.plot(*zip(*flat, strict=True), "o", markersize=9, markerfacecolor="white",
                      markeredgecolor=colours[label], label=AT_FLOOR_LEGEND)  # fmt: skip


def map_vs_bits_plot(results: dict[str, Any], path: Path, peers: Peers | None = None) -> Path:
    """MAP@all against code length per task (PNG): the run's rows, the floor and reported peers.

    Points at the random-code floor are drawn hollow; peers (see :mod:`ddcmh_core.bench.peers`)
    are dotted lines with cross markers labelled "reported, not re-run". Each row keeps one colour
    in every panel. The figure depends on the record alone, so it is the same on every rerun.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = _plot_tasks(results, peers)
    shown = peers.of(results["dataset"]["name"]) if peers is not None else []
    labels = [label for task in tasks for label, _, method in _rows(results, task) if method != "random"]
    labels = list(dict.fromkeys(labels + [peer.label for peer in shown]))
    palette = [plt.get_cmap("tab20")(index) for index in range(20)]
    colours = {label: palette[index % len(palette)] for index, label in enumerate(labels)}
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.2), squeeze=False)
    ticks = set(results["config"]["bits"])
    legend: dict[str, Any] = {}
    for axis, task in zip(axes[0], tasks, strict=True):
        _plot_run_rows(axis, results, task, colours)
        for peer in shown:
            if task in peer.values:
                reported = sorted(peer.values[task].items())
                axis.plot(*zip(*reported, strict=True), ":", marker="x", color=colours[peer.label],
                          label=f"{peer.label}, {peer.metric}")  # fmt: skip
                ticks |= set(peer.values[task])
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted(ticks), [str(b) for b in sorted(ticks)])
        axis.set_xlabel("code length (bits)")
        axis.set_ylabel("MAP@all")
        axis.set_title(task)
        axis.grid(alpha=0.3)
        legend.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
    legend[AT_FLOOR_LEGEND] = legend.pop(AT_FLOOR_LEGEND) if AT_FLOOR_LEGEND in legend else None
    legend = {label: handle for label, handle in legend.items() if handle is not None}
    figure.suptitle(f"{results['dataset']['name']}: MAP against code length")
    figure.legend(legend.values(), legend.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:  # a full disk leaves the previous plot as it was
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")  # names matplotlib's version
    plt.close(figure)
    return path


def write_plots(results: dict[str, Any], out_dir: Path, peers: Peers | None = None) -> list[Path]:
    """MAP against code length, precision–recall curves by radius and precision@N curves (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = [map_vs_bits_plot(results, out_dir / "map_vs_bits.png", peers)]
    config = results["config"]
    tasks = ("image->text", "text->image")
    largest = max(config["bits"])
    for curve_name, filename, x_key, y_key, xlabel, ylabel in (
        ("pr_by_radius", "pr_curves.png", "recall", "precision", "recall", "precision"),
        ("p@N", "precision_at_n.png", "n", "precision", "N (items retrieved)", "precision@N"),
    ):
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for axis, task in zip(axes, tasks, strict=True):
            for key, curves in sorted(results["curves"].items()):
                method, hasher, bits, curve_task = key.split("|")
                if curve_task != task or int(bits) != largest or curve_name not in curves:
                    continue
                curve = curves[curve_name]
                label = method_label(results, method, hasher or None)
                axis.plot(
                    curve[x_key],
                    curve[y_key],
                    marker="." if curve_name == "pr_by_radius" else None,
                    label=label,
                )
            if curve_name == "p@N":
                axis.set_xscale("log")
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.set_title(f"{task}, {largest} bits")
            axis.grid(alpha=0.3)
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(fontsize=8)
        figure.tight_layout()
        path = out_dir / filename
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=110)
        plt.close(figure)
        written.append(path)
    return written
