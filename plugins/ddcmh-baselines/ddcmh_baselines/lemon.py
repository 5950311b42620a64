"""LEMON: label embedding online hashing, trained chunk by chunk on a stream of labelled pairs.

Paper
    Yongxin Wang, Xin Luo and Xin-Shun Xu. "Label Embedding Online Hashing for Cross-Modal
    Retrieval." In *Proceedings of the 28th ACM International Conference on Multimedia (MM '20)*,
    pages 871-879, 2020. doi:10.1145/3394171.3413971.

Reference code followed (BMC-SDNU/Cross-Modal-Hashing-Retrieval, folder ``LEMON/code``):
``demo_LEMON.m`` (raw features, no centring or kernel; ``alpha = 1e4``, ``beta = 1e3``,
``gamma = 0.01``, ``xi = 1e3``; rows normalised labels; codes ``x W > 0`` for queries and
database alike), ``codes/LEMON/train_LEMON0.m`` (the first chunk) and ``train_LEMON.m`` (every later
chunk: the same updates with the statistics ``HH`` of the chunks before), ``utils/NormalizeFea.m``;
the chunking of the authors' own ``main_demo.m`` (yxinwang/LEMON-MM2020): chunks of 2,000 pairs,
``floor(n / 2000)`` of them, the last one taking the remainder.

On each chunk LEMON learns, with the variables of earlier chunks fixed, binary codes ``B``, a
real-valued label embedding ``V`` (``V'1 = 0``, ``V'V = n I``), an orthogonal rotation ``R`` and
a label regression ``P`` minimising::

    ||B - V R||^2 + alpha ||B V' - r S||^2 + beta ||L - V P||^2 + gamma ||P||^2,
    S = 2 G G' - 1 1',  G = L with unit-length rows,  r = n_bits,

summed over every chunk seen so far; all cross-chunk terms enter through a few small accumulated
products, so a chunk costs time linear in its own size. The hash functions are ridge regressions
of all codes so far on the raw features, ``W = (X'X + xi I)^-1 X'B``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix


def unit_rows(labels: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, a floor of 1e-14 on the squared norm (``NormalizeFea(L, 1)``)."""
    return labels / np.sqrt(np.maximum((labels**2).sum(axis=1, keepdims=True), 1e-14))


