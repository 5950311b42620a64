"""``ddcmh-bench``: compare cross-modal retrieval built on single-modal hashers.

With no arguments it trains DDCMH with the two hashers of the paper's Figure 1 (ITQ, COSDISH) on
the embedded UCI Multiple Features dataset at 16/32/64 bits and prints a MAP table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pydantic

from ..errors import DdcmhError, InputError
from ..files import atomic_path
from ..plugins import hasher_registry, method_registry
from ..tuning import OBJECTIVES, STRATEGIES
from . import listing, stdout_closed

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with errors that end in exit status 2 and a hint (argparse's own behaviour)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also the source of the CLI reference in the docs)."""
    parser = _Parser(
        prog="ddcmh-bench",
        description=(
            "Train DDCMH cross-modal hashing on top of single-modal hashers and report "
            "image->text and text->image retrieval (MAP, precision@N, precision-recall)."
        ),
        epilog=(
            "Examples: ddcmh-bench  |  ddcmh-bench --hasher itq --bits 32  |  "
            "ddcmh-bench --dataset wikipedia --data-dir ../shared/data/wikipedia --hasher all --seeds 3"
        ),
    )
    run = parser.add_argument_group("what to run")
    run.add_argument(
        "--hasher",
        action="append",
        metavar="NAME",
        help="Stage-1 hasher: repeat the flag, give a comma list, or 'all' (default: itq,cosdish)",
    )
    run.add_argument(
        "--hasher-opt",
        action="append",
        default=[],
        metavar="[HASHER:]KEY=VALUE",
        help="hasher hyper-parameter (validated by its Params); 'HASHER:' limits it to one hasher",
    )
    run.add_argument("--bits", metavar="B[,B...]", help="code lengths (default: 16,32,64)")
    run.add_argument(
        "--dataset",
        metavar="NAME|PATH",
        help="registered dataset name or a file/folder path (default: uci-mfeat, embedded)",
    )
    run.add_argument("--data-dir", metavar="PATH", help="where a named dataset's files are")
    run.add_argument(
        "--image-features",
        metavar="BACKBONE[:SIZE]",
        help="replace a view of photos by the features of this frozen pretrained backbone (e.g. "
        "mobilenet_v2), computed once and cached; every method then trains on features",
    )
    run.add_argument("--seeds", type=int, metavar="N", help="repeat with N seeds; report mean ± std")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: auto (CUDA when present)")
    run.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help=(
            "cross-modal methods to compare with DDCMH (see --list-methods): repeat the flag, give a "
            "comma list, or 'all'; DDCMH runs with each --hasher ('--hasher none' leaves it out)"
        ),
    )
    run.add_argument(
        "--method-opt",
        action="append",
        default=[],
        metavar="METHOD:KEY=VALUE",
        help="a method's parameter, dotted keys allowed (dcmh:training.max_epochs=100)",
    )
    run.add_argument(
        "--baseline",
        action="append",
        choices=["pairwise"],
        help="the same as --method dcmh (kept for earlier command lines)",
    )
    run.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="SETTING=V1,V2",
        help=(
            "choose a DDCMH setting on the validation split among candidates, e.g. "
            "image_network.dropout=0.3,0.5 or 'image_network.hidden_sizes=[[1024],[512,512]]' (repeatable: "
            "the grid is every combination)"
        ),
    )
    run.add_argument(
        "--tune-objective",
        choices=OBJECTIVES,
        help="validation score a candidate is chosen by (default: mean of both directions)",
    )
    run.add_argument(
        "--tune-strategy",
        choices=STRATEGIES,
        help=(
            "halving (default): candidates behind after a seed stop early, keeping the best third; "
            "grid: every candidate runs every seed"
        ),
    )
    run.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (flags win)")
    run.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: ./ddcmh-results/<dataset>-<timestamp>); reusing one resumes",
    )
    run.add_argument(
        "--restart",
        action="store_true",
        help="discard the saved cells and checkpoints in --out that another run (other settings, data "
        "or versions) made, and compute them afresh",
    )
    run.add_argument("--quick", action="store_true", help="few epochs and 16/32 bits: a fast first look")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check the plan, print its cells and an estimate of time and memory (from one fit of "
        "each method with every training loop cut to its first epochs); train nothing, write nothing",
    )
    run.add_argument(
        "--no-calibration",
        action="store_true",
        help="with --dry-run: check and print the plan without the calibration fits (seconds)",
    )
    run.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="run independent cells in N processes, the usable cores split between them (default 1)",
    )
    run.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch and BLAS threads per process (default: usable cores / jobs)",
    )
    info = parser.add_argument_group("listing")
    info.add_argument("--list-hashers", action="store_true", help="list the installed hashers and exit")
    info.add_argument(
        "--list-methods", action="store_true", help="list the installed cross-modal methods and exit"
    )
    info.add_argument(
        "--list-plugins",
        action="store_true",
        help="list the installed plugin distributions (with load failures) and exit",
    )
    info.add_argument("--list-datasets", action="store_true", help="list the registered datasets and exit")
    info.add_argument("--json", action="store_true", help="print listings as JSON")
    info.add_argument("--version", action="store_true", help="print the versions of ddcmh and its plugins")
    starter = parser.add_argument_group("plugin starter")
    starter.add_argument(
        "--new-plugin", metavar="NAME", help="write a ready-to-install ddcmh-NAME hasher plugin package"
    )
    starter.add_argument("--dir", metavar="PATH", help="folder for --new-plugin (default: current folder)")
    return parser


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _hasher_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        target, _, assignment = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        key, equals, value = assignment.partition("=")
        if not equals or not key.strip():
            raise InputError(
                f"--hasher-opt {item!r}: expected [HASHER:]KEY=VALUE, e.g. n_iter=20 or sdh:n_anchors=500"
            )
        options.setdefault(target.strip().lower() or "*", {})[key.strip()] = _parse_value(value.strip())
    return options


