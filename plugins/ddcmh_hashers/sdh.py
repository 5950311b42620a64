"""SDH: Supervised Discrete Hashing (Shen, Shen, Liu & Shen, CVPR 2015), L2 loss."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.linalg
from pydantic import Field
from threadpoolctl import threadpool_limits

from ddcmh_core.hasher import Hasher, HasherParams
from ddcmh_core.kernels import AnchorRBF, check_bits_within_anchors
from ddcmh_core.linalg import ridge_solve, sign_ties_positive
from ddcmh_core.validation import FeatureMatrix


class SDH(Hasher):
    """Supervised Discrete Hashing with the L2 loss, in the order of the official ``SDH.m``.

    Learns codes ``B in {-1,+1}^{n x r}``, a linear classifier ``W`` (``r x c``) and a hash
    function ``P`` (``(m+1) x r``) on anchor RBF features ``Phi`` by minimising (HASHERS.md §9)::

        ||Y - B W||^2 + lambda_g ||W||^2 + nu ||B - Phi P||^2

    Features: rows are L2-normalised, ``m`` anchors are sampled (seeded) from the training rows,
    ``phi(x) = [exp(-||x - a_j||^2 / (2 sigma^2))]_j`` followed by a bias column of ones; no
    centring. Algorithm: ``B0 = sgn(randn)``; G-step ``W = (B^T B + lambda_g I)^-1 B^T Y``;
    F-step ``P = (Phi^T Phi + lambda_f I)^-1 Phi^T B`` (the Cholesky factor is computed once);
    then ``max_iter`` outer iterations of

    * B-step: ``Q = nu Phi P + Y W^T``; starting from the previous ``B`` (the current
      ``SDH.m``; see ``dcc_start``), up to ``max_sweeps`` discrete cyclic coordinate descent
      (DCC) sweeps set, bit by bit, ``B[:, k] = sgn(Q[:, k] - B[:, not k] W[not k] W[k]^T)``
      (ties -> +1). Sweeps stop when ``||B - B_prev||_F < sweep_tol ||B_prev||_F``;
    * G-step, then F-step;
    * stop when ``||B - Phi P||_F < tol ||B||_F`` or ``||P - P_prev||_F < tol ||P_prev||_2``
      (the reference compares with MATLAB's ``norm(P_prev)``, the spectral norm).

    The training codes are the optimised ``B``; :meth:`encode` (and ``fit_encode(...,
    training_codes="encoded")``) uses the hash function ``sgn(P^T phi(x))``, bit = 1 iff > 0.
    With ``nu`` tiny, ``B`` is driven almost entirely by the labels and the hash function only
    regresses onto it, so the two can differ on some training bits.

    Parameters
    ----------
    n_bits : int
        Code length ``r``; at most the number of anchors actually used.
    seed : int
        Seed of the anchor sample and of ``B0``.
    n_anchors : int, default 1000
        Number of anchors ``m`` (``demo_SDH.m``); at most ``n_samples`` are used.
    bandwidth : float or None, default None
        Kernel width ``sigma``. ``None`` (the default) picks a data-driven width,
        ``sigma^2 =`` mean squared training-to-anchor distance (the KSH rule). The reference
        ``demo_SDH.m`` fixes 0.4 "for normalized data" (dense image features after L2
        normalisation); pass ``bandwidth=0.4`` to reproduce it. ddcmh departs from it by default
        because Stage 1 sees sparse text: most item-anchor pairs share no tag (``D = 2``, feature
        ``exp(-6.25)``), so 0.4 gives weak features. On MIRFLICKR-25K text (10,000 training
        items, 64 bits) the text-to-text MAP was 0.63 with 0.4 and 0.69 with ``None`` (random
        codes: 0.56).
    lambda_g : float, default 1.0
        Ridge of the G-step (``gmap.lambda``), the weight of ``||W||^2``.
    nu : float, default 1e-5
        Weight of the hash-function fit ``||B - Phi P||^2`` (``Fmap.nu``).
    lambda_f : float, default 1e-2
        Ridge of the F-step (``Fmap.lambda``). The paper writes plain least squares; the
        official code adds this ridge.
    max_iter : int, default 5
        Outer iterations (``maxItr`` in ``demo_SDH.m``).
    max_sweeps : int, default 10
        DCC sweeps per B-step (hard-coded 10 in ``SDH.m``).
    sweep_tol : float, default 1e-6
        Relative change of ``B`` below which the DCC sweeps stop (``SDH.m``).
    tol : float, default 1e-5
        Tolerance of both outer stopping rules (``SDH.m`` default).
    dcc_start : {"previous", "zeros"}, default "previous"
        "previous" starts each B-step's sweeps from the previous ``B``, as the current official
        ``SDH.m`` does (bd622/DiscretHashing commit bfaafc1, "Update SDH.m", comments the reset
        out): every step then minimises the objective exactly over its block and
        ``objective_`` never increases. "zeros" resets ``B`` to all zeros before every B-step,
        as the first commit of ``SDH.m`` (ae8a00c) did: the first sweep is then a greedy
        construction (bits not yet visited are still 0), the B-step can end at a worse local
        optimum than the previous ``B``, and the objective can go up. On MIRFLICKR-25K text
        "zeros" scores below the current reference (docs/fidelity.md).

    Attributes
    ----------
    kernel_ : AnchorRBF
        The feature map (anchors, width, L2 normalisation, bias column).
    projection_ : ndarray of shape (m + 1, n_bits)
        ``P``: the hash function is ``sgn(phi(x)^T P)``.
    classifier_ : ndarray of shape (n_bits, n_classes)
        ``W`` of the last G-step.
    codes_ : ndarray of shape (n_samples, n_bits), int8
        The optimised ``B`` in ``{-1, +1}``; in memory after fit, not saved (one row per
        training item).
    objective_ : ndarray of shape (n_iter_,)
        ``||Y - BW||^2 + lambda_g ||W||^2 + nu (||B - Phi P||^2 + lambda_f ||P||^2)`` after
        each outer iteration (after its G- and F-steps). The last term is the F-step ridge,
        which the paper's objective omits; with it each of the three steps is an exact block
        minimiser. It is tiny (``nu lambda_f = 1e-7`` by default).
    initial_objective_ : float
        The same objective at ``B0`` with the initial ``W`` and ``P``.
    n_iter_ : int
        Outer iterations run.
    n_sweeps_ : ndarray of shape (n_iter_,)
        DCC sweeps run in each B-step.
    """

    class Params(HasherParams):
        n_anchors: int = Field(1000, ge=2, description="Number of RBF anchors m (demo_SDH.m).")
        bandwidth: float | None = Field(
            None,
            gt=0,
            description=(
                "RBF width sigma for the L2-normalised rows; None = sqrt of the mean squared "
                "training-to-anchor distance (default; demo_SDH.m fixes 0.4 for dense features)."
            ),
        )
        lambda_g: float = Field(1.0, gt=0, description="Ridge of the G-step (gmap.lambda).")
        nu: float = Field(1e-5, ge=0, description="Weight of ||B - Phi P||^2 (Fmap.nu).")
        lambda_f: float = Field(1e-2, gt=0, description="Ridge of the F-step (Fmap.lambda).")
        max_iter: int = Field(5, ge=1, le=1000, description="Outer iterations (maxItr).")
        max_sweeps: int = Field(10, ge=1, le=1000, description="DCC sweeps per B-step.")
        sweep_tol: float = Field(1e-6, ge=0, description="Relative change that ends DCC sweeps.")
        tol: float = Field(1e-5, ge=0, description="Tolerance of the outer stopping rules.")
        dcc_start: Literal["previous", "zeros"] = Field(
            "previous",
            description=(
                "Start of each B-step: 'previous' warm-starts from the last B as the current "
                "SDH.m does (monotone objective); 'zeros' resets B as SDH.m's first commit did."
            ),
        )

    params: Params
    requires_labels = True
    balanced_bits = False  # codes follow the labels: a bit may single out a rare label combination
    training_only_attributes = (*Hasher.training_only_attributes, "codes_")

    def _check_problem(self, n_samples: int, n_features: int) -> None:
        check_bits_within_anchors(self.name, self.n_bits, self.params.n_anchors, n_samples)

    def _fit(self, X: FeatureMatrix, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        assert labels is not None  # requires_labels: the base class guarantees it
        params = self.params
        self.kernel_ = AnchorRBF.fit(
            X, params.n_anchors, rng, bandwidth=params.bandwidth, normalize=True, bias=True
        )
        phi = self.kernel_.transform(X)
        targets = labels.astype(np.float64)
        n_samples, n_bits = X.shape[0], self.n_bits

        # F-step solver: Phi never changes, so factor Phi^T Phi + lambda_f I once.
        gram = phi.T @ phi
        gram[np.diag_indices_from(gram)] += params.lambda_f
        factor = scipy.linalg.cho_factor(gram, lower=False, overwrite_a=True)

        def f_step(codes: np.ndarray) -> np.ndarray:
            return np.asarray(scipy.linalg.cho_solve(factor, phi.T @ codes))

        codes = sign_ties_positive(rng.standard_normal((n_samples, n_bits)))
        classifier = ridge_solve(codes, targets, params.lambda_g)
        projection = f_step(codes)
        fitted = phi @ projection
        self.initial_objective_ = self._objective(targets, codes, classifier, projection, fitted)

        objectives: list[float] = []
        sweeps: list[int] = []
        for _ in range(params.max_iter):
            codes, n_sweeps = self._discrete_cyclic_descent(
                params.nu * fitted + targets @ classifier.T,
                classifier,
                None if params.dcc_start == "zeros" else codes,
            )
            sweeps.append(n_sweeps)
            classifier = ridge_solve(codes, targets, params.lambda_g)
            previous = projection
            projection = f_step(codes)
            fitted = phi @ projection
            objectives.append(self._objective(targets, codes, classifier, projection, fitted))
            if np.linalg.norm(codes - fitted) < params.tol * np.linalg.norm(codes):
                break
            if np.linalg.norm(projection - previous) < params.tol * np.linalg.norm(previous, 2):
                break

        self.projection_ = projection
        self.classifier_ = classifier
        self.codes_ = codes.astype(np.int8)  # exactly +-1; int8 keeps hasher files small
        self.objective_ = np.asarray(objectives)
        self.n_iter_ = len(objectives)
        self.n_sweeps_ = np.asarray(sweeps, dtype=np.int64)

    def _discrete_cyclic_descent(
        self, target: np.ndarray, classifier: np.ndarray, start: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        """B-step: DCC sweeps on ``Q = target`` from ``start`` (all zeros when None).

        Returns the codes and the number of sweeps run.
        """
        n_samples, n_bits = target.shape
        # Column-major so that each B[:, k] update writes contiguous memory.
        codes = (
            np.zeros((n_samples, n_bits), order="F")
            if start is None
            else np.array(start, dtype=np.float64, order="F")
        )
        coupling = classifier @ classifier.T  # (W W^T)[j, k] = W[j] W[k]^T
        sweeps = 0
        # Many small matrix-vector products: one BLAS thread is faster than several (and far
        # faster when the cores are busy with other work).
        with threadpool_limits(limits=1, user_api="blas"):
            while sweeps < self.params.max_sweeps:
                sweeps += 1
                previous = codes.copy(order="F")
                for bit in range(n_bits):
                    weights = coupling[:, bit].copy()
                    weights[bit] = 0.0  # B[:, not k] W[not k] W[k]^T leaves bit k out
                    codes[:, bit] = sign_ties_positive(target[:, bit] - codes @ weights)
                change = np.linalg.norm(codes - previous)
                if change < self.params.sweep_tol * np.linalg.norm(previous):
                    break
        return np.ascontiguousarray(codes), sweeps

    def _objective(
        self,
        targets: np.ndarray,
        codes: np.ndarray,
        classifier: np.ndarray,
        projection: np.ndarray,
        fitted: np.ndarray,
    ) -> float:
        """The objective that the G-, F- and B-steps minimise (see ``objective_``)."""
        params = self.params
        residual = targets - codes @ classifier
        return float(
            np.sum(residual**2)
            + params.lambda_g * np.sum(classifier**2)
            + params.nu * (np.sum((codes - fitted) ** 2) + params.lambda_f * np.sum(projection**2))
        )

    def _training_codes(self) -> np.ndarray:
        return self.codes_

    def _project(self, X: FeatureMatrix) -> np.ndarray:
        return self.kernel_.transform(X) @ self.projection_
