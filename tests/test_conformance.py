"""The conformance kit run over every hasher registered through entry points."""

from ddcmh_core import hasher_registry
from ddcmh_core.testing import parametrize_with_hasher_checks

REGISTRY = hasher_registry()


@parametrize_with_hasher_checks([REGISTRY.create(name, n_bits=16) for name in REGISTRY.names()])
def test_registered_hasher_conforms(hasher, check):
    check(hasher)


def test_every_builtin_hasher_is_registered():
    builtin = {entry.spec.name for entry in REGISTRY.entries() if entry.plugin.distribution == "ddcmh"}
    assert builtin == {
        "agh", "cca-itq", "cosdish", "dsh", "isohash", "itq", "ksh", "lfh", "lsh", "pcah", "sdh", "sh",
        "sph",
    }
