"""Institutions and programs through the HTTP API, with real tokens, on the running services."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer

from shared.events.topics import PROFILES_TOPIC


def _program(institution_id: str | None = "inst-a", **fields) -> dict:
    return {
        "institution_id": institution_id,
        "name": "Surgery near-peer",
        "type": "near-peer",
        "cohort_start": "2026-09-01",
        "cohort_end": "2027-06-30",
        "enrolment_opens": "2026-06-01",
        "enrolment_closes": "2026-09-15",
        "max_mentors_per_mentee": 2,
        "cadence_days": 30,
        **fields,
    }


class Org:
    """Calls of one network's organisation routes."""

    def __init__(self, api, network_id: str) -> None:
        self.api, self.network_id = api, network_id
        self.base = f"{api.platform.url('profiles')}/networks/{network_id}"

    def auth(self, role: str = "network_admin", network_id: str | None = None, **scope):
        return self.api.auth(network_id or self.network_id, role=role, **scope)

    async def setup(self, *institutions: str) -> None:
        for institution_id in institutions:
            response = await self.api.http.post(
                f"{self.base}/institutions",
                json={"id": institution_id, "name": f"Institution {institution_id}"},
                headers=self.auth(),
            )
            assert response.status_code == 201, response.text

    async def create(self, body: dict, **who):
        return await self.api.http.post(f"{self.base}/programs", json=body, headers=self.auth(**who))

    async def get(self, program_id: str, **who):
        return await self.api.http.get(f"{self.base}/programs/{program_id}", headers=self.auth(**who))

    async def patch(self, program_id: str, body: dict, etag: str | None = None, **who):
        headers = self.auth(**who) | ({"If-Match": etag} if etag is not None else {})
        return await self.api.http.patch(
            f"{self.base}/programs/{program_id}", json=body, headers=headers
        )

    async def list(self, **params):
        return await self.api.http.get(f"{self.base}/programs", params=params, headers=self.auth())


@pytest.fixture
async def org(api, network_id) -> Org:
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    return org


async def _published(bootstrap: str, subject: str, event_type: str, timeout: float = 20) -> dict:
    consumer = AIOKafkaConsumer(
        PROFILES_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    # Other tests put malformed records on this topic on purpose: select by
                    # key and type header before parsing.
                    headers = dict(record.headers or ())
                    if record.key == subject.encode() and headers.get("ce_type") == event_type.encode():
                        return json.loads(record.value)
    finally:
        await consumer.stop()
    raise AssertionError(f"no {event_type} for {subject} on {PROFILES_TOPIC} within {timeout}s")


async def test_institutions_are_listed_and_a_duplicate_id_is_409(org, api):
    listed = await api.http.get(f"{org.base}/institutions", headers=org.auth(role="mentee"))
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == ["inst-a", "inst-b"]
    again = await api.http.post(
        f"{org.base}/institutions", json={"id": "inst-a", "name": "Again"}, headers=org.auth()
    )
    assert again.status_code == 409 and "already has an institution 'inst-a'" in again.text
    by_coordinator = await api.http.post(
        f"{org.base}/institutions", json={"id": "inst-c", "name": "C"},
        headers=org.auth(role="institution_coordinator", institution_id="inst-a"),
    )
    assert by_coordinator.status_code == 403 and "network admin" in by_coordinator.text


async def test_created_program_is_readable_and_published(org, platform):
    created = await org.create(_program(), role="institution_coordinator", institution_id="inst-a")
    assert created.status_code == 201, created.text
    program = created.json()
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"].endswith(f"/programs/{program['id']}")
    assert program["version"] == 1 and program["institution_id"] == "inst-a"
    read = await org.get(program["id"], role="mentee")
    assert read.status_code == 200 and read.json() == program
    event = await _published(platform.servers.kafka_bootstrap, program["id"], "ProgramCreated")
    assert event["tenantid"] == org.network_id
    assert event["data"]["name"] == "Surgery near-peer" and event["data"]["cadence_days"] == 30


async def test_edits_need_the_current_etag(org, platform):
    program = (await org.create(_program())).json()
    missing = await org.patch(program["id"], {"cadence_days": 14})
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]
    first = await org.patch(program["id"], {"cadence_days": 14}, etag='"1"')
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"2"' and first.json()["cadence_days"] == 14
    stale = await org.patch(program["id"], {"cadence_days": 7}, etag='"1"')
    assert stale.status_code == 412
    assert "changed since you read it" in stale.json()["detail"]
    read = await org.get(program["id"])
    assert read.headers["ETag"] == '"2"' and read.json()["cadence_days"] == 14
    event = await _published(platform.servers.kafka_bootstrap, program["id"], "ProgramUpdated")
    assert event["data"]["changed"] == ["cadence_days"] and event["data"]["version"] == 2


async def test_concurrent_edits_of_one_version_let_exactly_one_through(org):
    program = (await org.create(_program())).json()
    results = await asyncio.gather(
        *(org.patch(program["id"], {"cadence_days": days}, etag='"1"') for days in (7, 14, 21, 28))
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412, 412]
    assert (await org.get(program["id"])).json()["version"] == 2


