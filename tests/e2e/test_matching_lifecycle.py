"""The whole life of a mentorship through HTTP and events on the running services: people
registered and profiled through the profiles API, a program, a matching run reviewed, edited
and published, both sides accepting, agreement, meetings, goals, feedback, the end and a
rematch; with the tenancy boundaries on the way."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import new_event
from shared.events.topics import MATCHING_TOPIC, PROFILES_TOPIC
from tests.e2e.test_programs import Org, _program
from tests.support import eventually


class Matching:
    """One network's calls to profiles (to set the scene) and matching (under test)."""

    def __init__(self, api, network_id: str) -> None:
        self.api, self.network_id = api, network_id
        self.org = Org(api, network_id)
        self.profiles = f"{api.platform.url('profiles')}/networks/{network_id}"
        self.base = f"{api.platform.url('matching')}/networks/{network_id}"
        self.ids: dict[str, str] = {}
        self.versions: dict[str, int] = {}

    def auth(self, role: str = "network_admin", **scope) -> dict[str, str]:
        return self.api.auth(self.network_id, role=role, **scope)

    def as_(self, name: str, role: str = "mentee") -> dict[str, str]:
        return self.auth(role, person_id=self.ids[name])

    async def register(self, name: str, role: str, *, stage: str, program_id: str | None = None,
                       institution: str = "inst-a", capacity: int = 1, profile: dict | None = None) -> str:
        body = {"institution_id": institution, "display_name": name, "career_stage": stage,
                "email": f"{name.lower()}-{self.network_id}@example.org"}
        if program_id:
            body["program_id"] = program_id
        if role == "mentor":
            body["capacity"] = capacity
        response = await self.api.http.post(f"{self.profiles}/{role}s", json=body, headers=self.auth())
        assert response.status_code == 201, response.text
        self.ids[name] = response.json()["id"]
        self.versions[name] = 1
        if profile:
            await self.profile(name, profile)
        return self.ids[name]

    async def profile(self, name: str, body: dict) -> None:
        response = await self.api.http.patch(
            f"{self.profiles}/people/{self.ids[name]}/profile", json=body,
            headers=self.auth() | {"If-Match": f'"{self.versions[name]}"'},
        )
        assert response.status_code == 200, response.text
        self.versions[name] += 1

    async def pool(self, role: str) -> dict[str, dict]:
        response = await self.api.http.get(f"{self.base}/pool/{role}s", headers=self.auth())
        response.raise_for_status()
        return {e["person_id"]: e for e in response.json()}

    async def settled(self, *names: str) -> None:
        """Wait until matching's pool holds each person at their latest profile version."""
        async def versions() -> dict[str, int | None]:
            entries = {**await self.pool("mentor"), **await self.pool("mentee")}
            return {n: (entries.get(self.ids[n]) or {}).get("profile_version", -1) for n in names}

        def current(seen: dict) -> bool:
            return all(seen[n] == (self.versions[n] if self.versions[n] > 1 else None) for n in names)

        await eventually(versions, current, what="the pool to hold the latest profiles")

    async def program(self, program_id: str, path: str = "", method: str = "GET", json_body=None, **who):
        headers = self.auth(**who) if who else self.auth()
        return await self.api.http.request(method, f"{self.base}/programs/{program_id}{path}",
                                           json=json_body, headers=headers)

    async def mentorship(self, mid: str, path: str = "", method: str = "GET", json_body=None, headers=None):
        return await self.api.http.request(method, f"{self.base}/mentorships/{mid}{path}", json=json_body,
                                           headers=headers or self.auth())

    async def mentorships(self, headers=None, **params) -> list[dict]:
        response = await self.api.http.get(f"{self.base}/mentorships", params=params, headers=headers or self.auth())
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def wait_program(self, program_id: str, **expected) -> None:
        async def probe():
            return await self.program(program_id, "/matching-settings")
        await eventually(probe, lambda r: r.status_code == 200, what="matching to know the program")


