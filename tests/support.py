"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
