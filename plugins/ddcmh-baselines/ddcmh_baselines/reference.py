"""The reference numbers every port is held to: the authors' code run on Wikipedia.

They live in ``wikipedia_reference.toml`` beside this module, with their provenance (ddcmh's
BASELINES.md section c.5b): the one place the benchmark, the fidelity tests and the results page
read them from.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ddcmh_core.bench.report import TASKS, References, load_references

__all__ = ["TASKS", "protocol_maps", "wikipedia_protocol_data", "wikipedia_reference"]

@cache
def wikipedia_reference() -> References:
    """The §c.5b table of the authors' code on Wikipedia (seed 1, tie-aware MAP@all).

    Read by ddcmh's own reference-table reader (:func:`ddcmh_core.bench.report.load_references`),
    the one ``ddcmh-bench report --references`` uses for the results page.
    """
    with resources.as_file(resources.files("ddcmh_baselines") / "wikipedia_reference.toml") as path:
        return load_references(path)


def wikipedia_protocol_data(data_dir: str | Path) -> dict[str, np.ndarray]:
    """Wikipedia as the reference table was measured: training pairs (= database) and queries.

    Keys ``{image,text,labels}_{train,query}``; ``data_dir`` is the dataset's folder or a data root.
    """
    from ddcmh_core.data import load_dataset

    dataset = load_dataset("wikipedia", data_dir=data_dir)
    dataset.require_views()
    assert dataset.image is not None and dataset.text is not None  # require_views() refuses otherwise
    image, text, labels = np.asarray(dataset.image.take()), np.asarray(dataset.text.take()), dataset.labels
    parts = {"train": dataset.split.train, "query": dataset.split.query}
    return {
        f"{name}_{part}": values[rows]
        for part, rows in parts.items()
        for name, values in (("image", image), ("text", text), ("labels", labels))
    }


def protocol_maps(model: Any, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Tie-aware MAP@all of a fitted method in both directions, the training pairs as database."""
    from ddcmh_core.evaluation.metrics import mean_average_precision

    codes = {
        (view, part): model.encode_bits(view, data[f"{view}_{part}"])
        for view in ("image", "text")
        for part in ("train", "query")
    }
    labels = data["labels_query"], data["labels_train"]
    return {
        f"{source}->{target}": float(
            mean_average_precision(codes[source, "query"], codes[target, "train"], *labels)
        )
        for source, target in (("image", "text"), ("text", "image"))
    }
