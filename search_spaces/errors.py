"""Root of the paretonas error hierarchy; each package adds its own subclasses."""

from __future__ import annotations


class ParetonasError(Exception):
    """Base of every error paretonas raises on purpose; its message says what to do."""


class SearchSpaceError(ParetonasError, ValueError):
    """A search space, a choice or an architecture is invalid."""


class UnknownNameError(ParetonasError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
