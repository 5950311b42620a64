"""SMFH: supervised matrix factorisation hashing.

Paper
-----
Jun Tang, Ke Wang and Ling Shao. "Supervised Matrix Factorization Hashing for Cross-Modal
Retrieval". *IEEE Transactions on Image Processing* 25(7):3157-3166, 2016.

Like CMFH, SMFH factorises both views onto one shared latent matrix ``S`` (``n_bits x n``, one
column per training pair) and learns a linear projection per view onto it; in addition a graph
Laplacian ``L`` ties the latent columns of neighbouring items together. ``L`` is the sum of three
unnormalised Laplacians: the symmetric k-nearest-neighbour graph of the images, that of the texts
(both with 0/1 weights), and the label graph ``Y Y'`` (items sharing labels). With the columns of
``X1`` (images, ``d1 x n``) and ``X2`` (texts) centred, the port minimises::

    alpha ||X1 - U1 S||^2 + (1 - alpha) ||X2 - U2 S||^2
      + beta (||S - P1 X1||^2 + ||S - P2 X2||^2) + gamma tr(S L S')
      + lambda (||U1||^2 + ||U2||^2 + ||S||^2 + ||P1||^2 + ||P2||^2)

by alternating closed-form steps: the ridge bases ``U_t``, the latent ``S`` from the Sylvester
equation ``A S + S gamma (L + L') + C = 0``, and the ridge projections ``P_t``; until the
objective decreases by less than ``tolerance``. A row ``x`` of view ``t`` is hashed by
``sign(P_t x - mean(S))``, the training mean of each latent row as threshold.

Reference code followed (BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``SMFH/code``): ``demo_SMFH.m``
(centring with the training mean, ``alpha = 0.5``, ``beta = 100``, ``gamma = 1``,
``lambda = 0.01``, ``k_nn = 5``, the three Laplacians, codes for database and queries alike from
the projections), ``adjacency.m`` (the symmetrised k-nearest-neighbour graph) and ``solveSMFH.m``
(uniform random start, update order ``U``, ``S``, ``P``, stopping when the objective falls by less
than 1). The reference solves the Sylvester equation with ``lyap`` every iteration; since both of
its coefficient matrices are symmetric, the port diagonalises the constant ``n x n`` one once and
solves each iteration's equation exactly in that basis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._graphs import graph_laplacian, nearest_others
from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix


def knn_adjacency(rows: np.ndarray, k_nn: int) -> np.ndarray:
    """0/1 symmetric graph joining every row to its ``k_nn`` nearest other rows (``adjacency.m``)."""
    nearest = nearest_others(rows, k_nn)
    adjacency = np.zeros((len(rows), len(rows)))
    sources = np.repeat(np.arange(len(rows)), k_nn)
    adjacency[sources, nearest.ravel()] = 1.0
    adjacency[nearest.ravel(), sources] = 1.0
    return adjacency


def joint_laplacian(image: np.ndarray, text: np.ndarray, labels: np.ndarray, k_nn: int) -> np.ndarray:
    """``L_image + L_text + L_label`` of ``demo_SMFH.m``: two kNN graphs and the label graph."""
    laplacian = graph_laplacian(knn_adjacency(image, k_nn))
    laplacian += graph_laplacian(knn_adjacency(text, k_nn))
    laplacian += graph_laplacian(labels @ labels.T)
    return laplacian


def solve_sylvester_symmetric(
    left: np.ndarray, right_values: np.ndarray, right_vectors: np.ndarray, constant: np.ndarray
) -> np.ndarray:
    """``X`` with ``left X + X right + constant = 0``, both ``left`` and ``right`` symmetric.

    ``right`` comes diagonalised (``right = V diag(values) V'``); ``left + right`` must have no
    eigenvalue pair summing to 0 (SMFH's are positive definite and positive semi-definite).
    """
    left_values, left_vectors = np.linalg.eigh(left)
    rotated = left_vectors.T @ constant @ right_vectors
    rotated /= -(left_values[:, None] + right_values[None, :])
    return left_vectors @ rotated @ right_vectors.T


def ridge_right(target: np.ndarray, gram: np.ndarray, ridge: float) -> np.ndarray:
    """``target @ inv(gram + ridge I)`` for a symmetric ``gram`` (MATLAB's ``target / (...)``)."""
    return np.linalg.solve(gram + ridge * np.eye(len(gram)), target.T).T


class SMFH(ShallowMethod):
    """Supervised matrix factorisation hashing (Tang, Wang and Shao, IEEE TIP 2016).

    Needs labels (the label graph). See the module docstring for the objective and what the port
    follows.
    """

    class Params(MethodParams):
        """SMFH's hyper-parameters; the defaults are those of the authors' ``demo_SMFH.m``."""

        alpha: float = Field(
            0.5, gt=0, lt=1, description="Weight of the image factorisation; the text one gets 1 - alpha."
        )
        beta: float = Field(100.0, gt=0, description="Weight of the projection terms ||S - P_t X_t||^2.")
        gamma: float = Field(1.0, ge=0, description="Weight of the graph term tr(S L S').")
        lam: float = Field(0.01, gt=0, description="lambda: ridge weight on U_t, S and P_t.")
        k_nn: int = Field(5, ge=1, description="Neighbours per item in each view's kNN graph.")
        tolerance: float = Field(
            1.0, ge=0, description="Stop once the objective falls by less than this (solveSMFH.m: 1)."
        )
        max_iter: int = Field(
            500, ge=1, le=100_000, description="Safeguard on the iterations (the reference has none)."
        )
        center: bool = Field(True, description="Subtract the training mean of each view (demo_SMFH.m).")

    tags = MethodTags(supervised=True, deep=False)
    # peak memory: the n x n label graph Laplacian and view Gram matrices, and the d x d projections' systems
    memory_model = MemoryModel(feature_squares=2.5, row_squares=3.5, dense_copies=2)
    display_name = "SMFH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: every item needs ``k_nn`` other items for its kNN graphs."""
        problems = super().data_problems(params, data)
        k_nn = getattr(params, "k_nn", 5)
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
        assert labels is not None  # the input checks refuse a supervised fit without labels
        maps, views = [], []
        for source in (image, text):
            feature_map, rows = FeatureMap.fit(self.training_rows(source), center=self.params.center)
            maps.append(feature_map)
            views.append(rows)
        laplacian = joint_laplacian(views[0], views[1], label_matrix(labels), self.params.k_nn)
        projections, latent, history = self._alternate([rows.T for rows in views], laplacian)
        threshold = latent.mean(axis=1)
        self.hash_functions_ = {
            view: LinearHash(feature_map, projection.T, threshold)
            for view, feature_map, projection in zip(("image", "text"), maps, projections, strict=True)
        }
        self.report_ = {"objective": history, "iterations": len(history)}

    def _alternate(
        self, views: list[np.ndarray], laplacian: np.ndarray
    ) -> tuple[list[np.ndarray], np.ndarray, list[float]]:
        """The iterations of ``solveSMFH.m`` on column-sample views; projections, ``S``, objectives."""
        p, rng = self.params, self.rng()
        weights = (p.alpha, 1.0 - p.alpha)
        graph_values, graph_vectors = np.linalg.eigh(p.gamma * (laplacian + laplacian.T))
        latent = rng.random((self.n_bits, views[0].shape[1]))
        projections = [rng.random((self.n_bits, rows.shape[0])) for rows in views]
        grams = [rows @ rows.T for rows in views]
        history: list[float] = []
        previous = np.inf
        for _ in range(p.max_iter):
            latent_gram = latent @ latent.T
            bases = [
                ridge_right(rows @ latent.T, latent_gram, p.lam / weight)
                for rows, weight in zip(views, weights, strict=True)
            ]
            left, constant = self._latent_system(views, bases, projections, weights)
            latent = solve_sylvester_symmetric(left, graph_values, graph_vectors, constant)
            projections = [
                ridge_right(latent @ rows.T, gram, p.lam / p.beta)
                for rows, gram in zip(views, grams, strict=True)
            ]
            history.append(self.objective(views, laplacian, bases, latent, projections))
            if previous - history[-1] < p.tolerance:
                break
            previous = history[-1]
        return projections, latent, history

    def _latent_system(
        self,
        views: list[np.ndarray],
        bases: list[np.ndarray],
        projections: list[np.ndarray],
        weights: tuple[float, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``A`` and ``C`` of the ``S`` step's Sylvester equation ``A S + S gamma (L + L') + C = 0``."""
        p = self.params
        left = sum(weight * basis.T @ basis for weight, basis in zip(weights, bases, strict=True))
        left = 2.0 * (np.asarray(left) + (2.0 * p.beta + p.lam) * np.eye(self.n_bits))
        constant = sum(
            weight * basis.T @ rows + p.beta * projection @ rows
            for weight, basis, rows, projection in zip(weights, bases, views, projections, strict=True)
        )
        return left, -2.0 * np.asarray(constant)

    def objective(
        self,
        views: list[np.ndarray],
        laplacian: np.ndarray,
        bases: list[np.ndarray],
        latent: np.ndarray,
        projections: list[np.ndarray],
    ) -> float:
        """The value of the objective in the module docstring (column-sample views)."""
        p = self.params
        total = p.gamma * float(np.sum((latent @ laplacian) * latent))
        total += p.lam * float(np.sum(latent**2))
        weights = (p.alpha, 1.0 - p.alpha)
        for weight, rows, basis, projection in zip(weights, views, bases, projections, strict=True):
            total += weight * float(np.sum((rows - basis @ latent) ** 2))
            total += p.beta * float(np.sum((latent - projection @ rows) ** 2))
            total += p.lam * float(np.sum(basis**2) + np.sum(projection**2))
        return total
