"""Small synthetic two-view labelled data for engine tests."""

from __future__ import annotations

import numpy as np

from ddcmh_core.testing import make_bow_data


def two_view_data(n_samples: int = 400, seed: int = 0):
    """Image-like dense features and bag-of-words texts that both depend on multi-hot labels."""
    texts, labels = make_bow_data(n_samples=n_samples, n_features=64, n_classes=5, seed=seed)
    rng = np.random.default_rng(seed + 100)
    class_means = rng.standard_normal((labels.shape[1], 24)) * 2.0
    images = labels @ class_means / labels.sum(axis=1, keepdims=True) + rng.standard_normal((n_samples, 24))
    return images.astype(np.float32), texts, labels


FAST_TRAINING = {"max_epochs": 6, "patience": 3, "batch_size": 64}
FAST_NETWORK = {"hidden_sizes": [64]}
