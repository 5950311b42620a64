"""The resolved configuration of a ``ddcmh-bench`` run (TOML files, flags and defaults in one model)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import InputError
from ..tuning import Objective, Strategy, flatten_grid

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_HASHERS = ("itq", "cosdish")
"""The two Stage-1 hashers of the DDCMH paper's Figure 1."""
QUICK_TRAINING = {"max_epochs": 12, "patience": 4}
PRECISION_AT = (1, 10, 50, 100, 500, 1000)
MODEL_KEYS_SET_BY_BENCH = ("n_bits", "hasher", "hasher_params", "seed", "device")


class BenchConfig(BaseModel):
    """Everything that defines a ``ddcmh-bench`` run.

    Every field can be set in a TOML file (``--config``) and most from the command line; the
    command line wins. ``model`` holds :class:`~ddcmh_core.engine.config.DDCMHConfig` fields
    (networks, training, reconstruction) except those the bench sets itself.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    hashers: list[str] = Field(default_factory=lambda: list(DEFAULT_HASHERS))
    hasher_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-hasher hyper-parameters; the key '*' applies to every hasher that has the option.",
    )
    bits: list[int] = Field(default_factory=lambda: [16, 32, 64])
    dataset: str = "uci-mfeat"
    data_dir: Path | None = None
    dataset_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Options of the dataset's loader (see docs/datasets.md, e.g. text_features = "
            "{ max_features = 4096 } to cap the vocabulary of raw texts); recorded with the run."
        ),
    )
    image_features: str | None = Field(
        None,
        description=(
            "BACKBONE[:SIZE]: replace a view of photos by the features of this frozen pretrained "
            "backbone (computed once, cached); methods then train on feature vectors."
        ),
    )
    seeds: int = Field(1, ge=1, le=100)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out: Path | None = None
    quick: bool = False
    jobs: int = Field(
        1, ge=1, le=64, description="Processes running independent cells side by side, sharing the cores."
    )
    threads: int | None = Field(
        None, ge=1, le=256, description="Threads per process (default: the usable cores divided by jobs)."
    )
    methods: list[str] = Field(
        default_factory=list,
        description=(
            "Cross-modal methods to run beside DDCMH (registered names, see --list-methods); DDCMH "
            "itself runs once per hasher of 'hashers'."
        ),
    )
    method_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Per-method parameters (dotted keys allowed: 'training.max_epochs'), validated by the "
            "method's Params; DDCMH takes the 'model' table instead."
        ),
    )
    map_at_k: int = Field(50, ge=1, description="k of the truncated MAP@k records.")
    precision_at: list[int] = Field(default_factory=lambda: list(PRECISION_AT))
    index_order_map: bool = Field(True, description="Also report MAP@all with ties in index order.")
    model: dict[str, Any] = Field(
        default_factory=dict, description="DDCMHConfig fields (networks, training...)."
    )
    tune: dict[str, list[Any]] = Field(
        default_factory=dict,
        description=(
            "Hyper-parameter grid for DDCMH: dotted DDCMHConfig settings (or nested tables) to lists "
            "of candidates. Every candidate runs with every seed; per hasher and code length the "
            "candidate with the best mean validation score is reported (the query set is not looked "
            "at). 'hasher_params.X' applies to the hashers that have the parameter X."
        ),
    )
    tune_objective: Objective = Field(
        "mean", description="Validation score of a candidate: 'mean', 'min' or one direction's MAP."
    )
    tune_strategy: Strategy = Field(
        "halving",
        description=(
            "'halving': every candidate runs the first seed, then after each seed only the best third "
            "of the candidates still racing (by validation score) runs the next one; the choice is "
            "among those that ran every seed. 'grid': every candidate runs every seed."
        ),
    )

    @field_validator("bits")
    @classmethod
    def _check_bits(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one bit length is needed")
        for bits in value:
            if not 1 <= bits <= 4096:
                raise ValueError(f"bit length {bits} is outside 1..4096")
        return sorted(set(value))

    @model_validator(mode="before")
    @classmethod
    def _baselines_are_methods(cls, value: Any) -> Any:
        # 'baselines = ["pairwise"]' (files of earlier releases) is the method 'dcmh'.
        if isinstance(value, dict) and "baselines" in value:
            value = dict(value)
            baselines = value.pop("baselines") or []
            unknown = [name for name in baselines if name != "pairwise"]
            if unknown:
                raise ValueError(f"baselines: unknown baseline(s) {unknown}; use methods = ['dcmh', ...]")
            if baselines:
                value["methods"] = [*value.get("methods", []), "dcmh"]
        return value

    @field_validator("hashers", "methods")
    @classmethod
    def _normalise_names(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(name.strip().lower() for name in value if name.strip()))

    @model_validator(mode="after")
    def _something_to_run(self) -> BenchConfig:
        if not self.hashers and not [name for name in self.methods if name != "ddcmh"]:
            raise ValueError("nothing to run: give at least one hasher (for DDCMH) or one method")
        return self

    @field_validator("tune", mode="before")
    @classmethod
    def _check_tune(cls, value: Any) -> dict[str, list[Any]]:
        if not isinstance(value, dict):
            raise ValueError("expected a table of setting = [candidates]")
        grid = flatten_grid(value, owner="tune")
        for key in grid:
            root = key.split(".", 1)[0]
            if root in MODEL_KEYS_SET_BY_BENCH and root != "hasher_params":
                raise ValueError(
                    f"{key} is set by the bench itself (one cell per value); use the matching flag"
                )
        return grid

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in MODEL_KEYS_SET_BY_BENCH:
            if key in value:
                raise ValueError(f"model.{key} is set by the bench itself; use the matching flag")
        return value


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file into a dictionary (validated later by :class:`BenchConfig`).

    Raises
    ------
    InputError
        If the file is missing or not valid TOML (the message names the file and the position).
    """
    if not path.is_file():
        raise InputError(f"--config: no such file: {path}")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"--config: {path} is not valid TOML: {error}") from None
