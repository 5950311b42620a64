"""CMFH: collective matrix factorisation hashing.

Paper
-----
Guiguang Ding, Yuchen Guo and Jile Zhou. "Collective Matrix Factorization Hashing for Multimodal
Data". In *Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)*,
pages 2075-2082, 2014.

Both views of a training pair are factorised onto one shared latent representation ``Y`` (one row
per pair, ``n_bits`` columns), and each view learns a linear projection onto it. With the rows of
``X1`` (images) and ``X2`` (texts) centred, the port minimises, by alternating closed-form steps::

    sum_t alpha_t * ( ||X_t - Y U_t||^2 + mu ||Y - X_t W_t||^2
                      + gamma (||U_t||^2 + ||W_t||^2 + ||Y||^2) )

over the factor bases ``U_t`` (``n_bits x d_t``), the latent codes ``Y`` and the projections
``W_t`` (``d_t x n_bits``). A row of any view is hashed by ``sign(x_t W_t)``; database and query
alike (the training rows get their codes from the hash function too, not from ``Y``).

Reference code followed (BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``CMFH/code``):
``demo_CMFH.m`` (centring with the training mean, ``alphas = [0.5 0.5]``, ``gamma = 0.01``,
``mu = 100``), ``CMFH_learn.m`` (uniform random start, the update order ``U``, ``Y``, ``W`` and
25 iterations) and ``CMFH_compress1.m`` (codes ``x W > 0`` for database and queries).
The projection step of ``CMFH_learn.m`` evaluates, by MATLAB's left-to-right operator order, to
``W = (mu (mu X'X + gamma I))^-1 X'Y`` -- the minimiser of its sub-problem divided by ``mu^2``;
``projection_step="reference"`` (the default) keeps that, since the reference numbers come from
it, and ``projection_step="paper"`` takes the exact minimiser ``(mu X'X + gamma I)^-1 mu X'Y``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import ProgressCallback

from ._shallow import FeatureMap, LinearHash, ShallowMethod

ProjectionStep = Literal["reference", "paper"]


def solve_right(rhs: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rhs @ inv(matrix)`` (MATLAB's ``rhs / matrix``) without forming the inverse."""
    return np.linalg.solve(matrix.T, rhs.T).T


def update_bases(latent: np.ndarray, views: list[np.ndarray], gamma: float) -> list[np.ndarray]:
    """``U_t = (Y'Y + gamma I)^-1 Y' X_t``: the ridge factor bases of every view given ``Y``."""
    gram = latent.T @ latent + gamma * np.eye(latent.shape[1])
    return [np.linalg.solve(gram, latent.T @ rows) for rows in views]


def update_latent(
    views: list[np.ndarray],
    bases: list[np.ndarray],
    projections: list[np.ndarray],
    weights: tuple[float, float],
    mu: float,
    gamma: float,
) -> np.ndarray:
    """The latent codes ``Y`` minimising the objective with ``U_t`` and ``W_t`` fixed."""
    n_bits = bases[0].shape[0]
    rhs = sum(
        weight * rows @ (basis.T + mu * projection)
        for weight, rows, basis, projection in zip(weights, views, bases, projections, strict=True)
    )
    lhs = sum(
        weight * (basis @ basis.T + (mu + gamma) * np.eye(n_bits))
        for weight, basis in zip(weights, bases, strict=True)
    )
    return solve_right(np.asarray(rhs), np.asarray(lhs))


def update_projection(
    rows: np.ndarray, latent: np.ndarray, mu: float, gamma: float, step: ProjectionStep
) -> np.ndarray:
    """The projection ``W_t`` of one view given ``Y`` (see the module docstring for ``step``)."""
    ridge = mu * rows.T @ rows + gamma * np.eye(rows.shape[1])
    if step == "reference":
        return np.linalg.solve(mu * ridge, rows.T @ latent)
    return np.linalg.solve(ridge, mu * rows.T @ latent)


def objective(
    views: list[np.ndarray],
    latent: np.ndarray,
    bases: list[np.ndarray],
    projections: list[np.ndarray],
    weights: tuple[float, float],
    mu: float,
    gamma: float,
) -> float:
    """The value of the objective in the module docstring."""
    total = 0.0
    for weight, rows, basis, projection in zip(weights, views, bases, projections, strict=True):
        reconstruction = np.sum((rows - latent @ basis) ** 2)
        alignment = np.sum((latent - rows @ projection) ** 2)
        penalty = np.sum(basis**2) + np.sum(projection**2) + np.sum(latent**2)
        total += weight * (reconstruction + mu * alignment + gamma * penalty)
    return float(total)


class CMFH(ShallowMethod):
    """Collective matrix factorisation hashing (Ding, Guo and Zhou, CVPR 2014); unsupervised.

    Labels, when given, are ignored. See the module docstring for the objective and what the port
    follows.
    """

    class Params(MethodParams):
        """CMFH's hyper-parameters; the defaults are those of the authors' ``demo_CMFH.m``."""

        image_weight: float = Field(
            0.5, gt=0, description="alpha_1 (lambda in the paper): weight of the image view's terms."
        )
        text_weight: float = Field(
            0.5, gt=0, description="alpha_2 (1 - lambda in the paper): weight of the text view's terms."
        )
        mu: float = Field(
            100.0, gt=0, description="Weight of the projection terms ||Y - X_t W_t||^2 (paper: mu)."
        )
        gamma: float = Field(0.01, gt=0, description="Ridge weight on U_t, W_t and Y.")
        n_iter: int = Field(
            25, ge=1, le=10_000, description="Alternating iterations (a fixed count, as in CMFH_learn.m)."
        )
        center: bool = Field(True, description="Subtract the training mean of each view (demo_CMFH.m).")
        projection_step: ProjectionStep = Field(
            "reference",
            description=(
                "'reference': W_t as CMFH_learn.m computes it, the exact minimiser divided by mu^2; "
                "'paper': the exact minimiser (mu X'X + gamma I)^-1 mu X'Y."
            ),
        )

    tags = MethodTags(supervised=False, deep=False)
    # peak memory: the d x d ridge system of each view's projection and its factorisation
    memory_model = MemoryModel(feature_squares=2.5, row_squares=0.5, dense_copies=2)
    display_name = "CMFH"

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
        params = self.params
        maps, views = [], []
        for source in (image, text):
            feature_map, rows = FeatureMap.fit(self.training_rows(source), center=params.center)
            maps.append(feature_map)
            views.append(rows)
        projections, history = self._alternate(views)
        self.hash_functions_ = {
            view: LinearHash(feature_map, projection)
            for view, feature_map, projection in zip(("image", "text"), maps, projections, strict=True)
        }
        self.report_ = {"objective": history, "iterations": len(history)}

    def _alternate(self, views: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """The iterations of ``CMFH_learn.m`` from a uniform random start; projections and objectives."""
        params, rng = self.params, self.rng()
        weights = (params.image_weight, params.text_weight)
        latent = rng.random((len(views[0]), self.n_bits))
        projections = [rng.random((rows.shape[1], self.n_bits)) for rows in views]
        history = []
        for _ in range(params.n_iter):
            bases = update_bases(latent, views, params.gamma)
            latent = update_latent(views, bases, projections, weights, params.mu, params.gamma)
            projections = [
                update_projection(rows, latent, params.mu, params.gamma, params.projection_step)
                for rows in views
            ]
            history.append(objective(views, latent, bases, projections, weights, params.mu, params.gamma))
        return projections, history
