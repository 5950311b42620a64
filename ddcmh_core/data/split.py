"""Train / query / database splits, the field's standard protocols, and split files.

A :class:`Split` holds four sorted index arrays into a dataset's items:

``train``
    the items the model is fitted on;
``query``
    the items used as queries, once, for the final report;
``database``
    the retrieval set, which includes the training items or not, as the protocol says;
``validation``
    empty until :meth:`Split.carve_validation` takes it **from the training items only**
    (METHOD.md §2 decision 7), to choose epochs and hyper-parameters without touching queries.

Queries never overlap training or validation items; validation never overlaps training.

:func:`make_split` draws a split under a :class:`SplitProtocol`. The standard protocols are in
:data:`STANDARD_PROTOCOLS` (MIRFLICKR-25K 2,000 / 10,000 / rest, NUS-WIDE 2,100 / 10,500,
IAPR TC-12 2,000 / 10,000, MS-COCO 5,000 / 10,000, UCI Multiple Features 500 / rest); every draw is
seeded and reproducible. :meth:`Split.save` writes the indices with their checksums so a run can
be re-evaluated later; :meth:`Split.load` reads them back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..files import atomic_path
from .errors import DatasetError

SPLIT_FILE_FORMAT = "ddcmh-split"
SPLIT_FILE_VERSION = 1
PARTS = ("train", "query", "database", "validation")


def _index_array(values: Any, name: str, n_items: int | None) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        array = np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise DatasetError(
            f"split: {name}: expected a 1-D integer index array, got shape {array.shape} dtype {array.dtype}"
        )
    index = np.unique(array.astype(np.int64))
    if index.shape[0] != array.shape[0]:
        raise DatasetError(f"split: {name}: expected distinct indices, got repeated ones")
    if index.size and index[0] < 0:
        raise DatasetError(f"split: {name}: expected non-negative indices, got {int(index[0])}")
    if n_items is not None and index.size and index[-1] >= n_items:
        raise DatasetError(f"split: {name}: index {int(index[-1])} is out of range for {n_items} items")
    index.setflags(write=False)
    return index


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays of a train / query / database (/ validation) split.

    Parameters
    ----------
    train, query, database : array-like of int
        Item indices; stored sorted, as read-only int64 arrays.
    validation : array-like of int, optional
        Validation items (a subset of the original training items); empty by default.
    protocol : str
        Name of the protocol that produced the split (``"dcmh-mirflickr25k"``, ``"lists"``...).
    seed : int or None
        Seed of the draw (None for splits given by files).
    validation_seed : int or None
        Seed of the validation carve-out.
    n_items : int or None
        Number of items of the dataset the indices refer to (checked when given).
    """

    train: np.ndarray
    query: np.ndarray
    database: np.ndarray
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    protocol: str = "custom"
    seed: int | None = None
    validation_seed: int | None = None
    n_items: int | None = None

    def __post_init__(self) -> None:
        for name in PARTS:
            object.__setattr__(self, name, _index_array(getattr(self, name), name, self.n_items))
        if self.query.size == 0:
            raise DatasetError("split: query: expected at least one query item, got none")
        if self.train.size == 0:
            raise DatasetError("split: train: expected at least one training item, got none")
        if self.database.size == 0:
            raise DatasetError("split: database: expected at least one database item, got none")
        for first, second in (("query", "train"), ("query", "validation"), ("validation", "train")):
            common = np.intersect1d(getattr(self, first), getattr(self, second))
            if common.size:
                raise DatasetError(
                    f"split: {first} and {second} must not share items, but {common.size} do "
                    f"(first: item {int(common[0])})"
                )

    # ------------------------------------------------------------------ properties
    @property
    def database_includes_train(self) -> bool:
        """Whether every training item is also a database item (the DCMH protocol)."""
        return bool(np.isin(self.train, self.database).all())

    @property
    def sizes(self) -> dict[str, int]:
        """Number of items in each part."""
        return {name: int(getattr(self, name).size) for name in PARTS}

    def checksum(self) -> str:
        """sha256 over the four index arrays (order of parts fixed)."""
        digest = hashlib.sha256()
        for name in PARTS:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(getattr(self, name), dtype="<i8").tobytes())
        return digest.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in PARTS)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in self.sizes.items())
        return f"Split({sizes}, protocol={self.protocol!r}, seed={self.seed})"

    # ------------------------------------------------------------------ validation carve-out
    def carve_validation(self, size: int | float, *, seed: int = 0) -> Split:
        """Move a seeded random part of the **training** items into ``validation``.

        Parameters
        ----------
        size : int or float
            Number of validation items, or a fraction in (0, 1) of the training items.
        seed : int, default 0
            Seed of the draw (recorded as ``validation_seed``).

        Returns
        -------
        Split
            ``train`` without the carved items, ``validation`` = the carved items; ``query`` and
            ``database`` unchanged. Queries are never touched.
        """
        n_train = int(self.train.size)
        if isinstance(size, float) and not float(size).is_integer():
            if not 0.0 < size < 1.0:
                raise DatasetError(f"split: validation size: expected a fraction in (0, 1), got {size}")
            count = round(size * n_train)
        else:
            count = int(size)
        if not 1 <= count < n_train:
            raise DatasetError(
                f"split: validation size: expected between 1 and {n_train - 1} items "
                f"(fewer than the {n_train} training items), got {count}"
            )
        rng = np.random.default_rng(seed)
        carved = rng.choice(self.train, size=count, replace=False)
        remaining = np.setdiff1d(self.train, carved)
        return Split(
            train=remaining,
            query=self.query,
            database=self.database,
            validation=np.concatenate([self.validation, carved]),
            protocol=self.protocol,
            seed=self.seed,
            validation_seed=seed,
            n_items=self.n_items,
        )

    # ------------------------------------------------------------------ remapping
    def restrict(self, kept: np.ndarray) -> Split:
        """The split of the sub-dataset made of items ``kept`` (old indices, in new order).

        Items that are not kept leave every part; indices are renumbered.
        """
        kept = np.asarray(kept, dtype=np.int64)
        n_old = self.n_items if self.n_items is not None else int(kept.max(initial=-1)) + 1
        mapping = np.full(max(n_old, int(kept.max(initial=-1)) + 1), -1, dtype=np.int64)
        mapping[kept] = np.arange(kept.size)
        parts = {}
        for name in PARTS:
            old = getattr(self, name)
            new = mapping[old[old < mapping.size]]
            parts[name] = new[new >= 0]
        return Split(
            **parts,
            protocol=self.protocol,
            seed=self.seed,
            validation_seed=self.validation_seed,
            n_items=int(kept.size),
        )

    # ------------------------------------------------------------------ files
    def to_dict(self, *, indices: bool = False) -> dict[str, Any]:
        """JSON-ready description: protocol, seeds, sizes, checksum (and the indices if asked)."""
        info: dict[str, Any] = {
            "protocol": self.protocol,
            "seed": self.seed,
            "validation_seed": self.validation_seed,
            "n_items": self.n_items,
            "sizes": self.sizes,
            "database_includes_train": self.database_includes_train,
            "sha256": self.checksum(),
        }
        if indices:
            info["indices"] = {name: getattr(self, name).tolist() for name in PARTS}
        return info

    def save(self, path: str | Path, *, dataset_fingerprint: str | None = None) -> Path:
        """Write the split to an ``.npz`` file (atomically: temporary file, then rename).

        The file holds the four index arrays and a JSON header with the protocol, the seeds, the
        per-part sha256 and, when given, the dataset fingerprint the indices refer to.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = self.to_dict()
        header["format"] = SPLIT_FILE_FORMAT
        header["format_version"] = SPLIT_FILE_VERSION
        header["part_sha256"] = {
            name: hashlib.sha256(np.ascontiguousarray(getattr(self, name), dtype="<i8").tobytes()).hexdigest()
            for name in PARTS
        }
        if dataset_fingerprint is not None:
            header["dataset_fingerprint"] = dataset_fingerprint
        arrays: dict[str, Any] = {
            name: np.ascontiguousarray(getattr(self, name), dtype="<i8") for name in PARTS
        }
        with atomic_path(path) as temporary, temporary.open("wb") as stream:
            np.savez(stream, header=np.array(json.dumps(header)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split written by :meth:`save`, verifying its checksums.

        Raises
        ------
        DatasetError
            If the file is not a ddcmh split file or a checksum does not match.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {name: data[name] for name in PARTS}
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: expected a ddcmh split file (.npz), got {exc}") from exc
        if header.get("format") != SPLIT_FILE_FORMAT:
            raise DatasetError(f"{path}: expected a ddcmh split file, got format {header.get('format')!r}")
        for name in PARTS:
            found = hashlib.sha256(np.ascontiguousarray(arrays[name], dtype="<i8").tobytes()).hexdigest()
            if found != header["part_sha256"][name]:
                raise DatasetError(f"{path}: part {name!r}: checksum mismatch (file corrupted)")
        return cls(
            **arrays,
            protocol=header["protocol"],
            seed=header["seed"],
            validation_seed=header["validation_seed"],
            n_items=header["n_items"],
        )


class SplitProtocol(BaseModel):
    """How to draw a split: sizes, stratification and where the protocol comes from.

    Parameters
    ----------
    name : str
        Recorded in every split it makes.
    n_query : int, optional
        Number of queries, drawn uniformly at random. Give it or ``query_per_class``.
    query_per_class : int, optional
        Draw this many queries per class instead (single-label: exactly that many per class;
        multi-label: classes in order, each from the items carrying that label that were not yet
        drawn).
    n_train : int, optional
        Number of training items drawn from the non-query items; ``None`` takes them all.
    database_includes_train : bool, default True
        The database is every non-query item (DCMH protocol); with False it excludes the
        training items.
    source : str
        Where the protocol is documented.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    n_query: int | None = Field(default=None, ge=1)
    query_per_class: int | None = Field(default=None, ge=1)
    n_train: int | None = Field(default=None, ge=1)
    database_includes_train: bool = True
    source: str = ""

    @model_validator(mode="after")
    def _one_query_rule(self) -> SplitProtocol:
        if (self.n_query is None) == (self.query_per_class is None):
            raise ValueError("give exactly one of n_query and query_per_class")
        return self


