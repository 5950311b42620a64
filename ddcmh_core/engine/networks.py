"""Hash networks: an MLP over dense or sparse feature vectors, and the CNN factory hook."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .backbones import HeadConfig, build_image_network
from .config import NetworkConfig
from .layers import normalization_layer
from .sources import BatchSource, rows_as_matrix

LIFT_STATISTICS_ROWS = 20_000
"""Training rows (a seeded sample) whose lifted features set the lift's standardisation."""


class HashMLP(nn.Module):
    """MLP ending in a linear hash layer of ``n_bits`` logits.

    Sparse input (a torch sparse COO batch of bag-of-words rows) goes through the first layer
    with a sparse matrix product, so a vocabulary-sized dense batch is never formed.

    Inputs are scaled with statistics of the training rows and, with ``kernel_lift="rbf"``,
    replaced by their RBF similarities ``exp(-gamma ||x - a_j||^2)`` to anchors ``a_j`` drawn from
    the (scaled) training rows, each similarity standardised with training statistics; all of it is
    fitted by :meth:`fit_input_scaling` and stored as buffers.

    Parameters
    ----------
    n_features : int
        Input width.
    n_bits : int
        Code length.
    config : NetworkConfig
        Hidden widths, dropout, normalisation, input scaling and lift.
    n_anchors : int, optional
        Anchors of the RBF lift; default ``config.lift_anchors`` (pass fewer when there are fewer
        training rows).
    """

    input_shift: torch.Tensor
    input_scale: torch.Tensor
    lift_anchors: torch.Tensor
    lift_gamma: torch.Tensor
    lift_shift: torch.Tensor
    lift_scale: torch.Tensor

    def __init__(
        self, n_features: int, n_bits: int, config: NetworkConfig, *, n_anchors: int | None = None
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.n_bits = n_bits
        self.lifted = config.kernel_lift == "rbf"
        self.lift_width_scale = config.lift_width_scale
        if self.lifted:  # no buffers otherwise, so unlifted state dicts keep their keys
            anchors = n_anchors if n_anchors is not None else config.lift_anchors
            self.register_buffer("lift_anchors", torch.zeros(anchors, n_features))
            self.register_buffer("lift_gamma", torch.ones(()))
            self.register_buffer("lift_shift", torch.zeros(anchors))
            self.register_buffer("lift_scale", torch.ones(anchors))
        widths = [self.lift_anchors.shape[0] if self.lifted else n_features, *config.hidden_sizes]
        self.linears = nn.ModuleList(
            nn.Linear(width_in, width_out) for width_in, width_out in itertools.pairwise(widths)
        )
        self.norms = nn.ModuleList(normalization_layer(config.normalization, w) for w in config.hidden_sizes)
        self.dropout = nn.Dropout(config.dropout)
        self.hash_layer = nn.Linear(widths[-1], n_bits)
        self.scale_inputs = config.input_scaling == "standardize"
        self.register_buffer("input_shift", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))

    def fit_input_scaling(self, features: Any, *, seed: int = 0) -> None:
        """Fit the input transform on training rows (dense array or scipy sparse).

        Sets the shift and scale and, for a lifted network, draws the anchors (seeded) among the
        scaled rows and sets the RBF width.
        """
        if self.scale_inputs:
            self._fit_scaling(features)
        if self.lifted:
            self._fit_lift(features, seed)

    def _fit_scaling(self, features: Any) -> None:
        if sp.issparse(features):
            squares = np.asarray(features.multiply(features).mean(axis=0)).ravel()
            shift = np.zeros(features.shape[1])
            spread = np.sqrt(squares)
        else:
            values = np.asarray(features, dtype=np.float64)
            shift = values.mean(axis=0)
            spread = values.std(axis=0)
        scale = _inverse_spread(spread)
        self.input_shift.copy_(torch.as_tensor(shift, dtype=self.input_shift.dtype))
        self.input_scale.copy_(torch.as_tensor(scale, dtype=self.input_scale.dtype))

    def _fit_lift(self, features: Any, seed: int) -> None:
        from ..kernels import AnchorRBF

        scale = self.input_scale.double().cpu().numpy()
        if sp.issparse(features):
            scaled = sp.csr_matrix(features.multiply(scale[None, :]))
        else:
            scaled = (
                np.asarray(features, dtype=np.float64) - self.input_shift.double().cpu().numpy()
            ) * scale
        n_anchors = self.lift_anchors.shape[0]
        if scaled.shape[0] < n_anchors:
            raise ValueError(
                f"the RBF lift needs {n_anchors} anchors but only {scaled.shape[0]} training rows were given"
            )
        rng = np.random.default_rng([seed, 11])
        feature_map = AnchorRBF.fit(scaled, n_anchors, rng)
        feature_map.bandwidth *= self.lift_width_scale
        self.lift_anchors.copy_(torch.as_tensor(feature_map.anchors, dtype=self.lift_anchors.dtype))
        self.lift_gamma.fill_(1.0 / (2.0 * feature_map.bandwidth**2))
        # Standardise each similarity with training statistics: narrow kernels give tiny values.
        sample = np.sort(
            rng.choice(scaled.shape[0], min(scaled.shape[0], LIFT_STATISTICS_ROWS), replace=False)
        )
        similarities = feature_map.transform(scaled[sample])
        self.lift_shift.copy_(torch.as_tensor(similarities.mean(axis=0), dtype=self.lift_shift.dtype))
        self.lift_scale.copy_(
            torch.as_tensor(_inverse_spread(similarities.std(axis=0)), dtype=self.lift_scale.dtype)
        )

    def _lift(self, hidden: torch.Tensor) -> torch.Tensor:
        """Standardised RBF similarities of scaled rows to the anchors (float32 even under autocast)."""
        anchors = self.lift_anchors
        with torch.autocast(device_type=anchors.device.type, enabled=False):
            if hidden.is_sparse:
                coalesced = hidden.coalesce().float()
                rows = coalesced.indices()[0]
                squared = torch.zeros(coalesced.shape[0], device=anchors.device)
                squared = squared.index_add(0, rows, coalesced.values() ** 2)
                cross = torch.sparse.mm(coalesced, anchors.t())
            else:
                dense = hidden.float()
                squared = (dense * dense).sum(dim=1)
                cross = dense @ anchors.t()
            distances = (squared[:, None] - 2.0 * cross + (anchors * anchors).sum(dim=1)[None, :]).clamp_min(
                0.0
            )
            return (torch.exp(-self.lift_gamma * distances) - self.lift_shift) * self.lift_scale

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
        if self.lifted:
            hidden = self._lift(hidden)
        layers = [*self.linears, self.hash_layer]
        for position, linear in enumerate(layers):
            hidden = _sparse_linear(hidden, linear) if hidden.is_sparse else linear(hidden)
            if position < len(self.linears):
                hidden = self.dropout(torch.relu(self.norms[position](hidden)))
        return hidden


