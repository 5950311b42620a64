"""Linear-algebra building blocks shared by the hashers.

All functions accept dense arrays or scipy sparse matrices and never densify a sparse input of
``n`` rows: centring is applied to projections (``X P - 1 (mu^T P)``), not to ``X``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from .memory import MemoryModel
from .validation import FeatureMatrix

DENSE_COVARIANCE_MAX_FEATURES = 4096
"""Up to this width the covariance is formed explicitly; above it an implicit operator is used."""

PCA_MEMORY = MemoryModel(feature_squares=4, dense_copies=1, squares_up_to=DENSE_COVARIANCE_MAX_FEATURES)
"""Peak memory of a hasher built on :func:`principal_components`: the d x d covariance and the
workspace of its eigendecomposition, up to :data:`DENSE_COVARIANCE_MAX_FEATURES` columns."""


def column_mean(features: FeatureMatrix) -> np.ndarray:
    """Mean of each column, as a dense float64 vector."""
    return np.asarray(features.mean(axis=0), dtype=np.float64).ravel()


def matmul(features: FeatureMatrix, matrix: np.ndarray) -> np.ndarray:
    """``features @ matrix`` as a dense float64 array, for dense or sparse ``features``."""
    return np.asarray(features @ matrix, dtype=np.float64)


def centred_projection(features: FeatureMatrix, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Return ``(X - 1 mean^T) @ projection`` without centring ``X`` itself.

    Parameters
    ----------
    features : ndarray or sparse matrix of shape (n, d)
    mean : ndarray of shape (d,)
    projection : ndarray of shape (d, r)

    Returns
    -------
    ndarray of shape (n, r)
    """
    return matmul(features, projection) - mean @ projection


def covariance(features: FeatureMatrix, mean: np.ndarray | None = None) -> np.ndarray:
    """Sample covariance ``(X^T X - n mu mu^T) / (n - 1)`` (dense d x d), sparse-safe."""
    n_samples = features.shape[0]
    mean = column_mean(features) if mean is None else mean
    product = features.T @ features
    gram = np.asarray(product if isinstance(product, np.ndarray) else product.toarray(), dtype=np.float64)
    cov = (gram - n_samples * np.outer(mean, mean)) / max(n_samples - 1, 1)
    return (cov + cov.T) / 2.0


def top_eigenvectors(symmetric: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest eigenpairs of a symmetric matrix, sorted by decreasing eigenvalue.

    Each eigenvector's sign is fixed so that its entry of largest magnitude is positive, which
    makes results independent of the LAPACK build.

    Returns
    -------
    eigenvalues : ndarray of shape (n_components,)
    eigenvectors : ndarray of shape (d, n_components)
    """
    size = symmetric.shape[0]
    values, vectors = scipy.linalg.eigh(symmetric, subset_by_index=[size - n_components, size - 1])
    order = np.argsort(values)[::-1]
    return values[order], fix_signs(vectors[:, order])


SIGN_TIE_TOLERANCE = 1e-8
"""Entries within this relative distance of a column's largest magnitude count as tied in fix_signs."""


def fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip columns so that the first entry of (nearly) largest magnitude is positive.

    Entries within a relative :data:`SIGN_TIE_TOLERANCE` of the column's largest magnitude count
    as tied and the first of them decides. Eigenvectors localised on mirror-image entries ``a`` and
    ``-a`` (common for graph Laplacians) would otherwise get their sign from rounding, e.g. differ
    between sparse and dense input.
    """
    magnitude = np.abs(vectors)
    near_max = magnitude >= magnitude.max(axis=0, keepdims=True) * (1.0 - SIGN_TIE_TOLERANCE)
    pivot = np.argmax(near_max, axis=0)  # first tied entry of each column
    signs = np.where(vectors[pivot, np.arange(vectors.shape[1])] < 0, -1.0, 1.0)
    return vectors * signs


def principal_components(
    features: FeatureMatrix, n_components: int, mean: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top principal directions of ``features`` (centred with ``mean``).

    Uses the explicit covariance with ``eigh`` up to :data:`DENSE_COVARIANCE_MAX_FEATURES`
    columns and an implicit covariance operator with ARPACK above (never densifying ``X``).

    Returns
    -------
    eigenvalues : ndarray of shape (n_components,)
        Variances along the directions, decreasing.
    directions : ndarray of shape (d, n_components)
    """
    n_samples, n_features = features.shape
    mean = column_mean(features) if mean is None else mean
    if n_features <= DENSE_COVARIANCE_MAX_FEATURES or n_components >= n_features - 1:
        return top_eigenvectors(covariance(features, mean), n_components)

    def apply_covariance(vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float64).ravel()
        product = np.asarray(features.T @ (features @ vector)).ravel()
        return (product - n_samples * mean * (mean @ vector)) / max(n_samples - 1, 1)

    operator = scipy.sparse.linalg.LinearOperator(
        (n_features, n_features), matvec=apply_covariance, dtype=np.float64
    )
    start = np.ones(n_features) / np.sqrt(n_features)  # fixed start vector: deterministic
    values, vectors = scipy.sparse.linalg.eigsh(operator, k=n_components, which="LA", v0=start)
    order = np.argsort(values)[::-1]
    return values[order], fix_signs(vectors[:, order])


def dense_rows(features: FeatureMatrix, rows: np.ndarray) -> np.ndarray:
    """The selected rows of ``features`` as a dense float64 array (only those rows are densified)."""
    block = features[rows]
    return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)


