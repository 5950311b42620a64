"""Registers every ported baseline with ddcmh (entry point ``baselines`` of the ``ddcmh`` group)."""

from __future__ import annotations

from collections.abc import Iterator

from ddcmh_core import MethodSpec, hookimpl

#: name, class path, one-line summary (paper and venue) of every port.
BASELINES: tuple[tuple[str, str, str], ...] = (
    ("scratch", "ddcmh_baselines.scratch:SCRATCH",
     "SCRATCH: collective matrix factorisation with discrete label-guided codes (Li et al., ACM MM 2018)"),
    ("batch", "ddcmh_baselines.batch:BATCH",
     "BATCH: batch-based discrete hashing over label embeddings (Wang et al., IEEE TKDE 2020)"),
    ("seph", "ddcmh_baselines.seph:SePH",
     "SePH: semantics-preserving hashing via affinity-to-code KL minimisation (Lin et al., CVPR 2015)"),
    ("dlfh", "ddcmh_baselines.dlfh:DLFH",
     "DLFH: discrete latent factor hashing, pairwise likelihood (Jiang & Li, IEEE TIP 2019)"),
    ("dch", "ddcmh_baselines.dch:DCH",
     "DCH: discrete cross-modal hashing, label-linear codes (Xu et al., IEEE TIP 2017)"),
    ("scm-seq", "ddcmh_baselines.scm:SCMSeq",
     "SCM-seq: semantic correlation maximisation, bit by bit (Zhang & Li, AAAI 2014)"),
    ("cvh", "ddcmh_baselines.cvh:CVH",
     "CVH: cross-view hashing, generalised eigenproblem (Kumar & Udupa, IJCAI 2011)"),
    ("cmfh", "ddcmh_baselines.cmfh:CMFH",
     "CMFH: collective matrix factorisation hashing (Ding et al., CVPR 2014)"),
    ("smfh", "ddcmh_baselines.smfh:SMFH",
     "SMFH: supervised matrix factorisation hashing (Tang, Wang & Shao, IEEE TIP 2016)"),
    ("stmh", "ddcmh_baselines.stmh:STMH",
     "STMH: semantic topic multimodal hashing (Wang et al., IJCAI 2015)"),
    ("imh", "ddcmh_baselines.imh:IMH",
     "IMH: inter-media hashing (Song et al., SIGMOD 2013)"),
    ("lssh", "ddcmh_baselines.lssh:LSSH",
     "LSSH: latent semantic sparse hashing (Zhou et al., SIGIR 2014)"),
    ("lemon", "ddcmh_baselines.lemon:LEMON",
     "LEMON: label embedding online hashing (Wang, Luo & Xu, ACM MM 2020)"),
)


@hookimpl
def ddcmh_methods() -> Iterator[MethodSpec]:
    """Every ported baseline."""
    for name, class_path, summary in BASELINES:
        yield MethodSpec(name=name, method=class_path, summary=summary)
