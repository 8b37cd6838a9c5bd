"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.events import CloudEvent, new_event
from shared.events.schemas import MenteeRegistered

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `probe` until `until(value)` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = await _call(probe)
    while not until(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await _call(probe)
    return value


async def _call(probe: Callable[[], Awaitable[T] | T]) -> T:
    value = probe()
    return await value if inspect.isawaitable(value) else value


async def stays(
    probe: Callable[[], Awaitable[T]], expected: T, *, seconds: float = 2.0, interval: float = 0.2
) -> None:
    """Assert a value holds for a while: nothing arrives late and changes a count twice."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await _call(probe)
        assert value == expected, f"value changed to {value!r}, expected it to stay {expected!r}"
        await asyncio.sleep(interval)


def mentee_registered(person_id: str = "p1", **overrides: Any) -> MenteeRegistered:
    """A valid MenteeRegistered payload; tests override what they look at."""
    fields: dict[str, Any] = dict(
        person_id=person_id,
        network_id="n1",
        institution_id="i1",
        display_name="Test Person",
        email=f"{person_id}@example.org",
        career_stage="M2",
        registered_at=datetime.now(UTC),
    )
    return MenteeRegistered(**{**fields, **overrides})


def mentee_registered_event(person_id: str = "p1", **overrides: Any) -> CloudEvent:
    """The same payload in its envelope, as profiles would publish it."""
    payload = mentee_registered(person_id, **overrides)
    return new_event(payload, subject=person_id, tenant_id=payload.network_id, source="/tests")


async def finished_import(http: Any, started: Any, headers: dict[str, str], *,
                          timeout: float = 120.0) -> Any:
    """The final state of a roster import: a 202's job followed at its `Location` until it is
    no longer running (any other answer, a dry run's report or a refusal, as it came)."""
    if started.status_code != 202:
        return started
    url = str(started.request.url.join(started.headers["Location"]))

    async def state() -> Any:
        return await http.get(url, headers=headers)

    return await eventually(state, lambda r: r.status_code != 200 or r.json()["status"] != "running",
                            timeout=timeout, interval=0.1, what=f"import {url} to finish")
