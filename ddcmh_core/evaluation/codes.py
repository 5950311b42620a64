"""Binary codes: validation, packing and Hamming distance kernels.

Every part of ddcmh exchanges hash codes in one format: a C-contiguous ``numpy.uint8`` array of
shape ``(n, n_bits)`` holding only 0 and 1. The packed form is ``np.packbits(codes, axis=1)``
(most significant bit first, the last byte padded with zero bits), which is also what faiss binary
indexes take.

The distance kernels work on packed codes viewed as machine words (``uint64`` when the width
allows, otherwise the smallest of ``uint8``/``uint16``/``uint32`` that holds the zero-padded row):
one XOR and one population count per word and pair. The population count uses
``np.bitwise_count`` (numpy >= 2.0) and falls back to a 256-entry table on older numpy. A torch
kernel computes the same integer distances with one matrix product, for GPUs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ddcmh_core.errors import InputError
from ddcmh_core.threads import usable_cores

if TYPE_CHECKING:
    import torch

__all__ = [
    "InvalidCodesError",
    "ScratchBuffers",
    "as_words",
    "available_cpus",
    "check_codes",
    "check_packed",
    "distance_dtype",
    "hamming_distances",
    "hamming_distances_torch",
    "hamming_distances_words",
    "n_packed_bytes",
    "nonzero_2d",
    "pack_codes",
    "popcount",
    "unpack_codes",
]


class InvalidCodesError(InputError):
    """Codes (bit matrices or packed bytes) that do not have the documented format."""


_POPCOUNT_TABLE = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)
_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")


def n_packed_bytes(n_bits: int) -> int:
    """Return the number of bytes of one packed code of ``n_bits`` bits (``ceil(n_bits / 8)``)."""
    return (n_bits + 7) // 8


def distance_dtype(n_bits: int) -> np.dtype[Any]:
    """Return the smallest unsigned integer dtype that holds every distance in ``[0, n_bits]``.

    Parameters
    ----------
    n_bits : int
        Code length in bits.

    Returns
    -------
    numpy.dtype
        ``uint8`` up to 255 bits, ``uint16`` up to 65,535 bits, ``uint32`` above.
    """
    if n_bits <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if n_bits <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _describe_values(array: np.ndarray) -> str:
    """Name a few offending values of ``array`` (those that are neither 0 nor 1)."""
    bad = array[(array != 0) & (array != 1)]
    shown = ", ".join(repr(value.item()) for value in np.unique(bad)[:5])
    return f"{bad.size} value(s) outside {{0, 1}}, e.g. {shown}"


def check_codes(codes: Any, *, name: str = "codes", n_bits: int | None = None) -> np.ndarray:
    """Validate {0,1} codes and return them as a C-contiguous ``uint8`` array.

    Parameters
    ----------
    codes : array_like
        Codes of shape ``(n, n_bits)``; any boolean, integer or floating dtype whose values are
        exactly 0 or 1 is accepted. Torch tensors are moved to the CPU first.
    name : str, default "codes"
        Argument name used in error messages.
    n_bits : int, optional
        Expected code length; checked when given.

    Returns
    -------
    numpy.ndarray
        The codes as ``uint8``, shape ``(n, n_bits)``, C-contiguous (the input itself when it
        already has that form).

    Raises
    ------
    InvalidCodesError
        When the array is not two-dimensional, has no bit columns, has the wrong number of bits,
        or holds values other than 0 and 1.
    """
    if hasattr(codes, "detach") and hasattr(codes, "cpu"):  # a torch tensor
        codes = codes.detach().cpu().numpy()
    array = np.asarray(codes)
    if array.ndim != 2:
        raise InvalidCodesError(
            f"{name}: expected a 2-D array of shape (n, n_bits), found {array.ndim} dimension(s) "
            f"with shape {array.shape}"
        )
    if array.shape[1] == 0:
        raise InvalidCodesError(f"{name}: expected at least one bit column, found shape {array.shape}")
    if n_bits is not None and array.shape[1] != n_bits:
        raise InvalidCodesError(
            f"{name}: expected {n_bits} bits per code, found {array.shape[1]} (shape {array.shape})"
        )
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array, dtype=np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InvalidCodesError(
            f"{name}: expected {{0,1}} values of a boolean, integer or floating dtype, "
            f"found dtype {array.dtype}"
        )
    if array.dtype == np.uint8:
        if array.size and array.max() > 1:
            raise InvalidCodesError(f"{name}: expected only 0 and 1, found {_describe_values(array)}")
        return np.ascontiguousarray(array)
    if array.size and not np.all((array == 0) | (array == 1)):
        raise InvalidCodesError(
            f"{name}: expected only 0 and 1 (codes in {{-1,+1}} must be mapped with (b > 0)), "
            f"found {_describe_values(array)}"
        )
    return np.ascontiguousarray(array, dtype=np.uint8)


def pack_codes(codes: Any, *, name: str = "codes") -> np.ndarray:
    """Pack {0,1} codes into bytes, most significant bit first.

    Parameters
    ----------
    codes : array_like
        {0,1} codes of shape ``(n, n_bits)`` (validated with :func:`check_codes`).
    name : str, default "codes"
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(n, ceil(n_bits / 8))``, equal to ``np.packbits(codes, axis=1)``.
    """
    return np.packbits(check_codes(codes, name=name), axis=1)


def check_packed(packed: Any, n_bits: int, *, name: str = "packed") -> np.ndarray:
    """Validate packed codes of ``n_bits`` bits and return them as C-contiguous ``uint8``.

    Parameters
    ----------
    packed : array_like
        ``uint8`` array of shape ``(n, ceil(n_bits / 8))`` as made by :func:`pack_codes`.
    n_bits : int
        Code length in bits.
    name : str, default "packed"
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        The packed codes, C-contiguous ``uint8``.

    Raises
    ------
    InvalidCodesError
        When the dtype is not ``uint8``, the shape is not ``(n, ceil(n_bits / 8))``, or the
        padding bits of the last byte (when ``n_bits`` is not a multiple of 8) are not zero.
    """
    if n_bits <= 0:
        raise InvalidCodesError(f"n_bits: expected a positive number of bits, found {n_bits}")
    array = np.asarray(packed)
    width = n_packed_bytes(n_bits)
    if array.dtype != np.uint8:
        raise InvalidCodesError(f"{name}: expected packed codes of dtype uint8, found {array.dtype}")
    if array.ndim != 2 or array.shape[1] != width:
        raise InvalidCodesError(
            f"{name}: expected packed codes of shape (n, {width}) for {n_bits}-bit codes, "
            f"found shape {array.shape}"
        )
    padding_bits = width * 8 - n_bits
    if padding_bits and array.shape[0]:
        padding_mask = np.uint8((1 << padding_bits) - 1)
        dirty = np.flatnonzero(array[:, -1] & padding_mask)
        if dirty.size:
            raise InvalidCodesError(
                f"{name}: expected the {padding_bits} padding bit(s) of the last byte to be zero "
                f"for {n_bits}-bit codes, found set padding bits in {dirty.size} row(s), "
                f"first row {dirty[0]}"
            )
    return np.ascontiguousarray(array)


def unpack_codes(packed: Any, n_bits: int, *, name: str = "packed") -> np.ndarray:
    """Unpack bytes made by :func:`pack_codes` back into {0,1} codes.

    Parameters
    ----------
    packed : array_like
        ``uint8`` array of shape ``(n, ceil(n_bits / 8))``.
    n_bits : int
        Code length in bits.
    name : str, default "packed"
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        {0,1} ``uint8`` codes of shape ``(n, n_bits)``.
    """
    array = check_packed(packed, n_bits, name=name)
    return np.ascontiguousarray(np.unpackbits(array, axis=1, count=n_bits))


def as_words(packed: np.ndarray) -> np.ndarray:
    """View packed codes as rows of machine words, zero-padding each row as needed.

    Zero padding leaves Hamming distances unchanged, and the byte order inside a word does not
    matter for a population count of an XOR.

    Parameters
    ----------
    packed : numpy.ndarray
        ``uint8`` packed codes of shape ``(n, n_bytes)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n_words)``: one ``uint8``/``uint16``/``uint32`` word when ``n_bytes`` is 1, 2
        or 3-4, otherwise ``uint64`` words (``n_bytes`` rounded up to a multiple of 8).
    """
    n_rows, n_bytes = packed.shape
    if n_bytes <= 4:
        padded_bytes = 1 if n_bytes == 1 else 2 if n_bytes == 2 else 4
    else:
        padded_bytes = -(-n_bytes // 8) * 8
    word_dtype = np.dtype(f"u{min(padded_bytes, 8)}")
    if padded_bytes != n_bytes:
        padded = np.zeros((n_rows, padded_bytes), dtype=np.uint8)
        padded[:, :n_bytes] = packed
    else:
        padded = np.ascontiguousarray(packed, dtype=np.uint8)
    return padded.view(word_dtype).reshape(n_rows, padded_bytes // word_dtype.itemsize)


def popcount(words: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Count the set bits of every element of an unsigned integer array.

    Parameters
    ----------
    words : numpy.ndarray
        Unsigned integer array (any shape).
    out : numpy.ndarray, optional
        ``uint8`` array of the same shape receiving the counts.

    Returns
    -------
    numpy.ndarray
        ``uint8`` counts, same shape as ``words``.
    """
    if _HAS_BITWISE_COUNT:
        return np.bitwise_count(words, out=out)
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape, words.itemsize)
    counts = _POPCOUNT_TABLE[as_bytes].sum(axis=-1, dtype=np.uint8)
    if out is None:
        return counts
    out[...] = counts
    return out


