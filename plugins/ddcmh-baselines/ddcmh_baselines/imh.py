"""IMH: inter-media hashing.

Paper
-----
Jingkuan Song, Yang Yang, Yi Yang, Zi Huang and Heng Tao Shen. "Inter-Media Hashing for
Large-Scale Retrieval from Heterogeneous Data Sources". In *Proceedings of the 2013 ACM SIGMOD
International Conference on Management of Data (SIGMOD)*, pages 785-796, 2013.
doi:10.1145/2463676.2465274

IMH learns one real embedding ``F_t`` (``n x n_bits``) of the training items per view that is
smooth on the view's nearest-neighbour graph (intra-media consistency), close to the embedding of
the paired item of the other view (inter-media consistency, weight ``u``), and reachable by a
ridge-regularised linear map ``W_t`` of the view's features. Eliminating ``W_t`` turns the ridge
term into ``tr(F_t' A_t F_t)`` with ``A_t = I - X_t (X_t'X_t + beta I)^-1 X_t'``; with every
training item paired, the objective::

    sum_t tr(F_t' (A_t + lambda L_t) F_t) + u ||F_1 - F_2||^2     s.t. F_1'F_1 = I

has ``F_2 = u (A_2 + lambda L_2 + u I)^-1 F_1`` and ``F_1`` = the eigenvectors of the ``n_bits``
smallest eigenvalues of ``A_1 + lambda L_1 + K (I + K / u)^-1`` with ``K = A_2 + lambda L_2``.
Then ``W_t = (X_t'X_t + beta I)^-1 X_t' F_t`` and a bit is set where ``x W_t`` exceeds the median
of that bit over the training items.

Reference code followed (BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``IMH/code``): ``demo_IMH.m``
(raw features, ``beta = 1``, ``lambda = 1``, ``k = 1`` neighbour), ``IMH_learn.m`` (``U = 1e10 I``,
the matrices ``A_t``, ``C2`` and ``D``, the eigenvectors of the smallest eigenvalues, ``W_t``),
``Laplacian_GK.m`` (0/1 kNN graph averaged with its transpose, unnormalised Laplacian) and
``IMH_compress.m`` / ``IMH_compress1.m`` (median thresholds). ``IMH_learn.m`` forms
``D = A1 + C2'A2 C2 + (I - C2)'U(I - C2) + lambda L1 + lambda C2'L2 C2`` with
``C2 = (K + U)^-1 U`` from several ``n x n`` products; since ``C2`` is a function of the symmetric
``K``, that sum equals ``A1 + lambda L1 + K (I + K/u)^-1`` exactly, which the port computes with one
Cholesky factorisation. The reference thresholds every encoded batch at that batch's own median;
the port uses the training median (see :class:`IMH`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._graphs import graph_laplacian, nearest_others
from ._shallow import FeatureMap, LinearHash, ShallowMethod


def averaged_knn_laplacian(rows: np.ndarray, k_nn: int) -> np.ndarray:
    """Laplacian of the 0/1 kNN graph averaged with its transpose (``Laplacian_GK.m``)."""
    adjacency = np.zeros((len(rows), len(rows)))
    adjacency[np.repeat(np.arange(len(rows)), k_nn), nearest_others(rows, k_nn).ravel()] = 1.0
    return graph_laplacian((adjacency + adjacency.T) / 2.0)


def ridge_residual_operator(rows: np.ndarray, beta: float) -> np.ndarray:
    """``A = I - X (X'X + beta I)^-1 X'``: ``min_W ||X W - F||^2 + beta ||W||^2 = tr(F' A F)``."""
    gram = rows.T @ rows + beta * np.eye(rows.shape[1])
    return np.eye(len(rows)) - rows @ np.linalg.solve(gram, rows.T)


def ridge_projection(rows: np.ndarray, targets: np.ndarray, beta: float) -> np.ndarray:
    """``W = (X'X + beta I)^-1 X' F``."""
    return np.linalg.solve(rows.T @ rows + beta * np.eye(rows.shape[1]), rows.T @ targets)


def smallest_eigenvectors(matrix: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of the ``count`` smallest eigenvalues of a symmetric matrix."""
    symmetric = (matrix + matrix.T) / 2.0
    return scipy.linalg.eigh(symmetric, subset_by_index=[0, count - 1])


class IMH(ShallowMethod):
    """Inter-media hashing (Song, Yang, Yang, Huang and Shen, SIGMOD 2013); unsupervised.

    Labels, when given, are ignored. Deterministic: ``seed`` changes nothing.

    Each bit's threshold is the median of ``x W_t`` over the training items (strictly above it
    sets the bit, as the reference's ``>``). The reference instead thresholds every encoded batch
    at the median of that batch, so that an item's code depends on the other items encoded with
    it; on the training items (the benchmark's database) both rules give the same codes.
    """

    class Params(MethodParams):
        """IMH's hyper-parameters; the defaults are those of the authors' ``demo_IMH.m``."""

        beta: float = Field(1.0, gt=0, description="Ridge weight of the linear hash functions W_t.")
        lam: float = Field(1.0, ge=0, description="lambda: weight of the intra-media graph terms.")
        k_nn: int = Field(1, ge=1, description="Neighbours per item in each view's kNN graph (demo: k = 1).")
        pairing_weight: float = Field(
            1e10, gt=0, description="u: weight of the inter-media term ||F_1 - F_2||^2 (IMH_learn.m: 1e10)."
        )

    tags = MethodTags(supervised=False, deep=False)
    # peak memory: the n x n inter-media graph and ridge projector, and each view's d x d Gram matrix
    memory_model = MemoryModel(feature_squares=2.5, row_squares=7, dense_copies=2)
    display_name = "IMH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: one eigenvector per bit and ``k_nn`` neighbours per item."""
        problems = super().data_problems(params, data)
        if params.n_bits > data.n_rows:
            problems.append(
                f"n_bits: IMH takes one eigenvector of an n x n matrix per bit, so at most "
                f"{data.n_rows} bits for {data.n_rows} training pairs, got {params.n_bits}"
            )
        k_nn = getattr(params, "k_nn", 1)
        if data.n_rows <= k_nn:
            problems.append(
                f"k_nn: the kNN graphs need more than k_nn = {k_nn} training pairs, got {data.n_rows}"
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
        progress: ProgressCallback | None,
    ) -> None:
        views = [self.training_rows(image), self.training_rows(text)]
        embeddings, eigenvalues = self.embeddings(views)
        functions = {}
        for view, rows, embedding in zip(("image", "text"), views, embeddings, strict=True):
            projection = ridge_projection(rows, embedding, self.params.beta)
            median = np.median(rows @ projection, axis=0)
            # bits = values - threshold >= 0; the next float above the median makes that "> median"
            functions[view] = LinearHash(FeatureMap(), projection, np.nextafter(median, np.inf))
        self.hash_functions_ = functions
        self.report_ = {"eigenvalues": eigenvalues.tolist()}

    def embeddings(self, views: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """``[F_1, F_2]`` of the training items and the ``n_bits`` smallest eigenvalues."""
        p = self.params
        coupled = ridge_residual_operator(views[1], p.beta) + p.lam * averaged_knn_laplacian(views[1], p.k_nn)
        factor = scipy.linalg.cho_factor(np.eye(len(coupled)) + coupled / p.pairing_weight)
        system = ridge_residual_operator(views[0], p.beta) + p.lam * averaged_knn_laplacian(views[0], p.k_nn)
        system += scipy.linalg.cho_solve(factor, coupled)
        eigenvalues, image_embedding = smallest_eigenvectors(system, self.n_bits)
        text_embedding = scipy.linalg.cho_solve(factor, image_embedding)
        return [image_embedding, text_embedding], eigenvalues
