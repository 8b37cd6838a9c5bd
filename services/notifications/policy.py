"""Preferences of a person and what they mean for one message at one moment (pure).

The decision is taken when the message is about to leave, not when the event arrived, so a
preference changed in between is honoured, and quiet hours are computed for the moment of
sending in the recipient's own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from services.notifications.kinds import EMAIL, KINDS, PERSON_CHANNELS

DigestFrequency = Literal["daily", "weekly"]
DIGEST_HOUR = 7  # digests leave at 07:00 in the recipient's time zone


class QuietHours(BaseModel):
    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours need a start different from their end")
        return self


class Preferences(BaseModel):
    """What a person chose. Absent kinds use the kind's default channels."""

    time_zone: str = Field(default="UTC", max_length=64)
    quiet_hours: QuietHours | None = None
    # kind -> channel -> on/off; only the channels a person turned off or on explicitly.
    channels: dict[
        Annotated[str, Field(max_length=60)],
        Annotated[dict[Annotated[str, Field(max_length=20)], bool], Field(max_length=10)],
    ] = Field(default_factory=dict, max_length=50)
    digest: DigestFrequency | None = None  # email gathered into one digest instead of immediate

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("channels")
    @classmethod
    def _known_kinds(cls, value: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
        for name, switches in value.items():
            if name not in KINDS:
                raise ValueError(f"unknown message kind {name!r}; known: {', '.join(KINDS)}")
            for channel, on in switches.items():
                if channel not in PERSON_CHANNELS:
                    raise ValueError(f"unknown channel {channel!r}; use email or in_app")
                if KINDS[name].mandatory and not on:
                    raise ValueError(f"{name!r} messages are mandatory and cannot be turned off")
        return value


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/Paris)") from exc


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "skip", "hold", "defer"]
    at: datetime | None = None  # for defer: when to try again
    reason: str = ""


def decide(prefs: Preferences, kind_name: str, channel: str, now: datetime) -> Decision:
    """Send now, skip (turned off), hold for the digest, or defer past quiet hours."""
    kind = KINDS[kind_name]
    if kind.mandatory:
        return Decision("send")
    if not prefs.channels.get(kind_name, {}).get(channel, channel in kind.channels):
        return Decision("skip", reason=f"{channel} turned off for {kind_name} by the recipient")
    if channel != EMAIL:
        return Decision("send")  # the feed and webhooks disturb no one at night
    if prefs.digest and kind_name not in ("personal_digest", "coordinator_digest"):
        return Decision("hold", reason=f"gathered into the {prefs.digest} digest")
    if prefs.quiet_hours and (until := quiet_until(now, prefs.time_zone, prefs.quiet_hours)):
        return Decision("defer", at=until, reason="quiet hours")
    return Decision("send")


def quiet_until(now: datetime, time_zone: str, quiet: QuietHours) -> datetime | None:
    """The end of the quiet period `now` falls in (UTC-aware), or None outside it."""
    local = now.astimezone(zone(time_zone))
    t = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= t < quiet.end
        end_day = local.date()
    else:  # across midnight, e.g. 22:00-07:00
        inside = t >= quiet.start or t < quiet.end
        end_day = local.date() + timedelta(days=1) if t >= quiet.start else local.date()
    if not inside:
        return None
    end = datetime.combine(end_day, quiet.end, tzinfo=zone(time_zone))
    return end.astimezone(now.tzinfo)


def next_digest_at(now: datetime, time_zone: str, frequency: DigestFrequency) -> datetime:
    """The next 07:00 local (on a Monday for weekly) strictly after `now`."""
    tz = zone(time_zone)
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), time(DIGEST_HOUR), tzinfo=tz)
    while candidate <= local or (frequency == "weekly" and candidate.weekday() != 0):
        candidate = datetime.combine(candidate.date() + timedelta(days=1), time(DIGEST_HOUR), tzinfo=tz)
    return candidate.astimezone(now.tzinfo)
