"""``ddcmh``: train a DDCMH model, encode images and texts with it, search a database of codes.

ddcmh train  --dataset wikipedia --data-dir DIR --hasher sdh --bits 64 --model wiki.h5
ddcmh encode --model wiki.h5 --dataset wikipedia --data-dir DIR --part query --view image --out q.h5
ddcmh encode --model news.h5 --view text --texts captions.txt --out t.h5
ddcmh search --database db.h5 --queries q.h5 --k 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DdcmhError, InputError
from ..files import atomic_path, open_ddcmh_h5
from ..tuning import OBJECTIVES, STRATEGIES
from . import stdout_closed

EXIT_USAGE = 2
CODES_FORMAT = "ddcmh-codes"


class _VersionAction(argparse.Action):
    """``--version``: ddcmh's version and the installed plugins (as ``ddcmh-bench --version``), then exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from ..plugins import hasher_registry
        from .listing import version_text

        print(version_text(hasher_registry()))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``ddcmh`` argument parser."""
    parser = argparse.ArgumentParser(prog="ddcmh", description="Train, encode and search with DDCMH models.")
    parser.add_argument("--version", action=_VersionAction, help="print the versions of ddcmh and plugins")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on a dataset's training split and save it")
    train.add_argument("--dataset", required=True, metavar="NAME|PATH")
    train.add_argument("--data-dir", metavar="PATH")
    train.add_argument("--hasher", metavar="NAME", help="Stage-1 hasher (default: itq)")
    train.add_argument("--hasher-opt", action="append", default=[], metavar="KEY=VALUE")
    train.add_argument("--bits", type=int, help="code length (default: 32)")
    train.add_argument("--seed", type=int, help="seed of every random choice (default: 0)")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], help="(default: auto)")
    train.add_argument(
        "--config",
        metavar="FILE.toml",
        help="DDCMHConfig fields (networks, training, n_bits, ...); a flag given on the command line wins",
    )
    train.add_argument("--model", required=True, metavar="FILE.h5", help="where to write the model")
    train.add_argument("--run-dir", metavar="DIR", help="checkpoints (default: <model>.run/)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run-dir")
    train.add_argument(
        "--restart",
        action="store_true",
        help="discard the checkpoints in --run-dir (another run's: see --resume's error) and start afresh",
    )
    train.add_argument("--drop-unlabelled", action="store_true", help="drop training items without labels")
    train.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="SETTING=V1,V2",
        help=(
            "choose a setting among candidates on the validation split (repeatable; the grid is every "
            "combination; a [tune] table in --config works too), e.g. image_network.dropout=0.3,0.5"
        ),
    )
    train.add_argument(
        "--tune-repeats", type=int, default=1, metavar="N", help="seeds per tuning candidate (default 1)"
    )
    train.add_argument(
        "--tune-objective", choices=OBJECTIVES, default="mean", help="validation score to choose by"
    )
    train.add_argument(
        "--tune-strategy",
        choices=STRATEGIES,
        default="halving",
        help="halving: candidates behind after a seed stop early; grid: every candidate runs every seed",
    )

    encode = commands.add_parser("encode", help="encode images or texts into codes with a model")
    encode.add_argument("--model", required=True, metavar="FILE.h5")
    encode.add_argument("--view", required=True, choices=["image", "text"])
    source = encode.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="NAME|PATH", help="encode items of a dataset")
    source.add_argument("--features", metavar="FILE", help=".npy, .npz or HDF5 file with one feature matrix")
    source.add_argument(
        "--texts", metavar="FILE.txt", help="raw texts, one per line (featurised as in training)"
    )
    source.add_argument(
        "--images",
        metavar="DIR|FILE.txt",
        help="a folder of photos (every image file under it) or a list file, one path per line "
        "(relative paths are read beside the list)",
    )
    encode.add_argument("--data-dir", metavar="PATH")
    encode.add_argument("--part", choices=["query", "database", "train", "all"], default="all")
    encode.add_argument("--key", help="array name inside --features (default: the only array)")
    encode.add_argument("--out", required=True, metavar="FILE.h5", help="codes file to write")

    search = commands.add_parser("search", help="rank a database of codes for query codes")
    search.add_argument("--database", required=True, metavar="CODES.h5")
    queries = search.add_mutually_exclusive_group(required=True)
    queries.add_argument("--queries", metavar="CODES.h5", help="query codes (written by 'ddcmh encode')")
    queries.add_argument(
        "--query-images",
        metavar="DIR|FILE.txt",
        help="photos to encode with --model's image network: a folder or a list file",
    )
    queries.add_argument(
        "--query-texts",
        metavar="FILE.txt",
        help="raw texts, one per line, to encode with --model's text network",
    )
    search.add_argument(
        "--model", metavar="FILE.h5", help="the model that encodes --query-images or --query-texts"
    )
    mode = search.add_mutually_exclusive_group()
    mode.add_argument("--k", type=int, default=10, help="top-k per query (default 10)")
    mode.add_argument(
        "--radius",
        type=int,
        help="every item at Hamming distance <= RADIUS (inclusive; faiss's range_search(x, r) stops below r)",
    )
    search.add_argument("--out", metavar="FILE.json", help="write the results as JSON (default: print)")
    return parser


def _read_settings(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    from ..bench.config import read_config_file

    return read_config_file(Path(path))


def _load(dataset: str, data_dir: str | None, **options: Any) -> Any:
    from ..data import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(dataset, data_dir=data_dir, **options)


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _claim_run_folder(
    arguments: argparse.Namespace, run_dir: Path, model: Any, grid: dict[str, Any], dataset: Any
) -> None:
    """Check ``--resume`` against the run folder's fingerprint, or discard it for ``--restart``."""
    from ..engine.fingerprint import prepare_run_folder, run_fingerprint

    tuning = {"grid": grid, "repeats": arguments.tune_repeats, "strategy": arguments.tune_strategy}
    fingerprint = run_fingerprint(
        "ddcmh",
        type(model).resolved_settings(model.params),
        data=dataset.fingerprint.sha256,
        split=dataset.split.checksum(),
        extra={"tune": {**tuning, "objective": arguments.tune_objective}} if grid else None,
    )
    advice = (
        "run the same command with --restart instead of --resume to discard it and train afresh, "
        "or give a new --model (or --run-dir)"
    )
    resume, restart = arguments.resume, arguments.restart
    prepare_run_folder(run_dir, fingerprint, resume=resume, restart=restart, advice=advice)


