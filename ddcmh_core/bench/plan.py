"""What a ``ddcmh-bench`` run will do, worked out and checked before any work starts.

The run's dataset (:func:`load_bench_dataset`), its cells (:class:`Cell`, :func:`plan_cells`: method
x hasher x code length x seed, and tuning candidate), each cell's settings (:func:`model_config_for`)
and fingerprint (:func:`cell_fingerprint`), the settings a run gives itself for its data (a CNN for
photos, an RBF lift for narrow text), and the checks of the whole plan against the registry and the
data (:func:`validate_plan`, :func:`check_plan_against_data`). :mod:`ddcmh_core.bench.runner` then
runs the cells.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..engine.config import describe_photo_network, network_for_photos
from ..engine.fingerprint import run_fingerprint
from ..engine.frozen_features import parse_frozen_features, with_frozen_image_features
from ..errors import InputError
from ..memory import available_memory, format_bytes
from ..methods.base import CrossModalMethod, DataShape
from ..plugins import hasher_registry, method_registry
from ..tuning import check_candidate, check_setting_path, expand_grid, set_dotted
from .config import QUICK_TRAINING, BenchConfig


@dataclass(frozen=True)
class Cell:
    """One unit of work: a method, its Stage-1 hasher (if any), a code length and a seed.

    When the run tunes hyper-parameters, ``candidate`` is the position in the hasher's grid.
    """

    method: str
    hasher: str | None
    bits: int
    seed: int
    candidate: int | None = None

    @property
    def key(self) -> str:
        """File-name-safe identifier."""
        tuned = f"-candidate{self.candidate}" if self.candidate is not None else ""
        return f"{self.method}-{self.hasher or 'none'}-{self.bits}bits-seed{self.seed}{tuned}"

    def describe(self) -> str:
        """Human-readable label for progress lines."""
        name = "random codes" if self.method == "random" else method_class(self.method).label()
        hasher = f" + {self.hasher}" if self.hasher else ""
        tuned = f", candidate {self.candidate + 1}" if self.candidate is not None else ""
        return f"{name}{hasher}, {self.bits} bits, seed {self.seed}{tuned}"


def tuning_candidates(config: BenchConfig, hasher: str) -> list[dict[str, Any]]:
    """The grid points of ``hasher`` (empty when the run does not tune).

    ``hasher_params.X`` keys apply only to hashers whose parameters include X, so each hasher gets
    the combinations of the keys that concern it (no duplicates).
    """
    if not config.tune:
        return []
    fields = hasher_registry().get(hasher).load().accepted_options()
    grid = {
        key: values
        for key, values in config.tune.items()
        if not key.startswith("hasher_params.") or key.split(".", 1)[1] in fields
    }
    return expand_grid(grid)


def method_class(name: str) -> type[CrossModalMethod]:
    """The class of a registered method."""
    return method_registry().get(name).load()


def other_methods(config: BenchConfig) -> list[str]:
    """The methods of a run besides DDCMH (whose cells come from ``config.hashers``)."""
    return [name for name in config.methods if method_registry().get(name).spec.name != "ddcmh"]


def plan_cells(config: BenchConfig) -> list[Cell]:
    """All cells of a run, in the order they are computed."""
    candidates = {hasher: len(tuning_candidates(config, hasher)) for hasher in config.hashers}
    methods = [method_registry().get(name).spec.name for name in other_methods(config)]
    cells = []
    for seed in range(config.seeds):
        for bits in config.bits:
            cells.append(Cell("random", None, bits, seed))
            for hasher in config.hashers:
                if candidates[hasher]:
                    cells += [Cell("ddcmh", hasher, bits, seed, c) for c in range(candidates[hasher])]
                else:
                    cells.append(Cell("ddcmh", hasher, bits, seed))
            cells += [Cell(method, None, bits, seed) for method in methods]
    return cells


def resolve_hasher_options(config: BenchConfig, hasher: str) -> dict[str, Any]:
    """Hyper-parameters for ``hasher``: the '*' options it accepts, then its own options."""
    entry = hasher_registry().get(hasher)
    fields = entry.load().accepted_options()  # kernel_lift/lift_anchors included
    options = {key: value for key, value in config.hasher_options.get("*", {}).items() if key in fields}
    options.update(config.hasher_options.get(entry.spec.name, {}))
    options.update(config.hasher_options.get(hasher, {}) if hasher != entry.spec.name else {})
    return options


def lift_hashers_for_narrow_text(config: BenchConfig, dataset: Any) -> tuple[BenchConfig, list[str]]:
    """Give the anchor RBF lift to each hasher that cannot give more bits than the text has features.

    A hasher tagged ``bits_bounded_by_features`` (PCA-like: ITQ, PCAH, ...) gets
    ``kernel_lift="rbf"`` for the whole run when the longest planned code exceeds the width of the
    text view, unless its options already choose a ``kernel_lift``. The option lands in the run's
    config, so it is recorded with the results and in each cell's fingerprint.

    Returns
    -------
    (BenchConfig, list of str)
        The config to run and one line per hasher lifted, to show the user.
    """
    width = DataShape.of_training_split(dataset).n_features.get("text")
    longest = max(config.bits)
    if width is None:
        return config, []
    options = copy.deepcopy(config.hasher_options)
    lifted = []
    for hasher in config.hashers:
        own = resolve_hasher_options(config, hasher)
        if "kernel_lift" in own:
            continue
        try:
            probe = hasher_registry().create(hasher, n_bits=longest, **own)
        except (InputError, ValueError):  # the plan check reports bad options with their context
            continue
        if probe.bits_exceed_features(width):
            options.setdefault(hasher, {})["kernel_lift"] = "rbf"
            lifted.append(
                f"{hasher}: the text view has {width} features, fewer than {longest} bits, so this hasher "
                f"reads anchor RBF features (kernel_lift=rbf, recorded in the config; "
                f"--hasher-opt {hasher}:kernel_lift=none refuses the lift)"
            )
    return config.model_copy(update={"hasher_options": options}), lifted


def cnn_for_photos(config: BenchConfig, dataset: Any) -> tuple[BenchConfig, list[str]]:
    """Give every deep method a CNN image network when the image view is photos and none is chosen.

    An image view of photos (not turned into features by ``image_features``) needs a CNN. DDCMH
    (when the run has hashers) gets :data:`PHOTO_NETWORK` (MobileNetV2 with the registry ImageNet
    weights, fine-tuned) in the run's ``model`` table unless ``[model.image_network]`` sets
    ``architecture``; every other method whose parameters have an ``image_network`` (DCMH) gets
    the same network in its ``method_options`` unless those set ``image_network.architecture``,
    so that the deep methods are compared with the same CNN. Either way the other settings the
    user wrote for the network (``image_size``, ``freeze_backbone``, ...) stay, and the network is
    recorded with the results and in each cell's fingerprint.

    Returns
    -------
    (BenchConfig, list of str)
        The config to run and one line per method given the CNN, to show the user.
    """
    if dataset.view_kinds.get("image") != "image-files":
        return config, []
    lines = []
    model = config.model
    network = network_for_photos(config.model.get("image_network")) if config.hashers else None
    if network is not None:  # DDCMH runs once per hasher
        model = {**config.model, "image_network": network}
        lines.append(
            f"the image view is photos: DDCMH's image network is {describe_photo_network(network)}, "
            'recorded in the config ([model.image_network] chooses another; image_features = "mobilenet_v2" '
            "trains on frozen features instead)"
        )
    method_options = copy.deepcopy(config.method_options)
    for name in other_methods(config):
        spec_name = method_registry().get(name).spec.name
        if "image_network" not in method_class(spec_name).Params.model_fields:
            continue
        options = method_options.get(spec_name, {})
        chosen: dict[str, Any] = {}
        for dotted, value in options.items():
            if _sets_image_network(dotted):
                set_dotted(chosen, dotted, value, owner=f"method option {spec_name}")
        network = network_for_photos(chosen.get("image_network"))
        if network is None:
            continue
        kept = {key: value for key, value in options.items() if not _sets_image_network(key)}
        method_options[spec_name] = {**kept, "image_network": network}
        display = method_class(spec_name).display_name
        lines.append(
            f"the image view is photos: {display}'s image network is {describe_photo_network(network)}, "
            "recorded in the config "
            f"(--method-opt {spec_name}:image_network.architecture=... chooses another)"
        )
    if not lines:
        return config, []
    return config.model_copy(update={"model": model, "method_options": method_options}), lines


def _sets_image_network(option: str) -> bool:
    """Whether a (dotted) method option sets the image network: ``image_network`` or below it."""
    return option == "image_network" or option.startswith("image_network.")


def model_config_for(config: BenchConfig, cell: Cell) -> dict[str, Any]:
    """The parameters of a cell's method (DDCMHConfig fields for DDCMH, the method's Params else).

    DDCMH takes the ``[model]`` table, its hasher's options and its tuning candidate; another
    method takes its ``method_options`` table (dotted keys allowed). ``--quick`` caps the epochs
    of every training table the method has.
    """
    params_fields = method_class(cell.method).Params.model_fields
    fields: dict[str, Any] = {"n_bits": cell.bits, "seed": cell.seed}
    if "device" in params_fields:
        fields["device"] = config.device
    if cell.method == "ddcmh":
        assert cell.hasher is not None
        fields.update(
            copy.deepcopy(config.model),
            hasher=cell.hasher,
            hasher_params=resolve_hasher_options(config, cell.hasher),
        )
        if cell.candidate is not None:
            for dotted, value in tuning_candidates(config, cell.hasher)[cell.candidate].items():
                set_dotted(fields, dotted, value, owner="tune")
    else:
        for dotted, value in config.method_options.get(cell.method, {}).items():
            set_dotted(fields, dotted, value, owner=f"method option {cell.method}")
    if config.quick:
        for stage in ("image_training", "text_training", "training"):
            if stage in params_fields:
                fields[stage] = {**QUICK_TRAINING, **fields.get(stage, {})}
    return fields


def cell_params(config: BenchConfig, cell: Cell) -> Any:
    """The validated ``Params`` of a cell's method, from :func:`model_config_for`.

    Raises
    ------
    InputError
        Naming the method and every invalid setting.
    """
    return method_class(cell.method).make_params(**model_config_for(config, cell))


def validate_plan(config: BenchConfig) -> None:
    """Check every method, hasher, option and setting before any work starts (data not needed).

    Raises
    ------
    InputError, UnknownNameError, DuplicateNameError
        With a message naming the method or hasher and the option.
    """
    from ..methods.ddcmh import DDCMHConfig

    for name in [*config.methods, *config.method_options]:
        method_registry().get(name)  # unknown method, in --method or in an option
    for name in other_methods(config):
        cell = Cell(method_registry().get(name).spec.name, None, min(config.bits), 0)
        cell_params(config, cell)
    registry = hasher_registry()
    for name in list(config.hasher_options):
        if name != "*":
            registry.get(name)  # unknown hasher in an option
    if config.tune:
        for key in config.tune:
            check_setting_path(key, owner="tune")
        applicable = set()
        for hasher in config.hashers:
            applicable |= {key for candidate in tuning_candidates(config, hasher) for key in candidate}
        unused = [key for key in config.tune if key not in applicable]
        if unused:
            raise InputError(
                f"tune: {', '.join(unused)} applies to none of the hashers {', '.join(config.hashers)}"
            )
    if config.image_features is not None:
        parse_frozen_features(config.image_features)
    for hasher in config.hashers:
        registry.create(hasher, n_bits=min(config.bits), **resolve_hasher_options(config, hasher))
        candidates = tuning_candidates(config, hasher)
        for candidate in range(len(candidates)) or [None]:
            cell = Cell("ddcmh", hasher, min(config.bits), 0, candidate)
            try:
                model = DDCMHConfig(**model_config_for(config, cell))
            except Exception as error:
                where = f" (tuning candidate {candidate + 1} of {hasher})" if candidate is not None else ""
                raise InputError(f"invalid model settings{where}: {error}") from None
            if candidate is not None:
                check_candidate(model, candidates[candidate], owner="tune")


def load_bench_dataset(
    config: BenchConfig, progress: Callable[[str], None] | None = None, *, image_features: bool = True
) -> Any:
    """The run's dataset: loaded, both views present, unlabelled items dropped, photos as features.

    With ``config.image_features`` (and ``image_features``) a view of photos becomes the features
    of that frozen backbone (:mod:`ddcmh_core.engine.frozen_features`; computed once, then read
    from the cache).
    """
    import warnings

    from ..data import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset(config.dataset, data_dir=config.data_dir, **config.dataset_options)
    if progress is not None:
        report_unusable_photos(dataset, progress)
    dataset.require_views()
    dataset = dataset.drop_unlabelled()
    if image_features and config.image_features is not None:
        spec = parse_frozen_features(config.image_features)
        dataset = with_frozen_image_features(dataset, spec, progress=progress)
    return dataset


def report_unusable_photos(dataset: Any, progress: Callable[[str], None], shown: int = 20) -> None:
    """Name every photo the loader left out because it is corrupt, truncated or too large."""
    from ..data.folder import PHOTO_UNUSABLE

    left_out = [item for item in getattr(dataset, "skipped", ()) if item.reason.startswith(PHOTO_UNUSABLE)]
    if not left_out:
        return
    progress(
        f"left out {len(left_out)} listed items whose photo cannot be used (dataset option "
        'on_missing = "error" stops instead):'
    )
    for item in left_out[:shown]:
        progress(f"  {item.path} ({item.list_file} line {item.line}): {item.reason}")
    if len(left_out) > shown:
        progress(f"  ... and {len(left_out) - shown} more")


def check_plan_against_data(config: BenchConfig, dataset: Any) -> None:
    """Check every cell of the plan against the data's shape, before the first cell trains.

    Each method's :meth:`~ddcmh_core.methods.base.CrossModalMethod.data_problems` sees the number
    of training pairs, each view's width and whether there are labels, and its
    :meth:`~ddcmh_core.methods.base.CrossModalMethod.working_memory` estimate is held against the
    memory free on this machine (shared by ``config.jobs`` cells at a time); all problems of all
    cells are reported together.

    Raises
    ------
    InputError
        Listing every problem with the cell it belongs to.
    """
    shape = DataShape.of_training_split(dataset)
    free = available_memory()
    problems: dict[str, None] = {}
    for label, method, params in _first_seed_cells(config):
        found = method.data_problems(params, shape)
        estimate = method.working_memory(params, shape)
        if estimate is not None and free is not None and estimate[0] * config.jobs > free:
            found.append(_memory_problem(estimate, free, config.jobs))
        for problem in found:
            problems[f"{label}: {problem}"] = None
    if problems:
        listed = "\n  ".join(problems)
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise InputError(f"the plan cannot run on {dataset.name} ({count}):\n  {listed}")


def _first_seed_cells(config: BenchConfig) -> Iterable[tuple[str, type[CrossModalMethod], Any]]:
    """Each trained cell of seed 0 (seeds share a shape), with its method class and parameters.

    The label is the cell's without the seed (``CVH, 32 bits``).
    """
    for cell in plan_cells(config):
        if cell.method == "random" or cell.seed:
            continue
        method = method_class(cell.method)
        label = cell.describe().rsplit(", seed", 1)[0]
        yield label, method, cell_params(config, cell)


def largest_memory_estimate(config: BenchConfig, dataset: Any) -> tuple[int, str, str] | None:
    """The plan's largest :meth:`~ddcmh_core.methods.base.CrossModalMethod.working_memory` estimate.

    Returns
    -------
    (int, str, str) or None
        Bytes, the cell (``CVH, 32 bits``) and what dominates; None when no method estimates.
    """
    shape = DataShape.of_training_split(dataset)
    largest = None
    for label, method, params in _first_seed_cells(config):
        estimate = method.working_memory(params, shape)
        if estimate is not None and (largest is None or estimate[0] > largest[0]):
            largest = (estimate[0], label, estimate[1])
    return largest


def _memory_problem(estimate: tuple[int, str], free: int, jobs: int) -> str:
    """The plan-check line for a cell whose fit would need more memory than is free."""
    need, why = estimate
    share = f"{format_bytes(free / jobs)} each of the {jobs} parallel jobs gets of " if jobs > 1 else ""
    return (
        f"memory: the fit needs about {format_bytes(need)} ({why}), more than {share}the "
        f"{format_bytes(free)} free on this machine; narrow the widest view (for a text vocabulary: "
        "[dataset_options.text_features] max_features), use fewer --jobs, or leave this method out"
    )


def describe_split(config: BenchConfig, dataset: Any) -> str:
    """The split's sizes and, per method, how many training pairs it holds out for validation.

    The split itself has no validation part: each method carves its own from the training pairs
    (its ``validation_fraction``), so the header shows that count instead of ``'validation': 0``.
    """
    from ..engine.holdout import split_validation

    sizes = {name: size for name, size in dataset.split.sizes.items() if name != "validation"}
    n_train = int(sizes["train"])
    held_out: dict[str, int] = {}
    for cell in plan_cells(config):
        if cell.method == "random" or cell.seed or cell.candidate:
            continue
        params = cell_params(config, cell)
        fraction = getattr(params, "validation_fraction", None)
        if fraction is not None:
            label = method_class(cell.method).label()
            held_out[label] = len(split_validation(n_train, float(fraction), 0)[1])
    shown = ", ".join(f"{count} by {label}" for label, count in held_out.items())
    return f"{sizes}, validation: {shown or 'none'} (held out of the {n_train} training pairs)"


def cell_fingerprint(
    config: BenchConfig, cell: Cell, dataset: Any, *, scoring: bool = True
) -> dict[str, Any]:
    """The run fingerprint of a cell (:func:`~ddcmh_core.engine.fingerprint.run_fingerprint`).

    The method and every setting it uses (hasher, hasher options, code length, seed, tuning
    candidate), with the library's defaults filled in
    (:meth:`~ddcmh_core.CrossModalMethod.resolved_settings`), so a cell computed under an
    old default is not reused after the default changed; the dataset's content fingerprint and
    split, the versions and, with ``scoring``, the settings of the metrics. Where the data were
    read from is left out: the content fingerprint stands for it, so a run resumes (and reuses its
    cells) after the data moved.
    """
    if cell.method == "random":
        settings: dict[str, Any] = {"n_bits": cell.bits, "seed": cell.seed}
    else:
        settings = method_class(cell.method).resolved_settings(cell_params(config, cell))
    scored = ("map_at_k", "precision_at", "index_order_map")
    return run_fingerprint(
        cell.method,
        settings,
        data=dataset.fingerprint.sha256,
        split=dataset.split.checksum(),
        extra={"scoring": config.model_dump(mode="json", include=set(scored))} if scoring else None,
    )
