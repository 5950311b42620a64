"""Splits: the standard protocols, seeding, validation carved from training only, split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ddcmh_core.data import STANDARD_PROTOCOLS, DatasetError, Split, SplitProtocol, make_split


@pytest.mark.parametrize(
    ("protocol", "n_items", "sizes"),
    [
        ("mirflickr25k", 20015, (2000, 10000, 18015)),
        ("nus-wide", 195834, (2100, 10500, 193734)),
        ("iapr-tc12", 20000, (2000, 10000, 18000)),
        ("ms-coco", 122218, (5000, 10000, 117218)),
        ("wikipedia", 2866, (693, 2173, 2173)),
    ],
)
def test_standard_protocol_sizes(protocol: str, n_items: int, sizes: tuple[int, int, int]) -> None:
    split = make_split(n_items, protocol, seed=0)
    assert (split.sizes["query"], split.sizes["train"], split.sizes["database"]) == sizes
    assert split.database_includes_train
    assert np.intersect1d(split.query, split.database).size == 0
    assert np.union1d(split.query, split.database).size == n_items  # database = every non-query item
    assert split.protocol == STANDARD_PROTOCOLS[protocol].name


def test_seeded_and_reproducible() -> None:
    first = make_split(20015, "mirflickr25k", seed=7)
    assert first == make_split(20015, "mirflickr25k", seed=7)
    assert first != make_split(20015, "mirflickr25k", seed=8)
    assert first.checksum() == make_split(20015, "mirflickr25k", seed=7).checksum()
    assert np.all(np.diff(first.train) > 0)  # sorted (and so read in order from lazy files)


def test_database_excluding_train() -> None:
    split = make_split(1000, n_query=100, n_train=300, database_includes_train=False)
    assert split.sizes == {"train": 300, "query": 100, "database": 600, "validation": 0}
    assert not split.database_includes_train
    assert np.intersect1d(split.train, split.database).size == 0


def test_query_per_class_single_and_multi_label() -> None:
    single = np.repeat(np.eye(10, dtype=np.uint8), 200, axis=0)
    split = make_split(single, "uci-mfeat", seed=0)
    counts = single[split.query].sum(axis=0)
    assert counts.tolist() == [50] * 10 and split.sizes["train"] == 1500
    rng = np.random.default_rng(0)
    multi = (rng.random((3000, 21)) < 0.2).astype(np.uint8)
    per_class = make_split(multi, query_per_class=100, seed=1)
    assert per_class.sizes["query"] == 2100
    assert (multi[per_class.query].sum(axis=0) >= 100).all()
    with pytest.raises(DatasetError, match="class 0 has only 1 items"):
        make_split(np.eye(4, dtype=np.uint8), query_per_class=2)


def test_validation_is_carved_from_training_items_only() -> None:
    split = make_split(20015, "mirflickr25k", seed=0)
    carved = split.carve_validation(0.1, seed=5)
    assert carved.sizes == {"train": 9000, "query": 2000, "database": 18015, "validation": 1000}
    assert np.isin(carved.validation, split.train).all()
    assert np.array_equal(np.union1d(carved.train, carved.validation), split.train)
    assert np.array_equal(carved.query, split.query) and np.array_equal(carved.database, split.database)
    assert carved.validation_seed == 5
    assert carved == split.carve_validation(1000, seed=5)
    with pytest.raises(DatasetError, match="fewer than the 10000 training items"):
        split.carve_validation(10000)


def test_overlaps_and_bad_indices_are_refused() -> None:
    with pytest.raises(DatasetError, match="query and train must not share items, but 1 do"):
        Split(train=[0, 1, 2], query=[2, 3], database=[0, 1, 2])
    with pytest.raises(DatasetError, match="index 10 is out of range for 10 items"):
        Split(train=[0, 1], query=[10], database=[0, 1], n_items=10)
    with pytest.raises(DatasetError, match="repeated"):
        Split(train=[0, 0], query=[1], database=[0])
    with pytest.raises(DatasetError, match="expected fewer than 50 queries"):
        make_split(50, n_query=50)
    with pytest.raises(DatasetError, match="unknown protocol 'flickr'"):
        make_split(50, "flickr")
    with pytest.raises(DatasetError, match="n_query or query_per_class, not both"):
        make_split(50, SplitProtocol(name="x", n_query=5), query_per_class=2, n_query=3)
    with pytest.raises(ValueError, match="exactly one of n_query and query_per_class"):
        SplitProtocol(name="x")


def test_split_file_round_trip_and_corruption(tmp_path: Path) -> None:
    split = make_split(20015, "mirflickr25k", seed=3).carve_validation(500, seed=1)
    path = split.save(tmp_path / "run" / "split.npz", dataset_fingerprint="abc")
    loaded = Split.load(path)
    assert loaded == split
    assert (loaded.protocol, loaded.seed, loaded.validation_seed, loaded.n_items) == (
        "dcmh-mirflickr25k", 3, 1, 20015,
    )  # fmt: skip
    assert not list(path.parent.glob("*.tmp"))  # written atomically
    data = dict(np.load(path))
    data["query"] = data["query"].copy()
    data["query"][0] += 1
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(DatasetError, match="part 'query': checksum mismatch"):
        Split.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(DatasetError, match="expected a ddcmh split file"):
        Split.load(tmp_path / "junk.npz")


def test_restrict_renumbers_kept_items() -> None:
    split = Split(train=[0, 2, 4], query=[1, 3], database=[0, 2, 4, 5], n_items=6)
    restricted = split.restrict(np.array([0, 1, 4, 5]))
    assert restricted.train.tolist() == [0, 2] and restricted.query.tolist() == [1]
    assert restricted.database.tolist() == [0, 2, 3] and restricted.n_items == 4
