"""Layers that the MLP hash network and the CNN head build alike.

Both :mod:`.networks` and :mod:`.backbones` import from here, so neither needs the other to
build a hidden layer.
"""

from __future__ import annotations

from torch import nn


def normalization_layer(kind: str, width: int) -> nn.Module:
    """The normalisation after a hidden linear layer of ``width`` units.

    Parameters
    ----------
    kind : {"batch", "layer", "none"}
        Batch normalisation, layer normalisation, or none (an identity).
    width : int
        Units of the linear layer it follows.

    Returns
    -------
    torch.nn.Module
    """
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()
