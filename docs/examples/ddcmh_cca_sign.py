"""CCA + sign: a complete cross-modal method plugin in a few lines."""

import numpy as np
from pydantic import Field

from ddcmh_core import CrossModalMethod, MethodParams, MethodSpec, MethodState, MethodTags, hookimpl


def _inverse_sqrt(covariance, regularisation):
    values, vectors = np.linalg.eigh(covariance + regularisation * np.eye(len(covariance)))
    return vectors @ np.diag(values**-0.5) @ vectors.T


class CCASign(CrossModalMethod):
    """Project both views on their top canonical directions; a bit is the sign of a projection."""

    class Params(MethodParams):  # n_bits and seed come from MethodParams
        regularisation: float = Field(1e-3, gt=0, description="Ridge added to both covariances.")

    tags = MethodTags(supervised=False, deep=False)
    display_name = "CCA + sign"

    @classmethod
    def data_problems(cls, params, data):
        """The base checks, plus: no more bits than canonical directions."""
        problems = super().data_problems(params, data)
        widest = min(data.n_features["image"], data.n_features["text"])
        if params.n_bits > widest:
            problems.append(f"n_bits: at most {widest} canonical directions, got {params.n_bits}")
        return problems

    def _fit(self, image, text, labels, *, run_dir, resume, progress):
        X, Y = np.asarray(self.as_matrix(image)), np.asarray(self.as_matrix(text))
        self.means_ = {"image": X.mean(axis=0), "text": Y.mean(axis=0)}
        X, Y = X - self.means_["image"], Y - self.means_["text"]
        reg = self.params.regularisation
        whiten_x = _inverse_sqrt(X.T @ X / len(X), reg)
        whiten_y = _inverse_sqrt(Y.T @ Y / len(Y), reg)
        left, _, right = np.linalg.svd(whiten_x @ (X.T @ Y / len(X)) @ whiten_y)
        k = self.n_bits
        self.projections_ = {"image": whiten_x @ left[:, :k], "text": whiten_y @ right.T[:, :k]}
        self.report_ = {}

    def _encode(self, view, source, *, batch_size):
        rows = np.asarray(self.as_matrix(source)) - self.means_[view]
        return (rows @ self.projections_[view] > 0).astype(np.uint8)

    def get_state(self):
        """Means and projections: all that encoding needs (the model file stores them)."""
        arrays = {f"mean/{view}": mean for view, mean in self.means_.items()}
        arrays.update({f"projection/{view}": matrix for view, matrix in self.projections_.items()})
        return MethodState(arrays=arrays)

    def set_state(self, state, *, device="auto"):
        """Take back what :meth:`get_state` gave."""
        self.means_ = {view: state.arrays[f"mean/{view}"] for view in ("image", "text")}
        self.projections_ = {view: state.arrays[f"projection/{view}"] for view in ("image", "text")}


@hookimpl
def ddcmh_methods():
    """The method this plugin offers."""
    yield MethodSpec(name="cca-sign", method=CCASign, summary="CCA projections, sign bits")