def _method_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        target, colon, assignment = item.partition(":")
        key, equals, value = assignment.partition("=")
        if not colon or not target.strip() or not equals or not key.strip():
            raise InputError(
                f"--method-opt {item!r}: expected METHOD:KEY=VALUE, e.g. dcmh:training.max_epochs=100"
            )
        options.setdefault(target.strip().lower(), {})[key.strip()] = _parse_value(value.strip())
    return options


def _names(items: Sequence[str]) -> list[str]:
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def _tune_options(items: Sequence[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, equals, text = item.partition("=")
        if not equals or not key.strip() or not text.strip():
            raise InputError(
                f"--tune {item!r}: expected SETTING=V1,V2,... e.g. image_network.dropout=0.3,0.5"
            )
        text = text.strip()
        parsed = _parse_value(text) if text.startswith("[") else None
        if not isinstance(parsed, list):
            parsed = [_parse_value(part.strip()) for part in text.split(",")]
        grid[key.strip()] = parsed
    return grid


def resolve_config(arguments: argparse.Namespace) -> Any:
    """Merge defaults, the TOML file and the flags into a validated BenchConfig."""
    from ..bench.config import BenchConfig, read_config_file

    settings: dict[str, Any] = {}
    if arguments.config:
        settings.update(read_config_file(Path(arguments.config)))
        if "hasher" in settings:  # accept the flag's name in files too
            settings["hashers"] = settings.pop("hasher")
        if isinstance(settings.get("hashers"), str):
            settings["hashers"] = [settings["hashers"]]
    if arguments.hasher:
        settings["hashers"] = _names(arguments.hasher)
    if settings.get("hashers") and any(name.strip().lower() == "all" for name in settings["hashers"]):
        settings["hashers"] = hasher_registry().names()
    if settings.get("hashers") and [name.strip().lower() for name in settings["hashers"]] == ["none"]:
        settings["hashers"] = []
    methods = list(settings.get("methods", [])) + _names(arguments.method or [])
    methods += ["dcmh"] * bool(arguments.baseline)
    if any(name.lower() == "all" for name in methods):
        methods = method_registry().names()
    if methods:
        settings["methods"] = methods
    if arguments.method_opt:
        merged_methods = dict(settings.get("method_options", {}))
        for target, values in _method_options(arguments.method_opt).items():
            merged_methods[target] = {**merged_methods.get(target, {}), **values}
        settings["method_options"] = merged_methods
    if arguments.hasher_opt:
        merged = dict(settings.get("hasher_options", {}))
        for target, values in _hasher_options(arguments.hasher_opt).items():
            merged[target] = {**merged.get(target, {}), **values}
        settings["hasher_options"] = merged
    if arguments.tune:
        settings["tune"] = {**settings.get("tune", {}), **_tune_options(arguments.tune)}
    if arguments.tune_objective:
        settings["tune_objective"] = arguments.tune_objective
    if arguments.tune_strategy:
        settings["tune_strategy"] = arguments.tune_strategy
    if arguments.bits:
        try:
            settings["bits"] = [int(part) for part in arguments.bits.split(",") if part.strip()]
        except ValueError:
            raise InputError(f"--bits {arguments.bits!r}: expected integers like 16,32,64") from None
    for flag, field in (
        ("dataset", "dataset"),
        ("data_dir", "data_dir"),
        ("image_features", "image_features"),
        ("seeds", "seeds"),
        ("device", "device"),
        ("out", "out"),
        ("jobs", "jobs"),
        ("threads", "threads"),
    ):
        value = getattr(arguments, flag)
        if value is not None:
            settings[field] = value
    if arguments.quick:
        settings["quick"] = True
        if not arguments.bits and "bits" not in settings:
            settings["bits"] = [16, 32]
    try:
        return BenchConfig(**settings)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'config'}: {item['msg']}" for item in error.errors()
        )
        source = f" (in {arguments.config} or the flags)" if arguments.config else ""
        raise InputError(f"invalid settings{source}: {problems}") from None


