"""Program options, enrolment, identity attributes, export, erasure and the audit log,
through the HTTP API with real tokens, on the running services."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer

from shared.events.topics import PROFILES_TOPIC
from tests.e2e.test_people import People
from tests.e2e.test_programs import Org, _program


async def published(bootstrap: str, subject: str, *types: str, timeout: float = 20) -> dict:
    """Every event of these types about `subject`, waiting until each type was seen once."""
    consumer = AIOKafkaConsumer(
        PROFILES_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, list[dict]] = {t: [] for t in types}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not all(found.values()):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    headers = dict(record.headers or ())
                    kind = (headers.get("ce_type") or b"").decode()
                    if record.key == subject.encode() and kind in found:
                        found[kind].append(json.loads(record.value))
    finally:
        await consumer.stop()
    missing = [t for t, seen in found.items() if not seen]
    assert not missing, f"no {missing} for {subject} within {timeout}s"
    return found


def _open(institution_id: str | None = "inst-a", **fields) -> dict:
    """A program whose enrolment window is open today."""
    today = datetime.now(UTC).date()
    return _program(
        institution_id,
        enrolment_opens=str(today - timedelta(days=5)),
        enrolment_closes=str(today + timedelta(days=20)),
        cohort_start=str(today + timedelta(days=30)),
        cohort_end=str(today + timedelta(days=300)),
        **fields,
    )


@pytest.fixture
async def people(api, network_id) -> People:
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    people = People(api, org)
    await people.setup()
    return people


async def _new_program(people: People, body: dict) -> str:
    created = await people.org.create(body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _enrol(people: People, program_id: str, person: str, role: str, headers=None):
    return await people.api.http.post(
        f"{people.base}/programs/{program_id}/enrolments",
        json={"person_id": people.ids[person], "role": role},
        headers=headers or people.auth(),
    )


# ---------------------------------------------------------------- program options


async def test_program_options_are_stored_validated_and_published(people, platform):
    body = _open(auto_accept=True, reassessment_days=60,
                 coordinator_emails=["Lead@Example.org", "lead@example.org", "b@example.org"])
    created = await people.org.create(body)
    assert created.status_code == 201, created.text
    program = created.json()
    assert program["auto_accept"] is True and program["reassessment_days"] == 60
    assert program["ranked_preferences"] is False
    assert program["coordinator_emails"] == ["lead@example.org", "b@example.org"]
    events = await published(platform.servers.kafka_bootstrap, program["id"], "ProgramCreated")
    data = events["ProgramCreated"][0]["data"]
    assert data["auto_accept"] is True and data["reassessment_days"] == 60
    assert data["coordinator_emails"] == ["lead@example.org", "b@example.org"]

    edit = await people.org.patch(program["id"], {"auto_accept": False,
                                                  "ranked_preferences": True}, '"1"')
    assert edit.status_code == 200, edit.text
    assert edit.json()["ranked_preferences"] is True and edit.json()["version"] == 2
    events = await published(platform.servers.kafka_bootstrap, program["id"], "ProgramUpdated")
    assert sorted(events["ProgramUpdated"][0]["data"]["changed"]) == [
        "auto_accept", "ranked_preferences"]

    for bad, reason in (
        ({"coordinator_emails": ["not an email"]}, "not an email address"),
        ({"auto_accept": True}, "not both"),
        ({"reassessment_days": 0}, "greater than or equal to 1"),
        ({"reassessment_days": 400}, "between 1 and 366"),
    ):
        refused = await people.org.patch(program["id"], bad, '"2"')
        assert refused.status_code == 422 and reason in refused.text, (bad, refused.text)
    assert (await people.org.get(program["id"])).json()["version"] == 2


# ---------------------------------------------------------------- enrolment


async def test_a_person_takes_part_in_several_programs_in_different_roles(people, platform):
    """Grace is a mentee in P_a; her coordinator enrols her as a mentor in a second program."""
    near_peer = await _new_program(people, _program("inst-a", name="Students"))
    coordinator = people.coordinator("inst-a")
    enrolled = await _enrol(people, near_peer, "Grace", "mentor", coordinator)
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["status"] == "active"
    again = await _enrol(people, near_peer, "Grace", "mentor", coordinator)
    assert again.status_code == 409 and "already takes part" in again.text

    grace = (await people.get("Grace")).json()
    assert sorted(grace["program_ids"]) == sorted([people.programs["P_a"], near_peer])
    assert grace["roles"] == ["mentor", "mentee"]
    assert await people.names(program=near_peer) == ["Grace"]
    mine = await people.api.http.get(f"{people.base}/people/{people.ids['Grace']}/enrolments",
                                     headers=people.as_person("Grace"))
    assert sorted((e["program_id"], e["role"]) for e in mine.json()) == sorted(
        [(people.programs["P_a"], "mentee"), (near_peer, "mentor")])
    events = await published(platform.servers.kafka_bootstrap, people.ids["Grace"],
                             "PersonEnrolled", "MenteeRegistered")
    assert {(e["data"]["program_id"], e["data"]["role"]) for e in events["PersonEnrolled"]} >= {
        (people.programs["P_a"], "mentee"), (near_peer, "mentor")}

    # Another institution's coordinator reaches neither the person nor the program.
    other = await _enrol(people, near_peer, "Grace", "mentee", people.coordinator("inst-b"))
    assert other.status_code == 404
    # A program of inst-a only does not take Barbara (inst-b).
    refused = await _enrol(people, near_peer, "Barbara", "mentee")
    assert refused.status_code == 422 and "does not take people from other" in refused.text


async def test_self_registration_within_the_window_and_with_approval(people, platform):
    open_program = await _new_program(people, _open("inst-a", name="Open"))
    approval = await _new_program(people, _open(None, name="Selective", requires_approval=True))
    closed = await _new_program(people, _program("inst-a", name="Closed"))
    me = people.as_person("Grace")

    joined = await _enrol(people, open_program, "Grace", "mentee", me)
    assert joined.status_code == 201 and joined.json()["status"] == "active", joined.text
    late = await _enrol(people, closed, "Grace", "mentee", me)
    assert late.status_code == 409 and "open from" in late.text
    for_someone_else = await _enrol(people, open_program, "Ada", "mentee", me)
    assert for_someone_else.status_code in (403, 404)

    asked = await _enrol(people, approval, "Grace", "mentee", me)
    assert asked.status_code == 201 and asked.json()["status"] == "requested", asked.text
    again = await _enrol(people, approval, "Grace", "mentee", me)
    assert again.status_code == 409 and "already asked" in again.text
    assert await people.names(program=approval) == []  # not taking part until approved
    waiting = await people.api.http.get(f"{people.base}/programs/{approval}/enrolments",
                                        params={"status": "requested"}, headers=people.auth())
    assert [e["person_id"] for e in waiting.json()["items"]] == [people.ids["Grace"]]
    key = asked.json()["id"]
    url = f"{people.base}/programs/{approval}/enrolments/{key}"
    by_participant = await people.api.http.post(f"{url}/approve", headers=me)
    assert by_participant.status_code == 403
    approved = await people.api.http.post(f"{url}/approve", headers=people.auth())
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    twice = await people.api.http.post(f"{url}/approve", headers=people.auth())
    assert twice.status_code == 409 and "already decided" in twice.text
    assert await people.names(program=approval) == ["Grace"]

    radia = people.as_person("Radia")
    asked = await _enrol(people, approval, "Radia", "mentee", radia)
    declined = await people.api.http.post(
        f"{people.base}/programs/{approval}/enrolments/{asked.json()['id']}/decline",
        json={"reason": "The cohort is full"}, headers=people.coordinator("inst-b"),
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    events = await published(platform.servers.kafka_bootstrap, people.ids["Radia"],
                             "EnrolmentRequested", "EnrolmentDeclined")
    assert events["EnrolmentDeclined"][0]["data"]["reason"] == "The cohort is full"
    events = await published(platform.servers.kafka_bootstrap, people.ids["Grace"],
                             "EnrolmentRequested", "PersonEnrolled")
    assert approval in {e["data"]["program_id"] for e in events["PersonEnrolled"]}


async def test_withdrawal_from_one_program_or_all(people, platform):
    second = await _new_program(people, _open("inst-a", name="Second"))
    me = people.as_person("Grace")
    assert (await _enrol(people, second, "Grace", "mentee", me)).status_code == 201
    url = f"{people.base}/people/{people.ids['Grace']}/withdrawals"
    left = await people.api.http.post(url, json={"program_id": second, "reason": "Too busy"},
                                      headers=me)
    assert left.status_code == 200, left.text
    assert {e["program_id"]: e["status"] for e in left.json()}[second] == "withdrawn"
    assert await people.names(program=second) == []
    assert await people.names(program=people.programs["P_a"]) == ["Ada", "Grace"]
    again = await people.api.http.post(url, json={"program_id": second}, headers=me)
    assert again.status_code == 409 and "nothing to withdraw" in again.text
    by_other = await people.api.http.post(url, json={}, headers=people.coordinator("inst-b"))
    assert by_other.status_code == 404
    everything = await people.api.http.post(url, json={}, headers=people.coordinator("inst-a"))
    assert everything.status_code == 200
    assert (await people.get("Grace")).json()["program_ids"] == []
    events = await published(platform.servers.kafka_bootstrap, people.ids["Grace"],
                             "ParticipantWithdrawn")
    withdrawals = [e["data"] for e in events["ParticipantWithdrawn"]]
    assert withdrawals[0]["program_id"] == second and withdrawals[0]["reason"] == "Too busy"


async def test_registration_into_a_program_enrols_and_an_unknown_program_is_422(people, api):
    unknown = await api.register_mentee(people.network_id, "x", program_id="prog-nope")
    assert unknown.status_code == 422 and "no program 'prog-nope'" in unknown.text
    wrong_institution = await api.register_mentee(
        people.network_id, "y", institution_id="inst-b", program_id=people.programs["P_a"])
    assert wrong_institution.status_code == 422


# ---------------------------------------------------------------- identity


async def test_identity_attributes_are_published_in_their_own_event_only(people, platform):
    me = people.as_person("Grace")
    identity = {"first_generation": True, "affinity_matching": True}
    own = await people.patch("Grace", {"identity": identity}, '"1"', headers=me)
    assert own.status_code == 200, own.text
    events = await published(platform.servers.kafka_bootstrap, people.ids["Grace"],
                             "IdentityAttributesChanged")
    data = events["IdentityAttributesChanged"][0]["data"]
    assert data["attributes"] == {"first_generation": "true"} and data["use_for_matching"]


# ---------------------------------------------------------------- export and erasure


async def test_export_of_own_data_and_by_admins_in_scope(people):
    me = people.as_person("Grace")
    await people.patch("Grace", {"identity": {"gender": "woman"}}, '"1"', headers=me)
    url = f"{people.base}/people/{people.ids['Grace']}/export"
    own = await people.api.http.get(url, headers=me)
    assert own.status_code == 200, own.text
    data = own.json()
    assert data["person"]["email"] == "grace@example.org"
    assert data["person"]["identity"]["gender"] == "woman"
    assert data["person"]["enrolments"][0]["program_id"] == people.programs["P_a"]
    assert "profile.updated" in [a["action"] for a in data["audit"]]
    by_coordinator = await people.api.http.get(url, headers=people.coordinator("inst-a"))
    assert by_coordinator.status_code == 200 and "identity" not in by_coordinator.json()["person"]
    assert (await people.api.http.get(url, headers=people.coordinator("inst-b"))).status_code == 404
    by_peer = await people.api.http.get(url, headers=people.as_person("Ada", "mentor"))
    assert by_peer.status_code == 403


async def test_erasure_removes_the_person_and_frees_the_email(people, api, platform):
    grace = people.ids["Grace"]
    url = f"{people.base}/people/{grace}"
    by_coordinator = await api.http.delete(url, headers=people.coordinator("inst-a"))
    assert by_coordinator.status_code == 403
    by_peer = await api.http.delete(url, headers=people.as_person("Ada", "mentor"))
    assert by_peer.status_code == 403
    erased = await api.http.delete(url, headers=people.as_person("Grace"))
    assert erased.status_code == 204, erased.text
    assert (await api.http.get(url, headers=people.auth())).status_code == 404
    assert (await api.http.delete(url, headers=people.auth())).status_code == 404
    assert "Grace" not in await people.names()
    assert await people.names(q="grace") == []
    export = await api.http.get(f"{url}/export", headers=people.auth())
    assert export.status_code == 404
    events = await published(platform.servers.kafka_bootstrap, grace, "PersonErased")
    assert events["PersonErased"][0]["data"]["institution_id"] == "inst-a"
    again = await api.register_mentee(people.network_id, email="grace@example.org",
                                      display_name="Grace Hopper")
    assert again.status_code == 201, again.text
    assert again.json()["id"] != grace
    trail = await api.http.get(f"{people.base}/audit", params={"target_id": grace},
                               headers=people.auth())
    entry = [a for a in trail.json()["items"] if a["action"] == "person.erased"][0]
    assert "email" not in entry["fields"] and "display_name" in entry["fields"]
    assert "grace" not in json.dumps(trail.json()).lower()


# ---------------------------------------------------------------- audit


async def test_audit_log_says_who_changed_what_within_the_readers_scope(people, api):
    edit = await people.patch("Ada", {"mentor": {"capacity": 3}}, '"1"',
                              headers=people.coordinator("inst-a"))
    assert edit.status_code == 200
    url = f"{people.base}/audit"
    seen, cursor = [], None
    while True:
        page = await api.http.get(url, params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                                  headers=people.auth())
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
    assert len({e["id"] for e in seen}) == len(seen)
    actions = [e["action"] for e in seen]
    assert actions.count("institution.created") == 2 and actions.count("program.created") == 4
    assert actions.count("mentor.registered") == 3 and actions.count("mentee.registered") == 2
    update = [e for e in seen if e["action"] == "profile.updated"][0]
    assert update["target_id"] == people.ids["Ada"] and update["fields"] == ["mentor"]
    assert update["actor_role"] == "institution_coordinator"

    scoped = await api.http.get(url, params={"limit": 200}, headers=people.coordinator("inst-b"))
    assert scoped.status_code == 200
    assert scoped.json()["items"] and all(
        e["institution_id"] == "inst-b" for e in scoped.json()["items"])
    for headers in (people.as_person("Grace"), people.coordinator("inst-a", role="program_coordinator"),
                    people.org.auth(network_id="net-other")):
        assert (await api.http.get(url, headers=headers)).status_code == 403


async def test_enrolment_lists_stay_within_the_readers_reach(people):
    network_wide = people.programs["P_net"]
    assert (await _enrol(people, network_wide, "Grace", "mentee")).status_code == 201
    url = f"{people.base}/programs/{network_wide}/enrolments"

    async def listed(headers):
        page = await people.api.http.get(url, headers=headers)
        assert page.status_code == 200, page.text
        return sorted(e["person_id"] for e in page.json()["items"])

    assert await listed(people.auth()) == sorted([people.ids["Grace"], people.ids["Frances"]])
    assert await listed(people.coordinator("inst-a")) == [people.ids["Grace"]]
    assert await listed(people.coordinator("inst-b")) == [people.ids["Frances"]]
    # Coordinating the spanning program reaches its people at every institution.
    assert await listed(people.coordinator("inst-b", "P_net")) == sorted(
        [people.ids["Grace"], people.ids["Frances"]])
    assert (await people.api.http.get(url, headers=people.as_person("Grace"))).status_code == 403
    other = people.coordinator("inst-a", "P_a", role="program_coordinator")
    assert (await people.api.http.get(url, headers=other)).status_code == 403
