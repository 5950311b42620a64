"""A head warm-up: the head of a CNN trained on its frozen body's features before fine-tuning.

This is "linear probing, then fine-tuning" (Kumar et al., ICLR 2022). A fine-tuned CNN starts
from a pretrained body and a hash layer of random weights, and every epoch of the whole network
is a pass of the body over every photo, forwards and backwards. On a CPU the epoch budget is
small, and the hash layer is still far from converged when it ends: on Web News, 8 epochs of
Stage 2 at 128 px scored text->image .60, where DDCMH's MLP on the frozen features of the same
body scored .80. In the first epochs the random layer's gradients also pull the pretrained
features wherever it points.

A warm-up trains the feature norm, the head and the hash layer alone, on the body's features
computed once (evaluation preprocessing: no augmentation), with the same loss, optimiser, rate and
batch size as the fine-tuning that follows. An epoch of it costs a pass of a linear layer over a
feature matrix (milliseconds), so it runs its whole epoch budget, without the fine-tuning's
patience, and keeps the weights of its best validation epoch: on the 136 validation pairs of Web
News the validation MAP of the warm-up wanders by .01-.02 from epoch to epoch while it is still
rising, and a patience of 3 stopped it at epoch 20 of 100. Fine-tuning then starts from a head
that already fits the codes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .backbones import ImageHashNetwork
from .config import TrainingConfig
from .epoch_loop import ProgressCallback, TrainingResult
from .frozen_features import body_features
from .sources import ArraySource, BatchSource
from .trainer import Validator, train_hash_network

__all__ = ["ValidatorFactory", "head_of", "warm_up_head"]

#: The validation of a network reading a source: ``validate_on(source)(network) -> score``.
ValidatorFactory = Callable[[BatchSource], Validator]


def head_of(network: ImageHashNetwork) -> nn.Sequential:
    """The layers after the body (feature norm, head, hash layer), sharing the network's weights.

    Training the returned module trains those layers of ``network`` in place.
    """
    return nn.Sequential(network.feature_norm, network.head, network.hash_layer)


def warm_up_head(
    network: ImageHashNetwork,
    source: BatchSource,
    targets: np.ndarray,
    train_indices: np.ndarray,
    config: TrainingConfig,
    *,
    validate_on: ValidatorFactory | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    progress: ProgressCallback | None = None,
    label: str = "head warm-up",
) -> TrainingResult:
    """Train the layers after the body on the body's features, for ``config.head_warmup_epochs``.

    Parameters
    ----------
    network : ImageHashNetwork
        A CNN to be fine-tuned; its feature norm, head and hash layer are trained in place and on
        return hold the weights of the best validation epoch. The body is not changed.
    source, targets, train_indices
        As for :func:`~ddcmh_core.engine.trainer.train_hash_network`.
    config : TrainingConfig
        The fine-tuning's settings: the warm-up uses its loss, optimiser, learning rate, batch
        size and schedule over all of ``head_warmup_epochs`` epochs (no early stop), keeping the
        best validation epoch's weights.
    validate_on : callable, optional
        ``validate_on(source)`` returns the validation of a network reading ``source``; the
        warm-up calls it with the feature matrix, so each epoch is validated on features too.
        None: the last epoch's weights are kept.
    seed, device, progress, label
        As for :func:`~ddcmh_core.engine.trainer.train_hash_network`.

    Returns
    -------
    TrainingResult
        Of the warm-up; ``seconds`` includes the pass that computes the features.
    """
    if config.head_warmup_epochs < 1:
        raise ValueError("warm_up_head: expected head_warmup_epochs >= 1 in the training settings")
    started = time.perf_counter()
    features = ArraySource(
        body_features(
            network, source, batch_size=config.batch_size, device=device, progress=progress,
            label=f"{label}: body features",
        )
    )  # fmt: skip
    epochs = config.head_warmup_epochs
    warmup = config.model_copy(update={"max_epochs": epochs, "patience": epochs, "head_warmup_epochs": 0})
    result = train_hash_network(
        head_of(network),
        features,
        targets,
        train_indices,
        warmup,
        validate=validate_on(features) if validate_on is not None else None,
        seed=seed,
        device=device,
        progress=progress,
        label=label,
    )
    return dataclasses.replace(result, seconds=time.perf_counter() - started)