STANDARD_PROTOCOLS: dict[str, SplitProtocol] = {
    "mirflickr25k": SplitProtocol(
        name="dcmh-mirflickr25k",
        n_query=2000,
        n_train=10000,
        source="DCMH (jiangqy/DCMH-CVPR2017 DCMH_demo.py): 2,000 queries, 10,000 training items "
        "drawn from the 18,015 database items",
    ),
    "nus-wide": SplitProtocol(
        name="dcmh-nus-wide",
        n_query=2100,
        n_train=10500,
        source="DCMH paper (2,100 queries); MITH run_MITH.sh (10,500 training items)",
    ),
    "iapr-tc12": SplitProtocol(
        name="dcmh-iapr-tc12",
        n_query=2000,
        n_train=10000,
        source="DCMH paper: 2,000 random queries, 10,000 training items, the rest as database",
    ),
    "ms-coco": SplitProtocol(
        name="mith-ms-coco",
        n_query=5000,
        n_train=10000,
        source="MITH README and script (CLIP-family protocol, BASELINES.md b.1)",
    ),
    "uci-mfeat": SplitProtocol(
        name="uci-mfeat-holdout",
        query_per_class=50,
        source="ddcmh: 50 queries per digit (500), the other 1,500 items are training set and "
        "database (the 1,500 / 500 sizes of the FSH release)",
    ),
    "wikipedia": SplitProtocol(
        name="wikipedia-random",
        n_query=693,
        source="random re-draw with the sizes of the standard lists (2,173 / 693); the standard "
        "split itself comes from the list files",
    ),
}
"""The field's standard protocols by dataset name (DCMH protocol unless noted)."""


