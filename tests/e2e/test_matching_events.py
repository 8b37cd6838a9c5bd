"""Matching from events alone, on the running services: programs and enrolments published to
Kafka (as profiles does), capacity under concurrent acceptances, auto-accepting programs,
ranked-preference (deferred acceptance) runs, and withdrawal and erasure closing mentorships."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

from shared.events.schemas import (
    MenteeRegistered,
    ParticipantWithdrawn,
    PersonEnrolled,
    PersonErased,
    ProgramCreated,
    ProgramUpdated,
)
from tests.e2e.test_matching_lifecycle import Matching, matching_events, publish
from tests.support import eventually, stays

NOW = datetime.now(UTC)


def program_created(network_id: str, **fields) -> ProgramCreated:
    values = dict(
        program_id=f"prog-{uuid.uuid4().hex[:8]}", network_id=network_id, institution_id="inst-a",
        name="Events-only program", type="near-peer", cohort_start=date(2026, 9, 1), cohort_end=date(2027, 6, 30),
        enrolment_opens=date(2026, 6, 1), enrolment_closes=date(2026, 9, 15), cross_institution=False,
        max_mentors_per_mentee=1, cadence_days=30, requires_approval=False, version=1, created_at=NOW,
    )
    return ProgramCreated(**{**values, **fields})


def enrolled(m: Matching, name: str, program_id: str, role: str) -> PersonEnrolled:
    return PersonEnrolled(enrolment_id=uuid.uuid4().hex, person_id=m.ids[name], network_id=m.network_id,
                          institution_id="inst-a", program_id=program_id, role=role, enrolled_at=NOW)


async def _program_of_events(api, network_id: str, platform, mentors: dict[str, int], mentees: list[str],
                             **program_fields) -> tuple[Matching, str]:
    """A program matching hears of only through Kafka, with people registered through the
    profiles API (no program) and enrolled by PersonEnrolled events."""
    m = Matching(api, network_id)
    await m.org.setup("inst-a")
    program = program_created(network_id, **program_fields)
    for name, capacity in mentors.items():
        await m.register(name, "mentor", stage="PGY-3", capacity=capacity,
                         profile={"mentor": {"help_offered": ["research"]}})
    for name in mentees:
        await m.register(name, "mentee", stage="M2", profile={"mentee": {"needs": ["research"]}})
    await publish(platform.servers.kafka_bootstrap, program,
                  *(enrolled(m, n, program.program_id, "mentor") for n in mentors),
                  *(enrolled(m, n, program.program_id, "mentee") for n in mentees))
    await m.settled(*mentors, *mentees)

    async def eligible() -> int:
        response = await m.program(program.program_id, f"/mentees/{m.ids[mentees[-1]]}/suggestions")
        return len(response.json()) if response.status_code == 200 else -1

    await eventually(eligible, lambda n: n == len(mentors), what="the program and its members in matching")
    return m, program.program_id


async def test_concurrent_acceptances_never_exceed_the_mentors_capacity(api, network_id, platform):
    m, pid = await _program_of_events(api, network_id, platform, {"Rita": 3}, ["Eve", "Fay", "Gus"])
    mids = []
    for name in ("Eve", "Fay", "Gus"):
        proposed = await m.program(pid, "/proposals", "POST", {"mentee_id": m.ids[name], "mentor_id": m.ids["Rita"]})
        assert proposed.status_code == 201, proposed.text
        mids.append(proposed.json()["mentorship_id"])
        accepted = await m.mentorship(mids[-1], "/accept", "POST", {}, headers=m.as_(name))
        assert accepted.status_code == 200, accepted.text
    # A fourth proposal would exceed her three places: refused before anyone accepts anything.
    await m.register("Hal", "mentee", stage="M2")
    await publish(platform.servers.kafka_bootstrap, enrolled(m, "Hal", pid, "mentee"))
    await eventually(lambda: m.program(pid, "/proposals", "POST", {"mentee_id": m.ids["Hal"], "mentor_id": m.ids["Rita"]}),
                     lambda r: r.status_code == 409 and "no free place" in r.json()["detail"])

    # Rita now takes one mentee only; all three mentor-side acceptances race for that place.
    await m.profile("Rita", {"mentor": {"capacity": 1}})
    await m.settled("Rita")
    rita = m.as_("Rita", "mentor")
    results = await asyncio.gather(*(m.mentorship(mid, "/accept", "POST", {}, headers=rita) for mid in mids))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409, 409], [r.text for r in results]
    assert all("no free place" in r.json()["detail"] for r in results if r.status_code == 409)
    active = await m.mentorships(program_id=pid, status="active")
    assert len(active) == 1 and active[0]["accepted_by"] == {"mentor": True, "mentee": True}
    waiting = [mid for mid, r in zip(mids, results, strict=True) if r.status_code == 409]
    assert [(await m.mentorship(mid)).json()["accepted_by"]["mentor"] for mid in waiting] == [False, False]

    # The place comes free when the mentorship ends: one waiting proposal can now start.
    ended = await m.mentorship(active[0]["mentorship_id"], "/end", "POST", {"reason": "completed"}, headers=rita)
    assert ended.status_code == 200, ended.text
    again = await asyncio.gather(*(m.mentorship(mid, "/accept", "POST", {}, headers=rita) for mid in waiting))
    assert sorted(r.status_code for r in again) == [200, 409]

    # The mentee still waiting leaves every program: her proposal lapses, it never starts later.
    [left] = [mid for mid, r in zip(waiting, again, strict=True) if r.status_code == 409]
    mentee_id = (await m.mentorship(left)).json()["mentee_id"]
    await publish(platform.servers.kafka_bootstrap, ParticipantWithdrawn(
        person_id=mentee_id, network_id=network_id, institution_id="inst-a", withdrawn_at=datetime.now(UTC)))
    lapsed = await eventually(lambda: m.mentorship(left), lambda r: r.json()["status"] != "proposed")
    assert (lapsed.json()["status"], lapsed.json()["declined_by"], lapsed.json()["decline_reason"]) == (
        "declined", "system", "withdrawn")
    events = await matching_events(platform.servers.kafka_bootstrap, left, until=3)
    assert [e["type"] for e in events] == ["MatchProposed", "MatchAccepted", "MatchDeclined"]


async def test_ranked_preferences_auto_accept_withdrawal_and_erasure(api, network_id, platform):
    m, pid = await _program_of_events(api, network_id, platform, {"Max": 1, "Ned": 1}, ["Amy", "Bob"],
                                      auto_accept=True, ranked_preferences=True)
    ids = m.ids
    for person, ranked in (("Amy", ["Max", "Ned"]), ("Bob", ["Max", "Ned"]), ("Max", ["Bob", "Amy"]),
                           ("Ned", ["Amy", "Bob"])):
        role = "mentor" if person in ("Max", "Ned") else "mentee"
        put = await m.program(pid, f"/preferences/{ids[person]}", "PUT", {"ranked": [ids[r] for r in ranked]},
                              role=role, person_id=ids[person])
        assert put.status_code == 200, put.text
    wrong = await m.program(pid, f"/preferences/{ids['Amy']}", "PUT", {"ranked": [ids["Bob"]]})
    assert wrong.status_code == 422 and "Not mentors of this program" in wrong.json()["detail"]
    others = await m.program(pid, f"/preferences/{ids['Amy']}", "PUT", {"ranked": []}, role="mentee",
                             person_id=ids["Bob"])
    assert others.status_code == 403

    run = await m.program(pid, "/runs", "POST", {"algorithm": "deferred-acceptance"})
    assert run.status_code == 201, run.text
    assert run.json()["stable"] is True
    assert {(p["mentee_id"], p["mentor_id"]) for p in run.json()["proposals"]} == {
        (ids["Bob"], ids["Max"]), (ids["Amy"], ids["Ned"])}
    published = await m.program(pid, f"/runs/{run.json()['run_id']}/publish", "POST")
    assert published.status_code == 200, published.text

    # The program auto-accepts: both mentorships are active at once, announced as such.
    active = {x["mentee_id"]: x for x in await m.mentorships(program_id=pid, status="active")}
    assert set(active) == {ids["Amy"], ids["Bob"]}
    amy_ned = active[ids["Amy"]]["mentorship_id"]
    events = await matching_events(platform.servers.kafka_bootstrap, amy_ned, until=4)
    assert [e["type"] for e in events] == ["MatchProposed", "MatchAccepted", "MatchAccepted", "MentorshipStarted"]
    assert events[0]["data"]["auto_accept"] is True

    logged = await m.mentorship(amy_ned, "/meetings/log", "POST", {
        "held_at": datetime.now(UTC).isoformat(), "duration_minutes": 30, "mode": "virtual",
        "topics": ["research"], "private_notes": "Amy mentioned her family situation"}, headers=m.as_("Ned", "mentor"))
    assert logged.status_code == 201, logged.text

    # Max leaves the program: Bob's mentorship closes and Bob waits for another mentor.
    await publish(platform.servers.kafka_bootstrap, ParticipantWithdrawn(
        person_id=ids["Max"], network_id=network_id, institution_id="inst-a", program_id=pid, role="mentor",
        reason="moved away", withdrawn_at=datetime.now(UTC)))
    bob_max = await eventually(lambda: m.mentorship(active[ids["Bob"]]["mentorship_id"]),
                               lambda r: r.json()["status"] == "ended")
    assert (bob_max.json()["end_reason"], bob_max.json()["rematch"]) == ("withdrawn", True)

    # Amy is erased: her mentorship closes, her personal data goes, the anonymous row stays.
    await publish(platform.servers.kafka_bootstrap, PersonErased(
        person_id=ids["Amy"], network_id=network_id, institution_id="inst-a", erased_at=datetime.now(UTC)))
    erased = await eventually(lambda: m.mentorship(amy_ned), lambda r: r.json()["status"] == "ended")
    assert erased.json()["end_reason"] == "erased" and erased.json()["explanation"] == []
    notes = await m.mentorship(amy_ned, "/meetings", headers=m.as_("Ned", "mentor"))
    assert notes.json()[0]["private_notes"] == "" and notes.json()[0]["duration_minutes"] == 30
    pool = await m.pool("mentee")
    assert pool[ids["Amy"]]["display_name"] == "(erased)"
    ended = await matching_events(platform.servers.kafka_bootstrap, amy_ned, until=5)
    assert ended[-1]["type"] == "MentorshipEnded" and ended[-1]["data"]["reason"] == "erased"

    # A replayed registration never brings her back.
    await publish(platform.servers.kafka_bootstrap, MenteeRegistered(
        person_id=ids["Amy"], network_id=network_id, institution_id="inst-a", program_id=pid,
        display_name="Amy", email="amy@example.org", career_stage="M2", registered_at=NOW))

    async def amy() -> str:
        return (await m.pool("mentee"))[ids["Amy"]]["display_name"]

    await stays(amy, "(erased)", seconds=1.5)
    suggestions = await m.program(pid, f"/mentees/{ids['Amy']}/suggestions")
    assert suggestions.status_code == 404
    # Ned's place is free again and Max is gone: Bob can be matched with Ned.
    rerun = await m.program(pid, "/runs", "POST", {})
    assert [(p["mentee_id"], p["mentor_id"]) for p in rerun.json()["proposals"]] == [(ids["Bob"], ids["Ned"])]


async def test_program_events_in_any_order_leave_the_latest_version(api, network_id, platform):
    v1 = program_created(network_id, auto_accept=False)
    v2 = ProgramUpdated(**{**v1.model_dump(exclude={"created_at"}), "version": 2, "auto_accept": True,
                           "max_mentors_per_mentee": 3, "changed": ["auto_accept"], "updated_at": NOW})
    replayed_v1 = v1.model_copy(update={"name": "Replayed"})
    m = Matching(api, network_id)
    await publish(platform.servers.kafka_bootstrap, v2, v1, replayed_v1)

    async def view() -> dict:
        response = await m.program(v1.program_id, "/matching-settings")
        return response.json().get("program", {}) if response.status_code == 200 else {}

    seen = await eventually(view, lambda v: v.get("version") == 2, what="the program view")
    assert (seen["auto_accept"], seen["max_mentors_per_mentee"]) == (True, 3)
    await stays(view, seen, seconds=1.0)


async def test_concurrent_acceptances_never_exceed_the_programs_mentors_per_mentee(api, network_id, platform):
    m, pid = await _program_of_events(api, network_id, platform, {"Xia": 1, "Yul": 1}, ["Zoe"],
                                      max_mentors_per_mentee=2)
    await m.profile("Zoe", {"mentee": {"mentors_wanted": 2}})
    await m.settled("Zoe")
    mids = []
    for mentor in ("Xia", "Yul"):
        proposed = await m.program(pid, "/proposals", "POST", {"mentee_id": m.ids["Zoe"], "mentor_id": m.ids[mentor]})
        assert proposed.status_code == 201, proposed.text
        mids.append(proposed.json()["mentorship_id"])
        accepted = await m.mentorship(mids[-1], "/accept", "POST", {}, headers=m.as_(mentor, "mentor"))
        assert accepted.status_code == 200, accepted.text
    # The program now allows one mentor per mentee; Zoe accepts both at the same moment.
    program = program_created(network_id, program_id=pid, max_mentors_per_mentee=1)
    await publish(platform.servers.kafka_bootstrap, ProgramUpdated(
        **{**program.model_dump(exclude={"created_at"}), "version": 2, "changed": ["max_mentors_per_mentee"],
           "updated_at": NOW}))
    await eventually(lambda: m.program(pid, "/matching-settings"),
                     lambda r: r.json()["program"]["max_mentors_per_mentee"] == 1)
    results = await asyncio.gather(*(m.mentorship(mid, "/accept", "POST", {}, headers=m.as_("Zoe")) for mid in mids))
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    assert "as many active mentors as the program allows" in next(r for r in results if r.status_code == 409).text
    assert len(await m.mentorships(program_id=pid, status="active")) == 1
