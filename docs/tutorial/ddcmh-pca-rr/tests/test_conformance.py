"""The whole API test of the plugin: ddcmh's conformance kit, one test per check."""

from ddcmh_pca_rr import PCARR

from ddcmh_core.testing import parametrize_with_hasher_checks


@parametrize_with_hasher_checks([PCARR(n_bits=16)])
def test_conformance(hasher, check):
    """Run one check of the kit on PCA-RR."""
    check(hasher)
