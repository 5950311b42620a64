"""Once the plugin is installed, ddcmh finds PCA-RR by its name, like any built-in hasher."""

from ddcmh_core import get_hasher, load_hasher
from ddcmh_core.testing import make_bow_data

texts, _ = make_bow_data(n_samples=500, n_features=100)
hasher = get_hasher("pca-rr", n_bits=16, rotation="random")
hasher.fit(texts).save("pca-rr.h5")
same = load_hasher("pca-rr.h5")  # the file names the hasher; the plugin provides the class
assert (same.encode(texts) == hasher.encode(texts)).all()
print(type(same).__name__, same.params.rotation)  # PCARR random
