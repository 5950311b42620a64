from ddcmh_core.testing import parametrize_with_hasher_checks
from ddcmh_example import SKLSH


@parametrize_with_hasher_checks([SKLSH(n_bits=16)])
def test_conformance(hasher, check):
    check(hasher)
