"""Hyper-parameter choice on the validation split carved from the training set.

Works on any cross-modal method (:class:`~ddcmh_core.methods.base.CrossModalMethod`) whose fit
reports a validation MAP in both directions: DDCMH, DCMH, plugin methods. A *grid* maps settings of
the method's ``Params``, written as dotted paths (``"image_network.dropout"``,
``"image_training.learning_rate"``, ``"hasher_params.n_anchors"`` for DDCMH), to lists of candidate
values. Every combination is trained with the same validation split and scored
by its validation MAP; the query set is never looked at. With ``repeats > 1`` each candidate is
trained once per seed (``seed``, ``seed + 1``, ...), each seed drawing its own validation split,
and candidates are ranked by their mean score (repeated hold-out), which is much less noisy than
one split of a small training set.

The settings that define the comparison itself cannot be tuned: the seed and the validation
fraction (they define the split every candidate is scored on), ``refit``, the device and mixed
precision.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

import pydantic

from .engine.abandon import MedianStoppingRule, TrainingAbandoned, abandoning
from .errors import InputError
from .methods.base import CrossModalMethod, MethodParams, ProgressCallback

if TYPE_CHECKING:
    from pydantic import BaseModel

Objective = Literal["mean", "min", "image->text", "text->image"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
"""How a candidate's validation MAP in the two directions becomes one score: their mean, the
worse of the two, or one direction alone."""
UNTUNABLE = {
    "seed": "it defines the validation split every candidate is scored on; use repeats",
    "validation_fraction": "it defines the validation split every candidate is scored on",
    "refit": "it is applied to the chosen candidate only",
    "device": "it does not change the model",
    "mixed_precision": "it does not change what is being chosen",
}
ParamsT = TypeVar("ParamsT", bound="BaseModel")


def flatten_grid(grid: Mapping[str, Any], *, owner: str = "tuning grid") -> dict[str, list[Any]]:
    """Dotted-path grid from nested tables or dotted keys (as TOML and JSON give them).

    ``{"image_network": {"dropout": [0.3, 0.5]}}`` and ``{"image_network.dropout": [0.3, 0.5]}`` are
    the same grid. Every leaf must be a non-empty list of candidate values.

    Raises
    ------
    InputError
        If a leaf is not a non-empty list, or a key is empty.
    """
    flat: dict[str, list[Any]] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            if not value:
                raise InputError(f"{owner}: {prefix or 'the grid'} is an empty table")
            for key, inner in value.items():
                if not str(key).strip():
                    raise InputError(f"{owner}: empty key under {prefix or 'the grid'}")
                visit(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        if not isinstance(value, (list, tuple)) or not value:
            raise InputError(
                f"{owner}: {prefix} must be a non-empty list of candidate values, got {value!r} "
                f"(e.g. {prefix} = [0.3, 0.5])"
            )
        flat[prefix] = list(value)

    if grid:
        visit("", grid)
    for key in flat:
        root = key.split(".", 1)[0]
        if root in UNTUNABLE:
            raise InputError(f"{owner}: {key} cannot be tuned: {UNTUNABLE[root]}")
    return flat


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a flat grid, in grid order (the first value of each key first).

    An empty grid has one candidate: no overrides.
    """
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def set_dotted(settings: dict[str, Any], dotted: str, value: Any, *, owner: str = "tuning grid") -> None:
    """Set ``settings["a"]["b"] = value`` for ``dotted == "a.b"``, creating tables as needed.

    A table value is merged into a table already there, so one candidate can change several
    settings together (``image_network = {kernel_lift = "rbf", lift_width_scale = 0.5}``) and
    keep the rest.

    Raises
    ------
    InputError
        If a part of the path names a value that is not a table.
    """
    parts = dotted.split(".")
    target = settings
    for depth, part in enumerate(parts[:-1]):
        inner = target.setdefault(part, {})
        if not isinstance(inner, dict):
            raise InputError(f"{owner}: {dotted}: {'.'.join(parts[: depth + 1])} is not a table of settings")
        target = inner
    existing = target.get(parts[-1])
    if isinstance(value, Mapping) and isinstance(existing, dict):
        for key, inner_value in value.items():
            set_dotted(existing, str(key), inner_value, owner=owner)
    else:
        target[parts[-1]] = copy.deepcopy(value)


