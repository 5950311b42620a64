"""The built-in cross-modal methods, registered through the ``ddcmh`` entry-point group.

ddcmh's own ``pyproject.toml`` declares this module as an entry point, so DDCMH and DCMH reach the
registry by the same path as a third-party method plugin.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..hookspecs import hookimpl
from ..plugins import MethodSpec


@hookimpl
def ddcmh_methods() -> Iterator[MethodSpec]:
    """DDCMH (with any Stage-1 hasher) and the pairwise DCMH baseline."""
    yield MethodSpec(
        name="ddcmh",
        method="ddcmh_core.methods.ddcmh:DDCMH",
        summary="Dual Deep Neural Networks Cross-Modal Hashing over a single-modal Stage-1 hasher "
        "(Chen et al., AAAI 2018)",
    )
    yield MethodSpec(
        name="dcmh",
        method="ddcmh_core.methods.dcmh:DCMH",
        summary="Deep Cross-Modal Hashing, pairwise likelihood with two networks (Jiang & Li, CVPR 2017)",
    )
