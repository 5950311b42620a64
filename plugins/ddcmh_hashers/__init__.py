"""The built-in Stage-1 hashers of ddcmh.

They are registered through the ``ddcmh`` entry-point group of ddcmh's own ``pyproject.toml``
(``builtin = "ddcmh_hashers.plugin"``), exactly like a third-party plugin. Each hasher lives in
its own module and is imported only when used.
"""
