"""Entry-point module of the built-in hashers: one ``ddcmh_hashers`` hook implementation."""

from __future__ import annotations

from collections.abc import Iterator

from ddcmh_core import HasherSpec, hookimpl


@hookimpl
def ddcmh_hashers() -> Iterator[HasherSpec]:
    """Yield the built-in hashers (classes are imported lazily, on first use)."""
    yield HasherSpec(
        name="lsh",
        hasher="ddcmh_hashers.lsh:LSH",
        summary="Sign random projections (Charikar 2002) of the centred data.",
    )
    yield HasherSpec(
        name="pcah",
        hasher="ddcmh_hashers.pcah:PCAH",
        summary="Signs of the top principal components.",
    )
    yield HasherSpec(
        name="itq",
        hasher="ddcmh_hashers.itq:ITQ",
        summary="Iterative Quantization (Gong & Lazebnik 2011): PCA + learned rotation.",
        aliases=("pca-itq",),
    )
    yield HasherSpec(
        name="cca-itq",
        hasher="ddcmh_hashers.itq:ITQ",
        summary="ITQ on a CCA projection against the labels (supervised).",
        defaults={"projection": "cca"},
    )
    yield HasherSpec(
        name="sh",
        hasher="ddcmh_hashers.sh:SH",
        summary="Spectral Hashing (Weiss et al. 2008) with analytic eigenfunctions.",
    )
    yield HasherSpec(
        name="agh",
        hasher="ddcmh_hashers.agh:AGH",
        summary="One-layer Anchor Graph Hashing (Liu et al. 2011).",
    )
    yield HasherSpec(
        name="sph",
        hasher="ddcmh_hashers.sph:SpH",
        summary="Spherical Hashing (Heo et al. 2012): one learned hypersphere per bit.",
    )
    yield HasherSpec(
        name="isohash",
        hasher="ddcmh_hashers.isohash:IsoHash",
        summary="Isotropic Hashing (Kong & Li 2012): PCA rotated to equal variances.",
    )
    yield HasherSpec(
        name="dsh",
        hasher="ddcmh_hashers.dsh:DSH",
        summary="Density Sensitive Hashing (Jin et al. 2014): balanced bisectors of K-means centres.",
    )
    yield HasherSpec(
        name="sdh",
        hasher="ddcmh_hashers.sdh:SDH",
        summary="Supervised Discrete Hashing (Shen et al. 2015) on anchor RBF features.",
    )
    yield HasherSpec(
        name="ksh",
        hasher="ddcmh_hashers.ksh:KSH",
        summary="Kernel-based Supervised Hashing (Liu et al. 2012), greedy bit-wise.",
    )
    yield HasherSpec(
        name="lfh",
        hasher="ddcmh_hashers.lfh:LFH",
        summary="Latent Factor Hashing (Zhang et al. 2014): label-overlap likelihood, stochastic Newton.",
    )
    yield HasherSpec(
        name="cosdish",
        hasher="ddcmh_hashers.cosdish:COSDISH",
        summary="Column-Sampling Discrete Supervised Hashing (Kang et al. 2016).",
    )
