"""In-process wake-ups: code that records deliveries tells this process's delivery worker at
once which channels have new work, so a new message does not wait for the next poll (the poll
still finds deliveries that another instance recorded, and retries that fell due)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

Listener = Callable[[Iterable[str]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call `listener(channels)` whenever deliveries are recorded; returns the unsubscribe."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def deliveries_recorded(channels: Iterable[str] | None = None) -> None:
    """Deliveries on these channels (None: any) were just recorded in this process."""
    named = tuple(channels) if channels is not None else ("in_app", "webhook", "email")
    for listener in list(_listeners):
        listener(named)
