"""In-process wake-ups: code that records deliveries tells this process's delivery worker at
once, so a new message does not wait for the next poll (the poll still finds deliveries that
another instance recorded)."""

from __future__ import annotations

from collections.abc import Callable

_listeners: list[Callable[[], None]] = []


def subscribe(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` whenever deliveries are recorded; returns the unsubscribe function."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def deliveries_recorded() -> None:
    for listener in list(_listeners):
        listener()
