"""BATCH: scalable asymmetric discrete cross-modal hashing, ported from the paper and the authors' code.

Paper
    Yongxin Wang, Xin Luo, Liqiang Nie, Jingkuan Song, Wei Zhang and Xin-Shun Xu.
    "BATCH: A Scalable Asymmetric Discrete Cross-Modal Hashing."
    IEEE Transactions on Knowledge and Data Engineering 33(11):3507-3519, 2021 (online 2020).
    doi:10.1109/TKDE.2020.2974825.

Reference code
    BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``BATCH/code/``: ``demo_BATCH.m`` (anchors,
    hyper-parameters, hash functions, query and database encoding), ``codes/BATCH/
    Kernel_Feature_train.m`` and ``Kernel_Feature_eval.m`` (RBF features, bandwidth
    ``2 * mean squared distance``, centred), ``codes/BATCH/train_BATCH.m`` (the discrete
    optimisation) and ``utils/NormalizeFea.m`` (unit-norm label rows). The port follows them step
    by step; see ``docs/baselines/batch.md``.

With the kernel features of the two views as rows ``X`` (n, d_x) and ``Y`` (n, d_y), labels ``L``
(n, c) and their unit-norm rows ``G``, BATCH learns codes ``B`` in {-1, 1}^(n, k) and a real
embedding ``V`` (n, k) by minimising::

    ||k G G' - B V'||^2 + omega ||B - V||^2                         asymmetric label similarity
    + eta1 ||X - V Ux||^2 + eta2 ||Y - V Uy||^2 + eta0 ||L - V Ul||^2   collective factorisation
    (+ delta eta ||U||^2 on each factor)
    s.t.  V' 1 = 0,  V' V = n I

without ever forming the n x n similarity ``G G'``: ``U`` by ridge regression, ``V`` in closed
form through an SVD of a centred n x k matrix (balance and decorrelation kept exactly), ``B`` by
a sign. The hash functions are then ridge regressions from each view's kernel features to ``B``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix

#: Eigenvalues of the centred Z'Z below this count as zero (``train_BATCH.m``: ``diag(Lmd) > 1e-6``).
RANK_TOLERANCE = 1e-6


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm; zero rows stay zero (``NormalizeFea(L, 1)``)."""
    norms = np.maximum(np.sum(matrix**2, axis=1, keepdims=True), 1e-14)
    return matrix / np.sqrt(norms)


def signs(values: np.ndarray) -> np.ndarray:
    """{-1, 1} codes; an exact 0 gives -1 (``train_BATCH.m``: ``final_B(final_B == 0) = -1``)."""
    return np.where(values > 0, 1.0, -1.0)


def ridge(features: np.ndarray, targets: np.ndarray, regularisation: float) -> np.ndarray:
    """``argmin_W ||targets - features W||^2 + regularisation ||W||^2``."""
    gram = features.T @ features + regularisation * np.eye(features.shape[1])
    return np.linalg.solve(gram, features.T @ targets)


