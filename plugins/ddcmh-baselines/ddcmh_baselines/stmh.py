"""STMH: semantic topic multimodal hashing.

Paper
-----
Di Wang, Xinbo Gao, Xiumei Wang and Lihuo He. "Semantic Topic Multimodal Hashing for Cross-Media
Retrieval". In *Proceedings of the Twenty-Fourth International Joint Conference on Artificial
Intelligence (IJCAI)*, pages 3890-3896, 2015.

STMH reads each bit as a latent semantic topic. Texts are clustered into ``n_bits`` topics, every
text belonging to ``m = round(n_bits / 2)`` of them: a {0,1} indicator ``G2`` (``n x n_bits``)
with ``m`` ones per row and topic centres ``F2``. Images are factorised robustly (an l2,1 norm,
one unsquared residual per image) into a basis ``F1`` and real latent concepts ``G1``. A
correlation matrix ``R`` maps the image concepts onto the text topics. With ``X`` the image and
``T`` the text columns (no centring), the objective is::

    r sum_i ||x_i - F1 g1_i|| + (1 - r) sum_i sum_j G2_ij ||t_i - f2_j||^2
      + lam ||G2 - G1 R||^2 + gamma (||R||^2 + ||G1||^2 + ||F1||^2 + ||F2||^2)

minimised by alternating: ``F1`` and ``F2`` by ridge regression (the l2,1 term as a reweighted
least squares with one weight ``d_i = r / (2 ||x_i - F1 g1_i||)`` per image), ``R`` by ridge
regression, each row of ``G1`` in closed form, each row of ``G2`` by taking the ``m`` topics of
smallest cost, then the weights ``d_i``. Unseen texts are coded by their ``m`` nearest topic
centres; unseen images by ``x F1 (F1'F1 + gamma / r I)^-1 R``, each bit set where the value
reaches the median of that image's ``n_bits`` values. Both codes thus have about half their bits
set.

Reference code followed (BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``STMH/code``): ``demo_STMH.m``
(raw features, ``r = [0.5 0.5]``, ``lamda = 0.5``, ``gamma = 1e-4``, ``maxIter = 10``,
``thresh = 0.01``, ``numzeros = round(bits / 2)``), ``multi_STMH.m`` (the random start
``G1 ~ N(0, 1)`` and a random ``G2``, the update order ``F``, ``R``, ``G1``, ``G2``, ``D`` and the
stopping rule), ``compress_img.m`` and ``compress_text.m`` / ``multi_STMH_coding.m`` (the
out-of-sample codes). As in ``multi_STMH.m``, the ``F2`` step regularises with ``gamma / r`` (the
image weight) and uses ``G2'G2`` rather than the diagonal ``diag(sum(G2))``; the recorded
objective uses Frobenius norms where the reference's ``norm`` computes spectral ones (it only
enters the stopping rule, which does not fire within the ten default iterations on Wikipedia).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from pydantic import Field

from ddcmh_core import MethodParams, MethodState, MethodTags
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import VIEWS, FeatureMap, LinearHash, ShallowMethod, squared_distances


def ones_per_code(n_bits: int) -> int:
    """``round(n_bits / 2)`` with halves rounded up, as MATLAB's ``round``."""
    return int(np.floor(n_bits / 2 + 0.5))


def top_indicator(scores: np.ndarray, n_ones: int) -> np.ndarray:
    """{0,1} rows with a 1 at the ``n_ones`` largest scores of each row; ties go to the lower index."""
    chosen = np.argsort(-scores, axis=1, kind="stable")[:, :n_ones]
    indicator = np.zeros(scores.shape, dtype=np.uint8)
    np.put_along_axis(indicator, chosen, 1, axis=1)
    return indicator


class MedianHash(LinearHash):
    """STMH's image code: ``x W``, each bit set where it reaches the median of the row's values."""

    def bits(self, rows: Any) -> np.ndarray:
        """{0,1} codes, about half of each row set."""
        values = self.real_values(rows)
        return (values >= np.median(values, axis=1, keepdims=True)).astype(np.uint8)


class NearestTopicsHash(LinearHash):
    """STMH's text code: the ``round(k / 2)`` nearest topic centres.

    The projection is ``2 F2`` and the threshold ``||f2_j||^2``, so the real value
    ``2 t'f2_j - ||f2_j||^2`` is ``||t||^2 - ||t - f2_j||^2``: largest for the nearest centres.
    """

    def bits(self, rows: Any) -> np.ndarray:
        """{0,1} codes with ``round(k / 2)`` ones per row."""
        values = self.real_values(rows)
        return top_indicator(values, ones_per_code(values.shape[1]))


def update_image_concepts(
    left: np.ndarray, weights: np.ndarray, quadratic: np.ndarray, ridge: np.ndarray
) -> np.ndarray:
    """Every row ``g_i = left_i (weights_i quadratic + ridge)^-1`` at once.

    ``quadratic`` is symmetric positive semi-definite and ``ridge`` symmetric positive definite:
    one generalised eigendecomposition ``quadratic V = ridge V diag(mu)``, ``V' ridge V = I``
    diagonalises every row's matrix, ``(w Q + P)^-1 = V diag(1 / (w mu + 1)) V'``.
    """
    values, vectors = scipy.linalg.eigh(quadratic, ridge)
    return ((left @ vectors) / (weights[:, None] * values[None, :] + 1.0)) @ vectors.T


