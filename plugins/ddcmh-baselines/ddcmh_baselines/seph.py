"""SePH: semantics-preserving hashing, ported from the paper and the authors' code.

Paper
    Zijia Lin, Guiguang Ding, Mingqing Hu and Jianmin Wang. "Semantics-Preserving Hashing for
    Cross-View Retrieval." Proceedings of the IEEE Conference on Computer Vision and Pattern
    Recognition (CVPR 2015), Boston, 2015, pp. 3864-3872.
    https://openaccess.thecvf.com/content_cvpr_2015/html/Lin_Semantics-Preserving_Hashing_for_2015_CVPR_paper.html

Reference code
    BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``SePH/code/``: ``demo_SePH.m`` (centring, the
    semantic affinities ``P``, k-means kernel anchors, the RBF bandwidth, kernel logistic
    regression per bit and the encoding), ``minKLD.m`` (the code learning: KL divergence plus
    quantisation loss, gradient descent with momentum and per-coordinate gains, as t-SNE's
    ``tsne_p.m``) and ``kernelMatrix.m``. The demo learns the hash functions with kernel logistic
    regression (Mark Schmidt's ``minFunc`` + ``penalizedKernelL2``; SePH_km of the paper); the
    ridge-regression variant ``AdaptiveTrainLinearRidgeRegression_CV.m`` is not called by the demo
    and is not ported. See ``docs/baselines/seph.md``.

SePH turns the labels into a probability distribution ``P`` over training pairs (normalised cosine
similarity of the label vectors) and learns relaxed codes ``H`` (n, k) whose Hamming distances,
through a Student-t kernel ``q_ij ~ 1 / (1 + ||h_i - h_j||^2 / 4)``, give a distribution ``Q``
close to ``P``::

    min_H  KL(P || Q) + alpha / (k n) * || |H| - 1 ||_F^2

The codes are ``sign(H)``. Each bit of each view is then predicted from RBF kernel features on
k-means anchors by an L2-regularised kernel logistic regression, whose sign hashes a query.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.linalg
from pydantic import Field
from scipy.linalg.blas import dsyrk

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix, squared_distances

#: MATLAB's ``realmin``: the floor of every probability in ``minKLD.m``.
REALMIN = float(np.finfo(np.float64).tiny)


# ----------------------------------------------------------------------------- code learning
def semantic_affinity(labels: np.ndarray) -> np.ndarray:
    """The target distribution ``P`` (n, n) of ``demo_SePH.m`` + ``minKLD.m``.

    Label rows are scaled to unit length (a row without labels keeps scale 1), ``P = L L'`` (the
    cosine similarity of label vectors; for single-label data, 1 for the same class), then the
    diagonal is zeroed, ``P`` symmetrised, normalised to sum 1 and floored at ``realmin``.
    """
    labels = label_matrix(labels)
    counts = labels.sum(axis=1)
    scale = np.ones_like(counts)
    scale[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
    scaled = labels * scale[:, None]
    affinity = scaled @ scaled.T
    np.fill_diagonal(affinity, 0.0)
    affinity = 0.5 * (affinity + affinity.T)
    total = affinity.sum()
    if total > 0:
        affinity /= total
    return np.maximum(affinity, REALMIN, out=affinity)


def student_kernel(codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + ||h_i - h_j||^2 / 4)`` for every pair of rows, 0 on the diagonal.

    For {-1, 1} codes ``||h_i - h_j||^2 / 4`` is the Hamming distance: the paper's
    ``q_ij ~ 1 / (1 + hamming(h_i, h_j))`` before normalisation.
    """
    squares = np.einsum("ij,ij->i", codes, codes)
    out = np.matmul(codes, codes.T, out=out)
    out *= -0.5
    out += (0.25 * squares + 1.0)[:, None]
    out += 0.25 * squares[None, :]
    np.reciprocal(out, out=out)
    np.fill_diagonal(out, 0.0)
    return out


def kl_gradient(
    affinity: np.ndarray, kernel: np.ndarray, normaliser: float, codes: np.ndarray, block: int = 128
) -> np.ndarray:
    """Gradient of ``KL(P || Q)`` in the codes, ``Q = kernel / normaliser``.

    ``(diag(M 1) - M) H`` with ``M = (P - Q) .* kernel``: ``minKLD.m``'s "faster implementation",
    exact. Row blocks keep the (n, n) temporaries small.
    """
    gradient = np.empty_like(codes)
    for start in range(0, len(codes), block):
        stop = min(start + block, len(codes))
        rows = kernel[start:stop]
        mismatch = rows * (-1.0 / normaliser)
        mismatch += affinity[start:stop]
        mismatch *= rows
        gradient[start:stop] = mismatch.sum(axis=1)[:, None] * codes[start:stop] - mismatch @ codes
    return gradient