def hamming_distances_words(
    query_words: np.ndarray,
    database_words: np.ndarray,
    *,
    out: np.ndarray | None = None,
    xor_scratch: np.ndarray | None = None,
    count_scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Integer Hamming distances between two sets of word-viewed codes (see :func:`as_words`).

    This is the inner kernel: no validation, and the caller bounds the size of the block. Reusing
    the scratch buffers across calls avoids page faults on fresh allocations.

    Parameters
    ----------
    query_words : numpy.ndarray
        Shape ``(n_queries, n_words)``.
    database_words : numpy.ndarray
        Shape ``(n_database, n_words)``, same word dtype.
    out : numpy.ndarray, optional
        Receives the distances, shape ``(n_queries, n_database)``; its dtype must hold
        ``n_words * word_bits`` (``uint8`` up to 255 bits).
    xor_scratch : numpy.ndarray, optional
        Scratch of shape ``(n_queries, n_database)`` and the word dtype.
    count_scratch : numpy.ndarray, optional
        ``uint8`` scratch of shape ``(n_queries, n_database)``; used with more than one word when
        ``out`` is not ``uint8``.

    Returns
    -------
    numpy.ndarray
        Distances of shape ``(n_queries, n_database)``.
    """
    n_queries, n_words = query_words.shape
    shape = (n_queries, database_words.shape[0])
    if out is None:
        out = np.empty(shape, dtype=distance_dtype(n_words * query_words.itemsize * 8))
    if xor_scratch is None:
        xor_scratch = np.empty(shape, dtype=query_words.dtype)
    for word in range(n_words):
        np.bitwise_xor(query_words[:, word, None], database_words[None, :, word], out=xor_scratch)
        if word == 0:
            if out.dtype == np.uint8:
                popcount(xor_scratch, out=out)
            else:
                out[...] = popcount(xor_scratch, out=count_scratch)
        else:
            np.add(out, popcount(xor_scratch, out=count_scratch), out=out)
    return out


def hamming_distances(query_codes: Any, database_codes: Any) -> np.ndarray:
    """Return the full matrix of Hamming distances between two sets of {0,1} codes.

    Meant for small inputs (it allocates ``n_queries * n_database`` integers); metrics and the
    search index stream over blocks instead.

    Parameters
    ----------
    query_codes : array_like
        {0,1} codes of shape ``(n_queries, n_bits)``.
    database_codes : array_like
        {0,1} codes of shape ``(n_database, n_bits)``.

    Returns
    -------
    numpy.ndarray
        Distances of shape ``(n_queries, n_database)``, dtype from :func:`distance_dtype`.

    Raises
    ------
    InvalidCodesError
        When the codes are not {0,1} matrices or their bit lengths differ.
    """
    queries = check_codes(query_codes, name="query_codes")
    database = check_codes(database_codes, name="database_codes", n_bits=queries.shape[1])
    query_words = as_words(np.packbits(queries, axis=1))
    database_words = as_words(np.packbits(database, axis=1))
    out = np.empty((len(queries), len(database)), dtype=distance_dtype(queries.shape[1]))
    return hamming_distances_words(query_words, database_words, out=out)


def hamming_distances_torch(query_bits: torch.Tensor, database_bits: torch.Tensor) -> torch.Tensor:
    """Hamming distances between {0,1} code tensors with one matrix product (for GPUs).

    ``d(q, x) = |q| + |x| - 2 q.x``, computed in float32, is exact: every product and partial
    sum is a small integer (below 2**24), including under TF32 inputs, which represent 0 and 1
    exactly.

    Parameters
    ----------
    query_bits : torch.Tensor
        {0,1} tensor of shape ``(n_queries, n_bits)`` (any real dtype).
    database_bits : torch.Tensor
        {0,1} tensor of shape ``(n_database, n_bits)`` on the same device.

    Returns
    -------
    torch.Tensor
        ``int32`` distances of shape ``(n_queries, n_database)`` on the input device.
    """
    import torch

    queries = query_bits.to(torch.float32)
    database = database_bits.to(torch.float32)
    distances = queries.sum(dim=1, keepdim=True) + database.sum(dim=1)[None, :]
    distances.addmm_(queries, database.T, alpha=-2.0)
    return distances.round_().to(torch.int32)


def is_torch_tensor(value: Any) -> bool:
    """Tell whether ``value`` is a torch tensor, without importing torch.

    Parameters
    ----------
    value : Any
        Any object.

    Returns
    -------
    bool
        True when the object's type comes from torch and it has a ``device``.
    """
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def available_cpus() -> int:
    """Return the number of CPUs this process may run on (the default thread count of kernels)."""
    return usable_cores()


class ScratchBuffers(threading.local):
    """Reusable per-thread scratch arrays for blocked kernels.

    Fresh large allocations page-fault on first touch; reusing one buffer per name and thread
    keeps it warm. Create one instance per computation so the memory is freed with it.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Return an uninitialised C-contiguous array of ``shape`` and ``dtype`` for this thread.

        Parameters
        ----------
        name : str
            Buffer name; each name holds one buffer per thread, grown when needed.
        shape : tuple of int
            Shape of the returned array.
        dtype : dtype-like
            Element type.

        Returns
        -------
        numpy.ndarray
            A view of the thread's buffer (its content is arbitrary).
        """
        size = 1
        for extent in shape:
            size *= int(extent)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
            buffer = np.empty(max(size, 1), dtype=dtype)
            self.buffers[name] = buffer
        return buffer[:size].reshape(shape)


def nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse 2-D boolean mask, scanning 8 flags per 64-bit word first.

    Parameters
    ----------
    mask : numpy.ndarray
        C-contiguous boolean array of shape ``(n_rows, n_columns)``; fast when few flags are set.

    Returns
    -------
    rows, columns : numpy.ndarray
        int64 coordinates of the set flags, in row-major order.
    """
    n_columns = mask.shape[1]
    flat = mask.reshape(-1)
    if flat.size % 8:
        rows, columns = np.nonzero(mask)
        return rows.astype(np.int64), columns.astype(np.int64)
    # a boolean test per word first: numpy's nonzero is much faster on booleans than on uint64
    words = np.flatnonzero(flat.view(np.uint64) != 0)
    word_index, byte_index = np.nonzero(flat.reshape(-1, 8)[words])
    positions = words[word_index] * 8 + byte_index
    return positions // n_columns, positions % n_columns