def _draw_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    chosen = np.zeros(labels.shape[0], dtype=bool)
    for column in range(labels.shape[1]):
        pool = np.flatnonzero((labels[:, column] > 0) & ~chosen)
        if pool.size < per_class:
            raise DatasetError(
                f"split: query_per_class={per_class}: class {column} has only {pool.size} "
                "items left to draw from"
            )
        chosen[rng.choice(pool, size=per_class, replace=False)] = True
    return np.flatnonzero(chosen)


def make_split(
    data: Any,
    protocol: str | SplitProtocol | None = None,
    *,
    seed: int = 0,
    n_query: int | None = None,
    n_train: int | None = None,
    query_per_class: int | None = None,
    database_includes_train: bool | None = None,
) -> Split:
    """Draw a seeded, reproducible split.

    Parameters
    ----------
    data : CrossModalDataset, label matrix or int
        The dataset (its labels are used for per-class draws), an ``(n, c)`` label matrix, or
        just the number of items.
    protocol : str or SplitProtocol, optional
        A :class:`SplitProtocol`, or a key of :data:`STANDARD_PROTOCOLS` (``"mirflickr25k"``...).
        By default: the dataset's standard protocol when it has one, else ``n_query``/``n_train``.
    seed : int, default 0
        Seed of the draw.
    n_query, n_train, query_per_class, database_includes_train : optional
        Override the protocol's values (``n_query`` and ``query_per_class`` replace each other).

    Returns
    -------
    Split

    Examples
    --------
    >>> split = make_split(20015, "mirflickr25k", seed=0)
    >>> split.sizes["query"], split.sizes["train"], split.sizes["database"]
    (2000, 10000, 18015)
    """
    n_items, labels, dataset_name = _split_input(data)
    if (
        protocol is None
        and dataset_name in STANDARD_PROTOCOLS
        and n_query is None
        and query_per_class is None
    ):
        protocol = dataset_name
    resolved = _resolve_protocol(
        protocol,
        n_query=n_query,
        n_train=n_train,
        query_per_class=query_per_class,
        database_includes_train=database_includes_train,
    )
    rng = np.random.default_rng(seed)
    query = _draw_query(resolved, n_items, labels, rng)
    rest = np.setdiff1d(np.arange(n_items), query)
    if resolved.n_train is None:
        train = rest
    else:
        if resolved.n_train > rest.size:
            raise DatasetError(
                f"make_split: {resolved.name}: expected at most {rest.size} training items "
                f"(the non-query items), got {resolved.n_train}"
            )
        train = rng.choice(rest, size=resolved.n_train, replace=False)
    database = rest if resolved.database_includes_train else np.setdiff1d(rest, train)
    return Split(
        train=train,
        query=query,
        database=database,
        protocol=resolved.name,
        seed=seed,
        n_items=n_items,
    )


