"""Entry point of ddcmh-pca-rr: one ``ddcmh_hashers`` hook implementation."""

from __future__ import annotations

from collections.abc import Iterator

from ddcmh_core import HasherSpec, hookimpl


@hookimpl
def ddcmh_hashers() -> Iterator[HasherSpec]:
    """Offer PCA-RR under the name ``pca-rr`` (the class is imported only when it is used)."""
    yield HasherSpec(
        name="pca-rr",
        hasher="ddcmh_pca_rr.pca_rr:PCARR",
        summary="PCA hashing with a random rotation of the principal directions (PCA-RR).",
    )
