"""Hash networks: an MLP over dense or sparse feature vectors, and the CNN factory hook."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .config import NetworkConfig


class HashMLP(nn.Module):
    """MLP ending in a linear hash layer of ``n_bits`` logits.

    Sparse input (a torch sparse COO batch of bag-of-words rows) goes through the first layer
    with a sparse matrix product, so a vocabulary-sized dense batch is never formed.

    Parameters
    ----------
    n_features : int
        Input width.
    n_bits : int
        Code length.
    config : NetworkConfig
        Hidden widths, dropout and normalisation.
    """

    input_shift: torch.Tensor
    input_scale: torch.Tensor

    def __init__(self, n_features: int, n_bits: int, config: NetworkConfig) -> None:
        super().__init__()
        self.n_features = n_features
        self.n_bits = n_bits
        widths = [n_features, *config.hidden_sizes]
        self.linears = nn.ModuleList(
            nn.Linear(width_in, width_out) for width_in, width_out in itertools.pairwise(widths)
        )
        self.norms = nn.ModuleList(_normalization(config.normalization, w) for w in config.hidden_sizes)
        self.dropout = nn.Dropout(config.dropout)
        self.hash_layer = nn.Linear(widths[-1], n_bits)
        self.scale_inputs = config.input_scaling == "standardize"
        self.register_buffer("input_shift", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))

    def fit_input_scaling(self, features: Any) -> None:
        """Set the input shift and scale from training rows (dense array or scipy sparse)."""
        if not self.scale_inputs:
            return
        if sp.issparse(features):
            squares = np.asarray(features.multiply(features).mean(axis=0)).ravel()
            shift = np.zeros(features.shape[1])
            spread = np.sqrt(squares)
        else:
            values = np.asarray(features, dtype=np.float64)
            shift = values.mean(axis=0)
            spread = values.std(axis=0)
        scale = np.divide(1.0, spread, out=np.ones_like(spread), where=spread > 1e-12)
        self.input_shift.copy_(torch.as_tensor(shift, dtype=self.input_shift.dtype))
        self.input_scale.copy_(torch.as_tensor(scale, dtype=self.input_scale.dtype))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, n_bits); bit = 1 iff logit > 0."""
        if inputs.is_sparse:
            # Scale the columns of the sparse batch (values only); sparse input is never shifted.
            coalesced = inputs.coalesce()
            columns = coalesced.indices()[1]
            hidden = torch.sparse_coo_tensor(
                coalesced.indices(),
                coalesced.values() * self.input_scale[columns],
                coalesced.shape,
                check_invariants=False,
            )
        else:
            hidden = (inputs - self.input_shift) * self.input_scale
        layers = [*self.linears, self.hash_layer]
        for position, linear in enumerate(layers):
            if hidden.is_sparse:
                hidden = torch.sparse.mm(hidden, linear.weight.t()) + linear.bias
            else:
                hidden = linear(hidden)
            if position < len(self.linears):
                hidden = self.dropout(torch.relu(self.norms[position](hidden)))
        return hidden


def _normalization(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def build_network(config: NetworkConfig, n_bits: int, n_features: int | None) -> nn.Module:
    """Build the hash network a :class:`NetworkConfig` describes.

    Parameters
    ----------
    config : NetworkConfig
    n_bits : int
    n_features : int or None
        Input width of an MLP (None for image views).

    Returns
    -------
    torch.nn.Module
        Maps a batch to (batch, n_bits) logits.
    """
    if config.architecture == "mlp":
        if n_features is None:
            raise ValueError("an MLP hash network needs feature vectors, but the view holds images")
        return HashMLP(n_features, n_bits, config)
    from .backbones import build_image_network

    return build_image_network(
        config.backbone, n_bits, pretrained=config.pretrained, freeze=config.freeze_backbone
    )