def orthonormal_basis(matrix: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the column space (MATLAB's ``orth``: left singular vectors)."""
    if matrix.size == 0:
        return matrix.reshape(matrix.shape[0], 0)
    left, values, _ = np.linalg.svd(matrix, full_matrices=False)
    tolerance = max(matrix.shape) * np.finfo(float).eps * (values[0] if values.size else 0.0)
    return left[:, values > tolerance]


def chunk_bounds(n_rows: int, chunk_size: int) -> list[tuple[int, int]]:
    """``floor(n / chunk_size)`` consecutive chunks (at least one), the last taking the remainder."""
    n_chunks = max(n_rows // chunk_size, 1)
    starts = [index * chunk_size for index in range(n_chunks)]
    return [(start, starts[i + 1] if i + 1 < n_chunks else n_rows) for i, start in enumerate(starts)]


FEATURE_SUMS = ("xx", "yy", "xb", "yb")


def code_sums(
    labels: np.ndarray, unit: np.ndarray, codes: np.ndarray, embedding: np.ndarray
) -> dict[str, Any]:
    """One chunk's share of the label and code sums (see :class:`StreamStatistics`)."""
    return {
        "vv": embedding.T @ embedding, "vl": embedding.T @ labels, "gb": unit.T @ codes,
        "ob": codes.sum(axis=0, keepdims=True), "bv": codes.T @ embedding, "gv": unit.T @ embedding,
        "ov": embedding.sum(axis=0, keepdims=True), "bb": codes.T @ codes, "gg": unit.T @ unit,
        "g_sum": unit.sum(axis=0, keepdims=True), "label_square": float(np.sum(labels**2)),
    }


@dataclass
class StreamStatistics:
    """Sums over the chunks seen so far: the reference's ``HH`` plus what the objective needs.

    ``vv``, ``vl``, ``gb``, ``ob``, ``bv``, ``gv``, ``ov``, ``xx``, ``yy``, ``xb``, ``yb`` are
    ``HH{1}`` .. ``HH{11}`` (``V'V``, ``V'L``, ``G'B``, ``1'B``, ``B'V``, ``G'V``, ``1'V``,
    ``X'X``, ``Y'Y``, ``X'B``, ``Y'B``); ``bb``, ``gg``, ``g_sum``, ``label_square`` (``B'B``,
    ``G'G``, ``1'G``, ``||L||^2``) and ``n_rows`` only serve the recorded objective.
    """

    sums: dict[str, Any] = field(default_factory=dict)
    n_rows: int = 0

    def get(self, name: str) -> Any:
        """A sum, 0 before the first chunk."""
        return self.sums.get(name, 0.0)

    def with_chunk(
        self, labels: np.ndarray, unit: np.ndarray, codes: np.ndarray, embedding: np.ndarray
    ) -> dict[str, Any]:
        """The label and code sums as they would be with this chunk added."""
        chunk = code_sums(labels, unit, codes, embedding)
        return {name: self.get(name) + value for name, value in chunk.items()}

    def add(self, chunk: dict[str, np.ndarray], codes: np.ndarray, embedding: np.ndarray) -> None:
        """Fold a finished chunk (its rows, final codes and embedding) into the sums."""
        image, text = chunk["image"], chunk["text"]
        self.sums.update(self.with_chunk(chunk["labels"], chunk["unit"], codes, embedding))
        for name, value in zip(
            FEATURE_SUMS, (image.T @ image, text.T @ text, image.T @ codes, text.T @ codes), strict=True
        ):
            self.sums[name] = self.get(name) + value
        self.n_rows += len(codes)


def stream_objective(
    sums: dict[str, Any], n_rows: int, rotation: np.ndarray, regression: np.ndarray,
    weights: tuple[float, float, float],
) -> float:
    """``||B - V R||^2 + alpha ||B V' - r S||^2 + beta (||L - V P||^2 + gamma ||P||^2)`` from sums.

    ``sums`` are over every pair seen so far (this chunk's current variables included); uses
    ``||B V'||^2 = <B'B, V'V>``, ``tr(B'SV) = 2 <G'B, G'V> - (1'B)(1'V)'`` and
    ``||S||^2 = 4 ||G'G||^2 - 4 ||1'G||^2 + n^2``.
    """
    alpha, beta, gamma = weights
    r = rotation.shape[0]
    quantisation = np.trace(sums["bb"]) + np.trace(sums["vv"]) - 2 * np.sum(rotation * sums["bv"].T)
    cross = 2 * np.sum(sums["gb"] * sums["gv"]) - np.sum(sums["ob"] * sums["ov"])
    similarity_square = 4 * np.sum(sums["gg"] ** 2) - 4 * np.sum(sums["g_sum"] ** 2) + float(n_rows) ** 2
    similarity = np.sum(sums["bb"] * sums["vv"]) - 2 * r * cross + r * r * similarity_square
    fit = (sums["label_square"] - 2 * np.sum(regression * sums["vl"])
           + np.sum(regression * (sums["vv"] @ regression)))
    return float(quantisation + alpha * similarity + beta * (fit + gamma * np.sum(regression**2)))


def embedding_step(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``argmax_V tr(Z'V)`` s.t. ``V'1 = 0``, ``V'V = n I`` (the V update of ``train_LEMON.m``).

    With the column-centred ``Zc = U diag(s) W'`` (thin SVD): ``V = sqrt(n) [U, U_] W'``; the
    reference computes the same ``U`` as ``Zc Q diag(l)^-1/2`` from the eigenvectors ``Q`` of
    ``Zc'Zc`` and keeps the directions with ``l = s^2 > 1e-6``. Directions below that are
    completed by ``U_``: Gaussian noise made orthogonal to ``1`` and ``U`` and orthonormalised.
    """
    n_rows, n_bits = target.shape
    centred = target - target.mean(axis=0)
    left, values, right = np.linalg.svd(centred, full_matrices=False)
    kept = values**2 > 1e-6
    basis = left[:, kept]
    missing = n_bits - basis.shape[1]
    if missing:
        noise = rng.standard_normal((n_rows, missing))
        noise -= noise.mean(axis=0)
        noise -= basis @ (basis.T @ noise)
        basis = np.hstack([basis, orthonormal_basis(noise)])
    return np.sqrt(n_rows) * basis @ np.vstack([right[kept], right[~kept]])


def rotation_step(correlation: np.ndarray) -> np.ndarray:
    """``argmin_R ||B - V R||^2`` over orthogonal ``R`` given ``B'V``: ``R = U_A U_B'`` from its SVD."""
    left, _, right = np.linalg.svd(correlation)
    return right.T @ left.T


class LEMON(ShallowMethod):
    """Label embedding online hashing (Wang, Luo & Xu, ACM MM 2020); supervised, online.

    ``fit`` streams the training pairs in their order, in chunks of ``chunk_size`` (the last chunk
    takes the remainder); see the module docstring for the model. The codes of a row ``x`` are
    ``x W >= 0`` on the raw features.
    """

    class Params(MethodParams):
        """LEMON's hyper-parameters; defaults are ``demo_LEMON.m``'s, the chunking ``main_demo.m``'s."""

        alpha: float = Field(
            1e4, gt=0, description="Weight of the label-similarity term ||B V' - r S||^2 (demo alpha=1e4)."
        )
        beta: float = Field(
            1e3, gt=0, description="Weight of the label regression ||L - V P||^2 (demo beta=1e3)."
        )
        gamma: float = Field(
            0.01, gt=0, description="Ridge on the label regression P, relative to beta (demo gamma=0.01)."
        )
        xi: float = Field(
            1e3, gt=0, description="Ridge of the hash functions W = (X'X + xi I)^-1 X'B (demo xi=1e3)."
        )
        n_iter: int = Field(
            5, ge=1, description="Alternating iterations per chunk (max_iter=5 in train_LEMON.m)."
        )
        chunk_size: int = Field(
            2000, ge=2,
            description="Training pairs per streamed chunk; floor(n / chunk_size) chunks, the last one "
            "taking the remainder (main_demo.m chunksize=2000; one chunk when n < 2 chunk_size).",
        )

    tags = MethodTags(supervised=True, deep=False)
    # peak memory: the d x d feature sums of each view (image.T @ image, text.T @ text)
    memory_model = MemoryModel(feature_squares=2.5, dense_copies=2)
    display_name = "LEMON"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: every chunk has more pairs than bits (``V'V = n I``, ``V'1 = 0``)."""
        problems = super().data_problems(params, data)
        chunk_size = int(getattr(params, "chunk_size", 2000))
        if data.n_rows >= 2:
            smallest = min(stop - start for start, stop in chunk_bounds(data.n_rows, chunk_size))
            if params.n_bits >= smallest:
                problems.append(
                    f"n_bits: LEMON's label embedding needs more pairs per chunk than bits; with "
                    f"chunk_size={chunk_size} the smallest chunk has {smallest} pairs, got "
                    f"n_bits={params.n_bits}"
                )
        return problems

    def _fit(
        self, image: Any, text: Any, labels: np.ndarray | None, *,
        run_dir: Path | None, resume: bool, progress: ProgressCallback | None,
    ) -> None:
        assert labels is not None  # the input checks refuse a supervised fit without labels
        images, texts, targets = self.training_rows(image), self.training_rows(text), label_matrix(labels)
        rng = self.rng()
        stats = StreamStatistics()
        objectives: list[list[float]] = []
        bounds = chunk_bounds(len(targets), self.params.chunk_size)
        for index, (start, stop) in enumerate(bounds):
            chunk = {"image": images[start:stop], "text": texts[start:stop], "labels": targets[start:stop]}
            chunk["unit"] = unit_rows(chunk["labels"])
            objectives.append(self._learn_chunk(chunk, stats, rng))
            if progress is not None:
                progress(f"LEMON chunk {index + 1}/{len(bounds)}: objective {objectives[-1][-1]:.6g}")
        self.hash_functions_ = {
            view: LinearHash(FeatureMap(), self._ridge(stats.get(gram), stats.get(cross)))
            for view, gram, cross in (("image", "xx", "xb"), ("text", "yy", "yb"))
        }
        self.report_ = {"chunks": [stop - start for start, stop in bounds], "objective": objectives}

    def _ridge(self, gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
        return np.linalg.solve(gram + self.params.xi * np.eye(len(gram)), cross)

    def _learn_chunk(
        self, chunk: dict[str, np.ndarray], stats: StreamStatistics, rng: np.random.Generator
    ) -> list[float]:
        """The iterations of ``train_LEMON.m`` on one chunk; returns the objective after each."""
        n_rows, r = len(chunk["labels"]), self.n_bits
        codes = np.where(rng.standard_normal((n_rows, r)) > 0, 1.0, -1.0)
        embedding = rng.standard_normal((n_rows, r))
        rotation = np.linalg.svd(rng.standard_normal((r, r)))[0]
        weights = (self.params.alpha, self.params.beta, self.params.gamma)
        objective = []
        for _ in range(self.params.n_iter):
            codes, embedding, rotation, regression = self._iteration(
                chunk, stats, codes, embedding, rotation, rng
            )
            sums = stats.with_chunk(chunk["labels"], chunk["unit"], codes, embedding)
            objective.append(stream_objective(sums, stats.n_rows + n_rows, rotation, regression, weights))
        stats.add(chunk, codes, embedding)
        return objective

    def _iteration(
        self, chunk: dict[str, np.ndarray], stats: StreamStatistics, codes: np.ndarray,
        embedding: np.ndarray, rotation: np.ndarray, rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One round of the P, V, R and B updates of ``train_LEMON.m`` (``train_LEMON0.m`` when empty)."""
        p, labels, unit = self.params, chunk["labels"], chunk["unit"]
        weight = p.alpha * self.n_bits
        regression = np.linalg.solve(
            stats.get("vv") + embedding.T @ embedding + p.gamma * np.eye(self.n_bits),
            stats.get("vl") + embedding.T @ labels,
        )
        target = (codes @ rotation.T + p.beta * labels @ regression.T
                  + 2 * weight * unit @ (stats.get("gb") + unit.T @ codes)
                  - weight * (stats.get("ob") + codes.sum(axis=0, keepdims=True)))
        embedding = embedding_step(target, rng)
        rotation = rotation_step(stats.get("bv") + codes.T @ embedding)
        codes = np.sign(2 * weight * unit @ (stats.get("gv") + unit.T @ embedding)  # 0 stays 0, as in MATLAB
                        - weight * (stats.get("ov") + embedding.sum(axis=0, keepdims=True))
                        + embedding @ rotation)
        return codes, embedding, rotation, regression
