"""KSH: Supervised Hashing with Kernels (Liu, Wang, Ji, Jiang & Chang, CVPR 2012)."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from pydantic import Field
from threadpoolctl import threadpool_limits

from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.kernels import AnchorRBF, check_bits_within_anchors
from ddcmh_core.linalg import fix_signs
from ddcmh_core.validation import FeatureMatrix

MAX_STEP_DOUBLINGS = 50
"""Backtracking tries ``beta * 2^j`` for ``j = 0..50`` before giving up (``OptProjectionFast.m``)."""
IMAGE_REFRESH_EVERY = 25
"""Gradient iterations between exact recomputations of the images ``K a`` of the iterates."""
MAX_JITTER_RETRIES = 6
"""Times the eigenproblem jitter is multiplied by 100 if the right-hand matrix is still singular."""


def similarity_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``{-1, +1}`` pairwise label matrix of KSH, compressed by label set.

    ``S_ij = +1`` when items ``i`` and ``j`` share at least one label, else ``-1``; the diagonal
    is always ``+1`` (an item is its own neighbour, even without labels). Items with identical
    label sets have identical rows of ``S``, so ``S = E S_G E^T`` with ``E`` the item-to-group
    indicator; items without any label each form their own group.

    Parameters
    ----------
    labels : ndarray of shape (l, c)
        {0,1} label matrix (one-hot or multi-hot).

    Returns
    -------
    groups : ndarray of shape (l,), int64
        Group of each item.
    group_similarity : ndarray of shape (G, G), float64
        ``S_G``; ``S[i, j] = S_G[groups[i], groups[j]]``.
    """
    keyed = labels.astype(np.int64)
    unlabelled = np.flatnonzero(keyed.sum(axis=1) == 0)
    # One extra key column keeps items without labels apart from each other.
    extra = np.zeros((keyed.shape[0], 1), dtype=np.int64)
    extra[unlabelled, 0] = np.arange(1, unlabelled.size + 1)
    unique, groups = np.unique(np.hstack([keyed, extra]), axis=0, return_inverse=True)
    label_sets = unique[:, :-1].astype(np.float64)
    group_similarity = np.where(label_sets @ label_sets.T > 0, 1.0, -1.0)
    np.fill_diagonal(group_similarity, 1.0)
    return np.asarray(groups, dtype=np.int64).ravel(), group_similarity


def pairwise_similarity(labels: np.ndarray) -> np.ndarray:
    """The dense ``l x l`` matrix ``S`` of :func:`similarity_groups` (for tests and small data)."""
    groups, group_similarity = similarity_groups(labels)
    return group_similarity[np.ix_(groups, groups)]


class ResidualOperator:
    """The residual ``R = r S - B B^T`` of the greedy KSH fit, applied without forming it.

    ``R v = r E S_G E^T v - B (B^T v)`` costs ``O(l + G^2 + l k)`` instead of ``O(l^2)``
    (``G`` label sets, ``k`` bits chosen so far), which is what makes ``l = 2000`` and 500
    gradient iterations per bit affordable.

    Parameters
    ----------
    labels : ndarray of shape (l, c)
        {0,1} labels of the labelled subset.
    n_bits : int
        ``r``, the scale of the initial residual and the number of bits to come.
    """

    def __init__(self, labels: np.ndarray, n_bits: int) -> None:
        self.groups, group_similarity = similarity_groups(labels)
        self.n_groups = group_similarity.shape[0]
        self.scaled_similarity = n_bits * group_similarity
        self.codes = np.zeros((labels.shape[0], n_bits), order="F")
        self.n_chosen = 0

    def group_sums(self, matrix: np.ndarray) -> np.ndarray:
        """``E^T M``: rows of ``matrix`` summed within each group."""
        sums = np.zeros((self.n_groups, *matrix.shape[1:]))
        np.add.at(sums, self.groups, matrix)
        return sums

    def apply(self, vector: np.ndarray) -> np.ndarray:
        """``R v`` for a vector of length ``l``."""
        sums = np.bincount(self.groups, weights=vector, minlength=self.n_groups)
        result = (self.scaled_similarity @ sums)[self.groups]
        if self.n_chosen:
            chosen = self.codes[:, : self.n_chosen]
            result -= chosen @ (chosen.T @ vector)
        return result

    def quadratic(self, codes: np.ndarray) -> float:
        """``b^T R b``."""
        return float(codes @ self.apply(codes))

    def subtract(self, codes: np.ndarray) -> None:
        """``R <- R - b b^T``."""
        self.codes[:, self.n_chosen] = codes
        self.n_chosen += 1