def _train_model(arguments: argparse.Namespace) -> tuple[Any, dict[str, list[Any]], Any]:
    """The unfitted model, the tuning grid and the user's ``image_network`` table of ``ddcmh train``.

    Every setting is checked (no work); the table is the one --config wrote (``None`` without one).
    """
    from ..engine.device import resolve_device
    from ..methods.ddcmh import DDCMH
    from .bench import _hasher_options, _tune_options

    settings = _read_settings(arguments.config)
    grid = {**settings.pop("tune", {}), **_tune_options(arguments.tune)}
    options = _hasher_options(arguments.hasher_opt).get("*", {})
    if "n_bits" in options:
        raise InputError(
            f"--hasher-opt n_bits={options['n_bits']!r}: the code length is set with --bits "
            "(or n_bits in --config), not as a hasher option"
        )
    # as in ddcmh-bench, a flag given on the command line wins over the --config file
    flags = {"hasher": arguments.hasher, "n_bits": arguments.bits, "seed": arguments.seed}
    settings.update({key: value for key, value in flags.items() if value is not None})
    settings.update({"device": arguments.device} if arguments.device is not None else {})
    in_file = settings.get("hasher_params", {})
    if options and isinstance(in_file, dict):  # anything else is left for the settings' own check
        settings["hasher_params"] = {**in_file, **options}
    model = DDCMH(**settings)
    resolve_device(model.params.device)
    return model, grid, settings.get("image_network")


def _cnn_for_photos(model: Any, dataset: Any, chosen: Any) -> Any:
    """``model`` with the default photo CNN when the image view is photos and ``chosen`` sets none.

    ``chosen`` is the ``image_network`` table of --config; it chooses a network with ``architecture``.
    As in ``ddcmh-bench`` (:func:`~ddcmh_core.engine.config.network_for_photos`): the user's own
    keys stay, the line printed says so, and the model file records the network like any other
    setting.
    """
    from ..engine.config import describe_photo_network, network_for_photos

    network = network_for_photos(chosen if isinstance(chosen, dict) else None)
    if network is None or dataset.view_kinds.get("image") != "image-files":
        return model
    settings = model.params.model_dump()
    settings["image_network"] = {**settings["image_network"], **network}
    print(
        f"the image view is photos: the image network is {describe_photo_network(network)}; "
        "[image_network] in --config chooses another",
        file=sys.stderr,
    )
    return type(model)(**settings)


