"""SCRATCH: scalable discrete matrix factorisation hashing, ported from the paper and the authors' code.

Paper
    Chuan-Xiang Li, Zhen-Duo Chen, Peng-Fei Zhang, Xin Luo, Liqiang Nie, Wei Zhang and Xin-Shun Xu.
    "SCRATCH: A Scalable Discrete Matrix Factorization Hashing for Cross-Modal Retrieval."
    Proceedings of the 26th ACM International Conference on Multimedia (MM '18), Seoul, 2018,
    pp. 1-9. doi:10.1145/3240508.3240547.

Reference code
    BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``SCRATCH/code/``: ``demo_SCRATCH.m`` (preprocessing,
    hyper-parameters, query and database encoding), ``Kernelize.m`` (RBF features on 500 random
    anchors, bandwidth ``2 * mean squared distance``, centred) and ``train.m`` (the alternating
    optimisation). The port follows them step by step; see ``docs/baselines/scratch.md``.

With the kernel features of the two views as columns ``X`` (d_x, n) and ``Y`` (d_y, n), labels
``L`` (c, n), a latent representation ``V`` (k, n), codes ``B`` in {-1, 1}^(k, n) and an orthogonal
rotation ``R`` (k, k), SCRATCH minimises::

    lambda ||X - Ux V||^2 + (1 - lambda) ||Y - Uy V||^2        collective matrix factorisation
    + alpha ||L - G V||^2                                       label semantic embedding
    + ||B - R V||^2                                             discrete codes from V
    + mu (||V - Wx X||^2 + ||V - Wy Y||^2)                      linear hash functions
    + gamma (||Ux||^2 + ||Uy||^2 + ||G||^2 + ||Wx||^2 + ||Wy||^2 + ||V||^2)

by exact block updates (B by sign, Ux, Uy, G, Wx, Wy and V by ridge solutions, R by orthogonal
Procrustes), so the objective never increases. A query is hashed as ``sign(R Wx phi(x))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix


def ridge_operator(source: np.ndarray, weight: float, gamma: float) -> np.ndarray:
    """``P = weight source' (weight source source' + gamma I)^-1`` of shape (n, rows of source).

    ``target @ P`` is ``argmin_M weight ||target - M source||^2 + gamma ||M||^2`` (columns are
    samples): how ``train.m`` updates ``Ux``, ``Uy``, ``G``, ``Wx`` and ``Wy``.
    """
    gram = weight * (source @ source.T) + gamma * np.eye(len(source))
    return np.linalg.solve(gram, weight * source).T


def ridge_map(target: np.ndarray, source: np.ndarray, weight: float, gamma: float) -> np.ndarray:
    """``argmin_M weight ||target - M source||^2 + gamma ||M||^2`` (see :func:`ridge_operator`)."""
    return target @ ridge_operator(source, weight, gamma)


def signs(values: np.ndarray) -> np.ndarray:
    """{-1, 1} codes of real values; 0 gives 1 (``train.m``: ``B(R*V >= 0) = 1``)."""
    return np.where(values >= 0, 1.0, -1.0)


def procrustes(codes: np.ndarray, latent: np.ndarray) -> np.ndarray:
    """The orthogonal ``R`` minimising ``||codes - R latent||^2``: ``S1 S2'`` of ``svd(codes latent')``."""
    left, _, right_t = np.linalg.svd(codes @ latent.T)
    return left @ right_t


class SCRATCH(ShallowMethod):
    """SCRATCH (Li et al., ACM MM 2018): discrete codes from collective matrix factorisation.

    Both views are centred and mapped on RBF kernels around random training anchors (the demo's
    preprocessing), factorised onto a shared latent ``V`` that also regresses the labels; the
    codes are a rotation of ``V``, binarised, and each view's hash function regresses ``V`` from its
    kernel features. Defaults are the authors' demo settings (``demo_SCRATCH.m``).

    Attributes
    ----------
    hash_functions_ : dict
        ``{"image": LinearHash, "text": LinearHash}`` with projection ``Wx' R'`` (``Wy' R'``).
    report_ : dict
        ``objective``: the full objective (with the ``gamma`` terms) after every iteration;
        ``reference_objective``: the value ``train.m`` computes (without them).
    """

    class Params(MethodParams):
        """SCRATCH's hyper-parameters; defaults from ``demo_SCRATCH.m``."""

        n_iter: int = Field(20, ge=1, le=10_000, description="Alternating iterations (param.iter).")
        lambda_image: float = Field(
            0.5, gt=0.0, lt=1.0,
            description="Weight lambda of the image factorisation; the text one has 1 - lambda (lambdaX).",
        )
        alpha: float = Field(
            500.0, gt=0.0, description="Weight of the label embedding ||L - G V||^2 (alpha)."
        )
        mu: float = Field(
            1000.0, gt=0.0, description="Weight of both hash-function regressions ||V - W X||^2 (Xmu = Ymu)."
        )
        gamma: float = Field(5.0, gt=0.0, description="Ridge weight on every factor and on V (gamma).")
        center: bool = Field(True, description="Centre each view on its training mean before the kernel map.")
        kernel: Literal["rbf", "none"] = Field(
            "rbf", description="'rbf': RBF features on random training anchors (Kernelize.m); 'none': raw."
        )
        n_anchors: int = Field(
            500, ge=1, description="Kernel anchors per view, drawn from the training rows (n_anchor)."
        )

    tags = MethodTags(supervised=True, deep=False)
    # peak memory: the n x n Gram matrix of the latent update, dense copies of the views, the anchor kernels
    memory_model = MemoryModel(row_squares=2, dense_copies=5, row_columns=1000)
    display_name = "SCRATCH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: the kernel anchors are drawn from the training pairs."""
        problems = super().data_problems(params, data)
        assert isinstance(params, SCRATCH.Params)
        if params.kernel == "rbf" and params.n_anchors > data.n_rows:
            problems.append(
                f"n_anchors: {params.n_anchors} kernel anchors are drawn without replacement from "
                f"the training pairs, but there are only {data.n_rows}; lower n_anchors"
            )
        return problems

    def feature_map(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[FeatureMap, np.ndarray]:
        """Centre, RBF-map on anchors and centre again (``demo_SCRATCH.m`` + ``Kernelize.m``)."""
        params = self.params
        return FeatureMap.fit(
            rows, center=params.center, kernel=params.kernel, n_anchors=params.n_anchors,
            bandwidth_scale=2.0, center_kernel=True, rng=rng,
        )

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
        assert labels is not None  # supervised: the input checks refuse a fit without labels
        rng = self.rng()
        image_map, image_features = self.feature_map(self.training_rows(image), rng)
        text_map, text_features = self.feature_map(self.training_rows(text), rng)
        factors, history = self.optimise(image_features.T, text_features.T, label_matrix(labels).T, rng)
        rotation_t = factors["R"].T
        self.hash_functions_ = {
            "image": LinearHash(image_map, factors["Wx"].T @ rotation_t),
            "text": LinearHash(text_map, factors["Wy"].T @ rotation_t),
        }
        self.report_ = history

    def optimise(
        self, X: np.ndarray, Y: np.ndarray, L: np.ndarray, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
        """The alternating optimisation of ``train.m`` on column-sample matrices.

        Returns
        -------
        factors : dict
            ``B, Ux, Uy, G, Wx, Wy, V, R`` after the last iteration.
        history : dict
            ``objective`` and ``reference_objective`` after every iteration.
        """
        k, n = self.n_bits, X.shape[1]
        V = rng.standard_normal((k, n))
        R = np.linalg.svd(rng.standard_normal((k, k)))[0]
        # Wx = V Px with Px = mu X' (mu X X' + gamma I)^-1 fixed: solved once, not every iteration.
        operators = self.hash_operators(X, Y)
        history: dict[str, list[float]] = {"objective": [], "reference_objective": []}
        for _ in range(self.params.n_iter):
            B = signs(R @ V)
            f = {"B": B, "R": R, "V": V, **self.update_factors(V, X, Y, L, operators)}
            V = f["V"] = self.update_latent(f, X, Y, L)
            R = f["R"] = procrustes(B, V)
            fit_terms, ridge_terms = self.objective_terms(f, X, Y, L)
            history["reference_objective"].append(fit_terms)
            history["objective"].append(fit_terms + ridge_terms)
        return f, history

    def hash_operators(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Px, Py)`` with ``Wx = V Px``, ``Wy = V Py`` the hash-function updates of ``train.m``."""
        mu, gamma = self.params.mu, self.params.gamma
        return ridge_operator(X, mu, gamma), ridge_operator(Y, mu, gamma)

    def update_factors(
        self, V: np.ndarray, X: np.ndarray, Y: np.ndarray, L: np.ndarray,
        operators: tuple[np.ndarray, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """``Ux``, ``Uy``, ``G``, ``Wx``, ``Wy``: each block's ridge minimiser for the current ``V``."""
        p = self.params
        return {
            "Ux": ridge_map(X, V, p.lambda_image, p.gamma),
            "Uy": ridge_map(Y, V, 1.0 - p.lambda_image, p.gamma),
            "G": ridge_map(L, V, p.alpha, p.gamma),
            "Wx": V @ operators[0],
            "Wy": V @ operators[1],
        }

    def update_latent(
        self, f: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, L: np.ndarray
    ) -> np.ndarray:
        """The closed-form ``V`` minimising the objective with every other block fixed."""
        p = self.params
        lam, alpha, mu, gamma = p.lambda_image, p.alpha, p.mu, p.gamma
        Ux, Uy, G, R = f["Ux"], f["Uy"], f["G"], f["R"]
        lhs = (
            lam * Ux.T @ Ux + (1.0 - lam) * Uy.T @ Uy + alpha * G.T @ G + R.T @ R
            + (2.0 * mu + gamma) * np.eye(self.n_bits)
        )
        rhs = (
            lam * Ux.T @ X + (1.0 - lam) * Uy.T @ Y + mu * f["Wx"] @ X + mu * f["Wy"] @ Y
            + alpha * G.T @ L + R.T @ f["B"]
        )
        return np.linalg.solve(lhs, rhs)

    def objective_terms(
        self, f: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, L: np.ndarray
    ) -> tuple[float, float]:
        """The fitting terms (``train.m``'s ``J``) and the ``gamma`` ridge terms of the objective."""
        p = self.params
        V = f["V"]

        def sq(matrix: np.ndarray) -> float:
            return float(np.sum(matrix**2))

        fit_terms = (
            p.lambda_image * sq(X - f["Ux"] @ V) + (1.0 - p.lambda_image) * sq(Y - f["Uy"] @ V)
            + p.alpha * sq(L - f["G"] @ V) + sq(f["B"] - f["R"] @ V)
            + p.mu * (sq(V - f["Wx"] @ X) + sq(V - f["Wy"] @ Y))
        )
        ridge_terms = p.gamma * sum(sq(f[name]) for name in ("Ux", "Uy", "G", "Wx", "Wy", "V"))
        return fit_terms, ridge_terms
