"""When time-driven messages fall due (pure): silence nudges, check-ins, reminders.

A silent pair is measured from its last logged meeting (or its start): after cadence + grace
the mentee is nudged, after cadence + 2 x grace the mentor, and at twice the cadence (never
before the mentor) the coordinator hears of it. Each stage is keyed by the anchor, so a new
meeting starts a fresh series and an old series never repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STAGES = ("mentee", "mentor", "coordinator")


@dataclass(frozen=True)
class Stage:
    name: str
    due_at: datetime


def silence_stages(anchor: datetime, cadence_days: int, grace_days: float) -> list[Stage]:
    cadence, grace = timedelta(days=cadence_days), timedelta(days=grace_days)
    mentee = anchor + cadence + grace
    mentor = mentee + grace
    coordinator = max(anchor + 2 * cadence, mentor)
    return [Stage("mentee", mentee), Stage("mentor", mentor), Stage("coordinator", coordinator)]


def due_stages(stages: list[Stage], now: datetime) -> tuple[list[Stage], datetime | None]:
    """Stages due by `now`, and when the next one falls due (None when all are past)."""
    due = [s for s in stages if s.due_at <= now]
    later = [s.due_at for s in stages if s.due_at > now]
    return due, min(later) if later else None


def checkin_point(started_at: datetime, reassessment_days: int, now: datetime) -> tuple[int, datetime]:
    """How many reassessment points have passed by `now`, and when the next one falls."""
    period = timedelta(days=reassessment_days)
    passed = max(0, int((now - started_at) / period))
    return passed, started_at + (passed + 1) * period


def reminder_at(starts_at: datetime, hours_before: float) -> datetime:
    return starts_at - timedelta(hours=hours_before)
