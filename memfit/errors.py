"""Two error families: the user's mistake (MemfitError) and a broken invariant (InternalError).

A MemfitError reaches the user as one message and exit code ``exit_code``; its text names the
cause and what to do. An InternalError is a bug in memfit and says so.
"""

from __future__ import annotations


class MemfitError(Exception):
    """An error the user can cause and fix. The CLI prints it without a traceback."""

    exit_code = 2


class ModelFormatError(MemfitError):
    """The file is not a readable model (corrupt, truncated, unknown format)."""


class UnsupportedModelError(MemfitError):
    """The model is valid but uses something memfit does not support."""


class UnsupportedOpError(UnsupportedModelError):
    """One or more operators are not supported; the message lists every one."""


class ShapeError(MemfitError):
    """A dimension is unknown or dynamic, or shapes do not agree."""


class InputError(MemfitError):
    """An input or output file given by the user does not match the model."""


class UsageError(MemfitError):
    """A bad flag or argument value."""


class BudgetError(MemfitError):
    """No plan fits the requested memory budget."""

    exit_code = 3


class InternalError(Exception):
    """A broken invariant inside memfit: always a bug, never the user's fault."""

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error (a bug in memfit, please report it): {message}")
