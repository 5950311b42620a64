"""LSSH: latent semantic sparse hashing, sparse coding of images and factorisation of texts.

Paper
    Jile Zhou, Guiguang Ding and Yuchen Guo. "Latent Semantic Sparse Hashing for Cross-Modal
    Similarity Search." In *Proceedings of the 37th International ACM SIGIR Conference on Research
    and Development in Information Retrieval (SIGIR '14)*, pages 415-424, 2014.
    doi:10.1145/2600428.2609610.

Reference code followed (BMC-SDNU/Cross-Modal-Hashing-Retrieval, folder ``LSSH/code``):
``demo_LSSH.m`` (centring, the settings ``mu = 0.05``, ``rho = 0.5``, ``lambda = 0.2``, 20 outer
iterations), ``solveLSSH.m`` (PCA of the images to ``n_bits`` dimensions, unit-length samples, 512
atoms, random start, the alternating updates), ``LSSHcoding.m`` (the query and database codes),
``preprocessingData.m``, ``l2ls_learn_basis_dual.m`` / ``fobj_basis_dual.m`` (bases under unit
column norms, solved through the Lagrange dual) and SLEP's ``LeastR.m`` (the sparse coder, with
the options ``solveLSSH.m`` sets: zero start, 30 accelerated-gradient steps, the l1 weight a
ratio of its largest useful value).

The images ``X`` (after PCA) are sparse-coded on a dictionary ``B`` (``X ~ B S``), the texts ``T``
are factorised on a basis ``A`` (``T ~ A Y``) and the latent text factors are tied to the image
codes by ``Y ~ R S``; the alternating minimisation of::

    ||X - B S||^2 + rho' |S|_1 + lambda ||Y - R S||^2 + mu ||T - A Y||^2
    s.t. every column of B, R and A has norm at most 1

gives three hash functions: an image query is sparse-coded on ``B`` and hashed as
``sign(R s)``; a text query is hashed as ``sign((A'A + lambda/mu I)^-1 A' t)``; a pair of both
(the reference's database items) as ``sign((A'A + lambda/mu I)^-1 (lambda/mu R s + A' t))``
(:meth:`LSSH.encode_unified`). ddcmh encodes one view at a time, so ``encode_image`` /
``encode_text`` give the per-view codes for database rows as well.

Deliberate difference: the sparse coder is SLEP's ``LeastR`` algorithm (same start, steps, line
search and l1 weight) run on every sample at once with numpy instead of one MATLAB call per
sample; the basis updates solve the same dual by a projected Newton method instead of
``fmincon``. Both give the reference's solutions (the dual has one optimum) in a fraction of the
time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from pydantic import Field

from ddcmh_core import MethodParams, MethodState, MethodTags
from ddcmh_core.errors import InputError
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import ShallowMethod, dense, iter_row_blocks

SLACK = 1.0 + 1e-12
"""Relative rounding slack of the line-search test (see :func:`_line_search`)."""
STATE_ARRAYS = ("image_mean", "text_mean", "pca", "dictionary", "coupling", "text_basis")


def unit_columns(matrix: np.ndarray) -> np.ndarray:
    """Every column scaled to Euclidean length 1 (``preprocessingData.m``); zero columns stay 0."""
    norms = np.sqrt((matrix**2).sum(axis=0))
    return matrix / np.where(norms > 0, norms, 1.0)


def _column_squares(matrix: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->j", matrix, matrix)


def _proximal_step(
    dictionary: np.ndarray, point: np.ndarray, gradient: np.ndarray,
    weights: np.ndarray, lipschitz: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-thresholded gradient step ``shrink(point - gradient / L, weight / L)`` and its image."""
    step = gradient * (-1.0 / lipschitz)
    step += point
    trial = np.abs(step)
    trial -= weights / lipschitz
    np.maximum(trial, 0.0, out=trial)
    np.copysign(trial, step, out=trial)
    return trial, dictionary @ trial