def command_train(arguments: argparse.Namespace) -> int:
    """``ddcmh train``: every check first (settings, device, output paths), then the data and the fit."""
    from ..methods.base import DataShape
    from ..methods.ddcmh import DDCMH
    from ..preflight import check_output_path

    model, grid, chosen_network = _train_model(arguments)
    model_path = check_output_path(arguments.model, "--model")
    run_dir = Path(arguments.run_dir) if arguments.run_dir else model_path.with_name(model_path.name + ".run")
    check_output_path(run_dir, "--run-dir" if arguments.run_dir else "--model (its run folder)", folder=True)
    dataset = _load(arguments.dataset, arguments.data_dir)
    dataset.require_views()
    if arguments.drop_unlabelled:
        dataset = dataset.drop_unlabelled()
    model = _cnn_for_photos(model, dataset, chosen_network)
    problems = DDCMH.data_problems(model.params, DataShape.of_training_split(dataset))
    if problems:  # found before --restart discards a run folder
        raise InputError(f"{model.label()}: cannot fit on {dataset.name}: " + "; ".join(problems))
    _claim_run_folder(arguments, run_dir, model, grid, dataset)
    train = dataset.split.train
    started = time.perf_counter()
    views = (dataset.image.select(train), dataset.text.select(train), dataset.labels[train])
    fit_options = {"run_dir": run_dir, "resume": arguments.resume, "progress": _print_progress}
    if grid:
        from ..tuning import tune

        chosen, _ = tune(
            *views,
            grid,
            method=DDCMH,
            params=model.params,
            repeats=arguments.tune_repeats,
            objective=arguments.tune_objective,
            strategy=arguments.tune_strategy,
            **fit_options,
        )
        assert isinstance(chosen, DDCMH)
        model = chosen
    else:
        model.fit(*views, **fit_options)
    extras: dict[str, Any] = {
        "dataset": dataset.fingerprint.as_dict(),
        "split": {"protocol": dataset.split.protocol, "checksum": dataset.split.checksum()},
    }
    if dataset.text_featurizer is not None:
        extras["text_featurizer"] = dataset.text_featurizer.to_state()
    model.save(model_path, **extras)
    report = model.report_.get("validation_map", {})
    seconds = time.perf_counter() - started
    print(
        f"saved {model_path} ({model.params.hasher}, {model.n_bits} bits) in {seconds:.0f}s; "
        "validation MAP: " + ", ".join(f"{task} {value:.4f}" for task, value in report.items())
    )
    return 0


def _check_out(path: str, option: str) -> None:
    """Refuse an output file whose folder is missing, is a file or is not writable, before any work."""
    from ..preflight import check_output_path

    check_output_path(path, option, create_parents=False)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"--features {path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # object arrays (pickles), damaged files
        raise InputError(
            f"--features {path}: expected a numeric .npy matrix (numpy.save of a float array), got a file "
            f"numpy cannot read without pickle ({error})"
        ) from None


def _features_from_file(path: Path, key: str | None) -> Any:
    from ..data import open_array_file

    if path.suffix == ".npy":
        return _load_npy(path)
    handle = open_array_file(path)
    names = handle.keys()
    if key is None:
        if len(names) != 1:
            raise InputError(f"{path}: holds {len(names)} arrays ({', '.join(names)}); choose one with --key")
        key = names[0]
    if key not in names:
        raise InputError(f"{path}: no array named {key!r}; the file holds: {', '.join(names)}")
    return handle.array(key)


