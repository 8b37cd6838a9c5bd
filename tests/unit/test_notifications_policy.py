"""Preferences, quiet hours, digests and the timing of nudges (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from services.notifications.policy import Preferences, QuietHours, decide, next_digest_at, quiet_until
from services.notifications.timing import checkin_point, due_stages, silence_stages

NIGHT = QuietHours(start=time(22), end=time(7))


def test_quiet_hours_across_midnight_defer_to_the_morning_in_the_persons_zone():
    # 23:30 in Paris (UTC+1 in winter) is 22:30 UTC; quiet ends 07:00 Paris = 06:00 UTC next day.
    now = datetime(2026, 1, 10, 22, 30, tzinfo=UTC)
    assert quiet_until(now, "Europe/Paris", NIGHT) == datetime(2026, 1, 11, 6, 0, tzinfo=UTC)
    # 05:00 Paris is 04:00 UTC: still quiet, until 06:00 UTC the same day.
    assert quiet_until(datetime(2026, 1, 11, 4, tzinfo=UTC), "Europe/Paris", NIGHT) == datetime(
        2026, 1, 11, 6, tzinfo=UTC)
    assert quiet_until(datetime(2026, 1, 11, 12, tzinfo=UTC), "Europe/Paris", NIGHT) is None


def test_quiet_hours_within_a_day():
    lunch = QuietHours(start=time(12), end=time(13))
    assert quiet_until(datetime(2026, 3, 2, 12, 30, tzinfo=UTC), "UTC", lunch) == datetime(
        2026, 3, 2, 13, tzinfo=UTC)
    assert quiet_until(datetime(2026, 3, 2, 13, tzinfo=UTC), "UTC", lunch) is None


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
       st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]))
def test_a_deferred_message_always_lands_outside_quiet_hours_and_within_a_day(naive, zone):
    now = naive.replace(tzinfo=UTC)
    until = quiet_until(now, zone, NIGHT)
    if until is not None:
        assert now < until <= now + timedelta(hours=10)
        assert quiet_until(until, zone, NIGHT) is None


def test_decisions_follow_preferences_but_mandatory_messages_always_go():
    now = datetime(2026, 1, 10, 23, tzinfo=UTC)
    prefs = Preferences(quiet_hours=NIGHT, channels={"nudge": {"email": False}})
    assert decide(prefs, "nudge", "email", now).action == "skip"
    assert decide(prefs, "nudge", "in_app", now).action == "send"
    assert decide(prefs, "milestone", "email", now).action == "defer"
    assert decide(prefs, "milestone", "in_app", now).action == "send"  # the feed wakes no one
    assert decide(prefs, "welcome", "email", now).action == "send"  # mandatory, even at night
    digest = Preferences(digest="daily")
    assert decide(digest, "milestone", "email", now).action == "hold"
    assert decide(digest, "personal_digest", "email", now).action == "send"
    # Kinds that are in-app only by default stay off email unless asked for.
    assert decide(Preferences(), "match_accepted", "email", now).action == "skip"


def test_preferences_refuse_turning_off_mandatory_kinds_and_unknown_names():
    with pytest.raises(ValidationError, match="mandatory"):
        Preferences(channels={"welcome": {"email": False}})
    with pytest.raises(ValidationError, match="unknown message kind"):
        Preferences(channels={"spam": {"email": True}})
    with pytest.raises(ValidationError, match="unknown time zone"):
        Preferences(time_zone="Mars/Olympus")
    with pytest.raises(ValidationError, match="different"):
        QuietHours(start=time(8), end=time(8))


def test_digests_leave_at_seven_local_and_weekly_on_mondays():
    now = datetime(2026, 1, 7, 9, tzinfo=UTC)  # a Wednesday
    assert next_digest_at(now, "UTC", "daily") == datetime(2026, 1, 8, 7, tzinfo=UTC)
    assert next_digest_at(now, "UTC", "weekly") == datetime(2026, 1, 12, 7, tzinfo=UTC)
    assert next_digest_at(now, "America/New_York", "daily") == datetime(2026, 1, 7, 12, tzinfo=UTC)


def test_silence_nudges_mentee_then_mentor_then_coordinator_at_twice_the_cadence():
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    stages = silence_stages(anchor, cadence_days=14, grace_days=3)
    assert [(s.name, (s.due_at - anchor).days) for s in stages] == [
        ("mentee", 17), ("mentor", 20), ("coordinator", 28)]
    due, nxt = due_stages(stages, anchor + timedelta(days=18))
    assert [s.name for s in due] == ["mentee"] and nxt == anchor + timedelta(days=20)
    due, nxt = due_stages(stages, anchor + timedelta(days=30))
    assert len(due) == 3 and nxt is None
    # A short cadence never tells the coordinator before the mentor was nudged.
    short = silence_stages(anchor, cadence_days=2, grace_days=3)
    assert short[2].due_at >= short[1].due_at


def test_checkin_points_count_reassessment_periods():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert checkin_point(start, 90, start + timedelta(days=10)) == (0, start + timedelta(days=90))
    assert checkin_point(start, 90, start + timedelta(days=181)) == (2, start + timedelta(days=270))
