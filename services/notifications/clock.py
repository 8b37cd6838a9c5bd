"""The clock every time-driven decision reads: real time, plus an offset tests may advance.

Nothing here sleeps for days: tests move the clock (directly, or through the test-only
endpoint when NOTIFICATIONS_TEST_CLOCK is set) and the scheduler and delivery worker see the
new time on their next tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        self.offset += delta
        return self.now()


class FixedClock(Clock):
    """A clock that stands still until told: for integration tests that drive the scheduler."""

    def __init__(self, at: datetime) -> None:
        super().__init__()
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


CLOCK = Clock()  # the process's clock