def _split_input(data: Any) -> tuple[int, np.ndarray | None, str | None]:
    """``make_split``'s ``data`` as (number of items, label matrix or None, dataset name or None)."""
    if isinstance(data, (int, np.integer)):
        return int(data), None, None
    if hasattr(data, "labels") and hasattr(data, "n_items"):
        return int(data.n_items), np.asarray(data.labels), getattr(data, "name", None)
    labels = np.asarray(data)
    if labels.ndim != 2:
        raise DatasetError(f"make_split: expected an (n, c) label matrix, got shape {labels.shape}")
    return labels.shape[0], labels, None


def _resolve_protocol(
    protocol: str | SplitProtocol | None,
    *,
    n_query: int | None,
    n_train: int | None,
    query_per_class: int | None,
    database_includes_train: bool | None,
) -> SplitProtocol:
    """The protocol named or given, with ``make_split``'s overrides applied (a random one if none)."""
    if isinstance(protocol, str):
        if protocol not in STANDARD_PROTOCOLS:
            raise DatasetError(
                f"make_split: unknown protocol {protocol!r}; standard protocols: "
                f"{', '.join(sorted(STANDARD_PROTOCOLS))}"
            )
        protocol = STANDARD_PROTOCOLS[protocol]
    if n_query is not None and query_per_class is not None:
        raise DatasetError("make_split: give n_query or query_per_class, not both")
    overrides: dict[str, Any] = {}
    if n_query is not None:
        overrides.update(n_query=n_query, query_per_class=None)
    if query_per_class is not None:
        overrides.update(query_per_class=query_per_class, n_query=None)
    if n_train is not None:
        overrides["n_train"] = n_train
    if database_includes_train is not None:
        overrides["database_includes_train"] = database_includes_train
    try:
        if protocol is None:
            return SplitProtocol(name="random", **overrides)
        if overrides:
            return SplitProtocol(**{**protocol.model_dump(), **overrides, "name": protocol.name})
    except ValueError as exc:
        raise DatasetError(f"make_split: {exc}") from exc
    return protocol


def _draw_query(
    protocol: SplitProtocol, n_items: int, labels: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """The query rows: a per-class draw (needs the labels) or ``protocol.n_query`` at random."""
    if protocol.query_per_class is not None:
        if labels is None:
            raise DatasetError("make_split: query_per_class needs the labels, got only a size")
        return _draw_per_class(labels, protocol.query_per_class, rng)
    assert protocol.n_query is not None
    if protocol.n_query >= n_items:
        raise DatasetError(
            f"make_split: {protocol.name}: expected fewer than {n_items} queries "
            f"(the dataset size), got {protocol.n_query}"
        )
    return rng.choice(n_items, size=protocol.n_query, replace=False)
