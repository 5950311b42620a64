"""The base of the deep methods, which keep one hash network per view (DDCMH and DCMH).

Encoding is the same for both: a view's rows go through that view's network in evaluation
batches, a bit is 1 where the output is positive, and a slow pass (photos on a CPU) sends lines
with an ETA to the caller's progress callback.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..engine.inference import encode_with
from ..engine.sources import BatchSource
from .base import CrossModalMethod, ProgressCallback, View


class NetworkPerViewMethod(CrossModalMethod):
    """A cross-modal method whose fitted state includes ``image_network_`` and ``text_network_``.

    Subclasses implement fitting and state as any :class:`CrossModalMethod`; this class gives
    them :meth:`_encode`.
    """

    image_network_: nn.Module
    text_network_: nn.Module

    def _encode(
        self, view: View, source: BatchSource, *, batch_size: int, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Codes of one view: bit = 1 iff the view's network outputs > 0 (on the networks' device)."""
        network = self.image_network_ if view == "image" else self.text_network_
        device = next(self.image_network_.parameters()).device
        return encode_with(
            network,
            source,
            batch_size=batch_size,
            device=device,
            progress=progress,
            label=f"encoding: {view} codes",
        )