def text_topic_costs(text: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``||t_i - f2_j||^2`` for every text row ``t_i`` and topic centre (column) ``f2_j``."""
    return squared_distances(text, centres.T)


class STMH(ShallowMethod):
    """Semantic topic multimodal hashing (Wang, Gao, Wang and He, IJCAI 2015); unsupervised.

    Labels, when given, are ignored. See the module docstring for the objective and what the port
    follows.
    """

    class Params(MethodParams):
        """STMH's hyper-parameters; the defaults are those of the authors' ``demo_STMH.m``."""

        r: float = Field(
            0.5, gt=0, lt=1, description="Weight of the image factorisation; the text clustering gets 1 - r."
        )
        lam: float = Field(0.5, gt=0, description="lamda: weight of the correlation term ||G2 - G1 R||^2.")
        gamma: float = Field(1e-4, gt=0, description="Ridge weight on R, G1, F1 and F2.")
        max_iter: int = Field(10, ge=1, le=10_000, description="maxIter: most alternating iterations.")
        tolerance: float = Field(
            0.01, ge=0, description="thresh: stop once the objective changes by less than this."
        )

    tags = MethodTags(supervised=False, deep=False)
    display_name = "STMH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: at least 2 bits (one bit would give every item the same code)."""
        problems = super().data_problems(params, data)
        if params.n_bits < 2:
            problems.append(
                f"n_bits: STMH sets round(n_bits / 2) bits of every code, so it needs at least 2 bits, "
                f"got {params.n_bits}"
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
        image_rows, text_rows = self.training_rows(image), self.training_rows(text)
        factors, history = self._alternate(image_rows, text_rows)
        basis, correlation, centres = factors
        ridge = self.params.gamma / self.params.r
        encoder = np.linalg.solve(basis.T @ basis + ridge * np.eye(self.n_bits), basis.T).T @ correlation
        self.hash_functions_ = {
            "image": MedianHash(FeatureMap(), encoder),
            "text": NearestTopicsHash(FeatureMap(), 2.0 * centres, np.sum(centres**2, axis=0)),
        }
        self.report_ = {"objective": history, "iterations": len(history)}

    def _start(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The random start of ``multi_STMH.m``: Gaussian ``G1``, ``m`` random topics per text."""
        rng = self.rng()
        concepts = rng.standard_normal((n_rows, self.n_bits))
        topics = top_indicator(rng.random((n_rows, self.n_bits)), ones_per_code(self.n_bits))
        return concepts, topics.astype(np.float64)

    def _alternate(
        self, image: np.ndarray, text: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[float]]:
        """The iterations of ``multi_STMH.m`` on row-sample views; ``(F1, R, F2)`` and objectives."""
        p, identity = self.params, np.eye(self.n_bits)
        concepts, topics = self._start(len(image))
        weights = np.ones(len(image))
        history: list[float] = []
        for _ in range(p.max_iter):
            weighted = concepts * weights[:, None]
            basis = np.linalg.solve(concepts.T @ weighted + p.gamma / p.r * identity, weighted.T @ image).T
            centres = np.linalg.solve(topics.T @ topics + p.gamma / p.r * identity, topics.T @ text).T
            correlation = np.linalg.solve(
                concepts.T @ concepts + p.gamma / p.lam * identity, concepts.T @ topics
            )
            left = p.r * weights[:, None] * (image @ basis) + p.lam * topics @ correlation.T
            ridge = p.lam * correlation @ correlation.T + p.gamma * identity
            concepts = update_image_concepts(left, weights, p.r * basis.T @ basis, ridge)
            costs = (1.0 - p.r) * text_topic_costs(text, centres) - 2.0 * p.lam * concepts @ correlation
            topics = top_indicator(-costs, ones_per_code(self.n_bits)).astype(np.float64)
            residuals = np.sqrt(np.sum((image - concepts @ basis.T) ** 2, axis=1) + np.finfo(float).eps)
            weights = 0.5 * p.r / residuals
            history.append(self.objective(residuals, text, topics, centres, concepts, correlation, basis))
            if len(history) > 1 and abs(history[-2] - history[-1]) < p.tolerance:
                break
        return (basis, correlation, centres), history

    def objective(
        self,
        residuals: np.ndarray,
        text: np.ndarray,
        topics: np.ndarray,
        centres: np.ndarray,
        concepts: np.ndarray,
        correlation: np.ndarray,
        basis: np.ndarray,
    ) -> float:
        """The objective of the module docstring, from the image residual norms and the factors."""
        p = self.params
        value = p.r * float(residuals.sum())
        value += (1.0 - p.r) * float(np.sum(topics * text_topic_costs(text, centres)))
        value += p.lam * float(np.sum((topics - concepts @ correlation) ** 2))
        penalties = (correlation, concepts, basis, centres)
        return value + p.gamma * float(sum(np.sum(matrix**2) for matrix in penalties))

    def set_state(self, state: MethodState, *, device: str = "auto") -> None:
        """Take back what :meth:`get_state` gave, with STMH's two code rules."""
        kinds = {"image": MedianHash, "text": NearestTopicsHash}
        self.hash_functions_ = {view: kinds[view].from_arrays(state.arrays, view) for view in VIEWS}