async def publish(bootstrap: str, *payloads) -> None:
    """Publish profile events as the profiles service would (real aiokafka)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for payload in payloads:
            subject = getattr(payload, "person_id", None) or payload.program_id
            event = new_event(payload, subject=subject, tenant_id=payload.network_id, source="/tests")
            await producer.send_and_wait(PROFILES_TOPIC, event.to_bytes(), key=subject.encode())
    finally:
        await producer.stop()


async def matching_events(bootstrap: str, subject: str, until: int, timeout: float = 20) -> list[dict]:
    """The events keyed by `subject` on the matching topic, in the order they were published
    (one key, one partition), at least `until` of them."""
    consumer = AIOKafkaConsumer(MATCHING_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < until:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found += [json.loads(r.value) for r in records if r.key == subject.encode()]
    finally:
        await consumer.stop()
    return found


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def _scene(api, network_id: str) -> tuple[Matching, str]:
    m = Matching(api, network_id)
    await m.org.setup("inst-a", "inst-b")
    created = await m.org.create(_program("inst-a", name="Surgery near-peer", max_mentors_per_mentee=1))
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    research = {"help_offered": ["research"], "languages": ["en"], "meeting_modes": ["virtual"]}
    await m.register("Mira", "mentor", stage="PGY-2", program_id=pid, capacity=1, profile={"mentor": research})
    await m.register("Omar", "mentor", stage="PGY-3", program_id=pid, capacity=2,
                     profile={"mentor": {"help_offered": ["wellbeing"], "do_not_match": []}})
    await m.register("Ana", "mentee", stage="M4", program_id=pid, profile={"mentee": {"needs": ["research"]}})
    await m.register("Ben", "mentee", stage="M3", program_id=pid, profile={"mentee": {"needs": ["wellbeing"]}})
    await m.profile("Omar", {"mentor": {"do_not_match": [m.ids["Ben"]]}})  # Omar evaluates Ben
    await m.settled("Mira", "Omar", "Ana", "Ben")
    return m, pid


async def test_the_whole_life_of_a_mentorship(api, network_id, platform):
    m, pid = await _scene(api, network_id)
    ids = m.ids
    coordinator = {"role": "institution_coordinator", "institution_id": "inst-a"}
    other = {"role": "institution_coordinator", "institution_id": "inst-b"}

    settings = await m.program(pid, "/matching-settings", "PUT", {"weights": {"needs": 6, "training": 0}, "top_k": 20},
                               **coordinator)
    assert settings.status_code == 200, settings.text
    assert (await m.program(pid, "/matching-settings", "PUT", {"weights": {"charm": 1}})).status_code == 422
    assert (await m.program(pid, "/matching-settings", **other)).status_code == 403

    draft = await m.program(pid, "/runs", "POST", {"algorithm": "min-cost-flow"}, **coordinator)
    assert draft.status_code == 201, draft.text
    run = draft.json()
    assert run["status"] == "draft" and run["parameters"]["weights"]["needs"] == 6
    assert run["mentees_eligible"] == 2 and set(run["timings_ms"]) == {"candidates", "solve"}
    pairs = {(p["mentee_id"], p["mentor_id"]) for p in run["proposals"]}
    # Omar evaluates Ben (a hard constraint), so the optimum that fills both gives Ben Mira.
    assert pairs == {(ids["Ben"], ids["Mira"]), (ids["Ana"], ids["Omar"])}, run["proposals"]
    assert run["mentees_matched"] == 2 and run["total_score"] > 0
    assert all(any("research" in x or "wellbeing" in x for x in p["explanation"]) for p in run["proposals"])
    assert (await m.program(pid, "/runs", "POST", {"algorithm": "min-cost-flow"}, **other)).status_code == 403

    # The coordinator edits; every added pair is checked against the hard constraints.
    path = f"/runs/{run['run_id']}"
    ben_mira, ana_omar = ({"mentee_id": ids[e], "mentor_id": ids[r]} for e, r in (("Ben", "Mira"), ("Ana", "Omar")))
    ana_mira = {"mentee_id": ids["Ana"], "mentor_id": ids["Mira"]}
    bad = await m.program(pid, path, "PATCH", {"remove": [ben_mira],
                                               "add": [{"mentee_id": ids["Ben"], "mentor_id": ids["Omar"]}]},
                          **coordinator)
    assert bad.status_code == 409 and "supervises or evaluates" in bad.json()["detail"]
    full = await m.program(pid, path, "PATCH", {"remove": [ana_omar], "add": [ana_mira]}, **coordinator)
    assert full.status_code == 409 and "no free place" in full.json()["detail"]
    edited = await m.program(pid, path, "PATCH", {"remove": [ana_omar, ben_mira], "add": [ana_mira]}, **coordinator)
    assert edited.status_code == 200, edited.text
    assert edited.json()["mentees_matched"] == 1 and edited.json()["proposals"][0]["mentee_id"] == ids["Ana"]
    assert (await m.program(pid, path, **coordinator)).json()["proposals"] == edited.json()["proposals"]

    published = await m.program(pid, f"/runs/{run['run_id']}/publish", "POST", **coordinator)
    assert published.status_code == 200, published.text
    assert (await m.program(pid, f"/runs/{run['run_id']}/publish", "POST")).status_code == 409
    [mid] = published.json()["mentorship_ids"]
    listed = await m.mentorships(program_id=pid, status="proposed")
    assert [(x["mentorship_id"], x["mentee_id"], x["mentor_id"]) for x in listed] == [(mid, ids["Ana"], ids["Mira"])]

    # Tenancy: another pair, another institution's coordinator see nothing of it.
    assert (await m.mentorship(mid, headers=m.as_("Ben"))).status_code == 404
    assert (await m.mentorship(mid, headers=m.auth(**other))).status_code == 404
    assert await m.mentorships(headers=m.auth(**other)) == []
    assert (await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_("Omar", "mentor"))).status_code == 404
    mine = m.auth("program_coordinator", institution_id="inst-a", program_ids=[pid])
    theirs = m.auth("program_coordinator", institution_id="inst-a", program_ids=["another-program"])
    assert (await m.mentorship(mid, headers=mine)).status_code == 200
    assert (await m.mentorship(mid, headers=theirs)).status_code == 404
    assert (await m.program(pid, "/runs", role="program_coordinator", institution_id="inst-a",
                            program_ids=["another-program"])).status_code == 403
    assert (await m.program(pid, "/runs", "POST", {}, role="mentee", person_id=ids["Ana"])).status_code == 403
    assert (await m.mentorships(headers=m.as_("Ben"))) == []
    assert [x["mentorship_id"] for x in await m.mentorships(headers=m.as_("Mira", "mentor"))] == [mid]

    # Both sides accept; `at` backfills but never into the future nor before the proposal.
    future = await m.mentorship(mid, "/accept", "POST", {"at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
                                headers=m.as_("Ana"))
    assert future.status_code == 422 and "future" in future.json()["detail"]
    early = await m.mentorship(mid, "/accept", "POST", {"at": ago(days=3)}, headers=m.as_("Ana"))
    assert early.status_code == 422 and "before the previous step" in early.json()["detail"]
    one = await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_("Ana"))
    assert one.status_code == 200 and one.json()["accepted_by"] == {"mentor": False, "mentee": True}
    assert (await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_("Ana"))).status_code == 409
    both = await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_("Mira", "mentor"))
    assert both.status_code == 200 and both.json()["status"] == "active" and both.json()["started_at"]

    agreement = {"cadence_days": 21, "channel": "video", "goals": ["Submit an abstract to ASC by March 1"]}
    put = await m.mentorship(mid, "/agreement", "PUT", agreement, headers=m.as_("Ana"))
    assert put.status_code == 200 and put.json()["agreement"]["cadence_days"] == 21

    starts = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    meeting = await m.mentorship(mid, "/meetings", "POST", {"starts_at": starts, "duration_minutes": 30,
                                                            "mode": "virtual", "agenda": "Abstract outline"},
                                 headers=m.as_("Mira", "mentor"))
    assert meeting.status_code == 201, meeting.text
    logged = await m.mentorship(mid, "/meetings/log", "POST", {
        "meeting_id": meeting.json()["meeting_id"], "held_at": datetime.now(UTC).isoformat(), "duration_minutes": 40,
        "mode": "virtual", "topics": ["research"], "private_notes": "Ana is anxious about the deadline"},
        headers=m.as_("Mira", "mentor"))
    assert logged.status_code == 201, logged.text
    seen_by_pair = await m.mentorship(mid, "/meetings", headers=m.as_("Ana"))
    assert seen_by_pair.json()[0]["private_notes"] == "Ana is anxious about the deadline"
    seen_by_coordinator = await m.mentorship(mid, "/meetings", headers=m.auth(**coordinator))
    assert seen_by_coordinator.status_code == 200 and "private_notes" not in seen_by_coordinator.json()[0]
    assert (await m.mentorship(mid, "/meetings", headers=m.as_("Omar", "mentor"))).status_code == 404

    goal = await m.mentorship(mid, "/goals", "POST", {"text": "First-author abstract", "category": "research"},
                              headers=m.as_("Ana"))
    assert goal.status_code == 201, goal.text
    gid = goal.json()["goal_id"]
    half = await m.mentorship(mid, f"/goals/{gid}", "PATCH", {"progress": 50}, headers=m.as_("Ana"))
    done = await m.mentorship(mid, f"/goals/{gid}", "PATCH", {"progress": 100, "note": "submitted"},
                              headers=m.as_("Ana"))
    assert (half.json()["achieved"], done.json()["achieved"]) == (False, True)
    stone = await m.mentorship(mid, "/milestones", "POST", {"title": "Abstract submitted", "goal_id": gid},
                               headers=m.as_("Ana"))
    assert stone.status_code == 201
    for who, role in (("Ana", "mentee"), ("Mira", "mentor")):
        fb = await m.mentorship(mid, "/feedback", "POST", {"satisfaction": 4, "working": True, "recommend": 9,
                                                          "comment": "good"}, headers=m.as_(who, role))
        assert fb.status_code == 201 and fb.json()["side"] == role
    assert (await m.mentorship(mid, "/feedback", "POST", {"satisfaction": 6, "working": True},
                               headers=m.as_("Ana"))).status_code == 422
    assert (await m.mentorship(mid, "/feedback", "POST", {"satisfaction": 3, "working": True},
                               headers=m.auth(**coordinator))).status_code == 403

    ended = await m.mentorship(mid, "/end", "POST", {"reason": "no_fit", "rematch": True}, headers=m.as_("Ana"))
    assert ended.status_code == 200 and (ended.json()["status"], ended.json()["end_reason"]) == ("ended", "no_fit")
    assert (await m.mentorship(mid, "/end", "POST", {"reason": "completed"}, headers=m.as_("Ana"))).status_code == 409

    # Rematch: Ana waits again; the ended pair is never proposed again; Ben still can't have Omar.
    again = (await m.program(pid, "/runs", "POST", {}, **coordinator)).json()
    assert {(p["mentee_id"], p["mentor_id"]) for p in again["proposals"]} == {(ids["Ben"], ids["Mira"]),
                                                                             (ids["Ana"], ids["Omar"])}
    suggested = await m.program(pid, f"/mentees/{ids['Ana']}/suggestions", **{"role": "mentee",
                                                                              "person_id": ids["Ana"]})
    assert [s["mentor_id"] for s in suggested.json()] == [ids["Omar"]]

    events = await matching_events(platform.servers.kafka_bootstrap, mid, until=13)
    assert [e["type"] for e in events] == [
        "MatchProposed", "MatchAccepted", "MatchAccepted", "MentorshipStarted", "AgreementRecorded",
        "MeetingScheduled", "MeetingLogged", "GoalSet", "GoalProgressUpdated", "GoalProgressUpdated",
        "MilestoneAchieved", "FeedbackSubmitted", "FeedbackSubmitted", "MentorshipEnded",
    ]
    assert events[0]["data"]["explanation"] and events[0]["data"]["run_id"] == run["run_id"]
    assert "anxious" not in json.dumps(events) and "good" not in json.dumps([e["data"] for e in events[11:13]])
    assert events[-1]["data"]["rematch"] is True


async def test_a_mentee_picks_a_suggestion_and_a_mentor_declines(api, network_id):
    m, pid = await _scene(api, network_id)
    ids = m.ids
    me = {"role": "mentee", "person_id": ids["Ana"]}
    suggested = await m.program(pid, f"/mentees/{ids['Ana']}/suggestions", **me)
    assert suggested.status_code == 200, suggested.text
    best = suggested.json()[0]
    assert best["mentor_id"] == ids["Mira"] and best["explanation"]
    # Someone else's suggestions are not for Ana to read.
    assert (await m.program(pid, f"/mentees/{ids['Ben']}/suggestions", **me)).status_code == 403
    picked = await m.program(pid, "/proposals", "POST", {"mentee_id": ids["Ana"], "mentor_id": best["mentor_id"]}, **me)
    assert picked.status_code == 201, picked.text
    assert picked.json()["status"] == "proposed" and picked.json()["run_id"] is None
    twice = await m.program(pid, "/proposals", "POST", {"mentee_id": ids["Ana"], "mentor_id": ids["Mira"]})
    assert twice.status_code == 409
    mid = picked.json()["mentorship_id"]
    unnamed = await m.mentorship(mid, "/accept", "POST", {})  # a coordinator must say for whom
    assert unnamed.status_code == 422 and "side" in unnamed.json()["detail"]
    for_her = await m.mentorship(mid, "/accept", "POST", {"side": "mentee"})
    assert for_her.status_code == 200 and for_her.json()["accepted_by"] == {"mentor": False, "mentee": True}
    impostor = await m.mentorship(mid, "/accept", "POST", {"side": "mentor"}, headers=m.as_("Ana"))
    assert impostor.status_code == 403
    declined = await m.mentorship(mid, "/decline", "POST", {"reason": "on leave"}, headers=m.as_("Mira", "mentor"))
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert (await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_("Ana"))).status_code == 409
    again = await m.program(pid, "/proposals", "POST", {"mentee_id": ids["Ana"], "mentor_id": ids["Mira"]})
    assert again.status_code == 409 and "declined" in again.json()["detail"]
    assert [x["status"] for x in await m.mentorships(person_id=ids["Ana"])] == ["declined"]
    # Coordinators hand-matching the same pair at the same moment: one proposal only.
    racing = await asyncio.gather(*(m.program(pid, "/proposals", "POST", {"mentee_id": ids["Ana"], "mentor_id": ids["Omar"]})
                                    for _ in range(3)))
    assert sorted(r.status_code for r in racing) == [201, 409, 409], [r.text for r in racing]
    assert sorted(x["status"] for x in await m.mentorships(person_id=ids["Ana"])) == ["declined", "proposed"]


async def test_history_kept_in_a_spreadsheet_can_be_backfilled(api, network_id, platform):
    m, pid = await _scene(api, network_id)
    ids = m.ids
    proposed = await m.program(pid, "/proposals", "POST",
                               {"mentee_id": ids["Ana"], "mentor_id": ids["Mira"], "at": ago(days=90)})
    assert proposed.status_code == 201, proposed.text
    mid = proposed.json()["mentorship_id"]
    too_early = await m.mentorship(mid, "/accept", "POST", {"at": ago(days=91)}, headers=m.as_("Ana"))
    assert too_early.status_code == 422
    for who, role, days in (("Ana", "mentee", 89), ("Mira", "mentor", 88)):
        accepted = await m.mentorship(mid, "/accept", "POST", {"at": ago(days=days)}, headers=m.as_(who, role))
        assert accepted.status_code == 200, accepted.text
    started = accepted.json()
    assert started["status"] == "active" and started["started_at"].startswith(ago(days=88)[:10])
    assert started["reassessment_due"].startswith(ago(days=88 - 90)[:10])
    steps = [
        ("/agreement", "PUT", {"cadence_days": 30, "channel": "in-person", "goals": [], "at": ago(days=87)}),
        ("/meetings", "POST", {"starts_at": ago(days=80), "duration_minutes": 30, "mode": "in-person",
                               "at": ago(days=86)}),
        ("/meetings/log", "POST", {"held_at": ago(days=80), "duration_minutes": 30, "mode": "in-person"}),
        ("/goals", "POST", {"text": "Pass Step 2", "category": "academic-exam-strategy", "at": ago(days=79)}),
        ("/feedback", "POST", {"satisfaction": 5, "working": True, "at": ago(days=30)}),
        ("/end", "POST", {"reason": "completed", "at": ago(days=1)}),
    ]
    for path, method, body in steps:
        response = await m.mentorship(mid, path, method, body, headers=m.as_("Ana"))
        assert response.status_code in (200, 201), (path, response.text)
    ended = (await m.mentorship(mid)).json()
    assert ended["ended_at"].startswith(ago(days=1)[:10])
    events = await matching_events(platform.servers.kafka_bootstrap, mid, until=10)
    assert [e["type"] for e in events][:4] == ["MatchProposed", "MatchAccepted", "MatchAccepted", "MentorshipStarted"]
    assert events[0]["data"]["proposed_at"].startswith(ago(days=90)[:10])
    assert events[-1]["type"] == "MentorshipEnded" and events[-1]["data"]["started_at"].startswith(ago(days=88)[:10])


async def test_bad_requests_are_answered_in_words_never_500(api, network_id):
    m, pid = await _scene(api, network_id)
    ids = m.ids
    proposed = await m.program(pid, "/proposals", "POST", {"mentee_id": ids["Ana"], "mentor_id": ids["Mira"]})
    mid = proposed.json()["mentorship_id"]
    cases = [
        (m.program("no-such-program", "/runs", "POST", {}), 404),
        (m.program(pid, "/runs/run-nope"), 404),
        (m.program(pid, "/runs/run-nope/publish", "POST"), 404),
        (m.program(pid, "/runs", "POST", {"algorithm": "deferred-acceptance"}), 409),
        (m.program(pid, "/runs", "POST", {"algorithm": "random"}), 422),
        (m.program(pid, "/proposals", "POST", {"mentee_id": ids["Ana"], "mentor_id": ids["Omar"], "x": 1}), 422),
        (m.program(pid, f"/mentees/{ids['Mira']}/suggestions"), 404),
        (m.program(pid, f"/mentees/{ids['Ana']}/suggestions?k=0"), 422),
        (m.program(pid, f"/preferences/{ids['Ana']}", "PUT", {"ranked": ["nobody"]}), 422),
        (m.program(pid, "/matching-settings", "PUT", {"weights": {"needs": 0, "specialty": 0, "career_stage": 0,
                                                                  "institution": 0, "language": 0, "meeting_mode": 0,
                                                                  "time_zone": 0, "affinity": 0, "training": 0}}), 422),
        (m.mentorship("ms-nope", "/accept", "POST", {}), 404),
        (m.mentorship(mid, "/agreement", "PUT", {"cadence_days": 14, "channel": "video"}), 409),
        (m.mentorship(mid, "/goals/goal-nope", "PATCH", {"progress": 10}), 409),
        (m.mentorship(mid, "/end", "POST", {"reason": "bored"}), 422),
        (m.mentorship(mid, "/accept", "POST", {"at": "yesterday-ish"}, headers=m.as_("Ana")), 422),
        (m.api.http.get(f"{m.base}/mentorships", params={"cursor": "garbage"}, headers=m.auth()), 422),
        (m.api.http.get(f"{m.base}/mentorships", params={"status": "bogus"}, headers=m.auth()), 422),
        (m.api.http.get(f"{m.base}/mentorships", headers=api.auth("another-network")), 403),
    ]
    for request, expected in cases:
        response = await request
        assert response.status_code == expected, (expected, response.request.url, response.text)
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    for who, role in (("Ana", "mentee"), ("Mira", "mentor")):
        accepted = await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_(who, role))
        assert accepted.status_code == 200, accepted.text
    for path, method, body, expected in (
        ("/goals/goal-nope", "PATCH", {"progress": 10}, 404),
        ("/milestones", "POST", {"title": "x", "goal_id": "goal-nope"}, 404),
        ("/meetings/log", "POST", {"meeting_id": "meet-nope", "held_at": ago(seconds=0), "duration_minutes": 5,
                                   "mode": "virtual"}, 404),
        ("/meetings/log", "POST", {"held_at": ago(days=-1), "duration_minutes": 5, "mode": "virtual"}, 422),
        ("/meetings", "POST", {"starts_at": ago(days=-1), "duration_minutes": 0, "mode": "virtual"}, 422),
    ):
        response = await m.mentorship(mid, path, method, body, headers=m.as_("Ana"))
        assert response.status_code == expected, (path, response.text)