def _sparse_linear(batch: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear`` applied to a sparse COO batch at the cost of its non-zeros.

    Each row is a bag of (column, value) pairs: the output is the value-weighted sum of the
    weight's columns plus the bias (an embedding bag over the transposed weight), which is what
    the dense product computes. ``torch.sparse.mm`` gave the same numbers about ten times slower
    on CPU, forward and backward, on the Web News captions.
    """
    coalesced = batch.coalesce()
    rows, columns = coalesced.indices()
    counts = torch.bincount(rows, minlength=coalesced.shape[0])
    offsets = torch.cumsum(counts, 0) - counts
    summed = torch.nn.functional.embedding_bag(
        columns,
        linear.weight.t().contiguous(),  # rows of the transposed weight, read row by row
        offsets,
        mode="sum",
        per_sample_weights=coalesced.values().to(linear.weight.dtype),
    )
    return summed + linear.bias


def _inverse_spread(spread: np.ndarray) -> np.ndarray:
    """``1 / spread`` per feature, and 1 where a feature is constant on the training rows."""
    return np.divide(1.0, spread, out=np.ones_like(spread), where=spread > 1e-12)


def build_network(
    config: NetworkConfig, n_bits: int, n_features: int | None, *, n_training_rows: int | None = None
) -> nn.Module:
    """Build the hash network a :class:`NetworkConfig` describes.

    Parameters
    ----------
    config : NetworkConfig
    n_bits : int
    n_features : int or None
        Input width of an MLP (None for image views).
    n_training_rows : int, optional
        Rows the network will be fitted on: an RBF lift takes at most this many anchors.

    Returns
    -------
    torch.nn.Module
        Maps a batch to (batch, n_bits) logits.
    """
    if config.architecture == "mlp":
        if n_features is None:
            raise ValueError("an MLP hash network needs feature vectors, but the view holds images")
        if config.kernel_lift == "auto":
            raise ValueError(
                "kernel_lift='auto' is decided by the method on its validation split; build the "
                "network with 'none' or 'rbf'"
            )
        n_anchors = None
        if config.kernel_lift == "rbf" and n_training_rows is not None:
            n_anchors = min(config.lift_anchors, n_training_rows)
        return HashMLP(n_features, n_bits, config, n_anchors=n_anchors)
    normalization = config.feature_normalization  # "auto" that no method turned into "batch": none
    return build_image_network(
        config.backbone,
        n_bits,
        pretrained=config.pretrained,
        freeze=config.freeze_backbone,
        feature_normalization="none" if normalization == "auto" else normalization,
        head=HeadConfig(config.head_hidden_sizes, config.normalization, config.dropout),
    )


def fit_input_scaling(
    network: torch.nn.Module, source: BatchSource, rows: np.ndarray, *, seed: int = 0
) -> None:
    """Fit an MLP hash network's input scaling and lift on training ``rows`` (others: nothing)."""
    if isinstance(network, HashMLP) and (network.scale_inputs or network.lifted):
        network.fit_input_scaling(rows_as_matrix(source, rows), seed=seed)


def network_state_arrays(networks: dict[str, nn.Module]) -> dict[str, np.ndarray]:
    """The weights of named networks as arrays ``"<name>_network/<tensor>"`` (for model files).

    Row-major whatever the tensors' memory layout (a channels-last CNN body's weights included).
    """
    return {
        f"{name}_network/{tensor_name}": np.ascontiguousarray(tensor.detach().cpu().numpy())
        for name, network in networks.items()
        for tensor_name, tensor in network.state_dict().items()
    }


def restore_network(
    arrays: dict[str, np.ndarray],
    name: str,
    config: NetworkConfig,
    n_bits: int,
    n_features: int | None,
    *,
    wrap: Callable[[nn.Module, dict[str, torch.Tensor]], nn.Module] | None = None,
) -> nn.Module:
    """Rebuild network ``name`` from :func:`network_state_arrays` output, in eval mode on the CPU.

    ``wrap`` may put the built network inside another module before the weights are loaded
    (it receives the weights, whose names then carry the wrapper's prefix).

    Raises
    ------
    ValueError
        If the weights do not fit the network the configuration describes.
    """
    prefix = f"{name}_network/"
    weights = {
        key[len(prefix) :]: torch.from_numpy(np.ascontiguousarray(array))
        for key, array in arrays.items()
        if key.startswith(prefix)
    }
    anchors = next((value for key, value in weights.items() if key.endswith("lift_anchors")), None)
    if config.kernel_lift == "auto":  # the file's weights say what was chosen
        config = config.model_copy(update={"kernel_lift": "rbf" if anchors is not None else "none"})
    network = build_network(
        config.model_copy(update={"pretrained": None}),
        n_bits,
        n_features,
        n_training_rows=anchors.shape[0] if anchors is not None else None,
    )
    if wrap is not None:
        network = wrap(network, weights)
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise ValueError(f"the {name} network's weights do not fit: {error}") from None
    return network.eval()


def lift_may_help(network: NetworkConfig, source: BatchSource) -> bool:
    """Whether ``kernel_lift="auto"`` considers the RBF lift for this view.

    It does for dense feature vectors of at most ``network.auto_lift_max_features`` columns read by
    an MLP: small, noisy descriptors such as bag-of-visual-words histograms, where a kernel machine
    does well. Sparse text, wide features and images keep their plain input.
    """
    width = source.n_features
    if network.architecture != "mlp" or width is None or width > network.auto_lift_max_features:
        return False
    return len(source) >= 2 and not source.batch(np.arange(2), train=False).is_sparse