def row_squared_norms(features: FeatureMatrix) -> np.ndarray:
    """Squared L2 norm of each row."""
    if isinstance(features, np.ndarray):
        return np.einsum("ij,ij->i", features, features)
    return np.asarray(features.multiply(features).sum(axis=1), dtype=np.float64).ravel()


def l2_normalize_rows(features: FeatureMatrix) -> FeatureMatrix:
    """Scale each row to unit L2 norm (all-zero rows stay zero); sparse stays sparse."""
    norms = np.sqrt(row_squared_norms(features))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    if sp.issparse(features):
        return sp.csr_matrix(sp.diags(scale) @ features)
    return features * scale[:, None]


def squared_distances(features: FeatureMatrix, anchors: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of ``features`` and rows of ``anchors``.

    Returns
    -------
    ndarray of shape (n, m), clipped at 0 against rounding.
    """
    cross = matmul(features, anchors.T)
    distances = row_squared_norms(features)[:, None] + row_squared_norms(anchors)[None, :] - 2 * cross
    np.maximum(distances, 0.0, out=distances)
    return distances


def ridge_solve(design: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge regression ``(A^T A + ridge I)^{-1} A^T T`` (dual form when A is wide).

    Parameters
    ----------
    design : ndarray of shape (n, p)
    targets : ndarray of shape (n, t)
    ridge : float
        Regularisation weight (> 0 unless ``A^T A`` is well conditioned).

    Returns
    -------
    ndarray of shape (p, t)
    """
    n_rows, n_cols = design.shape
    if n_rows >= n_cols:
        gram = design.T @ design
        gram[np.diag_indices_from(gram)] += ridge
        return scipy.linalg.solve(gram, design.T @ targets, assume_a="pos")
    gram = design @ design.T
    gram[np.diag_indices_from(gram)] += ridge
    return design.T @ scipy.linalg.solve(gram, targets, assume_a="pos")


def random_orthogonal(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal matrix: left singular vectors of a standard-normal square matrix."""
    left, _, _ = np.linalg.svd(rng.standard_normal((size, size)))
    return left


def signs_to_bits(signed: np.ndarray) -> np.ndarray:
    """Map a {-1,+1} matrix to the project's uint8 {0,1} code format (``(b + 1) / 2``)."""
    return np.ascontiguousarray(signed > 0, dtype=np.uint8)


def sign_ties_positive(values: np.ndarray) -> np.ndarray:
    """``sgn`` with ties mapped to +1, as inside discrete optimisation loops (never 0)."""
    return np.where(values >= 0, 1.0, -1.0)