def prepare_out_dir(requested: Path | None, dataset_name: str) -> Path:
    """Create the output folder (the default one is checked here; a given ``--out`` in :func:`preflight`)."""
    from ..preflight import check_output_path

    if requested is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        requested = check_output_path(Path("ddcmh-results") / f"{dataset_name}-{stamp}", "--out", folder=True)
    requested.mkdir(parents=True, exist_ok=True)
    return requested


def preflight(config: Any) -> None:
    """The checks that need no data: ``--out`` can be created and written, ``--device`` exists."""
    from ..engine.device import resolve_device
    from ..preflight import check_output_path

    if config.out is not None:
        check_output_path(config.out, "--out", folder=True)
    resolve_device(config.device)


def run_bench(arguments: argparse.Namespace) -> int:
    """Run the benchmark the arguments describe; return the exit status."""
    from ..bench.parallel import run_cells_in_workers
    from ..bench.plan import (
        check_plan_against_data,
        cnn_for_photos,
        describe_split,
        lift_hashers_for_narrow_text,
        load_bench_dataset,
        validate_plan,
    )
    from ..bench.report import markdown_report, write_plots
    from ..bench.runner import BenchRun, stderr_progress, write_json_atomic
    from ..engine.frozen_features import (
        parse_frozen_features,
        with_feature_stand_in,
        with_frozen_image_features,
    )
    from ..threads import configure_threads, threads_per_job

    config = resolve_config(arguments)
    validate_plan(config)
    preflight(config)
    threads = configure_threads(threads_per_job(config.jobs, config.threads))
    progress = stderr_progress()
    progress(f"loading dataset {config.dataset}")
    dataset = load_bench_dataset(config, progress, image_features=False)
    features = None if config.image_features is None else parse_frozen_features(config.image_features)
    planned = dataset if features is None else with_feature_stand_in(dataset, features)
    config, lifted = lift_hashers_for_narrow_text(config, planned)
    config, photo_network = cnn_for_photos(config, planned)
    for line in lifted + photo_network:
        progress(line)
    check_plan_against_data(config, planned)  # before the photos' feature pass
    if arguments.dry_run and arguments.no_calibration:
        from ..bench.dryrun import dry_run_report

        print(dry_run_report(config, planned, progress, calibrate=False), end="")
        return 0
    if features is not None:
        dataset = with_frozen_image_features(dataset, features, progress=progress)
    if arguments.dry_run:
        from ..bench.dryrun import dry_run_report

        print(dry_run_report(config, dataset, progress), end="")
        return 0
    out_dir = prepare_out_dir(config.out, dataset.name)
    runner = BenchRun(config, dataset, out_dir, progress)
    runner.claim(restart=arguments.restart)
    dataset.split.save(out_dir / "split.h5", dataset_fingerprint=dataset.fingerprint.sha256)
    progress(f"{dataset.fingerprint}; split {describe_split(config, dataset)}; results go to {out_dir}")
    if config.jobs > 1:
        run_cells_in_workers(config, out_dir, threads, progress)
    results, complete = runner.run()
    results["command"] = getattr(arguments, "command_line", None)
    write_json_atomic(out_dir / "results.json", results)
    report = markdown_report(results, out_dir)
    with atomic_path(out_dir / "results.md") as temporary:
        temporary.write_text(report)
    if results["records"]:
        write_plots(results, out_dir)
    print(report)
    return 0 if complete else EXIT_INTERRUPTED


