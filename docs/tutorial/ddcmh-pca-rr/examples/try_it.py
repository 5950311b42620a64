"""Fit PCA-RR on a small synthetic bag-of-words corpus and look at its codes."""

from ddcmh_pca_rr import PCARR

from ddcmh_core import load_hasher
from ddcmh_core.testing import make_bow_data

texts, labels = make_bow_data(n_samples=500, n_features=100)  # sparse counts, multi-hot labels
hasher = PCARR(n_bits=16, seed=0)
codes = hasher.fit_encode(texts)
print(codes.shape, codes.dtype)  # (500, 16) uint8
print(codes.mean(axis=0).round(2))  # the share of ones of each bit

hasher.save("pca-rr.h5")  # HDF5: hyper-parameters + fitted attributes, no pickle
same = load_hasher("pca-rr.h5", hasher_class=PCARR)  # hasher_class: not installed yet
assert (same.encode(texts) == codes).all()
