"""DLFH: discrete latent factor model hashing, ported from the paper and the authors' code.

Paper
    Qing-Yuan Jiang and Wu-Jun Li. "Discrete Latent Factor Model for Cross-Modal Hashing."
    IEEE Transactions on Image Processing, 28(7):3490-3501, 2019. arXiv:1707.08322.

Reference code
    BMC-SDNU/Cross-Modal-Hashing-Retrieval, ``DLFH/code/``: ``train.sh`` runs ``demo_DLFH.m``
    (the hyper-parameters: 30 iterations, ``lambda`` 8, ``gamma`` 1e-2, as many sampled columns as
    bits), which calls ``DLFH_algo.m`` (the linear hash functions by ridge regression on the raw
    features, codes ``X W > 0``) and ``DLFH.m`` (the discrete latent factor learning with
    column sampling). This is the linear variant DLFH; the kernel variant KDLFH
    (``KDLFH_demo.m``, ``KDLFH_algo.m``) is not what the demo runs and is not ported. See
    ``docs/baselines/dlfh.md``.

With ``S_ij = 1`` when training items i and j share a label (0 otherwise), image codes ``U`` and
text codes ``V`` in {-1, 1}^(n, c), DLFH maximises the log-likelihood of ``S`` under
``P(S_ij = 1) = sigmoid(Theta_ij)``, ``Theta = lambda / c U V'``::

    max_{U, V}  sum_ij  S_ij Theta_ij - log(1 + exp(Theta_ij))

one code column at a time, each update the exact maximiser of a quadratic lower bound of the
log-likelihood (so it never decreases), on ``m`` columns of ``S`` sampled afresh every iteration.
Each view's hash function is then a ridge regression from its features to its codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape, ProgressCallback

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix

#: The smallest positive double: ``x - STRICT >= 0`` holds exactly when ``x > 0``, so a
#: :class:`LinearHash` with this threshold gives ``DLFH_algo.m``'s strict ``X W > 0`` bits.
STRICT = float(np.nextafter(0.0, 1.0))


def sigmoid(values: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-values))`` without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def log_likelihood(similarity: np.ndarray, theta: np.ndarray) -> float:
    """``sum_ij S_ij Theta_ij - log(1 + exp(Theta_ij))``: the log-likelihood DLFH maximises."""
    return float(np.sum(similarity * theta - np.logaddexp(0.0, theta)))


def update_codes(
    codes: np.ndarray, partners: np.ndarray, similarity: np.ndarray, scale: float
) -> tuple[np.ndarray, float, float]:
    """``updateColumnU`` / ``updateColumnV`` of ``DLFH.m``: every column of ``codes`` in turn.

    Parameters
    ----------
    codes : ndarray of shape (n, c)
        The {-1, 1} codes being updated (``U``, or ``V`` for the text update); a new array is
        returned.
    partners : ndarray of shape (m, c)
        The other view's codes of the sampled items (``V(Sc, :)``, or ``U(Sc, :)``), fixed.
    similarity : ndarray of shape (n, m)
        ``S`` between every item and the sampled ones.
    scale : float
        ``lambda / c``, so that ``Theta = scale * codes @ partners.T``.

    Column k becomes ``sign(p)`` (0 gives 1) with
    ``p = scale (S - sigmoid(Theta)) partners[:, k] + m scale^2 / 4 codes[:, k]``: the maximiser
    of the log-likelihood's lower bound whose curvature is the bound 1/4 of the logistic one.
    ``Theta`` follows every column change exactly (it only holds sums of +-1 times ``scale``), and
    ``S - sigmoid(Theta)`` is recomputed only on the rows whose bit flipped, the others being
    unchanged: the same numbers as ``DLFH.m``'s recomputation of the whole matrix per column.

    Returns
    -------
    (new codes, log-likelihood before, log-likelihood after) on these n x m pairs.
    """
    codes = codes.copy()
    theta = scale * (codes @ partners.T)
    residual = similarity - sigmoid(theta)
    before = log_likelihood(similarity, theta)
    curvature = len(partners) * scale**2 / 4.0
    for k in range(codes.shape[1]):
        column = partners[:, k]
        push = scale * (residual @ column) + curvature * codes[:, k]
        updated = np.where(push < 0, -1.0, 1.0)
        flipped = np.flatnonzero(updated != codes[:, k])
        if flipped.size:
            theta[flipped] += scale * np.outer(updated[flipped] - codes[flipped, k], column)
            residual[flipped] = similarity[flipped] - sigmoid(theta[flipped])
            codes[:, k] = updated
    return codes, before, log_likelihood(similarity, theta)


def ridge_projection(features: np.ndarray, codes: np.ndarray, gamma: float) -> np.ndarray:
    """``(X' X + gamma I)^-1 X' B``: the linear hash function of ``DLFH_algo.m``."""
    gram = features.T @ features
    gram[np.diag_indices_from(gram)] += gamma
    return np.linalg.solve(gram, features.T @ codes)


class DLFH(ShallowMethod):
    """DLFH (Jiang & Li, IEEE TIP 2019): discrete codes from a pairwise latent factor likelihood.

    Image codes ``U`` and text codes ``V`` of the training pairs are learnt directly in
    {-1, 1} by maximising the likelihood of the label-sharing matrix ``S`` under
    ``sigmoid(lambda / c U V')``, column by column, on ``m`` sampled columns of ``S`` per
    iteration (``DLFH.m``); each view's hash function is a ridge regression from the raw features
    to its own codes (``DLFH_algo.m``). Defaults are ``demo_DLFH.m``'s settings.

    Attributes
    ----------
    hash_functions_ : dict
        ``{"image": LinearHash, "text": LinearHash}``: no centring or kernel, the ridge
        projection, a threshold that makes the bits ``X W > 0`` as in the reference.
    report_ : dict
        ``image_step`` and ``text_step``: per iteration, the log-likelihood on that step's
        sampled pairs before and after the update of ``U`` (``V``); ``sampled``: the sampled
        training items of every iteration.
    """

    class Params(MethodParams):
        """DLFH's hyper-parameters; defaults from ``demo_DLFH.m``."""

        n_iter: int = Field(30, ge=1, le=100_000, description="Alternating iterations (param.maxIter).")
        lam: float = Field(
            8.0, gt=0.0, description="lambda: Theta = lambda / n_bits * U V' (param.lambda)."
        )
        n_samples: int | None = Field(
            None, ge=1,
            description="Columns of S sampled per iteration (param.num_samples); default n_bits.",
        )
        gamma: float = Field(
            1e-2, gt=0.0, description="Ridge weight of the linear hash functions (param.gamma)."
        )

    tags = MethodTags(supervised=True, deep=False)
    # peak memory: the d x d Gram matrix of the hash-function regression
    memory_model = MemoryModel(feature_squares=1.5, dense_copies=2)
    display_name = "DLFH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: the sampled columns are distinct training pairs."""
        problems = super().data_problems(params, data)
        assert isinstance(params, DLFH.Params)
        if params.n_samples is None and params.n_bits > data.n_rows:
            problems.append(
                f"n_bits: {params.n_bits} columns of S (one per bit, n_samples unset) are sampled "
                f"without replacement from the training pairs, but there are only {data.n_rows}; "
                "lower n_bits or set n_samples"
            )
        elif params.n_samples is not None and params.n_samples > data.n_rows:
            problems.append(
                f"n_samples: {params.n_samples} columns of S are sampled without replacement from "
                f"the training pairs, but there are only {data.n_rows}; lower n_samples"
            )
        return problems

    def learn_codes(
        self, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``DLFH.m``: image codes ``U``, text codes ``V`` and the per-iteration likelihoods."""
        params = self.params
        labels = label_matrix(labels)
        n, bits = len(labels), self.n_bits
        samples = params.n_samples if params.n_samples is not None else bits
        scale = params.lam / bits
        image_codes = np.where(rng.standard_normal((n, bits)) < 0, -1.0, 1.0)
        text_codes = np.where(rng.standard_normal((n, bits)) < 0, -1.0, 1.0)
        report: dict[str, Any] = {"image_step": [], "text_step": [], "sampled": []}
        for _ in range(params.n_iter):
            chosen = rng.choice(n, size=samples, replace=False)
            similarity = (labels @ labels[chosen].T > 0).astype(np.float64)
            image_codes, before, after = update_codes(image_codes, text_codes[chosen], similarity, scale)
            report["image_step"].append([before, after])
            text_codes, before, after = update_codes(text_codes, image_codes[chosen], similarity, scale)
            report["text_step"].append([before, after])
            report["sampled"].append(chosen.tolist())
        return image_codes, text_codes, report

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
        image_codes, text_codes, report = self.learn_codes(labels, self.rng())
        threshold = np.full(self.n_bits, STRICT)
        self.hash_functions_ = {}
        for view, source, codes in (("image", image, image_codes), ("text", text, text_codes)):
            projection = ridge_projection(self.training_rows(source), codes, self.params.gamma)
            self.hash_functions_[view] = LinearHash(FeatureMap(), projection, threshold.copy())
        self.report_ = report