def build_report_parser() -> argparse.ArgumentParser:
    """The parser of ``ddcmh-bench report`` (pages from run records)."""
    parser = _Parser(
        prog="ddcmh-bench report",
        description=(
            "Write a results page from ddcmh-bench runs: each RUN is a run folder (its results.json) or "
            "a compact record written by --save-record. The page names the command that regenerates it."
        ),
        epilog=(
            "Example: ddcmh-bench report RUN_DIR --save-record docs/results/records/wikipedia.json, then "
            "ddcmh-bench report docs/results/records/wikipedia.json --title Wikipedia "
            "--out docs/results/wikipedia.md"
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or record files, in page order")
    parser.add_argument("--out", type=Path, metavar="PAGE.md", help="write the page here (default: print it)")
    parser.add_argument("--title", default="ddcmh-bench results", help="the page's title")
    parser.add_argument(
        "--references",
        type=Path,
        metavar="FILE.toml",
        help="reference values to set beside the methods' rows ([protocol] and [methods.NAME] tables)",
    )
    parser.add_argument(
        "--peers",
        type=Path,
        metavar="FILE.toml",
        help="values papers report ([[peers]] tables with their citation), shown as reported, not re-run",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="also write each RUN's MAP-against-bits plot (RUN-NAME-map_vs_bits.png) into DIR",
    )
    parser.add_argument(
        "--save-record",
        type=Path,
        metavar="FILE.json",
        help="write the compact record of the one RUN given (MAP@all, fit times, provenance)",
    )
    parser.add_argument("--command", help="the command line of the run, when its results.json lacks it")
    parser.add_argument("--section-title", help="the title of the run's section in the record")
    return parser


def run_report(argv: Sequence[str]) -> int:
    """``ddcmh-bench report``: compact records and pages generated from them."""
    import shlex

    from ..bench.peers import load_peers
    from ..bench.record import compact_record, read_record
    from ..bench.report import load_references, map_vs_bits_plot, render_page
    from ..bench.runner import write_json_atomic

    arguments = build_report_parser().parse_args(argv)
    if arguments.save_record is not None and len(arguments.runs) != 1:
        raise InputError(f"--save-record: give exactly one RUN, got {len(arguments.runs)}")
    references = load_references(arguments.references) if arguments.references else None
    peers = load_peers(arguments.peers) if arguments.peers else None
    records = [read_record(run) for run in arguments.runs]
    if arguments.save_record is not None:
        record = compact_record(records[0], command=arguments.command)
        if arguments.section_title:
            record["title"] = arguments.section_title
        write_json_atomic(arguments.save_record, record)
        records = [record]
    sources = [arguments.save_record] if arguments.save_record is not None else arguments.runs
    tokens = ["ddcmh-bench", "report", *map(str, sources), "--title", arguments.title]
    for option in ("references", "peers", "plots"):
        if getattr(arguments, option) is not None:
            tokens += [f"--{option}", str(getattr(arguments, option))]
    if arguments.out is not None:
        tokens += ["--out", str(arguments.out)]
    command = shlex.join(tokens)
    plots = None
    if arguments.plots is not None:
        arguments.plots.mkdir(parents=True, exist_ok=True)
        paths = [arguments.plots / f"{Path(source).stem}-map_vs_bits.png" for source in sources]
        for path, record in zip(paths, records, strict=True):
            map_vs_bits_plot(record, path, peers)
        page_dir = arguments.out.parent if arguments.out is not None else Path()
        plots = [os.path.relpath(path, page_dir) for path in paths]
    page = render_page(
        records, title=arguments.title, command=command, references=references, peers=peers, plots=plots
    )
    if arguments.out is None:
        print(page, end="")
    else:
        with atomic_path(arguments.out) as temporary:
            temporary.write_text(page)
    return 0


def build_compare_parser() -> argparse.ArgumentParser:
    """The parser of ``ddcmh-bench compare`` (which differences between two runs are real)."""
    parser = _Parser(
        prog="ddcmh-bench compare",
        description=(
            "Compare two ddcmh-bench runs cell by cell (method, hasher, bits, task): the difference of "
            "mean MAP@all and a paired t-test over the seeds both runs share."
        ),
    )
    parser.add_argument("run_a", metavar="RUN_A", help="run folder or record file (the baseline)")
    parser.add_argument("run_b", metavar="RUN_B", help="run folder or record file (compared with A)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    return parser


def run_compare(argv: Sequence[str]) -> int:
    """``ddcmh-bench compare``: print the per-cell differences of two runs."""
    from ..bench.compare import compare_runs, comparison_table
    from ..bench.record import read_record

    arguments = build_compare_parser().parse_args(argv)
    if not 0 < arguments.alpha < 1:
        raise InputError(f"--alpha: expected a level between 0 and 1, got {arguments.alpha}")
    comparisons = compare_runs(read_record(arguments.run_a), read_record(arguments.run_b))
    print(comparison_table(comparisons, arguments.alpha, (arguments.run_a, arguments.run_b)), end="")
    return 0


SUBCOMMANDS = {"report": run_report, "compare": run_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddcmh-bench``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        try:
            return SUBCOMMANDS[argv[0]](argv[1:])
        except DdcmhError as error:
            print(f"ddcmh-bench {argv[0]}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser()
    arguments = parser.parse_args(argv)
    arguments.command_line = " ".join(["ddcmh-bench", *argv])
    try:
        if arguments.version:
            print(listing.version_text(hasher_registry()))
            return 0
        if arguments.list_hashers:
            print(listing.list_hashers(hasher_registry(), as_json=arguments.json))
            return 0
        if arguments.list_methods:
            print(listing.list_methods(method_registry(), as_json=arguments.json))
            return 0
        if arguments.list_plugins:
            print(listing.list_plugins(hasher_registry(), as_json=arguments.json))
            return 0
        if arguments.list_datasets:
            print(listing.list_datasets(as_json=arguments.json))
            return 0
        if arguments.new_plugin is not None:
            from .new_plugin import run_new_plugin

            return run_new_plugin(arguments.new_plugin, Path(arguments.dir or "."))
        return run_bench(arguments)
    except DdcmhError as error:
        print(f"ddcmh-bench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return stdout_closed()
    except KeyboardInterrupt:
        print("ddcmh-bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
