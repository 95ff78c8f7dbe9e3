"""A typed name -> plugin registry, one per plugin kind (spaces, backends, searchers...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from search_spaces.errors import SearchSpaceError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to plugins of one kind.

    Unknown names fail with the list of known ones; registering a taken name fails
    instead of silently replacing it. Third-party plugins may be published under the
    entry-point group ``entry_point_group`` and are loaded on first lookup; one that
    fails to load is recorded as unavailable with its reason (see ``unavailable``) and
    fails only when it is asked for by name.
    """

    def __init__(self, kind: str, *, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # entry-point name -> why it failed to load
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, value: T) -> T:
        if not name or name != name.strip():
            raise SearchSpaceError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and self._entries[name] is not value:
            raise SearchSpaceError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = value
        return value

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""
        return lambda value: self.register(name, value)

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            if name in self._broken:
                raise UnknownNameError(
                    f"{self.kind} {name!r} is unavailable: {self._broken[name]}"
                ) from None
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def unavailable(self) -> dict[str, str]:
        """Plugins published under the entry-point group that failed to load, with why."""
        self._load_entry_points()
        return dict(self._broken)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry in entry_points(group=self._entry_point_group or ""):
            if entry.name in self._entries:
                continue
            try:
                self.register(entry.name, entry.load())
            except Exception as error:  # a broken third-party package must not break the rest
                dist = getattr(entry.dist, "name", None) or "its package"
                self._broken[entry.name] = (
                    f"entry point {entry.value!r} (group {self._entry_point_group}) failed to load: "
                    f"{type(error).__name__}: {error}; fix or uninstall {dist}"
                )
