"""SCM-seq: semantic correlation maximisation, hash functions learned bit by bit.

Paper
-----
Dongqing Zhang and Wu-Jun Li, "Large-Scale Supervised Multimodal Hashing with Semantic
Correlation Maximization", Proceedings of the Twenty-Eighth AAAI Conference on Artificial
Intelligence (AAAI), 2177-2183, 2014. The sequential variant (SCM-seq).

Reference code
--------------
BMC-SDNU/Cross-Modal-Hashing-Retrieval, folder ``SCM/code``: ``demo_SCM.m`` (text as the first
view X, image as the second view Y, both centred with their training means; queries and database
hashed as ``x W >= 0``), ``trainSCM_seq.m`` (row-normalised labels, the label-weighted cross
covariance scaled by the code length, ridge 1e-6 on both covariances, one bit per generalised
eigenproblem with the previous bits' sign products deflated, the stop when a bit's eigenvalue
rises) and ``trainCCA.m`` (the generalised eigenproblem and the second view's projection).

When the sequence stops early the remaining bits take "initial" projections. ``trainSCM_seq.m``
computes them as CCA directions, which needs at least as many CCA directions as bits (text width
>= n_bits; on Wikipedia's 10-d text the demo fails from 16 bits on); the reference numbers were
produced with the initial projections given as zeros, i.e. constant bits. The port does the latter
by default (``stall_fallback="zero"``) and offers the CCA fallback as ``"cca"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.linalg as sla
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix


def normalised_labels(labels: np.ndarray) -> np.ndarray:
    """Rows of the {0,1} label matrix scaled to unit length (all-zero rows stay zero)."""
    binary = (label_matrix(labels) > 0).astype(np.float64)
    lengths = np.sqrt((binary**2).sum(axis=1, keepdims=True))
    return binary / np.where(lengths == 0, 1e-8, lengths)


def semantic_cross_covariance(x: np.ndarray, y: np.ndarray, labels: np.ndarray, scale: float) -> np.ndarray:
    """``scale * X' S Y`` with ``S = 2 L L' - 1 1'`` (``L`` row-normalised), in O(n) memory.

    ``S`` is the cosine similarity of the label vectors mapped to [-1, 1]; it is never formed:
    ``X' S Y = 2 (X' L)(Y' L)' - (X' 1)(Y' 1)'``.
    """
    unit = normalised_labels(labels)
    cross = 2.0 * (x.T @ unit) @ (y.T @ unit).T - np.outer(x.sum(axis=0), y.sum(axis=0))
    return scale * cross


def cca_directions(
    cxx: np.ndarray, cyy: np.ndarray, cxy: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``count`` leading solutions of ``Cxy Cyy^-1 Cxy' w = e Cxx w`` (``trainCCA.m``).

    Returns ``(Wx, Wy, eigenvalues)``, largest eigenvalue first, with ``Wy = Cyy^-1 Cxy' Wx``:
    the reference also divides by ``sqrt(e)``, a positive scale that no sign bit depends on.
    """
    cyy_factor = sla.cho_factor(cyy)
    solved = sla.cho_solve(cyy_factor, cxy.T)
    left = cxy @ solved
    left = (left + left.T) / 2.0
    size = len(left)
    values, vectors = sla.eigh(left, cxx, subset_by_index=[size - count, size - 1])
    order = np.argsort(values)[::-1]
    return vectors[:, order], solved @ vectors[:, order], values[order]


def _top_eigenpair(whitened: np.ndarray) -> tuple[float, np.ndarray]:
    """The largest eigenvalue of ``G G'`` and a unit eigenvector, from the smaller Gram matrix.

    Parameters
    ----------
    whitened : ndarray of shape (d_x, d_y)
        ``G``.

    Returns
    -------
    value : float
        The largest eigenvalue of ``G G'`` (the squared largest singular value of ``G``).
    vector : ndarray of shape (d_x,)
        A unit eigenvector ``u`` of ``G G'`` for it, sign unspecified; zeros if ``value <= 0``.
        When ``d_x > d_y`` it is ``G v`` renormalised, ``v`` the top eigenvector of ``G' G``.
    """
    rows, columns = whitened.shape
    if rows <= columns:
        values, vectors = sla.eigh(whitened @ whitened.T, subset_by_index=[rows - 1, rows - 1])
        return float(values[0]), vectors[:, 0]
    values, vectors = sla.eigh(whitened.T @ whitened, subset_by_index=[columns - 1, columns - 1])
    value = float(values[0])
    if not value > 0:
        return value, np.zeros(rows)
    left = whitened @ vectors[:, 0]
    return value, left / np.linalg.norm(left)


def sequential_projections(
    x: np.ndarray, y: np.ndarray, residual: np.ndarray, n_bits: int, regularisation: float
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The SCM-seq loop: one generalised eigenproblem per bit, deflated by that bit's codes.

    Bit ``k`` solves ``C Cyy^-1 C' w = e Cxx w`` for its largest ``e``, ``C`` the residual cross
    covariance left by the previous bits, as :func:`cca_directions` with ``count=1`` would, but
    without a ``d_x``-sized eigenproblem per bit: with ``Cxx = R'R`` and ``Cyy = L L'`` (both
    factorised once), the problem is ``G G' u = e u`` with ``G = R^-T C L^-T`` and ``u = R w``,
    solved through the smaller of ``G G'`` and ``G' G`` (:func:`_top_eigenpair`). The deflation
    ``C <- C - a b'`` (``a = X' sign(X wx)``, ``b = Y' sign(Y wy)``) becomes the rank-one update
    ``G <- G - (R^-T a)(L^-1 b)'``, ``O(d_x d_y)`` per bit.

    Parameters
    ----------
    x : ndarray of shape (n, d_x)
        The first (text) view, centred.
    y : ndarray of shape (n, d_y)
        The second (image) view, centred.
    residual : ndarray of shape (d_x, d_y)
        The scaled semantic cross covariance the bits reconstruct; not modified.
    n_bits : int
        The most bits to learn.
    regularisation : float
        Ridge added to both views' covariances.

    Returns
    -------
    wx : ndarray of shape (d_x, found)
        One projection per bit until the sequence stopped, normalised to ``wx' Cxx wx = 1``
        (``trainCCA.m``'s scale) with its largest-magnitude entry positive: the eigensolver's
        sign is arbitrary, and flipping ``wx`` flips ``wy`` and so the bit in both views, which
        neither the deflation nor any cross-modal ranking sees.
    wy : ndarray of shape (d_y, found)
        ``Cyy^-1 C' wx`` for each bit, ``C`` that bit's residual.
    eigenvalues : list of float
        The eigenvalue ``e`` of every bit tried, the last one being the rise (or the
        non-positive value) that stopped the sequence, if any.
    """
    cxx = x.T @ x + regularisation * np.eye(x.shape[1])
    cyy = y.T @ y + regularisation * np.eye(y.shape[1])
    upper = sla.cholesky(cxx, lower=False)  # Cxx = R'R
    lower = sla.cholesky(cyy, lower=True)  # Cyy = L L'
    residual = np.array(residual, dtype=np.float64)  # a copy: deflated in place below
    whitened = sla.solve_triangular(upper, residual, trans="T")  # R^-T C
    whitened = sla.solve_triangular(lower, whitened.T, lower=True).T  # (L^-1 C' R^-1)' = R^-T C L^-T
    columns_x: list[np.ndarray] = []
    columns_y: list[np.ndarray] = []
    eigenvalues: list[float] = []
    for _ in range(n_bits):
        value, left = _top_eigenpair(whitened)
        eigenvalues.append(value)
        previous = eigenvalues[-2] if len(eigenvalues) > 1 else np.inf
        if not 0 < value <= previous:  # a rise (or no correlation left) ends the sequence
            break
        wx = sla.solve_triangular(upper, left)  # w = R^-1 u
        if wx[np.argmax(np.abs(wx))] < 0:
            wx = -wx
        wy = sla.cho_solve((lower, True), residual.T @ wx)
        columns_x.append(wx)
        columns_y.append(wy)
        bits_x, bits_y = x.T @ np.sign(x @ wx), y.T @ np.sign(y @ wy)
        residual -= np.outer(bits_x, bits_y)
        whitened -= np.outer(
            sla.solve_triangular(upper, bits_x, trans="T"), sla.solve_triangular(lower, bits_y, lower=True)
        )
    shape_x, shape_y = (x.shape[1], len(columns_x)), (y.shape[1], len(columns_y))
    stack_x = np.column_stack(columns_x) if columns_x else np.zeros(shape_x)
    stack_y = np.column_stack(columns_y) if columns_y else np.zeros(shape_y)
    return stack_x, stack_y, eigenvalues


class SCMSeq(ShallowMethod):
    """Supervised multimodal hashing by semantic correlation maximisation, sequential variant.

    Bit by bit, finds the pair of linear projections of the text and image views whose sign codes
    best reconstruct the scaled label similarity left over by the previous bits, each bit in
    closed form as a generalised eigenproblem. ``report_`` holds every bit's eigenvalue and the
    bit at which the sequence stopped (``None`` if it ran to the end).
    """

    class Params(MethodParams):
        """SCM-seq settings; the defaults are those of the authors' ``demo_SCM.m``."""

        regularisation: float = Field(
            1e-6, gt=0, description="Ridge added to both views' covariances (trainSCM_seq: lambda = 1e-6)."
        )
        similarity_scale: float | None = Field(
            None, gt=0, description="Scale c of the label similarity to reconstruct; None: the code length."
        )
        center: bool = Field(True, description="Subtract each view's training mean (the demo centres both).")
        stall_fallback: Literal["zero", "cca"] = Field(
            "zero",
            description=(
                "Projections of the bits after an early stop: 'zero' gives constant bits (the "
                "reference run), 'cca' the trailing CCA directions (trainSCM_seq without initial "
                "projections; needs n_bits <= text features)."
            ),
        )

    tags: ClassVar[MethodTags] = MethodTags(supervised=True, deep=False)
    # peak memory: the d x d covariances of the sequential CCA-like problem and their Cholesky factors
    memory_model = MemoryModel(feature_squares=3, dense_copies=2)
    display_name: ClassVar[str] = "SCM-seq"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: the CCA fallback needs one CCA direction per bit."""
        problems = super().data_problems(params, data)
        text_width = data.n_features.get("text")
        fallback = getattr(params, "stall_fallback", "zero")
        if fallback == "cca" and text_width is not None and params.n_bits > text_width:
            problems.append(
                f"n_bits: stall_fallback='cca' takes one CCA direction per bit and the text view has "
                f"{text_width} features, got n_bits={params.n_bits} (use stall_fallback='zero')"
            )
        return problems

    def _fit(
        self,
        image: Any,
        text: Any,
        labels: np.ndarray | None,
        *,
        run_dir: Path | None,
        resume: bool,
        progress: Any,
    ) -> None:
        assert labels is not None  # the input checks refuse a supervised fit without labels
        params, n_bits = self.params, self.n_bits
        text_map, x = FeatureMap.fit(self.training_rows(text), center=params.center)
        image_map, y = FeatureMap.fit(self.training_rows(image), center=params.center)
        scale = params.similarity_scale if params.similarity_scale is not None else float(n_bits)
        residual = semantic_cross_covariance(x, y, labels, scale)
        wx, wy, eigenvalues = sequential_projections(x, y, residual, n_bits, params.regularisation)
        found = wx.shape[1]
        fill_x, fill_y = np.zeros((x.shape[1], n_bits)), np.zeros((y.shape[1], n_bits))
        if found < n_bits and params.stall_fallback == "cca":
            cxx = x.T @ x + params.regularisation * np.eye(x.shape[1])
            cyy = y.T @ y + params.regularisation * np.eye(y.shape[1])
            cca_x, cca_y, _ = cca_directions(cxx, cyy, x.T @ y, n_bits)
            fill_x, fill_y = cca_x[:, ::-1], cca_y[:, ::-1]  # trainSCM_seq's reversed CCA order
        fill_x[:, :found], fill_y[:, :found] = wx, wy
        self.hash_functions_ = {"text": LinearHash(text_map, fill_x), "image": LinearHash(image_map, fill_y)}
        self.report_ = {"eigenvalues": eigenvalues, "stopped_at_bit": found if found < n_bits else None}
