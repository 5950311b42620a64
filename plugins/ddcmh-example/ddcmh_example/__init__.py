"""ddcmh-example: a third-party ddcmh plugin offering SKLSH (shift-invariant kernel LSH)."""

from .sklsh import SKLSH

__all__ = ["SKLSH"]
__version__ = "0.1.0"
