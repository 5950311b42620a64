"""Tests of ddcmh_core.evaluation.codes: validation, packing and Hamming kernels against a bit-by-bit
reference."""

from __future__ import annotations

import numpy as np
import pytest

from ddcmh_core.errors import InputError
from ddcmh_core.evaluation import codes as codes_module
from ddcmh_core.evaluation.codes import (
    InvalidCodesError,
    as_words,
    check_codes,
    check_packed,
    distance_dtype,
    hamming_distances,
    hamming_distances_torch,
    pack_codes,
    popcount,
    unpack_codes,
)


def reference_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Count differing bits pair by pair: obviously correct, slow."""
    result = np.zeros((len(queries), len(database)), dtype=np.int64)
    for i, query in enumerate(queries):
        for j, item in enumerate(database):
            result[i, j] = sum(int(a != b) for a, b in zip(query, item, strict=True))
    return result


@pytest.mark.parametrize("n_bits", [1, 5, 8, 12, 16, 24, 31, 32, 40, 63, 64, 65, 100, 128, 256, 300])
def test_hamming_distances_match_bitwise_reference(n_bits: int) -> None:
    rng = np.random.default_rng(n_bits)
    queries = rng.integers(0, 2, size=(7, n_bits), dtype=np.uint8)
    database = rng.integers(0, 2, size=(11, n_bits), dtype=np.uint8)
    distances = hamming_distances(queries, database)
    assert distances.dtype == distance_dtype(n_bits)
    np.testing.assert_array_equal(distances, reference_distances(queries, database))


def test_extreme_distances_and_dtype_boundaries() -> None:
    zeros = np.zeros((1, 255), dtype=np.uint8)
    ones = np.ones((1, 255), dtype=np.uint8)
    assert hamming_distances(zeros, ones)[0, 0] == 255
    assert distance_dtype(255) == np.uint8
    assert distance_dtype(256) == np.uint16
    wide = np.ones((1, 300), dtype=np.uint8)
    assert hamming_distances(np.zeros_like(wide), wide)[0, 0] == 300


def test_popcount_table_fallback_matches_bitwise_count(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**63, size=(5, 9), dtype=np.uint64)
    expected = np.array([[bin(int(w)).count("1") for w in row] for row in words])
    np.testing.assert_array_equal(popcount(words), expected)
    monkeypatch.setattr(codes_module, "_HAS_BITWISE_COUNT", False)
    np.testing.assert_array_equal(popcount(words), expected)
    out = np.empty(words.shape, dtype=np.uint8)
    assert popcount(words, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_pack_unpack_round_trip_and_packbits_layout() -> None:
    rng = np.random.default_rng(1)
    for n_bits in (3, 8, 13, 64, 70):
        bits = rng.integers(0, 2, size=(6, n_bits), dtype=np.uint8)
        packed = pack_codes(bits)
        assert packed.shape == (6, (n_bits + 7) // 8)
        np.testing.assert_array_equal(packed, np.packbits(bits, axis=1))
        np.testing.assert_array_equal(unpack_codes(packed, n_bits), bits)
    # most significant bit first: the first bit is the 128 of the first byte
    assert pack_codes(np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1]]))[0].tolist() == [129, 128]


def test_as_words_pads_to_machine_words_without_changing_distances() -> None:
    rng = np.random.default_rng(2)
    for n_bytes, dtype, n_words in [
        (1, np.uint8, 1),
        (2, np.uint16, 1),
        (3, np.uint32, 1),
        (4, np.uint32, 1),
        (5, np.uint64, 1),
        (8, np.uint64, 1),
        (9, np.uint64, 2),
        (16, np.uint64, 2),
    ]:
        packed = rng.integers(0, 256, size=(4, n_bytes), dtype=np.uint8)
        words = as_words(packed)
        assert words.dtype == dtype and words.shape == (4, n_words)
        assert popcount(words).sum() == np.unpackbits(packed).sum()


def test_check_codes_accepts_binary_of_any_numeric_dtype() -> None:
    base = np.array([[0, 1, 1], [1, 0, 0]])
    for dtype in (np.bool_, np.int8, np.int64, np.float32, np.float64, np.uint8):
        result = check_codes(base.astype(dtype))
        assert result.dtype == np.uint8 and result.flags.c_contiguous
        np.testing.assert_array_equal(result, base)
    fortran = np.asfortranarray(base.astype(np.uint8))
    assert check_codes(fortran).flags.c_contiguous
    assert check_codes([[0, 1]]).shape == (1, 2)
    assert check_codes(np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (np.array([[0, 2, 1]], dtype=np.uint8), "outside {0, 1}"),
        (np.array([[-1.0, 1.0]]), "(b > 0)"),
        (np.array([0, 1, 1]), "2-D"),
        (np.zeros((3, 0)), "at least one bit"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_check_codes_rejects_bad_input_with_clear_message(bad: np.ndarray, fragment: str) -> None:
    with pytest.raises(InvalidCodesError, match="my_codes") as error:
        check_codes(bad, name="my_codes")
    assert fragment in str(error.value)
    assert isinstance(error.value, ValueError) and isinstance(error.value, InputError)


def test_check_codes_checks_bit_count() -> None:
    with pytest.raises(InvalidCodesError, match=r"expected 16 bits per code, found 8"):
        check_codes(np.zeros((2, 8)), n_bits=16)


def test_check_packed_rejects_wrong_width_dtype_and_padding() -> None:
    good = np.packbits(np.ones((2, 12), dtype=np.uint8), axis=1)
    assert check_packed(good, 12) is not None
    with pytest.raises(InvalidCodesError, match=r"shape \(n, 2\) for 12-bit codes, found shape \(2, 3\)"):
        check_packed(np.zeros((2, 3), dtype=np.uint8), 12)
    with pytest.raises(InvalidCodesError, match="dtype uint8, found int64"):
        check_packed(np.zeros((2, 2), dtype=np.int64), 12)
    dirty = good.copy()
    dirty[1, 1] |= 1  # a padding bit
    with pytest.raises(InvalidCodesError, match="padding bit"):
        check_packed(dirty, 12)
    with pytest.raises(InvalidCodesError, match="n_bits"):
        check_packed(good, 0)


def test_hamming_distances_rejects_mismatched_bits() -> None:
    with pytest.raises(InvalidCodesError, match="database_codes: expected 8 bits per code, found 9"):
        hamming_distances(np.zeros((1, 8)), np.zeros((1, 9)))


def test_torch_distances_equal_numpy() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for n_bits in (7, 64, 130):
        queries = rng.integers(0, 2, size=(9, n_bits), dtype=np.uint8)
        database = rng.integers(0, 2, size=(13, n_bits), dtype=np.uint8)
        result = hamming_distances_torch(torch.from_numpy(queries), torch.from_numpy(database))
        assert result.dtype == torch.int32
        np.testing.assert_array_equal(result.numpy(), hamming_distances(queries, database))