def apply_overrides(config: ParamsT, overrides: Mapping[str, Any], *, owner: str = "tuning grid") -> ParamsT:
    """A copy of ``config`` with dotted-path overrides applied and validated.

    Nested settings not named keep their value in ``config`` (a deep merge).

    Raises
    ------
    InputError
        Naming the setting, if a path does not exist or a value is invalid for it.
    """
    settings = config.model_dump()
    for dotted, value in overrides.items():
        check_setting_path(dotted, owner=owner, params_class=type(config))
        set_dotted(settings, dotted, value, owner=owner)
    try:
        return type(config).model_validate(settings)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        raise InputError(f"{owner}: candidate {describe_overrides(overrides)}: {problems}") from None


def check_setting_path(
    dotted: str, *, owner: str = "tuning grid", params_class: type[BaseModel] | None = None
) -> None:
    """Check that a dotted path names a setting of ``params_class`` (default: DDCMH's).

    Any ``hasher_params.X`` passes here: the hasher's own ``Params`` check those.

    Raises
    ------
    InputError
        Naming the path and the top-level settings.
    """
    if dotted.split(".", 1)[0] == "hasher_params" and "." in dotted:
        return  # the hasher's own Params check these
    if params_class is None:
        from .methods.ddcmh import DDCMHConfig

        params_class = DDCMHConfig
    target: Any = params_class().model_dump()
    for part in dotted.split("."):
        if not isinstance(target, Mapping) or part not in target:
            known = ", ".join(sorted(params_class.model_fields))
            raise InputError(f"{owner}: unknown setting {dotted!r} (top-level settings: {known})")
        target = target[part]


def describe_overrides(overrides: Mapping[str, Any]) -> str:
    """``a.b=1, c=[2]`` (or ``defaults`` when there is nothing to override)."""
    if not overrides:
        return "defaults"
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())


def check_candidate(config: BaseModel, overrides: Mapping[str, Any], *, owner: str = "tuning grid") -> None:
    """Check, before any training, that a candidate's configuration can be tuned and trained.

    Raises
    ------
    InputError
        If there is no validation split to score it on, or its Stage-1 hasher (for a method that
        has one) rejects its parameters (the message names the candidate).
    """
    from .plugins import hasher_registry

    if getattr(config, "validation_fraction", 0) <= 0:
        raise InputError(f"{owner}: tuning needs a validation split: set validation_fraction above 0")
    hasher = getattr(config, "hasher", None)
    if hasher is None:
        return
    try:
        hasher_registry().create(hasher, n_bits=config.n_bits, **config.hasher_params)  # type: ignore[attr-defined]
    except InputError as error:
        raise InputError(f"{owner}: candidate {describe_overrides(overrides)}: {error}") from None


