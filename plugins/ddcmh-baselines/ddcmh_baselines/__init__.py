"""The classic cross-modal hashing baselines as ddcmh method plugins.

Each module ports one published method from its paper, read against the authors' public MATLAB
code (BMC-SDNU/Cross-Modal-Hashing-Retrieval); its defaults are the preprocessing and
hyper-parameters of that method's own demo. :mod:`ddcmh_baselines.plugin` registers them all with
ddcmh through the ``ddcmh`` entry-point group, the path any third-party method takes.
"""

__version__ = "0.1.0"
