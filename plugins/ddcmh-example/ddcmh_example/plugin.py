"""Entry point of the example plugin: one ``ddcmh_hashers`` hook implementation.

``pyproject.toml`` names this module in the ``ddcmh`` entry-point group::

    [project.entry-points.ddcmh]
    example = "ddcmh_example.plugin"
"""

from __future__ import annotations

from collections.abc import Iterator

from ddcmh_core import HasherSpec, hookimpl


@hookimpl
def ddcmh_hashers() -> Iterator[HasherSpec]:
    """Offer SKLSH under the name ``sklsh`` (the class is imported only when it is used)."""
    yield HasherSpec(
        name="sklsh",
        hasher="ddcmh_example.sklsh:SKLSH",
        summary="Shift-invariant kernel LSH (Raginsky & Lazebnik 2009): random Fourier bits.",
    )
