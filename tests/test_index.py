"""Tests of ddcmh_core.evaluation.index against a brute-force reference (distance matrix + sort)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation.codes import InvalidCodesError
from ddcmh_core.evaluation.index import (
    MISSING_DISTANCE,
    MISSING_ID,
    FaissBinaryIndex,
    HammingIndex,
    IndexFileError,
    recall_at_k,
)


def brute_top_k(
    queries: np.ndarray, database: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sort every row by (distance, insertion position), pad to k: obviously correct."""
    distances = (queries[:, None, :] != database[None, :, :]).sum(axis=2)
    result_distances, result_ids = [], []
    for row in distances:
        order = sorted(range(len(row)), key=lambda j: (row[j], j))[:k]
        padding = k - len(order)
        result_distances.append([*row[order], *[MISSING_DISTANCE] * padding])
        result_ids.append([*ids[order], *[MISSING_ID] * padding])
    return np.array(result_distances), np.array(result_ids)


def random_codes(seed: int, n: int, n_bits: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(n, n_bits), dtype=np.uint8)


@pytest.mark.parametrize(
    ("n_bits", "n_items", "k"),
    [
        (8, 3000, 5),
        (16, 9000, 100),
        (64, 20000, 10),
        (64, 9000, 700),
        (12, 50, 7),
        (100, 3000, 3),
        (64, 5, 10),
    ],
)
def test_search_matches_brute_force_including_ties(n_bits: int, n_items: int, k: int) -> None:
    database = random_codes(n_bits, n_items, n_bits)
    queries = random_codes(n_bits + 1, 40, n_bits)
    ids = np.random.default_rng(0).permutation(10 * n_items)[:n_items]
    index = HammingIndex(n_bits)
    index.add(database, ids=ids)
    distances, found = index.search(queries, k)
    expected_distances, expected_ids = brute_top_k(queries, database, ids, k)
    assert distances.dtype == np.int32 and found.dtype == np.int64
    assert distances.shape == (40, k)
    np.testing.assert_array_equal(distances, expected_distances)
    np.testing.assert_array_equal(found, expected_ids)  # ties in insertion order


def test_search_threads_and_packed_queries_agree() -> None:
    database, queries = random_codes(1, 5000, 32), random_codes(2, 100, 32)
    index = HammingIndex(32)
    index.add(np.packbits(database, axis=1), packed=True)
    single = index.search(queries, 20, n_threads=1)
    threaded = index.search(np.packbits(queries, axis=1), 20, packed=True, n_threads=3)
    np.testing.assert_array_equal(single[0], threaded[0])
    np.testing.assert_array_equal(single[1], threaded[1])


@pytest.mark.parametrize(("inclusive", "within"), [(False, np.less), (True, np.less_equal)])
def test_range_search_matches_brute_force(inclusive: bool, within: np.ufunc) -> None:
    database, queries = random_codes(3, 2000, 16), random_codes(4, 33, 16)
    index = HammingIndex(16)
    ids = index.add(database)
    lims, distances, found = index.range_search(queries, 4, inclusive=inclusive)
    full = (queries[:, None, :] != database[None, :, :]).sum(axis=2)
    assert lims.shape == (34,) and lims[0] == 0
    for row in range(len(queries)):
        expected = [
            (full[row, j], ids[j]) for j in sorted(range(len(database)), key=lambda j: (full[row, j], j))
        ]
        expected = [pair for pair in expected if within(pair[0], 4)]
        got = list(zip(distances[lims[row] : lims[row + 1]], found[lims[row] : lims[row + 1]], strict=True))
        assert got == expected
    assert (full == 4).any()  # the boundary is exercised
    empty_lims, empty_distances, _ = HammingIndex(16).range_search(queries, 4)
    assert empty_lims.tolist() == [0] * 34 and empty_distances.size == 0


# -- the same answers as faiss's IndexBinaryFlat (docs/search.md, "ddcmh and faiss") ------------------


