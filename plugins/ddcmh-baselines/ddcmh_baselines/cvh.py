"""CVH: cross-view hashing, one generalised eigenproblem over the paired views.

Paper
-----
Shaishav Kumar and Raghavendra Udupa, "Learning Hash Functions for Cross-View Similarity Search",
Proceedings of the Twenty-Second International Joint Conference on Artificial Intelligence
(IJCAI), 1360-1365, 2011.

Reference code
--------------
BMC-SDNU/Cross-Modal-Hashing-Retrieval, folder ``CVH/code``: ``demo_CVH.m`` (raw features, no
centring, ``CVHparam.lambda = 1e-4``; labels are loaded but never used), ``CVH_learn.m`` (the
covariances of the image view X and the text view Y, ridge ``lambda`` on both),
``CVHtrainCCA.m`` (the leading solutions of ``Cxy Cyy Cxy' w = e Cxx w`` by ``eigs(.., 'lr')``,
real parts kept, the text projections ``Cyy^-1 Cxy' W e^-1/2``) and ``compress2code.m`` /
``CVH_compress*.m`` (bit = projection > 0).

The cross covariance has rank at most ``r = min(d_image, d_text)``, so only ``r`` eigenvalues are
positive; asked for more bits, the reference takes eigenvectors of the zero eigenvalues (a basis of
the null space, whatever the eigensolver returns), whose text projections are rounding noise, and
once a non-positive eigenvalue is among the chosen ones ``sqrt`` makes the text projections
complex and GNU Octave's ordering of complex numbers sets every text bit. The port computes the
same quantities the same way (see :func:`cvh_projections`) and keeps that behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.linalg as sla
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel
from ddcmh_core.methods.base import DataShape

from ._shallow import FeatureMap, LinearHash, ShallowMethod


def cvh_eigenproblem(x: np.ndarray, y: np.ndarray, regularisation: float) -> tuple[np.ndarray, ...]:
    """``(A, Cxx, Cyy, Cxy)`` of ``CVH_learn.m`` / ``CVHtrainCCA.m``: ``A = Cxy Cyy Cxy'``."""
    cxx = x.T @ x + regularisation * np.eye(x.shape[1])
    cyy = y.T @ y + regularisation * np.eye(y.shape[1])
    cxy = x.T @ y
    return cxy @ cyy @ cxy.T, cxx, cyy, cxy


def cvh_projections(
    x: np.ndarray, y: np.ndarray, n_bits: int, regularisation: float
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The image and text projections of ``CVHtrainCCA.m`` and the eigenvalues they belong to.

    Solves the whole generalised problem ``A w = e Cxx w`` with the QZ algorithm (as GNU Octave's
    ``eigs`` does through ``eig`` for ``2 n_bits >= d_image``), orders the eigenvalues by real
    part, largest first (``'lr'``), and keeps the real parts of the first ``n_bits`` pairs.
    The text projections are ``Cyy^-1 Cxy' W`` (the reference's extra factor ``e^-1/2`` is a
    positive scale where ``e > 0``). Returns ``None`` for them when a chosen eigenvalue is not
    positive: the reference's projections are then complex, and Octave sets every text bit.
    """
    left, cxx, cyy, cxy = cvh_eigenproblem(x, y, regularisation)
    values, vectors = sla.eig(left, cxx)
    order = np.argsort(-values.real, kind="stable")[:n_bits]
    values, vectors = values.real[order], vectors.real[:, order]
    if (values <= 0).any():
        return vectors, None, values
    return vectors, np.linalg.solve(cyy, cxy.T @ vectors), values


class CVH(ShallowMethod):
    """Cross-view hashing: the leading generalised eigenvectors of the views' cross covariance.

    Unsupervised: learns from the pairing of the two views only (labels are ignored).
    ``report_["eigenvalues"]`` holds the eigenvalue of every bit and ``report_["rank"]`` the
    number of them that are numerically positive (bits past it carry no correlation).
    """

    class Params(MethodParams):
        """CVH settings; the defaults are those of the authors' ``demo_CVH.m``."""

        regularisation: float = Field(
            1e-4, gt=0, description="Ridge added to both views' covariances (demo: CVHparam.lambda = 1e-4)."
        )
        center: bool = Field(False, description="Subtract each view's training mean (the demo does not).")

    tags: ClassVar[MethodTags] = MethodTags(supervised=False, deep=False)
    # peak memory: the d x d covariances of the generalised eigenproblem
    memory_model = MemoryModel(feature_squares=2.5, dense_copies=2)
    display_name: ClassVar[str] = "CVH"

    @classmethod
    def data_problems(cls, params: MethodParams, data: DataShape) -> list[str]:
        """The base checks, plus: one eigenvector of the image-side problem per bit."""
        problems = super().data_problems(params, data)
        image_width = data.n_features.get("image")
        if image_width is not None and params.n_bits > image_width:
            problems.append(
                f"n_bits: CVH takes one eigenvector of the image-side eigenproblem per bit and the "
                f"image view has {image_width} features, got n_bits={params.n_bits}"
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
        progress: Any,
    ) -> None:
        params = self.params
        image_map, x = FeatureMap.fit(self.training_rows(image), center=params.center)
        text_map, y = FeatureMap.fit(self.training_rows(text), center=params.center)
        image_projection, text_projection, values = cvh_projections(x, y, self.n_bits, params.regularisation)
        if text_projection is None:  # every text bit set, as in the reference under Octave
            text_projection = np.zeros((y.shape[1], self.n_bits))
        self.hash_functions_ = {
            "image": LinearHash(image_map, image_projection),
            "text": LinearHash(text_map, text_projection),
        }
        tolerance = max(x.shape) * np.finfo(np.float64).eps * max(float(values[0]), 0.0)
        self.report_ = {"eigenvalues": values.tolist(), "rank": int((values > tolerance).sum())}
