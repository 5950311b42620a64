"""Exception types shared by every part of ddcmh.

Every error that a user can cause by bad input derives from :class:`DdcmhError`, so that the
command-line tools can report it in one line and exit with status 2 instead of printing a
traceback.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class DdcmhError(Exception):
    """Base class of every error that ddcmh raises on purpose."""


class InputError(DdcmhError, ValueError):
    """Bad data or arguments: the message names the argument, what was expected and what was found."""


class NotFittedError(DdcmhError, _SklearnNotFittedError, RuntimeError):
    """A hasher (or model) was used before it was fitted.

    Also a ``sklearn.exceptions.NotFittedError`` (so a ``ValueError`` and an ``AttributeError``),
    which is what scikit-learn code expects from an unfitted estimator.
    """


class NumericalError(DdcmhError, ArithmeticError):
    """A computation gave NaN or infinite values: a diverged training or a model with broken weights."""


class HasherFileError(DdcmhError, ValueError):
    """A file that should hold a saved hasher is missing, corrupted, foreign or from another version."""


class PluginError(DdcmhError):
    """Base class for errors of the plugin system."""


class UnknownNameError(PluginError, KeyError):
    """A name (hasher, dataset, ...) that no installed plugin provides.

    The message lists the names that are installed.
    """

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(PluginError):
    """Two or more plugins claim the same name; the message names every provider."""


class UnsupportedOperationError(DdcmhError, NotImplementedError):
    """The object cannot do what was asked (e.g. ``encode`` on a hasher without out-of-sample)."""
