"""Argument checks shared by the evaluators' settings dataclasses."""

from __future__ import annotations

from collections.abc import Mapping

from evaluators.errors import SettingsError


def check_integers(settings: object, minimums: Mapping[str, int]) -> None:
    """Raise ``SettingsError`` unless each named field of ``settings`` is an int >= its minimum."""
    for name, least in minimums.items():
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise SettingsError(f"{type(settings).__name__}.{name} must be an integer >= {least}, "
                                f"got {value!r}")