def quantisation_loss(codes: np.ndarray) -> float:
    """``|| |H| - 1 ||_F^2``: how far the relaxed codes are from {-1, 1}."""
    return float(np.sum((np.abs(codes) - 1.0) ** 2))


class KLDescent:
    """``minKLD.m``: gradient descent on ``KL(P || Q) + weight || |H| - 1 ||^2``.

    Momentum, delta-bar-delta gains floored at ``min_gain`` and zero-mean columns after every
    step (t-SNE's optimiser). The objective of every iteration is recorded, ``Q`` taken before
    the step and the quantisation term after it, exactly as the reference does, and the codes of
    the smallest recorded objective are returned.
    """

    def __init__(self, affinity: np.ndarray, weight: float) -> None:
        self.affinity = affinity
        self.weight = weight
        self.entropy = float(np.sum(affinity * np.log(affinity)))
        self.diagonal = float(np.trace(affinity))
        self.off_diagonal = float(affinity.sum()) - self.diagonal
        # Pairs floored at realmin add realmin * log q (about 1e-305) each: nothing in float64.
        # Where they are most pairs (few shared labels), the log is taken on the others only.
        support = np.flatnonzero(affinity > REALMIN)
        self.support = support if support.size < affinity.size // 2 else None
        self.support_weights = affinity.ravel()[support] if self.support is not None else None

    def weighted_log(self, kernel: np.ndarray, block: int = 128) -> float:
        """``sum_(i != j) P_ij log kernel_ij`` (the kernel is 0 on the diagonal)."""
        if self.support is not None:
            return float(np.vdot(self.support_weights, np.log(kernel.ravel()[self.support])))
        total = 0.0
        for start in range(0, len(kernel), block):
            stop = min(start + block, len(kernel))
            logs = kernel[start:stop].copy()
            logs[np.arange(stop - start), np.arange(start, stop)] = 1.0  # log 1 = 0 on the diagonal
            total += float(np.vdot(self.affinity[start:stop], np.log(logs, out=logs)))
        return total

    def objective_and_gradient(self, codes: np.ndarray, kernel: np.ndarray) -> tuple[float, np.ndarray]:
        """``KL(P || Q(codes))`` and the gradient of the full objective at ``codes``."""
        student_kernel(codes, out=kernel)
        normaliser = float(kernel.sum())
        gradient = kl_gradient(self.affinity, kernel, normaliser, codes)
        sum_p_log_q = (
            self.weighted_log(kernel) - np.log(normaliser) * self.off_diagonal
            + np.log(REALMIN) * self.diagonal
        )
        gradient += 2.0 * self.weight * (np.abs(codes) - 1.0) * np.sign(codes)
        return self.entropy - sum_p_log_q, gradient

    def run(
        self, codes: np.ndarray, *, n_iter: int, learning_rate: float, momentum: float, min_gain: float
    ) -> tuple[np.ndarray, list[float], int]:
        """Iterate from ``codes``; returns the best codes, every objective and the best iteration."""
        n = len(codes)
        kernel = np.empty((n, n))
        increments = np.zeros_like(codes)
        gains = np.ones_like(codes)
        best_codes, best_cost, best_iter, history = codes, np.inf, -1, []
        for iteration in range(n_iter):
            divergence, gradient = self.objective_and_gradient(codes, kernel)
            same = np.sign(gradient) == np.sign(increments)
            gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), min_gain)
            increments = momentum * increments - learning_rate * gains * gradient
            codes = codes + increments
            codes -= codes.mean(axis=0)
            cost = divergence + self.weight * quantisation_loss(codes)
            history.append(cost)
            if cost < best_cost:
                best_codes, best_cost, best_iter = codes, cost, iteration
        return best_codes, history, best_iter


# ----------------------------------------------------------------------------- hash functions
def logistic_costs(
    weights: np.ndarray, margins: np.ndarray, gram_weights: np.ndarray, targets: np.ndarray, c: float
) -> np.ndarray:
    """Per bit (column): ``sum_i log(1 + exp(-y_i k_i w)) + c w' K0 w``, from ``K W`` and ``K0 W``."""
    loss = np.logaddexp(0.0, -targets * margins).sum(axis=0)
    return np.asarray(loss + c * np.einsum("ij,ij->j", weights, gram_weights))