def _line_search(
    dictionary: np.ndarray, point: np.ndarray, image: np.ndarray, gradient: np.ndarray,
    weights: np.ndarray, lipschitz: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One proximal step per column from ``point``, with LeastR's backtracking on each column's L.

    A column's step is accepted when ``||D (x - s)||^2 <= L ||x - s||^2``; otherwise
    ``L = max(2 L, ||D (x - s)||^2 / ||x - s||^2)`` and the step is retried. Right after such a
    retry the two sides are often equal in exact arithmetic (same support), so the test allows a
    relative rounding slack of 1e-12 instead of leaving the outcome to the last bit. Returns the new codes,
    their images under the dictionary and which columns no longer move (LeastR's ``bFlag``);
    ``lipschitz`` is updated in place.
    """
    codes, mapped = _proximal_step(dictionary, point, gradient, weights, lipschitz)
    moved, curvature = _column_squares(codes - point), _column_squares(mapped - image)
    stalled = moved <= 1e-20
    pending = np.flatnonzero(~stalled & (curvature > moved * lipschitz * SLACK))
    while pending.size:
        lipschitz[pending] = np.maximum(2.0 * lipschitz[pending], curvature[pending] / moved[pending])
        trial, trial_image = _proximal_step(
            dictionary, point[:, pending], gradient[:, pending], weights[pending], lipschitz[pending]
        )
        codes[:, pending], mapped[:, pending] = trial, trial_image
        moved[pending] = _column_squares(trial - point[:, pending])
        curvature[pending] = _column_squares(trial_image - image[:, pending])
        stalled[pending] = moved[pending] <= 1e-20
        steep = curvature[pending] > moved[pending] * lipschitz[pending] * SLACK
        pending = pending[~stalled[pending] & steep]
    return codes, mapped, stalled


def sparse_codes(dictionary: np.ndarray, targets: np.ndarray, ratio: float, n_steps: int) -> np.ndarray:
    """Lasso codes of every column of ``targets``: SLEP's ``LeastR`` as ``solveLSSH.m`` calls it.

    Each column ``y`` gets ``argmin_s 0.5 ||y - D s||^2 + ratio * max|D' y| * |s|_1`` approximated
    by ``n_steps`` accelerated proximal-gradient steps from ``s = 0``, with LeastR's backtracking
    of the step size (``L`` starts at 1, at least doubles) and its early stop when a step no longer
    moves (such a column keeps its code); all columns advance together.

    Parameters
    ----------
    dictionary : ndarray of shape (m, K)
    targets : ndarray of shape (m, n)
    ratio : float
        The l1 weight as a fraction of ``max|D' y|`` (LeastR's ``rFlag = 1``).
    n_steps : int
        Iterations (LeastR's ``maxIter`` with ``tFlag = 5``).

    Returns
    -------
    ndarray of shape (K, n)
    """
    correlations = dictionary.T @ targets
    weights = ratio * np.abs(correlations).max(axis=0, initial=0.0)
    codes = previous = np.zeros((dictionary.shape[1], targets.shape[1]))
    mapped = previous_mapped = np.zeros_like(targets, dtype=np.float64)
    lipschitz, moving = np.ones(targets.shape[1]), np.ones(targets.shape[1], dtype=bool)
    alpha_before, alpha = 0.0, 1.0
    for _ in range(n_steps):
        beta = (alpha_before - 1.0) / alpha
        point = codes - previous
        point *= beta
        point += codes
        image = mapped + beta * (mapped - previous_mapped)
        gradient = dictionary.T @ image
        gradient -= correlations
        new, new_mapped, stalled = _line_search(dictionary, point, image, gradient, weights, lipschitz)
        if not moving.all():
            new[:, ~moving], new_mapped[:, ~moving] = codes[:, ~moving], mapped[:, ~moving]
        previous, previous_mapped, codes, mapped = codes, mapped, new, new_mapped
        moving &= ~stalled
        if not moving.any():
            break
        alpha_before, alpha = alpha, (1.0 + np.sqrt(4.0 * alpha * alpha + 1.0)) / 2.0
    return codes


def _dual_terms(
    gram: np.ndarray, cross: np.ndarray, dual: np.ndarray
) -> tuple[float, np.ndarray, tuple[np.ndarray, bool]]:
    """The dual objective (up to constants) at ``dual``, the basis it implies and the factor used."""
    factor = scipy.linalg.cho_factor(gram + np.diag(dual))
    basis = scipy.linalg.cho_solve(factor, cross.T).T
    return float(np.sum(basis * cross)) + float(dual.sum()), basis, factor


def _newton_direction(
    basis: np.ndarray, factor: tuple[np.ndarray, bool], gradient: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """Newton direction of the dual on the free multipliers (Hessian ``2 (B'B) o (G + diag(dual))^-1``)."""
    inverse = scipy.linalg.cho_solve(factor, np.eye(len(gradient)))
    hessian = 2.0 * (basis.T @ basis) * inverse
    direction = np.zeros_like(gradient)
    block = hessian[np.ix_(free, free)]
    try:  # positive definite (Schur product theorem) unless a column of the basis is 0
        direction[free] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(block), gradient[free])
    except np.linalg.LinAlgError:
        direction[free] = np.linalg.lstsq(block, gradient[free], rcond=None)[0]
    return direction


def norm_bounded_basis(
    targets: np.ndarray, codes: np.ndarray, start: np.ndarray | None = None, *,
    tol: float = 1e-9, max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """``argmin_B ||targets - B codes||^2`` with every column of ``B`` of norm at most 1.

    The problem of ``l2ls_learn_basis_dual.m``, solved on the same Lagrange dual (one multiplier
    per column, ``B = targets codes' (codes codes' + diag(dual))^-1``, minimise
    ``trace(B codes targets') + sum(dual)`` over ``dual >= 0``) by projected Newton steps: a
    multiplier below ``1e-6`` whose gradient pushes it down is set to 0, the others may shrink at
    most tenfold per step (the dual is steep near 0), with an Armijo search along the projected
    path. Atoms no sample uses get a zero column, the limit the reference reaches.

    Parameters
    ----------
    targets : ndarray of shape (m, n)
    codes : ndarray of shape (K, n)
    start : ndarray of shape (K,), optional
        Multipliers to start from (the previous solution: fewer steps, same optimum); default 1.

    Returns
    -------
    basis : ndarray of shape (m, K)
    multipliers : ndarray of shape (K,)
        The optimal dual, to start the next call from.
    """
    gram, cross = codes @ codes.T, targets @ codes.T
    used = np.diag(gram) > 1e-12 * max(float(np.diag(gram).max(initial=0.0)), 1e-300)
    gram, cross = gram[np.ix_(used, used)], cross[:, used]
    gram = gram + 1e-10 * max(float(np.trace(gram)), 1e-300) / max(len(gram), 1) * np.eye(len(gram))
    dual = np.ones(len(gram)) if start is None else start[used].copy()
    value, basis, factor = _dual_terms(gram, cross, dual)
    for _ in range(max_iter):
        gradient = 1.0 - (basis**2).sum(axis=0)
        if np.abs(np.where(dual > 0, gradient, np.minimum(gradient, 0.0))).max(initial=0.0) <= tol:
            break
        fixed = (dual <= 1e-6) & (gradient > 0)
        direction = _newton_direction(basis, factor, gradient, ~fixed)
        step = 1.0
        while step >= 1e-10:
            trial = np.where(fixed, 0.0, np.maximum(dual - step * direction, 0.1 * dual))
            trial_value, trial_basis, trial_factor = _dual_terms(gram, cross, trial)
            if trial_value <= value + 1e-4 * gradient @ (trial - dual) + 1e-13 * abs(value):
                break
            step /= 2.0
        else:  # no decrease left at machine precision
            break
        dual, value, basis, factor = trial, trial_value, trial_basis, trial_factor
    basis /= np.maximum(np.sqrt((basis**2).sum(axis=0)), 1.0)  # feasible even if stopped early
    result, multipliers = np.zeros((targets.shape[0], codes.shape[0])), np.zeros(codes.shape[0])
    result[:, used], multipliers[used] = basis, dual
    return result, multipliers


def latent_text(
    text_basis: np.ndarray, texts: np.ndarray, coupled: np.ndarray | None, ratio: float
) -> np.ndarray:
    """``Y = (A'A + ratio I)^-1 (ratio R S + A' T)``, the minimiser of ``mu||T-AY||^2 + lambda||Y-RS||^2``.

    ``ratio`` is ``lambda / mu``; ``coupled`` (``R S``) may be None (a text alone: ``R S = 0``).
    """
    system = text_basis.T @ text_basis + ratio * np.eye(text_basis.shape[1])
    right = text_basis.T @ texts
    if coupled is not None:
        right = right + ratio * coupled
    return np.linalg.solve(system, right)


def principal_directions(rows: np.ndarray, n_directions: int) -> np.ndarray:
    """The top ``n_directions`` eigenvectors of the covariance of centred ``rows`` (``eigs(cov(X'))``)."""
    covariance = rows.T @ rows / max(len(rows) - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    return vectors[:, np.argsort(values)[::-1][:n_directions]]


class LSSH(ShallowMethod):
    """Latent semantic sparse hashing (Zhou, Ding & Guo, SIGIR 2014); unsupervised.

    See the module docstring for the model. The fitted state is the training means, the image
    PCA, the dictionary ``B`` (``dictionary_``), the coupling ``R`` (``coupling_``) and the text
    basis ``A`` (``text_basis_``); image queries are sparse-coded at encoding time.
    """

    class Params(MethodParams):
        """LSSH's hyper-parameters; defaults are ``demo_LSSH.m`` / ``solveLSSH.m``'s."""

        rho: float = Field(
            0.5, gt=0, le=1,
            description="Sparsity: the l1 weight of every sparse code as a fraction of its largest "
            "useful value max|D'x| (SLEP's rFlag=1; demo rho=0.5, the paper's lambda).",
        )
        lambda_: float = Field(
            0.2, gt=0,
            description="Weight of the coupling ||Y - R S||^2 between text factors and image codes "
            "(demo lambda=0.2).",
        )
        mu: float = Field(
            0.05, gt=0, description="Weight of the text factorisation ||T - A Y||^2 (demo mu=0.05)."
        )
        n_atoms: int = Field(
            512, ge=1, description="Dictionary size K of the image sparse codes (solveLSSH dim1=512)."
        )
        n_iter: int = Field(20, ge=1, description="Outer alternating iterations (demo maxOutIter=20).")
        lasso_steps: int = Field(
            30, ge=1,
            description="Accelerated proximal-gradient steps of every sparse code (LeastR maxIter=30).",
        )
        max_train_samples: int = Field(
            10000, ge=2, description="At most this many training pairs, drawn at random (solveLSSH nSamples)."
        )

    tags = MethodTags(supervised=False, deep=False)
    # peak memory: the n x n matrices of the sparse coding and the matrix factorisation
    memory_model = MemoryModel(row_squares=3.5, dense_copies=4, row_columns=1700)
    display_name = "LSSH"

    image_mean_: np.ndarray
    text_mean_: np.ndarray
    pca_: np.ndarray
    dictionary_: np.ndarray
    coupling_: np.ndarray
    text_basis_: np.ndarray

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: the image PCA keeps ``n_bits`` dimensions of the image features."""
        problems = super().data_problems(params, data)
        width = data.n_features.get("image")
        if width is not None and params.n_bits > width:
            problems.append(
                f"n_bits: LSSH reduces the images by PCA to n_bits dimensions, so n_bits can be at most "
                f"the {width} image features, got {params.n_bits}"
            )
        return problems

    # ------------------------------------------------------------------ features
    def _image_features(self, rows: np.ndarray) -> np.ndarray:
        """Centred, PCA-projected, unit-length images as columns (``preprocessingData.m``)."""
        return unit_columns(((rows - self.image_mean_) @ self.pca_).T)

    def _text_features(self, rows: np.ndarray) -> np.ndarray:
        """Centred unit-length texts as columns (the text projection is the identity)."""
        return unit_columns((rows - self.text_mean_).T)

    def _image_codes(self, features: np.ndarray) -> np.ndarray:
        return sparse_codes(self.dictionary_, features, self.params.rho, self.params.lasso_steps)

    # ------------------------------------------------------------------ fitting
    def _fit(
        self, image: Any, text: Any, labels: np.ndarray | None, *,
        run_dir: Path | None, resume: bool, progress: ProgressCallback | None,
    ) -> None:
        params, rng = self.params, self.rng()
        images, texts = self.training_rows(image), self.training_rows(text)
        chosen = np.arange(len(images))
        if len(images) > params.max_train_samples:
            chosen = rng.permutation(len(images))[: params.max_train_samples]
        self.image_mean_, self.text_mean_ = images.mean(axis=0), texts.mean(axis=0)
        self.pca_ = principal_directions(images[chosen] - images[chosen].mean(axis=0), self.n_bits)
        x, t = self._image_features(images[chosen]), self._text_features(texts[chosen])
        self.text_basis_ = rng.standard_normal((t.shape[0], self.n_bits))
        self.dictionary_ = rng.standard_normal((self.n_bits, params.n_atoms))
        self.coupling_ = rng.standard_normal((self.n_bits, params.n_atoms))
        self.report_ = self._alternate(x, t, progress)

    def _alternate(self, x: np.ndarray, t: np.ndarray, progress: ProgressCallback | None) -> dict[str, Any]:
        """The outer loop of ``solveLSSH.m``; returns the per-iteration terms of the objective."""
        params = self.params
        ratio, root = params.lambda_ / params.mu, np.sqrt(params.lambda_)
        codes = self._image_codes(x)
        duals: dict[str, np.ndarray | None] = {"text_basis": None, "dictionary": None, "coupling": None}
        history: dict[str, list[float]] = {key: [] for key in (
            "objective", "reconstruction", "l1", "coupling", "factorisation", "zero_fraction")}
        for iteration in range(params.n_iter):
            latent = latent_text(self.text_basis_, t, self.coupling_ @ codes, ratio)
            self.text_basis_, duals["text_basis"] = norm_bounded_basis(t, latent, duals["text_basis"])
            stacked = np.vstack([self.dictionary_, root * self.coupling_])
            codes = sparse_codes(stacked, np.vstack([x, root * latent]), params.rho, params.lasso_steps)
            self.dictionary_, duals["dictionary"] = norm_bounded_basis(x, codes, duals["dictionary"])
            self.coupling_, duals["coupling"] = norm_bounded_basis(latent, codes, duals["coupling"])
            terms = {
                "reconstruction": float(((x - self.dictionary_ @ codes) ** 2).sum()),
                "l1": float(np.abs(codes).sum()),
                "coupling": float(((latent - self.coupling_ @ codes) ** 2).sum()),
                "factorisation": float(((t - self.text_basis_ @ latent) ** 2).sum()),
                "zero_fraction": float(np.mean(codes == 0)),
            }
            # solveLSSH.m's printed objective (its weights: rho on |S|_1, lambda, 1 on the factorisation)
            terms["objective"] = (terms["reconstruction"] + params.rho * terms["l1"]
                                  + params.lambda_ * terms["coupling"] + terms["factorisation"])
            for key, value in terms.items():
                history[key].append(value)
            if progress is not None:
                progress(f"LSSH iteration {iteration + 1}/{params.n_iter}: "
                         f"objective {terms['objective']:.4f}")
        return history

    # ------------------------------------------------------------------ encoding
    def _encode(self, view: Any, source: Any, *, batch_size: int) -> np.ndarray:
        blocks = []
        for block in iter_row_blocks(source, batch_size):
            rows = dense(block)
            if view == "image":
                values = self.coupling_ @ self._image_codes(self._image_features(rows))
            else:
                values = latent_text(self.text_basis_, self._text_features(rows), None, self._ratio)
            blocks.append((values.T > 0).astype(np.uint8))
        if not blocks:
            return np.zeros((0, self.n_bits), dtype=np.uint8)
        return np.concatenate(blocks)

    @property
    def _ratio(self) -> float:
        return float(self.params.lambda_ / self.params.mu)

    def encode_unified(self, image: Any, text: Any) -> np.ndarray:
        """One code per (image, text) pair: LSSH's database code (``LSSHcoding.m``'s ``train_hash``).

        ``sign((A'A + lambda/mu I)^-1 (lambda/mu R s + A' t))`` with ``s`` the sparse code of the
        image: the latent text factor both views of an item agree on. The reference ranks both
        query kinds against these codes of the training pairs.

        Returns
        -------
        ndarray of shape (n, n_bits), uint8 {0,1}

        Raises
        ------
        InputError
            Unless both views have one row per pair and the training widths.
        """
        self._require_fitted()
        images, texts = dense(image), dense(text)
        if images.ndim != 2 or texts.ndim != 2 or len(images) != len(texts):
            raise InputError(
                f"{self.label()}: encode_unified: expected two 2-D views with one text row per image "
                f"row, got shapes {images.shape} and {texts.shape}"
            )
        widths = (len(self.image_mean_), len(self.text_mean_))
        if (images.shape[1], texts.shape[1]) != widths:
            raise InputError(
                f"{self.label()}: encode_unified: expected {widths[0]} image and {widths[1]} text "
                f"features per row (as in training), got {images.shape[1]} and {texts.shape[1]}"
            )
        coupled = self.coupling_ @ self._image_codes(self._image_features(images))
        values = latent_text(self.text_basis_, self._text_features(texts), coupled, self._ratio)
        return (values.T > 0).astype(np.uint8)

    # ------------------------------------------------------------------ state
    def get_state(self) -> MethodState:
        """Means, PCA, dictionary, coupling and text basis (image queries are coded from them)."""
        arrays = {name: np.asarray(getattr(self, f"{name}_")) for name in STATE_ARRAYS}
        return MethodState(meta={}, arrays=arrays)

    def set_state(self, state: MethodState, *, device: str = "auto") -> None:
        """Take back what :meth:`get_state` gave."""
        for name in STATE_ARRAYS:
            setattr(self, f"{name}_", np.asarray(state.arrays[name], dtype=np.float64))