def command_encode(arguments: argparse.Namespace) -> int:
    """``ddcmh encode``."""
    from ..methods.ddcmh import DDCMH

    _check_out(arguments.out, "--out")
    model = DDCMH.load(arguments.model)
    ids: list[str] | None = None
    if arguments.dataset:
        dataset = _load(arguments.dataset, arguments.data_dir)
        view = dataset.image if arguments.view == "image" else dataset.text
        if view is None:
            raise InputError(f"{arguments.dataset}: the dataset has no {arguments.view} view")
        rows = (
            np.arange(dataset.n_items) if arguments.part == "all" else getattr(dataset.split, arguments.part)
        )
        data: Any = view.select(rows)
        ids = [str(i) for i in rows] if dataset.item_ids is None else [dataset.item_ids[i] for i in rows]
    elif arguments.features:
        data = _features_from_file(Path(arguments.features), arguments.key)
    elif arguments.texts:
        if arguments.view != "text":
            raise InputError("--texts needs --view text")
        data = _raw_texts(model, arguments.model, Path(arguments.texts), "--texts")
    else:
        if arguments.view != "image":
            raise InputError("--images needs --view image")
        data, ids = _photos(Path(arguments.images), "--images")
    encode = model.encode_image if arguments.view == "image" else model.encode_text
    codes = encode(data, progress=_print_progress)
    write_codes(Path(arguments.out), codes, ids=ids, model=str(arguments.model), view=arguments.view)
    print(f"wrote {len(codes)} {arguments.view} codes of {codes.shape[1]} bits to {arguments.out}")
    return 0


