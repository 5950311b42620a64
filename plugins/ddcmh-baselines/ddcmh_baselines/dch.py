"""DCH: discrete cross-modal hashing with codes that linearly predict the labels.

Paper
-----
Xing Xu, Fumin Shen, Yang Yang, Heng Tao Shen and Xuelong Li, "Learning Discriminative Binary
Codes for Large-scale Cross-modal Retrieval", IEEE Transactions on Image Processing 26(5),
2494-2507, 2017 (IEEE Xplore document 7867785).

Reference code
--------------
BMC-SDNU/Cross-Modal-Hashing-Retrieval, folder ``DCH/code``: ``demo_DCH.m`` (centring of both
views, random sign initialisation, the settings ``maxItr = 5``, ``gmap.lambda = 1``,
``Fmap.lambda = 1e-2``, ``Fmap.nu = Fmap.mu = 0``, linear hash functions on the centred features),
``DCH_discrete.m`` (the ``'L2'`` branch of the alternating G-, B- and F-steps) and ``RRC.m``
(the ridge regressions of the G- and F-steps).

The port follows the reference step by step. The demo sets the weights of the hash-function fit
terms to zero, so the code matrix ``B`` is driven by the labels alone and the hash projections
never feed back into ``B`` or the classifier; the port therefore solves the F-step once, from the
final codes, which gives exactly the projections the reference has after its last iteration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ddcmh_core import MethodParams, MethodTags
from ddcmh_core.memory import MemoryModel

from ._shallow import FeatureMap, LinearHash, ShallowMethod, label_matrix


def ridge_solution(inputs: np.ndarray, targets: np.ndarray, regularisation: float) -> np.ndarray:
    """``argmin_W ||targets - inputs @ W||^2 + regularisation ||W||^2`` in closed form.

    The reference's ``RRC.m`` switches between the (n x n) and the (d x d) form of the same
    solution; the (d x d) form is used here, which is the cheaper one for ``n > d``.
    """
    gram = inputs.T @ inputs + regularisation * np.eye(inputs.shape[1])
    return np.linalg.solve(gram, inputs.T @ targets)


def code_step(labels: np.ndarray, classifier: np.ndarray, regularisation: float) -> np.ndarray:
    """The B-step of ``DCH_discrete.m`` (loss ``'L2'``, ``nu = mu = 0``): relaxed solve, then sign.

    ``B = sign(argmin_B ||Y - B G||^2 + regularisation ||B||^2)``, with ``G`` the (k, c)
    classifier; like MATLAB's ``sign``, an exact zero stays 0.
    """
    gram = classifier @ classifier.T + regularisation * np.eye(classifier.shape[0])
    return np.sign(np.linalg.solve(gram, classifier @ labels.T).T)


def classification_loss(
    codes: np.ndarray, labels: np.ndarray, classifier: np.ndarray, regularisation: float
) -> float:
    """``||Y - B G||^2 + regularisation ||G||^2``: the objective of the G-step."""
    residual = labels - codes @ classifier
    return float((residual**2).sum() + regularisation * (classifier**2).sum())


class DCH(ShallowMethod):
    """Discrete cross-modal hashing: shared codes regressed onto the labels, linear hash functions.

    Alternates, from random sign codes ``B``, the classifier ``G`` (ridge regression of the labels
    on ``B``) and the codes (the sign of the ridge solution of ``Y ~ B G`` in ``B``), then fits one
    linear projection per view to the codes by ridge regression. ``report_["objective"]`` holds
    ``||Y - B G||^2 + label_regularisation ||G||^2`` after every iteration.
    """

    class Params(MethodParams):
        """DCH settings; the defaults are those of the authors' ``demo_DCH.m``."""

        n_iterations: int = Field(
            5, ge=1, le=1000, description="Alternations of the B- and G-steps (demo: maxItr = 5)."
        )
        label_regularisation: float = Field(
            1.0, gt=0, description="Ridge weight of the label classifier G (demo: gmap.lambda = 1)."
        )
        code_regularisation: float = Field(
            1e-2,
            gt=0,
            description="Ridge weight of the relaxed B-step (demo: Fmap.lambda = 1e-2, as in the F-step).",
        )
        hash_regularisation: float = Field(
            1e-2, gt=0, description="Ridge weight of each view's hash projection (demo: Fmap.lambda = 1e-2)."
        )
        center: bool = Field(True, description="Subtract each view's training mean (the demo centres both).")

    tags: ClassVar[MethodTags] = MethodTags(supervised=True, deep=False)
    # peak memory: the d x d Gram matrix of each view's hash-function ridge and its solve
    memory_model = MemoryModel(feature_squares=2.5, row_squares=0.5, dense_copies=2)
    display_name: ClassVar[str] = "DCH"

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
        assert labels is not None  # the input checks refuse a supervised fit without labels
        params = self.params
        targets = label_matrix(labels)
        codes = np.sign(self.rng().standard_normal((len(targets), self.n_bits)))
        classifier = ridge_solution(codes, targets, params.label_regularisation)
        objective = []
        for _ in range(params.n_iterations):
            codes = code_step(targets, classifier, params.code_regularisation)
            classifier = ridge_solution(codes, targets, params.label_regularisation)
            objective.append(classification_loss(codes, targets, classifier, params.label_regularisation))
        self.hash_functions_ = {}
        for view, source in (("image", image), ("text", text)):
            feature_map, rows = FeatureMap.fit(self.training_rows(source), center=params.center)
            projection = ridge_solution(rows, codes, params.hash_regularisation)
            self.hash_functions_[view] = LinearHash(feature_map, projection)
        self.report_ = {"objective": objective}