def orthogonal_balanced(Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``argmax_V tr(V' Z)`` subject to ``V' 1 = 0`` and ``V' V = n I``.

    With the thin SVD ``J Z = P S Q'`` (``J`` the centring matrix), ``V = sqrt(n) [P P_] [Q Q_]'``;
    where ``JZ`` has rank r < k (squared singular values at most ``RANK_TOLERANCE``), ``Q_`` holds
    the remaining right singular vectors and ``P_`` k - r random directions orthogonal to ``P``
    and to ``1``. ``train_BATCH.m`` reaches ``P`` through the eigenvectors of ``(JZ)'(JZ)``
    instead, which cannot resolve the rank of ``JZ`` (see ``docs/baselines/batch.md``).
    """
    n, k = Z.shape
    centred = Z - Z.mean(axis=0)
    left, singular_values, right_t = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(singular_values**2 > RANK_TOLERANCE))
    left = left[:, :rank]
    if rank < k:
        left = np.hstack([left, complement(left, k - rank, rng)])
    return np.sqrt(n) * left @ right_t


def complement(basis: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random orthonormal columns orthogonal to ``basis`` and to the all-ones vector."""
    n = len(basis)
    fixed = np.hstack([np.ones((n, 1)) / np.sqrt(n), basis])
    draws = rng.standard_normal((n, count))
    for _ in range(2):  # projecting twice keeps the result orthogonal to working precision
        draws -= fixed @ (fixed.T @ draws)
    return np.linalg.qr(draws)[0]


class BATCH(ShallowMethod):
    """BATCH (Wang et al., IEEE TKDE 2020): discrete codes from an asymmetric label embedding.

    Each view is mapped on RBF kernels around random training anchors (500 for images, 1000 for
    texts, as the demo); the codes come from the discrete optimisation above, and each view's hash
    function is a ridge regression from its kernel features to the codes. Defaults are the
    authors' demo settings (``demo_BATCH.m``).

    Attributes
    ----------
    hash_functions_ : dict
        ``{"image": LinearHash, "text": LinearHash}``.
    report_ : dict
        ``objective``: the training objective (constant ``||k G G'||^2`` left out) after every
        iteration.
    """

    class Params(MethodParams):
        """BATCH's hyper-parameters; defaults from ``demo_BATCH.m`` and ``train_BATCH.m``."""

        n_iter: int = Field(6, ge=1, le=10_000, description="Alternating iterations (max_iter).")
        eta_image: float = Field(0.05, ge=0.0, description="Weight of the image factorisation (eta1).")
        eta_text: float = Field(0.05, ge=0.0, description="Weight of the text factorisation (eta2).")
        eta_label: float = Field(0.9, ge=0.0, description="Weight of the label factorisation (eta0).")
        omega: float = Field(0.01, ge=0.0, description="Weight of ||B - V||^2 tying codes to V (omega).")
        delta: float = Field(
            1e-3, gt=0.0, description="Ridge of the factor updates Ux, Uy, Ul (1e-3 in train_BATCH.m)."
        )
        xi: float = Field(0.01, gt=0.0, description="Ridge of the hash-function regressions (xi).")
        center: bool = Field(
            False, description="Centre each view on its training mean before the kernel map (demo: no)."
        )
        kernel: Literal["rbf", "none"] = Field(
            "rbf", description="'rbf': RBF features on random training anchors; 'none': raw features."
        )
        n_image_anchors: int = Field(500, ge=1, description="Image kernel anchors (nXanchors).")
        n_text_anchors: int = Field(1000, ge=1, description="Text kernel anchors (nYanchors).")

    tags = MethodTags(supervised=True, deep=False)
    display_name = "BATCH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: ``V' 1 = 0, V' V = n I`` needs n_bits < n, anchors <= n."""
        problems = super().data_problems(params, data)
        assert isinstance(params, BATCH.Params)
        if params.n_bits >= data.n_rows:
            problems.append(
                f"n_bits: the balanced orthogonal embedding V (V'1 = 0, V'V = nI) needs fewer bits "
                f"than training pairs; got n_bits={params.n_bits} with {data.n_rows} pairs"
            )
        for name in ("n_image_anchors", "n_text_anchors"):
            anchors = getattr(params, name)
            if params.kernel == "rbf" and anchors > data.n_rows:
                problems.append(
                    f"{name}: {anchors} kernel anchors are drawn without replacement from the "
                    f"training pairs, but there are only {data.n_rows}; lower {name}"
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
        assert labels is not None  # supervised: the input checks refuse a fit without labels
        p, rng = self.params, self.rng()
        maps, features = {}, {}
        for view, source, anchors in (
            ("image", image, p.n_image_anchors), ("text", text, p.n_text_anchors)
        ):
            maps[view], features[view] = FeatureMap.fit(
                self.training_rows(source), center=p.center, kernel=p.kernel, n_anchors=anchors,
                bandwidth_scale=2.0, center_kernel=True, rng=rng,
            )
        codes, _, history = self.learn_codes(features["image"], features["text"], label_matrix(labels), rng)
        self.hash_functions_ = {
            view: LinearHash(maps[view], ridge(features[view], codes, p.xi)) for view in maps
        }
        self.report_ = history

    def learn_codes(
        self, X: np.ndarray, Y: np.ndarray, L: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
        """The discrete optimisation of ``train_BATCH.m`` on row-sample matrices.

        Returns
        -------
        codes : ndarray of shape (n, k)
            ``B`` in {-1, 1}.
        embedding : ndarray of shape (n, k)
            ``V`` with ``V' 1 = 0`` and ``V' V = n I``.
        history : dict
            ``objective`` after every iteration.
        """
        G = normalize_rows(L)
        B = signs(rng.standard_normal((len(L), self.n_bits)))
        V = rng.standard_normal((len(L), self.n_bits))
        history: dict[str, list[float]] = {"objective": []}
        for _ in range(self.params.n_iter):
            factors = self.update_factors(V, X, Y, L)
            V = orthogonal_balanced(self.embedding_target(B, factors, X, Y, L), rng)
            B = signs(self.code_target(V, G))
            history["objective"].append(self.objective(B, V, factors, X, Y, L))
        return B, V, history

    def update_factors(
        self, V: np.ndarray, X: np.ndarray, Y: np.ndarray, L: np.ndarray
    ) -> dict[str, np.ndarray]:
        """``Ux``, ``Uy``, ``Ul``: each ``(V'V + delta I)^-1 V' target``, its ridge factor on ``V``."""
        targets = (("Ux", X), ("Uy", Y), ("Ul", L))
        return {name: ridge(V, target, self.params.delta) for name, target in targets}

    def embedding_target(
        self, B: np.ndarray, factors: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, L: np.ndarray
    ) -> np.ndarray:
        """``Z``: on the constraint set the objective is ``const - 2 tr(V'Z)`` in ``V``."""
        p, k, G = self.params, self.n_bits, normalize_rows(L)
        return (
            k * G @ (G.T @ B) + p.omega * B + p.eta_image * X @ factors["Ux"].T
            + p.eta_text * Y @ factors["Uy"].T + p.eta_label * L @ factors["Ul"].T
        )

    def code_target(self, V: np.ndarray, G: np.ndarray) -> np.ndarray:
        """``k G G'V + omega V``: with ``V`` feasible the objective is ``const - 2 tr(B'C)`` in ``B``."""
        return self.n_bits * G @ (G.T @ V) + self.params.omega * V

    def objective(
        self, B: np.ndarray, V: np.ndarray, factors: dict[str, np.ndarray],
        X: np.ndarray, Y: np.ndarray, L: np.ndarray,
    ) -> float:
        """The training objective without its constant ``||k G G'||^2``, never forming ``G G'``."""
        p, k = self.params, self.n_bits
        G = normalize_rows(L)
        similarity = -2.0 * k * float(np.sum((G.T @ B) * (G.T @ V))) + float(np.sum((B.T @ B) * (V.T @ V)))
        total = similarity + p.omega * float(np.sum((B - V) ** 2))
        for name, target, weight in (("Ux", X, p.eta_image), ("Uy", Y, p.eta_text), ("Ul", L, p.eta_label)):
            U = factors[name]
            total += weight * float(np.sum((target - V @ U) ** 2) + p.delta * np.sum(U**2))
        return total
