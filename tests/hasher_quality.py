"""Text -> text MAP of built-in hashers on MIRFLICKR-25K (skips when ../shared/data lacks it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from conftest import shared_data

from ddcmh_core import get_hasher


def mirflickr_text_maps(*names: str, n_bits: int = 32, **params: Any) -> dict[str, float]:
    """MAP@all of each named hasher, text queries against text database, and the random floor.

    Each hasher is fitted on the standard training split's texts (with labels when it uses
    them) and encodes 1,000 queries and 8,000 database items of the standard split.

    Returns
    -------
    dict
        ``{name: MAP, ..., "floor": MAP of random codes}``.
    """
    from ddcmh_core.data import load_dataset
    from ddcmh_core.evaluation.metrics import mean_average_precision, random_code_floor

    dataset = load_dataset("mirflickr25k", data_dir=shared_data("mirflickr25k"), image="none")
    split, labels = dataset.split, dataset.labels
    text = dataset.text[np.arange(dataset.n_items)]
    query, database = split.query[:1000], split.database[:8000]
    scores = {"floor": random_code_floor(labels[query], labels[database], n_bits).value}
    for name in names:
        hasher = get_hasher(name, n_bits=n_bits, **params)
        train_labels = labels[split.train] if hasher.tags()["uses_labels"] else None
        hasher.fit(text[split.train], train_labels)
        codes = hasher.encode(text[np.concatenate([query, database])])
        scores[name] = mean_average_precision(
            codes[: query.size], codes[query.size :], labels[query], labels[database]
        ).value
    return scores
