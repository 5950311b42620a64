"""Reports of a ``ddcmh-bench`` run: the Markdown table (also printed) and PNG plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _cell(record: dict[str, Any] | None, n_seeds: int) -> str:
    if record is None:
        return "—"
    if n_seeds > 1:
        return f"{record['value']:.4f} ± {record['std']:.4f}"
    return f"{record['value']:.4f}"


def _rows(results: dict[str, Any], task: str) -> list[tuple[str, str | None, str]]:
    present = {(r["method"], r["hasher"]) for r in results["records"] if r["task"] == task}
    ordered = sorted(present, key=lambda item: (ROW_ORDER.get(item[0], 2), item[0], item[1] or ""))
    rows = []
    for method, hasher in ordered:
        label = method_label(results, method, hasher)
        if method == "stage1":
            label = f"{hasher} text codes (Stage 1 alone)"
        rows.append((label, hasher, method))
    return rows


def markdown_report(results: dict[str, Any], out_dir: Path | None = None) -> str:
    """The results table in Markdown, with a short guide to reading it."""
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
        + "Higher is better; the random-code floor is what codes carrying no information score.",
    ]
    if not results.get("complete", True):
        lines += ["", "**Partial results: the run was interrupted; run the same command again to resume.**"]
    for task in ("image->text", "text->image", "text->text"):
        rows = _rows(results, task)
        if not rows:
            continue
        title = {
            "image->text": "Image query → text database",
            "text->image": "Text query → image database",
            "text->text": "Text query → text database (single-modal, for reference)",
        }[task]
        lines += ["", f"## {title}", "", "| method | " + " | ".join(f"{b} bits" for b in bits) + " |"]
        lines.append("|---|" + "---|" * len(bits))
        for label, hasher, method in rows:
            cells = [
                _cell(
                    _value(
                        results["records"],
                        method=method,
                        hasher=hasher,
                        bits=b,
                        task=task,
                        metric="map@all",
                        tie_policy="expected",
                    ),
                    n_seeds,
                )
                for b in bits
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += _fit_time_lines(results, bits)
    lines += _tuning_lines(results.get("tuning", []))
    index_rows = [r for r in results["records"] if r["tie_policy"] == "index" and r["metric"] == "map@all"]
    if index_rows:
        lines += [
            "",
            "MAP@all with ties broken by database index (what most published code computes), "
            "MAP@k, P@N and precision within Hamming radius 2 are in results.json.",
        ]
    compute = results.get("cell_seconds")
    lines += [
        "",
        f"Device: {results['device']}. Wall time: {results['wall_seconds']:.0f} s"
        + (f" (cells' own compute time, cached ones included: {compute:.0f} s)." if compute else "."),
    ]
    if out_dir is not None:
        lines += [
            f"Files in {out_dir}: results.json (every metric, config, versions, split), results.md "
            "(this table), map_vs_bits.png, pr_curves.png, precision_at_n.png, split.h5 (the split's "
            "indices), cells/ (cached cells: rerun to resume)."
        ]
    return "\n".join(lines) + "\n"


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
    keys = sorted(
        {(t["method"], t["hasher"]) for t in timings},
        key=lambda item: (ROW_ORDER.get(item[0], 2), item[0], item[1] or ""),
    )
    for method, hasher in keys:
        by_bits = {t["bits"]: t["mean"] for t in timings if (t["method"], t["hasher"]) == (method, hasher)}
        cells = [f"{by_bits[b]:.1f}" if b in by_bits else "—" for b in bits]
        lines.append(f"| {method_label(results, method, hasher)} | " + " | ".join(cells) + " |")
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


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """MAP against code length, precision–recall curves by radius and precision@N curves (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    config = results["config"]
    tasks = ("image->text", "text->image")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, task in zip(axes, tasks, strict=True):
        for label, hasher, method in _rows(results, task):
            points = [
                _value(
                    results["records"],
                    method=method,
                    hasher=hasher,
                    bits=b,
                    task=task,
                    metric="map@all",
                    tie_policy="expected",
                )
                for b in config["bits"]
            ]
            xs = [b for b, p in zip(config["bits"], points, strict=True) if p is not None]
            ys = [p["value"] for p in points if p is not None]
            if method == "random":
                axis.plot(xs, ys, "--", color="0.5", marker="o", label=label)
            else:
                axis.plot(xs, ys, "-", marker="o", label=label)
        axis.set_xscale("log", base=2)
        axis.set_xticks(config["bits"], [str(b) for b in config["bits"]])
        axis.set_xlabel("code length (bits)")
        axis.set_ylabel("MAP@all")
        axis.set_title(task)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{results['dataset']['name']}: MAP against code length")
    figure.tight_layout()
    path = out_dir / "map_vs_bits.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)

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
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