def packed_with_duplicates(seed: int, n_items: int, n_bits: int) -> np.ndarray:
    """Random packed codes in which a tenth of the rows repeat row 0: ties at every distance."""
    packed = np.random.default_rng(seed).integers(0, 256, size=(n_items, n_bits // 8), dtype=np.uint8)
    packed[1 : 1 + n_items // 10] = packed[:1]
    return packed


def both_indexes(packed: np.ndarray, n_bits: int) -> tuple[HammingIndex, Any]:
    """A HammingIndex and a faiss IndexBinaryFlat over the same packed codes (ids = positions)."""
    faiss = pytest.importorskip("faiss")
    ours = HammingIndex(n_bits)
    ours.add(packed, packed=True)
    theirs = faiss.IndexBinaryFlat(n_bits)
    theirs.add(packed)
    return ours, theirs


@pytest.mark.parametrize(
    ("n_bits", "n_items", "k"),
    [(16, 3000, 40), (64, 800, 25), (32, 30, 50), (64, 0, 4), (8, 200, 200)],
    ids=["k<n, many ties", "k<n", "k>n padded", "empty database", "k=n"],
)
def test_search_matches_faiss_including_ties_and_padding(n_bits: int, n_items: int, k: int) -> None:
    database = packed_with_duplicates(n_bits, n_items, n_bits)
    queries = np.concatenate([database[:3], packed_with_duplicates(n_items + 1, 30, n_bits)])
    ours, theirs = both_indexes(database, n_bits)
    distances, ids = ours.search(queries, k, packed=True)
    faiss_distances, faiss_ids = theirs.search(queries, k)
    assert distances.dtype == faiss_distances.dtype and ids.dtype == faiss_ids.dtype
    np.testing.assert_array_equal(distances, faiss_distances)
    np.testing.assert_array_equal(ids, faiss_ids)  # ties in insertion order in both


def test_range_search_matches_faiss_at_exact_distances() -> None:
    n_bits = 32
    database = packed_with_duplicates(20, 1500, n_bits)
    queries = np.concatenate([database[:2], packed_with_duplicates(21, 20, n_bits)])
    ours, theirs = both_indexes(database, n_bits)
    nearest = ours.search(queries, 30, packed=True)[0]
    # radii that equal distances items are at: the boundary decides whether those items count
    for radius in sorted({0, 1, *nearest[:, 0].tolist(), *nearest[:, -1].tolist()}):
        lims, distances, ids = ours.range_search(queries, radius, packed=True)
        faiss_lims, faiss_distances, faiss_ids = theirs.range_search(queries, radius)
        np.testing.assert_array_equal(lims, faiss_lims.astype(np.int64))
        for row in range(len(queries)):
            part = slice(faiss_lims[row], faiss_lims[row + 1])
            # faiss lists a query's items in insertion order; ddcmh sorts them by distance
            order = np.lexsort((faiss_ids[part], faiss_distances[part]))
            np.testing.assert_array_equal(ids[lims[row] : lims[row + 1]], faiss_ids[part][order])
            np.testing.assert_array_equal(distances[lims[row] : lims[row + 1]], faiss_distances[part][order])
        inclusive = ours.range_search(queries, radius, inclusive=True, packed=True)
        np.testing.assert_array_equal(inclusive[0], theirs.range_search(queries, radius + 1)[0])


def test_add_remove_with_ids_keeps_insertion_order() -> None:
    index = HammingIndex(4)
    first = index.add(np.array([[0, 0, 0, 1], [0, 0, 1, 1]]))
    np.testing.assert_array_equal(first, [0, 1])
    index.add(np.array([[0, 0, 0, 1], [1, 1, 1, 1]]), ids=[50, 7])
    assert len(index) == 4 and index.ids.tolist() == [0, 1, 50, 7]
    np.testing.assert_array_equal(index.add(np.zeros((1, 4))), [51])  # after the largest id
    # ties: id 0 and id 50 are both at distance 1; 0 was added first
    _, found = index.search(np.zeros((1, 4), dtype=np.uint8), 3)
    assert found.tolist() == [[51, 0, 50]]
    assert index.remove([0, 51]) == 2
    assert index.ids.tolist() == [1, 50, 7]
    _, found = index.search(np.zeros((1, 4), dtype=np.uint8), 3)
    assert found.tolist() == [[50, 1, 7]]
    np.testing.assert_array_equal(index.reconstruct([7, 1]), [[1, 1, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(InputError, match=r"unknown id\(s\), e.g. \[999\]"):
        index.remove([999])
    with pytest.raises(InputError, match="already in the index"):
        index.add(np.zeros((1, 4)), ids=[7])
    with pytest.raises(InputError, match="unique"):
        index.add(np.zeros((2, 4)), ids=[3, 3])
    with pytest.raises(InputError, match="expected a 1-D array of 1 integer ids"):
        index.add(np.zeros((1, 4)), ids=[3, 4])


def test_search_edge_cases_and_bad_input() -> None:
    index = HammingIndex(8)
    distances, found = index.search(np.zeros((2, 8)), 5)
    assert (distances == MISSING_DISTANCE).all() and (found == MISSING_ID).all() and found.shape == (2, 5)
    index.add(random_codes(5, 3, 8))
    distances, found = index.search(np.zeros((2, 8)), 5)  # k > len: all items, then padding
    assert (found[:, :3] >= 0).all() and (found[:, 3:] == MISSING_ID).all()
    assert (distances[:, :3] <= 8).all() and (distances[:, 3:] == MISSING_DISTANCE).all()
    with pytest.raises(InputError, match="k: expected a positive integer, found 0"):
        index.search(np.zeros((1, 8)), 0)
    with pytest.raises(InvalidCodesError, match="queries: expected 8 bits per code, found 9"):
        index.search(np.zeros((1, 9)), 1)
    with pytest.raises(InvalidCodesError, match=r"queries: expected packed codes of shape \(n, 1\)"):
        index.search(np.zeros((1, 2), dtype=np.uint8), 1, packed=True)
    with pytest.raises(InvalidCodesError, match="codes: expected only 0 and 1"):
        index.add(np.full((1, 8), 2))
    with pytest.raises(InputError, match="radius"):
        index.range_search(np.zeros((1, 8)), -1)
    with pytest.raises(InputError, match="inclusive: expected True or False, found 'yes'"):
        index.range_search(np.zeros((1, 8)), 2, inclusive="yes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n_bits"):
        HammingIndex(0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = HammingIndex(20)
    index.add(random_codes(6, 500, 20), ids=np.arange(500) * 3)
    index.remove([0, 3])
    path = tmp_path / "index.h5"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["index.h5"]  # no temporary left behind
    loaded = HammingIndex.load(path)
    assert loaded.n_bits == 20 and len(loaded) == 498
    np.testing.assert_array_equal(loaded.ids, index.ids)
    np.testing.assert_array_equal(loaded.packed_codes, index.packed_codes)
    queries = random_codes(7, 10, 20)
    for a, b in zip(loaded.search(queries, 9), index.search(queries, 9), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.add(np.zeros((1, 20)))[0] == 1498  # the id counter survives
    with h5py.File(path) as file:
        assert file.attrs["format"] == "ddcmh.HammingIndex"
        assert int(file.attrs["format_version"]) == 1


def test_load_rejects_foreign_corrupted_and_newer_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(IndexFileError, match="not readable as HDF5"):
        HammingIndex.load(garbage)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as file:
        file.attrs["format"] = "something.else"
    with pytest.raises(
        IndexFileError, match=r"expected format 'ddcmh\.HammingIndex', found 'something\.else'"
    ):
        HammingIndex.load(foreign)
    newer = tmp_path / "newer.h5"
    HammingIndex(8).save(newer)
    with h5py.File(newer, "a") as file:
        file.attrs["format_version"] = 99
    with pytest.raises(IndexFileError, match="found 99"):
        HammingIndex.load(newer)
    broken = tmp_path / "broken.h5"
    index = HammingIndex(8)
    index.add(random_codes(8, 4, 8))
    index.save(broken)
    with h5py.File(broken, "a") as file:
        del file["ids"]
        file.create_dataset("ids", data=np.array([1, 1, 2, 3]))
    with pytest.raises(IndexFileError, match="inconsistent"):
        HammingIndex.load(broken)
    with pytest.raises(FileNotFoundError):
        HammingIndex.load(tmp_path / "missing.h5")
    assert issubclass(IndexFileError, ValueError)


def test_failed_save_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = HammingIndex(8)
    index.add(random_codes(9, 4, 8))

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        index.save(tmp_path / "index.h5")
    assert list(tmp_path.iterdir()) == []


def test_recall_is_tie_aware() -> None:
    # an "approximate" index returning other items at the k-th distance is still fully correct
    database = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.uint8)
    exact = HammingIndex(4)
    exact.add(database)
    reordered = HammingIndex(4)
    reordered.add(database[::-1], ids=[3, 2, 1, 0])
    queries = np.zeros((1, 4), dtype=np.uint8)
    assert recall_at_k(reordered, exact, queries, 2) == 1.0
    missing_nearest = HammingIndex(4)
    missing_nearest.add(database[1:], ids=[1, 2, 3])
    assert recall_at_k(missing_nearest, exact, queries, 2) == 0.5


@pytest.mark.parametrize(
    ("kind", "options", "minimum_recall"),
    [
        ("flat", {}, 1.0),
        ("hnsw", {"m": 16, "ef_search": 128}, 0.8),
        ("ivf", {"n_lists": 16, "n_probe": 16}, 1.0),
        ("ivf", {"n_lists": 64, "n_probe": 4}, 0.1),
        ("multihash", {"n_hashes": 8, "n_flips": 2}, 0.3),
    ],
)
def test_faiss_adapters_recall_against_exact(
    kind: str, options: dict[str, int], minimum_recall: float
) -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(10)
    centers = rng.integers(0, 2, size=(20, 64), dtype=np.uint8)
    # clustered codes (like learned ones): flip 8% of a center's bits
    database = centers[rng.integers(0, 20, 4000)] ^ (rng.random((4000, 64)) < 0.08).astype(np.uint8)
    queries = centers[rng.integers(0, 20, 50)] ^ (rng.random((50, 64)) < 0.08).astype(np.uint8)
    exact = HammingIndex(64)
    exact.add(database, ids=np.arange(4000) + 1000)
    approximate = exact.to_faiss(kind, **options)
    assert isinstance(approximate, FaissBinaryIndex) and len(approximate) == 4000
    distances, ids = approximate.search(queries, 10)
    assert distances.shape == (50, 10) and set(ids[ids >= 0].ravel()) <= set(range(1000, 5000))
    recall = recall_at_k(approximate, exact, queries, 10)
    assert minimum_recall <= recall <= 1.0
    if kind == "flat":
        np.testing.assert_array_equal(distances, exact.search(queries, 10)[0])


def test_faiss_adapter_bad_options() -> None:
    pytest.importorskip("faiss")
    index = HammingIndex(64)
    index.add(random_codes(11, 100, 64))
    with pytest.raises(InputError, match="kind: expected one of"):
        index.to_faiss("lsh")
    with pytest.raises(
        InputError, match="'hnsw' accepts m, ef_construction, ef_search; found unknown nprobe"
    ):
        index.to_faiss("hnsw", nprobe=3)
    odd = HammingIndex(12)
    with pytest.raises(InputError, match="multiple of 8"):
        odd.to_faiss("flat")


def test_missing_faiss_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    index = HammingIndex(8)
    with pytest.raises(ImportError, match=r"pip install faiss-cpu .*ddcmh\[faiss\]"):
        index.to_faiss()


def test_ddcmh_search_command_radius_is_inclusive_and_k_beyond_the_database_lists_real_hits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ddcmh_core.cli.main import main, write_codes

    database = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=np.uint8)
    write_codes(tmp_path / "db.h5", database, ids=["a", "b", "c"])
    write_codes(tmp_path / "q.h5", database[:1], ids=["q"])
    files = ["search", "--database", str(tmp_path / "db.h5"), "--queries", str(tmp_path / "q.h5")]
    assert main([*files, "--radius", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["hits"] == [["a", 0], ["b", 1]]
    assert main([*files, "--k", "5"]) == 0  # 3 items: no padded slot is printed as a hit
    assert json.loads(capsys.readouterr().out)["results"][0]["hits"] == [["a", 0], ["b", 1], ["c", 2]]