def _photos(where: Path, option: str) -> tuple[Any, list[str]]:
    """The photos of ``option``, a folder (every image file under it, sorted) or a list file.

    Returns
    -------
    (ImageFileView, list of str)
        The photos, and their paths as ids.

    Raises
    ------
    InputError
        When the folder holds no image file, or the list file is missing or empty.
    """
    from ..data import ImageFileView
    from ..data.folder import IMAGE_EXTENSIONS

    if where.is_dir():
        paths = sorted(p for p in where.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise InputError(
                f"{option} {where}: the folder holds no image file ({', '.join(IMAGE_EXTENSIONS)})"
            )
    elif where.is_file():
        lines = [line.strip() for line in where.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise InputError(f"{option} {where}: the list file names no image")
        paths = [Path(line) if Path(line).is_absolute() else where.parent / line for line in lines]
    else:
        raise InputError(f"{option} {where}: no such folder or list file")
    return ImageFileView(paths, source=str(where)), [str(path) for path in paths]


def _raw_texts(model: Any, model_path: str, where: Path, option: str) -> Any:
    """The texts of ``option`` (one per line), featurised as the model's training texts were."""
    from ..data import TextFeaturizer

    state = model.extras_.get("text_featurizer")
    if state is None:
        raise InputError(
            f"{model_path}: the model was trained on text features, not raw texts; "
            f"pass --features instead of {option}"
        )
    if not where.is_file():
        raise InputError(f"{option} {where}: no such file")
    return TextFeaturizer.from_state(state).transform(where.read_text(encoding="utf-8").splitlines())


def write_codes(path: Path, codes: np.ndarray, *, ids: Sequence[str] | None, **attributes: str) -> None:
    """Write {0,1} codes (and ids) to an HDF5 codes file atomically."""
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["ddcmh_format"] = CODES_FORMAT
        handle.attrs["n_bits"] = int(codes.shape[1])
        for key, value in attributes.items():
            handle.attrs[key] = value
        handle.create_dataset("codes", data=codes, compression="gzip")
        if ids is not None:
            handle.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())


def read_codes(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read a codes file written by :func:`write_codes`; ids default to row numbers."""
    if not path.is_file():
        raise InputError(f"{path}: no such codes file")
    hint = "; write one with 'ddcmh encode'"
    with open_ddcmh_h5(
        path, kind="codes file", expected_format=CODES_FORMAT, error=InputError, hint=hint
    ) as handle:
        codes = _codes_dataset(handle, path, hint)
        ids = _ids_dataset(handle, path, len(codes)) if "ids" in handle else None
    return codes, ids if ids is not None else [str(i) for i in range(len(codes))]


def _codes_dataset(handle: h5py.File, path: Path, hint: str) -> np.ndarray:
    item = handle.get("codes")
    if not isinstance(item, h5py.Dataset):
        raise InputError(f"{path}: the codes file has no 'codes' dataset{hint}")
    if item.ndim != 2 or item.dtype.kind not in "biu":
        raise InputError(
            f"{path}: 'codes': expected a 2-D integer matrix of shape (n_items, n_bits), got {item.ndim}-D "
            f"shape {item.shape} of dtype {item.dtype}{hint}"
        )
    codes = np.asarray(item[()])
    if not np.all((codes == 0) | (codes == 1)):
        raise InputError(f"{path}: 'codes': expected only 0 and 1{hint}")
    return codes.astype(np.uint8)


def _ids_dataset(handle: h5py.File, path: Path, n_items: int) -> list[str]:
    item = handle["ids"]
    if not isinstance(item, h5py.Dataset) or item.ndim != 1 or len(item) != n_items:
        shape = item.shape if isinstance(item, h5py.Dataset) else "a group"
        raise InputError(f"{path}: 'ids': expected {n_items} ids, one per row of 'codes', got {shape}")
    return [s.decode() if isinstance(s, bytes) else str(s) for s in item[()]]


def _search_queries(arguments: argparse.Namespace) -> tuple[np.ndarray, list[str]]:
    """The query codes and ids of ``ddcmh search``: read from --queries, or encoded with --model."""
    if arguments.queries:
        if arguments.model:
            raise InputError("--model encodes --query-images or --query-texts; --queries are codes already")
        return read_codes(Path(arguments.queries))
    option = "--query-images" if arguments.query_images else "--query-texts"
    if not arguments.model:
        raise InputError(f"{option} needs --model FILE.h5, the model whose codes --database holds")
    from ..methods.ddcmh import DDCMH

    model = DDCMH.load(arguments.model)
    if arguments.query_images:
        photos, ids = _photos(Path(arguments.query_images), option)
        return model.encode_image(photos, progress=_print_progress), ids
    texts = _raw_texts(model, arguments.model, Path(arguments.query_texts), option)
    codes = model.encode_text(texts, progress=_print_progress)
    return codes, [f"line {line}" for line in range(1, len(codes) + 1)]


def command_search(arguments: argparse.Namespace) -> int:
    """``ddcmh search``: exact Hamming search through :class:`~ddcmh_core.evaluation.index.HammingIndex`."""
    from ..evaluation.index import HammingIndex

    if arguments.out:
        _check_out(arguments.out, "--out")
    database, database_ids = read_codes(Path(arguments.database))
    queries, query_ids = _search_queries(arguments)
    if database.shape[1] != queries.shape[1]:
        raise InputError(
            f"the queries have {queries.shape[1]}-bit codes but --database has {database.shape[1]}-bit codes"
        )
    index = HammingIndex(database.shape[1])
    positions = index.add(database)
    name_of = dict(zip(positions.tolist(), database_ids, strict=True))
    results = []
    if arguments.radius is not None:
        limits, distances, found = index.range_search(queries, arguments.radius, inclusive=True)
        for row, query in enumerate(query_ids):
            part = slice(limits[row], limits[row + 1])
            results.append(
                {
                    "query": query,
                    "hits": [
                        [name_of[int(i)], int(d)] for i, d in zip(found[part], distances[part], strict=True)
                    ],
                }
            )
    else:
        if arguments.k <= 0:
            raise InputError(f"--k: expected a positive number, got {arguments.k}")
        distances, found = index.search(queries, arguments.k)
        for row, query in enumerate(query_ids):
            hits = zip(found[row], distances[row], strict=True)
            # a database smaller than --k leaves padded slots (id -1): they are not hits
            results.append({"query": query, "hits": [[name_of[int(i)], int(d)] for i, d in hits if i >= 0]})
    text = json.dumps({"results": results}, indent=1)
    if arguments.out:
        with atomic_path(arguments.out) as temporary:
            temporary.write_text(text)
        print(f"wrote {len(results)} result lists to {arguments.out}")
    else:
        print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddcmh``; returns the exit status."""
    arguments = build_parser().parse_args(argv)
    handlers = {"train": command_train, "encode": command_encode, "search": command_search}
    try:
        return handlers[arguments.command](arguments)
    except DdcmhError as error:
        print(f"ddcmh {arguments.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return stdout_closed()
    except KeyboardInterrupt:
        print(f"ddcmh {arguments.command}: interrupted (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
