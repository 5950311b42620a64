"""Numbers that only a paper can give: read from one ``peers.toml``, each with its citation.

A peer is a method with no public code, or one whose data is not here (MIRFLICKR-25K's images),
so ddcmh cannot re-run it. Its reported MAPs are shown beside a run's results as context, marked
"reported, not re-run": in their own table (never ranked with the run's rows, which were measured
on ddcmh's split) and, in plots, with their own marker and line style.

The file holds one ``[[peers]]`` table per method and paper::

    [[peers]]
    method = "DCMH"
    dataset = "mirflickr25k"          # the ddcmh dataset name whose pages show it
    paper = "Q.-Y. Jiang, W.-J. Li. Deep Cross-Modal Hashing. CVPR 2017"
    table = "Table 3"
    protocol = "2,000 queries, 10,000 training pairs, raw images (CNN-F), tag BoW text"
    metric = "MAP@all"
    not_rerun = "the shared copy of MIRFLICKR-25K has no images"
    bits = [16, 32, 64]
    "image->text" = [0.7410, 0.7465, 0.7485]
    "text->image" = [0.7827, 0.7900, 0.7932]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from ..errors import InputError

PEER_TASKS = ("image->text", "text->image", "text->text")
PEER_TEXT_FIELDS = ("method", "dataset", "paper", "table", "protocol", "metric", "not_rerun")
REPORTED = "reported, not re-run"


@dataclass(frozen=True)
class Peer:
    """One method's MAPs as a paper reports them, with where they come from.

    Attributes
    ----------
    method, dataset, paper, table, protocol, metric, not_rerun : str
        The method's name, the ddcmh dataset it belongs to, the paper (authors, title, venue,
        year), the table, the protocol (split, features, bits), the metric, and why ddcmh does
        not re-run it.
    values : dict
        Per task (``image->text``, ``text->image``, ``text->text``), the reported value per code
        length.
    """

    method: str
    dataset: str
    paper: str
    table: str
    protocol: str
    metric: str
    not_rerun: str
    values: dict[str, dict[int, float]]

    @property
    def decimals(self) -> int:
        """The decimals the paper prints (the most any of its values has: TOML drops trailing zeros)."""
        return max(len(repr(v).partition(".")[2]) for values in self.values.values() for v in values.values())

    @property
    def label(self) -> str:
        """How tables and plot legends name it: the method and that it was not re-run."""
        return f"{self.method} ({REPORTED})"


def _peer(entry: Any, where: str) -> Peer:
    """One ``[[peers]]`` table checked field by field."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a table, got {entry!r}")
    texts = {}
    for field in PEER_TEXT_FIELDS:
        value = entry.get(field)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: {field}: expected a non-empty string, got {value!r}")
        texts[field] = value
    bits = entry.get("bits")
    if not (isinstance(bits, list) and bits and all(isinstance(b, int) and b > 0 for b in bits)):
        raise InputError(f"{where}: bits: expected a list of positive code lengths, got {bits!r}")
    values: dict[str, dict[int, float]] = {}
    for task in PEER_TASKS:
        if task not in entry:
            continue
        reported = entry[task]
        if not (
            isinstance(reported, list)
            and len(reported) == len(bits)
            and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in reported)
        ):
            raise InputError(
                f"{where}: {task}: expected {len(bits)} values in [0, 1] (one per bits entry), "
                f"got {reported!r}"
            )
        values[task] = dict(zip(bits, map(float, reported), strict=True))
    unknown = sorted(set(entry) - {*PEER_TEXT_FIELDS, "bits", *PEER_TASKS})
    if unknown or not values:
        found = f"unknown keys {unknown}" if unknown else "no task"
        expected = f"keys {list(PEER_TEXT_FIELDS)}, bits and tasks {PEER_TASKS}"
        raise InputError(f"{where}: expected {expected}; {found}")
    return Peer(**texts, values=values)


@dataclass(frozen=True)
class Peers:
    """The peers of one ``peers.toml``: its path (named in pages) and its entries in file order."""

    path: str
    entries: tuple[Peer, ...]

    def of(self, dataset: str) -> list[Peer]:
        """The peers reported on ``dataset`` (a ddcmh dataset name), in file order."""
        return [peer for peer in self.entries if peer.dataset == dataset]


def load_peers(path: str | Path) -> Peers:
    """Every peer of a ``peers.toml`` (see the module's docstring for the layout).

    Raises
    ------
    InputError
        Naming the file, the entry and the field that is malformed.
    """
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"--peers {source}: cannot read it as TOML: {error}") from None
    entries = raw.get("peers")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"--peers {source}: expected one or more [[peers]] tables, found none")
    found = tuple(_peer(entry, f"--peers {source}: peers[{index}]") for index, entry in enumerate(entries))
    return Peers(path=str(path), entries=found)


def peer_lines(peers: Peers, dataset: str) -> list[str]:
    """Markdown: the dataset's reported peers in their own table, then each one's citation."""
    chosen = peers.of(dataset)
    if not chosen:
        return []
    bits = sorted({b for peer in chosen for values in peer.values.values() for b in values})
    lines = [
        "",
        f"## Reported in papers, not re-run ({peers.path})",
        "",
        "Copied from the papers named below, each under its own protocol (split, features, metric), "
        "none of them this run's: context only, not rows of the tables above and not ranked against "
        "them.",
        "",
        "| method | task | metric | " + " | ".join(f"{b} bits" for b in bits) + " | source |",
        "|---|---|---|" + "---|" * len(bits) + "---|",
    ]
    for number, peer in enumerate(chosen, start=1):
        decimals = peer.decimals
        for task, values in peer.values.items():
            cells = [f"{values[b]:.{decimals}f}" if b in values else "—" for b in bits]
            lines.append(
                f"| {peer.label} | {task} | {peer.metric} | " + " | ".join(cells) + f" | [{number}] |"
            )
    lines.append("")
    for number, peer in enumerate(chosen, start=1):
        lines.append(
            f"[{number}] {peer.paper}, {peer.table}. Protocol: {peer.protocol}. Not re-run: {peer.not_rerun}."
        )
        lines.append("")
    return lines[:-1]