def validation_score(validation_map: Mapping[str, float], objective: str = "mean") -> float:
    """One number from the validation MAP of both directions (see :data:`OBJECTIVES`).

    Raises
    ------
    InputError
        If the objective is unknown or the report has no validation MAP (no validation split).
    """
    if objective not in OBJECTIVES:
        raise InputError(f"tuning objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    directions = ("image->text", "text->image")
    if not all(direction in validation_map for direction in directions):
        raise InputError("tuning needs a validation MAP in both directions: set validation_fraction above 0")
    values = [float(validation_map[direction]) for direction in directions]
    if objective == "mean":
        return sum(values) / 2
    if objective == "min":
        return min(values)
    return float(validation_map[objective])


HALVING_KEEP = 1 / 3
"""Share of the candidates still racing that successive halving keeps after each seed round."""
Strategy = Literal["halving", "grid"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


def halving_survivors(
    scores: Sequence[Sequence[float]], rounds: int, *, keep: float = HALVING_KEEP
) -> list[int]:
    """The candidates still racing after ``rounds`` seed rounds of successive halving.

    Round ``r`` (1-based) ranks the candidates still racing by the mean of their first ``r``
    validation scores and keeps the best ``ceil(keep * racing)`` (at least one); ties keep the
    earlier candidate. Candidates are scored on the validation split only.

    Parameters
    ----------
    scores : sequence of sequences of float
        Per candidate, its validation scores seed by seed (first seed first).
    rounds : int
        Seed rounds finished (0: every candidate is racing).

    Raises
    ------
    InputError
        If a racing candidate lacks the score of a finished round.
    """
    racing = list(range(len(scores)))
    for round_number in range(1, rounds + 1):
        missing = [index for index in racing if len(scores[index]) < round_number]
        if missing:
            raise InputError(
                f"successive halving: candidates {missing} have no score for seed round {round_number}"
            )

        def rank(index: int, upto: int = round_number) -> tuple[float, int]:
            return (-sum(scores[index][:upto]) / upto, index)

        kept = max(1, math.ceil(keep * len(racing)))
        racing = sorted(sorted(racing, key=rank)[:kept])
    return racing


def choose_candidate(scores: Sequence[Sequence[float]]) -> int:
    """Index of the candidate with the best mean score; ties go to the earlier candidate.

    Candidates without any score are skipped.

    Raises
    ------
    InputError
        If no candidate has a score.
    """
    best_index, best_mean = -1, float("-inf")
    for index, values in enumerate(scores):
        if not values:
            continue
        mean = sum(values) / len(values)
        if mean > best_mean:
            best_index, best_mean = index, mean
    if best_index < 0:
        raise InputError("no tuning candidate has a validation score")
    return best_index


@dataclass
class Candidate:
    """One point of the grid and how it scored.

    Attributes
    ----------
    overrides : dict
        Dotted settings that differ from the base configuration.
    scores : list of float
        Validation score per repeat (seed).
    validation_map : list of dict
        Validation MAP per direction, per repeat.
    best_epochs : list of dict
        The epochs chosen by early stopping (the ``*best_epoch`` entries of the method's report,
        e.g. ``stage2_best_epoch`` and ``stage3_best_epoch`` for DDCMH), per repeat.
    seconds : float
        Training time of all its repeats.
    abandoned : str or None
        Why successive halving stopped it in the middle of a fit (its run of a stage trailed the
        median of the finished candidates' runs), or None.
    """

    overrides: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    validation_map: list[dict[str, float]] = field(default_factory=list)
    best_epochs: list[dict[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    abandoned: str | None = None

    @property
    def mean_score(self) -> float:
        """Mean validation score over the repeats."""
        return sum(self.scores) / len(self.scores) if self.scores else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return {
            "overrides": self.overrides,
            "scores": self.scores,
            "mean_score": self.mean_score,
            "validation_map": self.validation_map,
            "best_epochs": self.best_epochs,
            "seconds": self.seconds,
            "abandoned": self.abandoned,
        }


@dataclass
class TuningResult:
    """Every candidate's validation score and the one chosen.

    Attributes
    ----------
    objective : str
        How the two directions were combined (:data:`OBJECTIVES`).
    seeds : list of int
        The seed of each repeat (each draws its own validation split).
    candidates : list of Candidate
        In grid order.
    best_index : int
        Position of the chosen candidate.
    """

    objective: str
    seeds: list[int]
    candidates: list[Candidate]
    best_index: int

    @property
    def best(self) -> Candidate:
        """The chosen candidate."""
        return self.candidates[self.best_index]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (stored in the model's report)."""
        return {
            "objective": self.objective,
            "seeds": self.seeds,
            "best_index": self.best_index,
            "candidates": [candidate.as_dict() for candidate in self.candidates],
        }

    def table(self) -> str:
        """Plain-text table of the candidates, best marked with ``*``."""
        lines = [f"validation score ({self.objective}, mean over seeds {self.seeds}) | candidate"]
        for index, candidate in enumerate(self.candidates):
            marker = "*" if index == self.best_index else " "
            ran = len(candidate.scores)
            seeds = f" ({ran} of {len(self.seeds)} seeds)" if ran < len(self.seeds) else ""
            overrides = describe_overrides(candidate.overrides)
            if candidate.abandoned is not None:
                seeds += f" (abandoned: {candidate.abandoned})"
            lines.append(f"{marker} {candidate.mean_score:.4f}{seeds} | {overrides}")
        return "\n".join(lines)


def tune(
    image: Any,
    text: Any,
    labels: Any,
    grid: Mapping[str, Any],
    *,
    method: str | type[CrossModalMethod] = "ddcmh",
    params: MethodParams | None = None,
    repeats: int = 1,
    objective: str = "mean",
    strategy: str = "halving",
    stopping_rule: MedianStoppingRule | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[CrossModalMethod, TuningResult]:
    """Train every candidate of ``grid``, choose one by validation MAP, return its model.

    Parameters
    ----------
    image, text, labels
        The training pairs, as for :meth:`CrossModalMethod.fit`.
    grid : mapping
        Dotted setting paths (or nested tables) to lists of candidate values.
    method : str or CrossModalMethod subclass
        The method to tune: a registered name (``"ddcmh"``, ``"dcmh"``) or a class.
    params : the method's Params, optional
        The base parameters the candidates override; its ``validation_fraction`` must be above 0.
    repeats : int
        Seeds per candidate (``params.seed``, ``params.seed + 1``, ...); candidates are ranked by
        their mean validation score.
    objective : {"mean", "min", "image->text", "text->image"}
        How the validation MAP of the two directions becomes one score.
    strategy : {"halving", "grid"}
        ``"grid"`` trains every candidate with every seed. ``"halving"`` (successive halving over
        seeds) trains every candidate with the first seed, then after each seed round keeps only
        the best third of the candidates still racing (at least one) for the next seed, and
        stops when one candidate is left (more seeds could not change the choice). Within a
        first round, a candidate whose training run trails the median of the finished candidates'
        runs of the same stage at the same epoch is abandoned mid-fit (:class:`MedianStoppingRule`).
        Both choose on the validation split only.
    stopping_rule : MedianStoppingRule, optional
        The rule that abandons hopeless candidates in halving's first round (default:
        ``MedianStoppingRule()``: 10 epochs' grace, two finished runs to compare with).
    run_dir : path, optional
        Checkpoints go to ``run_dir/seed-<s>``, one folder per seed shared by every candidate: a
        method whose stage files are keyed by their settings (DDCMH) trains a stage once for all
        candidates that agree on it (for ``resume``, and to save work).
    resume : bool
        Reuse finished and interrupted candidates found in ``run_dir``; without it the seed
        folders of ``run_dir`` are emptied first.
    progress : callable, optional
        Receives progress lines.

    Returns
    -------
    model : CrossModalMethod
        The chosen candidate's model trained with ``params.seed`` (refitted on all training rows when
        ``params.refit`` and the method can refit); ``model.report_["tuning"]`` holds the whole
        comparison and ``model.tuning_`` the :class:`TuningResult`.
    result : TuningResult

    Raises
    ------
    InputError
        For an invalid grid, setting, value, objective or repeat count, before any training.
    """
    from .plugins import method_registry

    method_class = method_registry().get(method).load() if isinstance(method, str) else method
    base = params if params is not None else method_class.Params()
    _check_tuning_arguments(repeats, objective, strategy)
    candidate_overrides = expand_grid(flatten_grid(grid))
    configs = [apply_overrides(base, overrides) for overrides in candidate_overrides]
    for candidate_config, overrides in zip(configs, candidate_overrides, strict=True):
        check_candidate(candidate_config, overrides)
    seeds = [base.seed + offset for offset in range(repeats)]
    folder = Path(run_dir) if run_dir is not None else None
    if folder is not None and not resume:
        for seed in seeds:  # a fresh start: nothing of an earlier call may be reused
            shutil.rmtree(folder / f"seed-{seed}", ignore_errors=True)
    race = _Race(
        method_class=method_class,
        configs=configs,
        candidates=[Candidate(overrides) for overrides in candidate_overrides],
        data=(image, text, labels),
        folder=folder,
        objective=objective,
        progress=progress,
    )
    if strategy == "halving":
        race.run_halving(seeds, stopping_rule or MedianStoppingRule())
    else:
        race.run_grid(seeds)
    best_index = race.choose()
    best_model = race.kept[best_index]
    result = TuningResult(objective=objective, seeds=seeds, candidates=race.candidates, best_index=best_index)
    if getattr(base, "refit", False) and hasattr(best_model, "refit_on_all_rows"):
        best_model.params = configs[best_index].model_copy(update={"refit": True})
        best_model.refit_on_all_rows(
            image, text, labels, folder / "chosen" if folder is not None else None, resume, progress
        )
    best_model.report_["tuning"] = result.as_dict()
    best_model.tuning_ = result
    if progress is not None:
        progress(f"[tune] chosen: {describe_overrides(result.best.overrides)}\n{result.table()}")
    return best_model, result


def _check_tuning_arguments(repeats: int, objective: str, strategy: str) -> None:
    """Refuse a repeat count, objective or strategy that :func:`tune` does not know."""
    if repeats < 1:
        raise InputError(f"tuning: repeats must be at least 1, got {repeats}")
    if objective not in OBJECTIVES:
        raise InputError(f"tuning objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    if strategy not in STRATEGIES:
        raise InputError(f"tuning strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")


@dataclass
class _Race:
    """The candidates of one :func:`tune` call, fitted seed by seed."""

    method_class: type[CrossModalMethod]
    configs: list[MethodParams]
    candidates: list[Candidate]
    data: tuple[Any, Any, Any]
    folder: Path | None
    objective: str
    progress: ProgressCallback | None
    racing: list[int] = field(default_factory=list)
    """Indices of the candidates fitted in the last round."""
    kept: dict[int, CrossModalMethod] = field(default_factory=dict)
    """The first seed's models of the candidates still racing (the chosen one is returned)."""

    def run_grid(self, seeds: list[int]) -> None:
        """Every candidate with every seed."""
        self.racing = list(range(len(self.candidates)))
        for seed in seeds:
            self._round(seed, keep=seed == seeds[0], rule=None)

    def run_halving(self, seeds: list[int], rule: MedianStoppingRule) -> None:
        """Successive halving over seeds, with ``rule`` abandoning hopeless first-round fits."""
        for round_number, seed in enumerate(seeds):
            alive = [index for index, candidate in enumerate(self.candidates) if candidate.abandoned is None]
            survivors = halving_survivors([self.candidates[index].scores for index in alive], round_number)
            self.racing = [alive[position] for position in survivors]
            self.kept = {index: model for index, model in self.kept.items() if index in self.racing}
            if round_number > 0 and len(self.racing) == 1:
                break  # one candidate left: further seeds cannot change the choice
            # later rounds race few candidates, already compared: no abandoning there
            self._round(seed, keep=round_number == 0, rule=rule if round_number == 0 else None)

    def _round(self, seed: int, *, keep: bool, rule: MedianStoppingRule | None) -> None:
        """Fit every racing candidate with ``seed`` (without a refit); ``keep`` their models."""
        for index in self.racing:
            update = {
                "seed": seed,
                **({"refit": False} if "refit" in type(self.configs[index]).model_fields else {}),
            }
            model = _fit_candidate(
                self.method_class(self.configs[index].model_copy(update=update)),
                self.candidates[index],
                f"[tune {index + 1}/{len(self.candidates)} seed {seed}]",
                self.data,
                self.folder / f"seed-{seed}" if self.folder is not None else None,
                self.objective,
                rule,
                self.progress,
            )
            if model is not None and keep:
                self.kept[index] = model

    def choose(self) -> int:
        """The index of the best candidate among those still racing and not abandoned."""
        finishers = {index for index in self.racing if self.candidates[index].abandoned is None}
        return choose_candidate([c.scores if i in finishers else [] for i, c in enumerate(self.candidates)])


def _fit_candidate(
    model: CrossModalMethod,
    candidate: Candidate,
    label: str,
    data: tuple[Any, Any, Any],
    run_dir: Path | None,
    objective: str,
    rule: MedianStoppingRule | None,
    progress: ProgressCallback | None,
) -> CrossModalMethod | None:
    """Fit one candidate for one seed and record its score; None when the rule abandoned it."""
    label = f"{label} {describe_overrides(candidate.overrides)}"

    def say(line: str) -> None:
        if progress is not None:
            progress(f"{label} {line}")

    started = time.perf_counter()
    try:
        with abandoning(rule) if rule is not None else contextlib.nullcontext():
            if rule is not None:
                rule.start()
            model.fit(
                *data,
                run_dir=run_dir,
                resume=True,  # stage files written earlier in this call are shared
                progress=say if progress is not None else None,
            )
            if rule is not None:
                rule.finish()
    except TrainingAbandoned as stopped:
        candidate.seconds += time.perf_counter() - started
        candidate.abandoned = str(stopped)
        say(f": abandoned ({stopped})")
        return None
    candidate.seconds += time.perf_counter() - started
    directions = model.report_["validation_map"]
    candidate.validation_map.append(dict(directions))
    candidate.scores.append(validation_score(directions, objective))
    candidate.best_epochs.append(
        {key: int(value) for key, value in model.report_.items() if key.endswith("best_epoch")}
    )
    say(f": validation score {candidate.scores[-1]:.4f} ({objective})")
    return model