def cholesky_factor(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cholesky factor of a symmetric positive semidefinite matrix, with a growing jitter if needed."""
    jitter = 0.0
    scale = float(np.trace(matrix)) / len(matrix) or 1.0
    while True:
        try:
            shifted = matrix + jitter * np.eye(len(matrix)) if jitter else matrix
            return scipy.linalg.cho_factor(shifted, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            jitter = max(10.0 * jitter, 1e-12 * scale)


def preconditioned_cg(
    apply: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rhs: np.ndarray,
    factor: tuple[np.ndarray, bool],
    tolerances: np.ndarray,
    max_iter: int,
) -> tuple[np.ndarray, int]:
    """Solve ``A_j x_j = rhs_j`` for every column j at once by preconditioned conjugate gradients.

    ``apply(V, columns)`` gives ``A_j v_j`` for the listed columns; the preconditioner is one
    Cholesky ``factor`` shared by all columns. Column j stops when its residual norm is at most
    ``tolerances[j]``. Returns the solutions and the iterations run.
    """
    solution = np.zeros_like(rhs)
    residual = rhs.copy()
    preconditioned = scipy.linalg.cho_solve(factor, residual, check_finite=False)
    direction = preconditioned.copy()
    inner = np.einsum("ij,ij->j", residual, preconditioned)
    for iteration in range(max_iter):
        live = np.flatnonzero(np.linalg.norm(residual, axis=0) > tolerances)
        if live.size == 0:
            return solution, iteration
        moved = apply(direction[:, live], live)
        curvature = np.einsum("ij,ij->j", direction[:, live], moved)
        step = inner[live] / np.where(curvature > 0, curvature, np.inf)
        solution[:, live] += step * direction[:, live]
        residual[:, live] -= step * moved
        preconditioned = scipy.linalg.cho_solve(factor, residual[:, live], check_finite=False)
        updated = np.einsum("ij,ij->j", residual[:, live], preconditioned)
        ratio = updated / np.where(inner[live] > 0, inner[live], np.inf)
        direction[:, live] = preconditioned + ratio * direction[:, live]
        inner[live] = updated
    return solution, max_iter


class KernelLogistic:
    """Every bit's kernel logistic regression (``LogisticLoss`` + ``penalizedKernelL2``) at once.

    For each bit (column of ``targets``) minimises ``sum_i log(1 + exp(-y_i K_i w)) + c w' K0 w``,
    strictly convex for a positive definite ``K0``, from ``w = 0`` as ``minFunc`` starts, until the
    largest gradient entry is at most ``tolerance`` (``minFunc``'s ``optTol``). The solver is the
    port's: truncated Newton steps (conjugate gradients preconditioned by the Hessian at ``w = 0``,
    ``K' K / 4 + 2 c K0``, the same for every bit) with Armijo backtracking, all bits batched.
    """

    def __init__(self, features: np.ndarray, gram: np.ndarray, c: float) -> None:
        self.features, self.gram, self.c = features, gram, c
        hessian_at_zero = 0.25 * dsyrk(1.0, np.asfortranarray(features.T)) + 2.0 * c * gram
        self.factor = cholesky_factor(hessian_at_zero)
        self.wrong = np.zeros((len(features), 0))

    def gradient(self, targets: np.ndarray, margins: np.ndarray, gram_weights: np.ndarray) -> np.ndarray:
        """Gradient per column; keeps ``sigmoid(-y K w)`` for :meth:`hessian_times`."""
        self.wrong = 0.5 * (1.0 + np.tanh(-0.5 * targets * margins))  # sigmoid(-y K w)
        return -(self.features.T @ (targets * self.wrong)) + 2.0 * self.c * gram_weights

    def hessian_times(self, bits: np.ndarray, vectors: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``(K' D_j K + 2 c K0) v`` for bits ``j = bits[columns]``, at the last gradient's point."""
        wrong = self.wrong[:, bits[columns]]
        data_term = self.features.T @ (wrong * (1.0 - wrong) * (self.features @ vectors))
        return data_term + 2.0 * self.c * (self.gram @ vectors)

    def fit(
        self, targets: np.ndarray, *, max_iter: int, tolerance: float
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Weights ``W`` (anchors, bits) and what the solver did (Newton steps per bit, CG steps...)."""
        n_anchors, n_bits = self.features.shape[1], targets.shape[1]
        weights, gram_weights = np.zeros((n_anchors, n_bits)), np.zeros((n_anchors, n_bits))
        margins = np.zeros(targets.shape)
        costs = logistic_costs(weights, margins, gram_weights, targets, self.c)
        steps, cg_iterations = np.zeros(n_bits, dtype=int), 0
        for _ in range(max_iter):
            gradient = self.gradient(targets, margins, gram_weights)
            largest = np.abs(gradient).max(axis=0)
            active = np.flatnonzero(largest > tolerance)
            if active.size == 0:
                break
            norms = np.linalg.norm(gradient[:, active], axis=0)
            directions, used = preconditioned_cg(
                partial(self.hessian_times, active),
                gradient[:, active], self.factor, np.minimum(0.1, np.sqrt(norms)) * norms, 2 * n_anchors,
            )
            cg_iterations += used
            moved, moved_gram = self.features @ directions, self.gram @ directions
            lengths = self.armijo(targets[:, active], margins[:, active], weights[:, active],
                                  gram_weights[:, active], directions, moved, moved_gram,
                                  costs[active], np.einsum("ij,ij->j", gradient[:, active], directions))
            weights[:, active] -= lengths * directions
            margins[:, active] -= lengths * moved
            gram_weights[:, active] -= lengths * moved_gram
            costs = logistic_costs(weights, margins, gram_weights, targets, self.c)
            steps[active] += 1
        largest = np.abs(self.gradient(targets, margins, gram_weights)).max(axis=0)
        return weights, {"newton_steps": steps.tolist(), "cg_iterations": cg_iterations,
                         "max_gradient": float(largest.max(initial=0.0))}

    def armijo(
        self, targets: np.ndarray, margins: np.ndarray, weights: np.ndarray, gram_weights: np.ndarray,
        directions: np.ndarray, moved: np.ndarray, moved_gram: np.ndarray, costs: np.ndarray,
        decrease: np.ndarray,
    ) -> np.ndarray:
        """Per column, the first of 1, 1/2, 1/4, ... with ``f(w - t d) <= f(w) - 1e-4 t g'd``."""
        lengths = np.ones(len(costs))
        pending = np.arange(len(costs))
        while pending.size and lengths[pending[0]] > 1e-10:
            t = lengths[pending]
            trial = logistic_costs(
                weights[:, pending] - t * directions[:, pending], margins[:, pending] - t * moved[:, pending],
                gram_weights[:, pending] - t * moved_gram[:, pending], targets[:, pending], self.c,
            )
            failed = trial > costs[pending] - 1e-4 * t * decrease[pending]
            pending = pending[failed]
            lengths[pending] *= 0.5
        return lengths


def kmeans_centres(rows: np.ndarray, n_centres: int, max_iter: int, rng: np.random.Generator) -> np.ndarray:
    """k-means centres from ``n_centres`` random rows (``kmeans(..., 'Start', 'sample')``, Lloyd)."""
    from sklearn.cluster import KMeans

    start = rows[rng.choice(len(rows), size=n_centres, replace=False)]
    model = KMeans(
        n_clusters=n_centres, init=start, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd",
        random_state=int(rng.integers(2**31 - 1)),
    )
    return np.asarray(model.fit(rows).cluster_centers_, dtype=np.float64)


class SePH(ShallowMethod):
    """SePH (Lin et al., CVPR 2015): codes whose Hamming affinities match the label affinities.

    Relaxed codes of the training pairs minimise the KL divergence from the label distribution
    ``P`` to the Student-t distribution ``Q`` of their Hamming distances (``minKLD.m``); each view
    then predicts every bit by kernel logistic regression on RBF features around k-means anchors
    of its centred training rows (the demo's SePH_km). Defaults are ``demo_SePH.m``'s settings.

    Attributes
    ----------
    hash_functions_ : dict
        ``{"image": LinearHash, "text": LinearHash}``: centring, uncentred RBF features on the
        anchors, the logistic weights ``W`` (anchors, bits), no threshold.
    report_ : dict
        ``objective``: KL divergence plus quantisation loss at every iteration of the code
        learning; ``kept_iteration``: the iteration whose codes were kept (the smallest objective);
        ``logistic_regression``: per view, the solver's ``newton_steps`` for every bit, its
        ``cg_iterations`` and ``max_gradient``, the largest final gradient entry over the bits.
    """

    class Params(MethodParams):
        """SePH's hyper-parameters; defaults from ``demo_SePH.m`` and ``minKLD.m``."""

        alpha: float = Field(
            1e-2, ge=0.0,
            description="Weight of the quantisation loss (Model.alpha); minKLD receives alpha / (n_bits n).",
        )
        n_iter: int = Field(100, ge=1, le=100_000, description="Gradient-descent iterations (max_iter).")
        learning_rate: float = Field(500.0, gt=0.0, description="Step size of the descent (epsilon).")
        momentum: float = Field(0.5, ge=0.0, lt=1.0, description="Momentum of the descent (momentum).")
        min_gain: float = Field(0.01, gt=0.0, description="Floor of the per-coordinate gains (min_gain).")
        init_scale: float = Field(
            1e-4, gt=0.0, description="Standard deviation of the random initial codes (.0001 * randn)."
        )
        center: bool = Field(True, description="Centre each view on its training mean first.")
        n_anchors: int = Field(
            500, ge=1, description="Kernel anchors per view (kernelSampleNum), one per k-means cluster."
        )
        anchor_sampling: Literal["kmeans", "random"] = Field(
            "kmeans",
            description="'kmeans': k-means centres of the training rows (the demo); 'random': training rows.",
        )
        kmeans_iter: int = Field(100, ge=1, description="Lloyd iterations of k-means (statset MaxIter).")
        regularisation: float = Field(
            1e-2, gt=0.0, description="Weight C of the kernel penalty C w' K0 w of the logistic regression."
        )
        newton_iter: int = Field(
            50, ge=1, description="Most Newton steps per bit of the logistic regression (port's solver)."
        )
        tolerance: float = Field(
            1e-5, gt=0.0,
            description="Stop a bit's logistic regression once no gradient entry exceeds it (optTol).",
        )

    tags = MethodTags(supervised=True, deep=False)
    # peak memory: the n x n semantic affinity and its normalised copy, the anchors' k-means on dense views
    memory_model = MemoryModel(row_squares=2.5, dense_copies=7, row_columns=1000)
    display_name = "SePH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: one kernel anchor per cluster of the training pairs."""
        problems = super().data_problems(params, data)
        assert isinstance(params, SePH.Params)
        if params.n_anchors > data.n_rows:
            problems.append(
                f"n_anchors: {params.n_anchors} kernel anchors ({params.anchor_sampling}) need at "
                f"least as many training pairs, but there are only {data.n_rows}; lower n_anchors"
            )
        return problems

    def learn_codes(self, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """{-1, 1} training codes ``sign(H)`` of ``minKLD.m`` and what the descent recorded."""
        params = self.params
        affinity = semantic_affinity(labels)
        n = len(affinity)
        descent = KLDescent(affinity, params.alpha / self.n_bits / n)
        start = params.init_scale * rng.standard_normal((n, self.n_bits))
        relaxed, history, kept = descent.run(
            start, n_iter=params.n_iter, learning_rate=params.learning_rate,
            momentum=params.momentum, min_gain=params.min_gain,
        )
        return np.where(relaxed >= 0, 1.0, -1.0), {"objective": history, "kept_iteration": kept}

    def fit_view(
        self, rows: np.ndarray, codes: np.ndarray, rng: np.random.Generator
    ) -> tuple[LinearHash, dict[str, Any]]:
        """One view's hash function: centring, RBF features on anchors, logistic regression per bit."""
        params = self.params
        feature_map = FeatureMap(input_mean=rows.mean(axis=0) if params.center else None)
        shifted = rows - feature_map.input_mean if params.center else rows
        if params.anchor_sampling == "kmeans":
            anchors = kmeans_centres(shifted, params.n_anchors, params.kmeans_iter, rng)
        else:
            anchors = shifted[rng.choice(len(rows), size=params.n_anchors, replace=False)]
        # The mean squared distance over all pairs of training rows (diagonal included), in O(n d).
        centred = rows - rows.mean(axis=0)
        bandwidth = 2.0 * float(np.einsum("ij,ij->", centred, centred)) / len(rows)
        feature_map.anchors, feature_map.bandwidth = anchors, bandwidth if bandwidth > 0 else 1.0
        features = feature_map.transform(rows)
        gram = np.exp(-squared_distances(anchors, anchors) / feature_map.bandwidth)
        solver = KernelLogistic(features, gram, params.regularisation)
        weights, solver_report = solver.fit(codes, max_iter=params.newton_iter, tolerance=params.tolerance)
        return LinearHash(feature_map, weights), solver_report

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
        codes, report = self.learn_codes(labels, rng)
        if progress is not None:
            progress(f"SePH: codes learnt, objective {report['objective'][report['kept_iteration']]:.4g}")
        self.hash_functions_ = {}
        report["logistic_regression"] = {}
        for view, source in (("image", image), ("text", text)):
            function, view_report = self.fit_view(self.training_rows(source), codes, rng)
            self.hash_functions_[view] = function
            report["logistic_regression"][view] = view_report
        self.report_ = report