async def test_invalid_programs_are_422_404_and_store_nothing(org):
    backwards = await org.create(_program(cohort_end="2026-01-01"))
    assert backwards.status_code == 422 and "cohort must end after it starts" in backwards.text
    unknown_type = await org.create(_program(type="mentoring"))
    assert unknown_type.status_code == 422 and unknown_type.json()["errors"][0]["field"] == "type"
    no_such_institution = await org.create(_program(institution_id="inst-z"))
    assert no_such_institution.status_code == 422
    assert "no institution 'inst-z'" in no_such_institution.text
    assert (await org.list()).json()["items"] == []
    missing = await org.get("prog-nothing")
    assert missing.status_code == 404 and "No such program" in missing.text
    program = (await org.create(_program())).json()
    moved = await org.patch(program["id"], {"institution_id": "inst-b"}, etag='"1"')
    assert moved.status_code == 422
    emptied = await org.patch(program["id"], {"name": None}, etag='"1"')
    assert emptied.status_code == 422 and "cannot be emptied" in emptied.text
    assert (await org.get(program["id"])).json()["version"] == 1


async def test_pagination_walks_every_program_once_with_filters(org):
    for n in range(5):
        body = _program("inst-a" if n % 2 == 0 else "inst-b", name=f"P{n}",
                        type="research" if n < 3 else "career")
        assert (await org.create(body)).status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        page = (await org.list(limit=2, **({"cursor": cursor} if cursor else {}))).json()
        seen += [p["name"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["P0", "P1", "P2", "P3", "P4"] and pages == 3
    inst_a = (await org.list(institution_id="inst-a")).json()
    assert [p["name"] for p in inst_a["items"]] == ["P0", "P2", "P4"]
    research_a = (await org.list(institution_id="inst-a", type="research")).json()
    assert [p["name"] for p in research_a["items"]] == ["P0", "P2"]
    assert (await org.create(_program(None, name="Wide"))).status_code == 201
    wide = (await org.list(network_wide="true")).json()
    assert [p["name"] for p in wide["items"]] == ["Wide"]
    local = (await org.list(network_wide="false")).json()
    assert [p["name"] for p in local["items"]] == ["P0", "P1", "P2", "P3", "P4"]
    bad = await org.list(cursor="!!not-a-cursor!!")
    assert bad.status_code == 422 and "cursor" in bad.text


async def test_institution_coordinators_manage_their_own_institution_only(org):
    coordinator_b = dict(role="institution_coordinator", institution_id="inst-b")
    refused = await org.create(_program("inst-a"), **coordinator_b)
    assert refused.status_code == 403 and "own institution" in refused.text
    wide = await org.create(_program(None), **coordinator_b)
    assert wide.status_code == 403 and "network admin" in wide.text
    program_a = (await org.create(_program("inst-a"))).json()
    edit = await org.patch(program_a["id"], {"cadence_days": 7}, etag='"1"', **coordinator_b)
    assert edit.status_code == 403 and "own institution" in edit.text
    own = await org.create(_program("inst-b"), **coordinator_b)
    assert own.status_code == 201
    assert (await org.patch(own.json()["id"], {"cadence_days": 7}, etag='"1"',
                            **coordinator_b)).status_code == 200


async def test_network_admins_create_and_edit_network_wide_programs(org):
    wide = await org.create(_program(None, cross_institution=True))
    assert wide.status_code == 201 and wide.json()["institution_id"] is None
    edit = await org.patch(wide.json()["id"], {"requires_approval": True}, etag='"1"')
    assert edit.status_code == 200 and edit.json()["requires_approval"] is True


async def test_program_coordinators_edit_only_the_programs_in_their_token(org):
    mine = (await org.create(_program("inst-a", name="Mine"))).json()
    other = (await org.create(_program("inst-a", name="Other"))).json()
    coordinator = dict(role="program_coordinator", institution_id="inst-a",
                       program_ids=[mine["id"]])
    ok = await org.patch(mine["id"], {"cadence_days": 21}, etag='"1"', **coordinator)
    assert ok.status_code == 200
    refused = await org.patch(other["id"], {"cadence_days": 21}, etag='"1"', **coordinator)
    assert refused.status_code == 403 and "programs you coordinate" in refused.text
    create = await org.create(_program("inst-a"), **coordinator)
    assert create.status_code == 403
    assert (await org.get(other["id"])).json()["version"] == 1


async def test_mentees_and_mentors_read_but_do_not_edit(org):
    program = (await org.create(_program())).json()
    for role in ("mentee", "mentor"):
        assert (await org.get(program["id"], role=role)).status_code == 200
        edit = await org.patch(program["id"], {"cadence_days": 7}, etag='"1"', role=role)
        assert edit.status_code == 403 and "not change" in edit.text
        assert (await org.create(_program(), role=role)).status_code == 403


async def test_another_networks_token_is_refused_everywhere(org, api):
    program = (await org.create(_program())).json()
    stranger = dict(network_id="some-other-network")
    assert (await org.get(program["id"], **stranger)).status_code == 403
    assert (await org.create(_program(), **stranger)).status_code == 403
    edit = await org.patch(program["id"], {"cadence_days": 7}, etag='"1"', **stranger)
    assert edit.status_code == 403 and "this network" in edit.text
    listing = await api.http.get(f"{org.base}/programs", headers=org.auth(**stranger))
    assert listing.status_code == 403
    institutions = await api.http.get(f"{org.base}/institutions", headers=org.auth(**stranger))
    assert institutions.status_code == 403
    assert (await org.get(program["id"])).json()["version"] == 1
