"""ddcmh-pca-rr: the PCA-RR Stage-1 hasher for ddcmh (the plugin of the documentation's tutorial)."""

from .pca_rr import PCARR

__all__ = ["PCARR"]
__version__ = "0.1.0"
