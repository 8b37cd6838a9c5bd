"""The service's own view from profiles events: enrolments, profile versions, time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifications import view
from shared.events import new_event
from shared.events import schemas as s
from tests.integration.test_notifications_time import DAY, _pair, harness  # noqa: F401


def _profile(h, person_id: str, version: int, *, name: str, zone: str | None = None, goals=()) -> object:
    payload = s.ProfileUpdated(
        person_id=person_id, network_id=h.events.network_id, institution_id="inst-a", display_name=name,
        career_stage="M2", roles=["mentee"], version=version, updated_at=datetime.now(UTC),
        mentor={"time_zone": zone} if zone else None,
        mentee={"goals": [{"text": g, "category": "research"} for g in goals]} if goals else None)
    return new_event(payload, subject=person_id, tenant_id=h.events.network_id, source="/tests")


async def test_profiles_feed_names_goals_and_zones_and_an_old_version_changes_nothing(harness):
    h = harness
    t0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    h.clock.at = t0
    program = h.events.program(at=t0)
    tag = h.settings.service_name
    mentor = h.events.person("mentor", "Grace Hopper", f"grace-{tag}@example.org", at=t0)
    mentee = h.events.person("mentee", "Ada Lovelace", f"ada-{tag}@example.org", at=t0)
    enrolled = new_event(s.PersonEnrolled(
        enrolment_id="e1", person_id=mentee.subject, network_id=h.events.network_id, institution_id="inst-a",
        program_id=program.subject, role="mentee", enrolled_at=t0), subject=mentee.subject,
        tenant_id=h.events.network_id, source="/tests")
    newer = _profile(h, mentee.subject, 3, name="Ada King", goals=["Publish a case report"])
    older = _profile(h, mentee.subject, 2, name="Ada Old")
    zone = _profile(h, mentor.subject, 2, name="Grace Hopper", zone="Asia/Tokyo")
    await h.send(program, mentor, mentee, enrolled, newer, older, zone)
    person = await h.db[view.PEOPLE].find_one({"_id": mentee.subject})
    assert person["display_name"] == "Ada King" and person["programs"] == [program.subject]
    assert person["goals"] == ["Publish a case report"] and set(person["roles"]) == {"mentee"}

    from tests.notifications_support import pair_ids
    pair = pair_ids(program.subject, mentor.subject, mentee.subject)
    await h.db[view.PREFERENCES].insert_one(
        {"_id": mentor.subject, "quiet_hours": {"start": "21:00", "end": "08:00"}})  # no zone chosen
    await h.send(h.events.started(pair, at=t0))
    await h.drain()  # 12:00 UTC is 21:00 in Tokyo: the mentor's email waits for 08:00 there
    [intro] = h.to(f"ada-{tag}@example.org", "Meet Grace Hopper")
    assert "Publish a case report" in intro.get_body(preferencelist=("plain",)).get_content()
    assert h.to(f"grace-{tag}@example.org", "Meet") == []
    await h.at(t0 + timedelta(hours=11))  # 08:00 in Tokyo
    assert len(h.to(f"grace-{tag}@example.org", "Meet Ada King")) == 1