def spectral_direction(
    left: np.ndarray, right: np.ndarray, relative_jitter: float
) -> tuple[np.ndarray, float]:
    """Top eigenvector of ``left a = lambda (right + eps I) a`` (generalised, symmetric-definite).

    ``left`` is symmetrised first; ``eps = relative_jitter * trace(right) / m`` makes the
    right-hand side definite even when ``right = K^T K`` is singular (fewer labelled items than
    anchors) or badly conditioned. When the Cholesky factorisation still fails, ``eps`` grows by
    a factor 100, at most :data:`MAX_JITTER_RETRIES` times.

    Parameters
    ----------
    left : ndarray of shape (m, m)
        ``K^T R K``.
    right : ndarray of shape (m, m)
        ``K^T K`` (positive semi-definite).
    relative_jitter : float
        Jitter relative to the mean diagonal of ``right``.

    Returns
    -------
    direction : ndarray of shape (m,)
        The eigenvector, with its largest-magnitude entry made positive.
    jitter : float
        The absolute ``eps`` used.
    """
    size = left.shape[0]
    symmetric = (left + left.T) / 2.0
    scale = float(np.trace(right)) / size
    jitter = relative_jitter * (scale if scale > 0 else 1.0)
    for _ in range(MAX_JITTER_RETRIES + 1):
        definite = right.copy()
        definite[np.diag_indices_from(definite)] += jitter
        try:
            _, vectors = scipy.linalg.eigh(symmetric, definite, subset_by_index=[size - 1, size - 1])
        except np.linalg.LinAlgError:
            jitter *= 100.0
            continue
        return fix_signs(vectors)[:, 0], jitter
    raise np.linalg.LinAlgError(
        "KSH: the generalised eigenproblem stayed singular after increasing the jitter"
    )


def _signs(values: np.ndarray) -> np.ndarray:
    """``b = sgn(K a)`` with ties to -1, the reference's (and the encoder's) ``> 0`` rule."""
    return np.where(values > 0, 1.0, -1.0)


Residual = ResidualOperator | np.ndarray
"""A residual given as an operator or as a dense symmetric ``l x l`` matrix."""


def _apply(residual: Residual, vector: np.ndarray) -> np.ndarray:
    if isinstance(residual, ResidualOperator):
        return residual.apply(vector)
    return np.asarray(residual @ vector)


def _smooth_cost(residual: Residual, image: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``g = -phi^T R phi`` with ``phi = tanh(K a / 2)`` from ``image = K a``; with ``phi``, ``R phi``."""
    phi = np.tanh(0.5 * image)  # = 2 / (1 + exp(-x)) - 1, without exp overflow
    residual_phi = _apply(residual, phi)
    return -float(phi @ residual_phi), phi, residual_phi


def refine_projection(
    kernel: np.ndarray,
    residual: Residual,
    start: np.ndarray,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``g(a) = -phi(K a)^T R phi(K a)`` by Nesterov's accelerated gradient.

    Follows ``OptProjectionFast.m``: momentum ``(delta_t - 1) / delta_{t+1}`` with
    ``delta_1 = 0``, ``delta_2 = 1``, ``delta_{t+2} = (1 + sqrt(1 + 4 delta_{t+1}^2)) / 2``; the
    step ``1 / beta`` is found by backtracking on the quadratic upper bound
    ``g(v) + grad^T (z - v) + beta ||z - v||^2 / 2`` with ``beta <- 2^j beta`` (``j <= 50``;
    ``beta`` starts at 1 and never decreases); the search aborts when no step is accepted and
    stops when ``|g_t - g_{t-1}| / l <= tol``. The gradient is
    ``-K^T [(R phi) * (1 - phi^2)]``. Images ``K a`` of the iterates are updated linearly
    (``K z = K v - K grad / beta``), so each backtracking try costs one ``R`` product and no
    product with ``K``; they are recomputed exactly every few iterations.

    Parameters
    ----------
    kernel : ndarray of shape (l, m)
        Centred kernel features of the labelled items.
    residual : ResidualOperator or ndarray of shape (l, l)
        Symmetric residual ``R``.
    start : ndarray of shape (m,)
        Initial projection (the spectral solution).
    max_iter : int
        Iteration limit (500 in ``KSH_demo.m``).
    tol : float
        Stopping tolerance on the change of ``g`` divided by ``l``.

    Returns
    -------
    direction : ndarray of shape (m,)
        The last accepted point.
    costs : ndarray
        ``g`` at the start (twice, as in the reference) and after each accepted step.
    """
    n_labelled = kernel.shape[0]
    columns = np.asfortranarray(kernel)  # fast K @ a; K.T @ v is fast on the C-ordered input
    image_current = columns @ start
    first_cost, _, _ = _smooth_cost(residual, image_current)
    costs = [first_cost, first_cost]
    previous = current = start
    image_previous = image_current
    delta_previous, delta_current = 0.0, 1.0
    beta = 1.0
    for iteration in range(1, max_iter + 1):
        momentum = (delta_previous - 1.0) / delta_current
        probe = current + momentum * (current - previous)
        image_probe = image_current + momentum * (image_current - image_previous)
        probe_cost, phi, residual_phi = _smooth_cost(residual, image_probe)
        gradient = -(kernel.T @ (residual_phi * (1.0 - phi**2)))
        image_gradient = columns @ gradient
        accepted = False
        for doublings in range(MAX_STEP_DOUBLINGS + 1):
            step = beta * 2.0**doublings
            candidate = probe - gradient / step
            image_candidate = image_probe - image_gradient / step
            candidate_cost, _, _ = _smooth_cost(residual, image_candidate)
            move = candidate - probe
            bound = probe_cost + float(gradient @ move) + step * float(move @ move) / 2.0
            if candidate_cost <= bound:
                accepted = True
                beta = step
                previous, current = current, candidate
                image_previous, image_current = image_current, image_candidate
                costs.append(candidate_cost)
                break
        if not accepted:
            break
        if iteration % IMAGE_REFRESH_EVERY == 0:
            image_previous, image_current = columns @ previous, columns @ current
        delta_previous, delta_current = (
            delta_current,
            (1.0 + math.sqrt(1.0 + 4.0 * delta_current**2)) / 2.0,
        )
        if abs(costs[-1] - costs[-2]) / n_labelled <= tol:
            break
    return current, np.asarray(costs)


class KSH(Hasher):
    """Kernel-based Supervised Hashing, greedy bit by bit as in ``KSH_demo.m``.

    Hash functions are ``h_k(x) = sgn(a_k^T kbar(x))`` on centred anchor RBF features (HASHERS.md
    §10): ``D = ||x - a_j||^2`` to ``m`` anchors sampled (seeded) from the training rows,
    ``sigma^2`` = mean of ``D`` over the training set, ``k(x) = exp(-D / (2 sigma^2))`` and
    ``kbar(x) = k(x) - mu`` with ``mu`` the mean of ``k`` over *all* ``n`` training rows.

    On a seeded labelled subset of ``l`` rows, with ``S_ij = +1`` if items ``i`` and ``j`` share a
    label and ``-1`` otherwise, the projections ``A`` minimise
    ``||sgn(Kbar_l A) sgn(Kbar_l A)^T - r S||_F^2`` greedily. The residual starts at
    ``R_0 = r S``; for each bit ``k``:

    1. spectral init: top eigenvector of ``Kbar_l^T R Kbar_l a = lambda (Kbar_l^T Kbar_l + eps I) a``
       (symmetrised, jittered), scaled so that ``a^T Kbar_l^T Kbar_l a = l``;
    2. refinement: Nesterov accelerated gradient with backtracking on
       ``g(a) = -phi(Kbar_l a)^T R phi(Kbar_l a)``, ``phi(x) = tanh(x / 2)``
       (:func:`refine_projection`);
    3. keep whichever of the two gives the larger ``b^T R b`` with ``b = sgn(Kbar_l a)``
       (ties to -1, as in the reference), then ``R <- R - b b^T``.

    KSH has no discrete codes apart from its hash functions: the labelled codes it optimises
    are ``sgn(Kbar_l A)`` themselves, and the other training rows only ever get codes from the
    hash functions. :meth:`_training_codes` therefore returns None and the training codes of
    all ``n`` rows are ``sgn(Kbar A)`` (bit = 1 iff > 0), identical to ``encode(X_train)``.

    Parameters
    ----------
    n_bits : int
        Code length ``r``; at most the number of anchors actually used.
    seed : int
        Seed of the anchor sample and of the labelled subset (drawn in that order).
    n_anchors : int, default 300
        Number of anchors ``m`` (``KSH_demo.m``); clamped to ``n_samples``.
    n_labelled : int, default 2000
        Size ``l`` of the labelled subset (``trn`` in ``KSH_demo.m``). When
        ``n_labelled >= n_samples`` all training rows are used, in their order; otherwise
        ``l`` distinct rows are sampled without replacement. Time grows as ``l^2``.
    max_gd_iter : int, default 500
        Iteration limit of the gradient refinement (``KSH_demo.m``).
    gd_tol : float, default 1e-2
        The refinement stops when ``|g_t - g_{t-1}| / l <= gd_tol`` (``OptProjectionFast.m``).
    eig_jitter : float, default 1e-8
        Ridge ``eps`` added to ``Kbar_l^T Kbar_l`` in the eigenproblem, relative to its mean
        diagonal (not in the reference, whose MATLAB ``eig`` tolerates a singular right-hand
        side; needed for scipy and when ``l < m``).

    Attributes
    ----------
    kernel_ : AnchorRBF
        Anchors, ``sigma`` and the centring vector ``mu``.
    projection_ : ndarray of shape (m, n_bits)
        ``A``.
    labelled_index_ : ndarray of shape (l,)
        Training rows of the labelled subset; in memory after fit, not saved (encoding does
        not need it).
    bit_fit_spectral_ : ndarray of shape (n_bits,)
        ``b^T R_{k-1} b`` of the spectral initialisation of each bit.
    bit_fit_refined_ : ndarray of shape (n_bits,)
        The same for the gradient-refined projection.
    bit_fit_ : ndarray of shape (n_bits,)
        The same for the projection kept (the larger of the two).
    refined_chosen_ : ndarray of shape (n_bits,), uint8
        1 where the refined projection was kept (``flag`` in ``KSH_demo.m``).
    gd_iterations_ : ndarray of shape (n_bits,)
        Accepted gradient steps per bit.
    jitter_ : float
        Largest absolute eigenproblem jitter used.

    Notes
    -----
    * "Share at least one label" for multi-hot labels is the paper's rule (unverified against
      code: the demo is single-label). ``S_ii = +1`` even for an item without labels.
    * The cost is dominated by the refinement: with ``g`` of order ``r l`` the stopping rule
      ``|g_t - g_{t-1}| / l <= 1e-2`` is rarely met, so each bit usually runs all 500
      iterations (as the reference would). ``R`` is never formed: :class:`ResidualOperator`
      applies it through the ``G x G`` similarity of the distinct label sets plus the chosen
      codes, and ``K^T R K`` is kept up to date by rank-one updates. The loop runs with one
      BLAS thread (``threadpoolctl``).
    """

    class Params(HasherParams):
        n_anchors: int = Field(300, ge=2, description="Number of RBF anchors m (KSH_demo.m).")
        n_labelled: int = Field(
            2000, ge=2, description="Size l of the labelled subset (trn in KSH_demo.m)."
        )
        max_gd_iter: int = Field(
            500, ge=0, le=100_000, description="Iteration limit of the gradient refinement."
        )
        gd_tol: float = Field(
            1e-2, ge=0, description="Stop when |g_t - g_(t-1)| / l falls to this value."
        )
        eig_jitter: float = Field(
            1e-8, gt=0, lt=1, description="Relative ridge of K^T K in the eigenproblem."
        )

    params: Params
    requires_labels = True
    training_only_attributes = (*Hasher.training_only_attributes, "labelled_index_")

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        check_bits_within_anchors(self.name, self.n_bits, self.params.n_anchors, n_samples)

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        assert labels is not None  # requires_labels: the base class guarantees it
        params = self.params
        n_samples, n_bits = X.shape[0], self.n_bits
        self.kernel_ = AnchorRBF.fit(X, params.n_anchors, rng, center=True)
        if params.n_labelled >= n_samples:
            labelled = np.arange(n_samples)
        else:
            labelled = np.sort(rng.choice(n_samples, size=params.n_labelled, replace=False))
        kernel = self.kernel_.transform(X[labelled])
        n_labelled, n_anchors = kernel.shape

        residual = ResidualOperator(labels[labelled], n_bits)
        gram = kernel.T @ kernel
        # K^T R K: starts as r (E^T K)^T S_G (E^T K), then loses (K^T b)(K^T b)^T per bit.
        grouped = residual.group_sums(kernel)
        left = grouped.T @ (residual.scaled_similarity @ grouped)

        projection = np.zeros((n_anchors, n_bits))
        fit_spectral = np.zeros(n_bits)
        fit_refined = np.zeros(n_bits)
        chosen = np.zeros(n_bits, dtype=np.uint8)
        iterations = np.zeros(n_bits, dtype=np.int64)
        largest_jitter = 0.0
        # Thousands of small matrix-vector products: one BLAS thread is faster than several
        # (and far faster when the cores are busy with other work).
        with threadpool_limits(limits=1, user_api="blas"):
            for bit in range(n_bits):
                spectral, jitter = spectral_direction(left, gram, params.eig_jitter)
                largest_jitter = max(largest_jitter, jitter)
                norm = float(spectral @ gram @ spectral)
                if norm <= 0:  # K^T K is singular along this direction: use the jittered norm
                    norm = float(spectral @ spectral) * jitter
                spectral = spectral * math.sqrt(n_labelled / norm)
                refined, costs = refine_projection(
                    kernel, residual, spectral, params.max_gd_iter, params.gd_tol
                )
                iterations[bit] = len(costs) - 2
                codes_spectral = _signs(kernel @ spectral)
                codes_refined = _signs(kernel @ refined)
                fit_spectral[bit] = residual.quadratic(codes_spectral)
                fit_refined[bit] = residual.quadratic(codes_refined)
                if fit_refined[bit] > fit_spectral[bit]:
                    chosen[bit] = 1
                    projection[:, bit] = refined
                    codes = codes_refined
                else:
                    projection[:, bit] = spectral
                    codes = codes_spectral
                residual.subtract(codes)
                projected_codes = kernel.T @ codes
                left -= np.outer(projected_codes, projected_codes)

        self.projection_ = projection
        self.labelled_index_ = labelled
        self.bit_fit_spectral_ = fit_spectral
        self.bit_fit_refined_ = fit_refined
        self.bit_fit_ = np.maximum(fit_spectral, fit_refined)
        self.refined_chosen_ = chosen
        self.gd_iterations_ = iterations
        self.jitter_ = largest_jitter

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return self.kernel_.transform(X) @ self.projection_
