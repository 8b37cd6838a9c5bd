"""Safe retries: a write sent again with its `Idempotency-Key` gets the first answer and
changes nothing, on every service; a committed change is never answered as a failure, and
never stored without its audit entry.

The first tests use the session's platform. The last ones break the store, so they run a
profiles service alone on servers of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pymongo import MongoClient

from tests.conftest import Infra
from tests.e2e.conftest import Platform, in_thread
from tests.e2e.test_matching_lifecycle import _scene
from tests.e2e.test_programs import Org, _program

REPLAYED = "idempotent-replayed"


async def _institution(http: httpx.AsyncClient, platform: Platform, network_id: str) -> None:
    """People register at an institution the network has."""
    token = platform.jwt_keys.token("network_admin", network_id)
    response = await http.post(f"{platform.url('profiles')}/networks/{network_id}/institutions",
                               json={"id": "inst-a", "name": "A"},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def _twice(http: httpx.AsyncClient, url: str, body: dict, headers: dict) -> httpx.Response:
    """POST, then POST again with the same key: the second answer must be the first."""
    headers = {**headers, **_key()}
    first = await http.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await http.post(url, json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json(), again.text
    assert again.headers.get(REPLAYED) == "true" and first.headers.get(REPLAYED) is None
    return first


async def test_creates_of_every_service_answer_a_retry_with_the_first_answer(api, network_id):
    http, auth = api.http, api.auth(network_id)
    profiles = f"{api.platform.url('profiles')}/networks/{network_id}"
    await _twice(http, f"{profiles}/institutions", {"id": "inst-a", "name": "A"}, auth)
    program = await _twice(http, f"{profiles}/programs", _program("inst-a"), auth)
    mentee = await _twice(http, f"{profiles}/mentees", {
        "institution_id": "inst-a", "display_name": "Ada", "email": f"ada-{network_id}@example.org",
        "career_stage": "M2"}, auth)
    await _twice(http, f"{profiles}/mentors", {
        "institution_id": "inst-a", "display_name": "Grace", "career_stage": "PGY-3",
        "email": f"grace-{network_id}@example.org", "capacity": 2}, auth)
    programs = (await http.get(f"{profiles}/programs", headers=auth)).json()["items"]
    assert [p["id"] for p in programs] == [program.json()["id"]]
    people = (await http.get(f"{profiles}/people", headers=auth)).json()["items"]
    assert sorted(p["display_name"] for p in people) == ["Ada", "Grace"]
    trail = (await http.get(f"{profiles}/audit", params={"target_id": mentee.json()["id"]},
                            headers=auth)).json()["items"]
    assert [e["action"] for e in trail] == ["mentee.registered"]

    notifications = f"{api.platform.url('notifications')}/networks/{network_id}"
    hook = await _twice(http, f"{notifications}/webhooks", {"url": "http://127.0.0.2/hook"}, auth)
    hooks = (await http.get(f"{notifications}/webhooks", headers=auth)).json()
    assert [h["id"] for h in hooks] == [hook.json()["id"]]


async def test_matching_creates_are_answered_once(api, network_id):
    m, pid = await _scene(api, network_id)
    base = f"{m.base}/programs/{pid}"
    run = await _twice(api.http, f"{base}/runs", {"algorithm": "min-cost-flow"}, m.auth())
    runs = (await api.http.get(f"{base}/runs", headers=m.auth())).json()
    assert [r["run_id"] for r in runs] == [run.json()["run_id"]]
    proposed = await _twice(api.http, f"{base}/proposals",
                            {"mentee_id": m.ids["Ana"], "mentor_id": m.ids["Omar"]}, m.auth())
    mid = proposed.json()["mentorship_id"]
    assert [x["mentorship_id"] for x in await m.mentorships(person_id=m.ids["Ana"])] == [mid]
    for who, role in (("Ana", "mentee"), ("Omar", "mentor")):
        accepted = await m.mentorship(mid, "/accept", "POST", {}, headers=m.as_(who, role))
        assert accepted.status_code == 200, accepted.text
    goal = await _twice(api.http, f"{m.base}/mentorships/{mid}/goals",
                        {"text": "First-author abstract", "category": "research"}, m.as_("Ana"))
    goals = (await m.mentorship(mid)).json()["goals"]
    assert [g["goal_id"] for g in goals] == [goal.json()["goal_id"]]


async def test_a_key_is_the_callers_and_means_one_request(api, network_id):
    http = api.http
    await api.ensure_institution(network_id)
    url = f"{api.platform.url('profiles')}/networks/{network_id}/mentees"
    body = {"institution_id": "inst-a", "display_name": "Ada", "career_stage": "M2",
            "email": f"ada-{network_id}@example.org"}
    key = _key()
    admin = api.auth(network_id) | key
    invalid = await http.post(url, json={**body, "career_stage": "nonsense"}, headers=admin)
    assert invalid.status_code == 422
    # An error answer is not kept: the same key with the corrected request goes through.
    first = await http.post(url, json=body, headers=admin)
    assert first.status_code == 201, first.text
    changed = await http.post(url, json={**body, "display_name": "Ada L."}, headers=admin)
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
    # Another caller with the same key reaches nothing of the first caller's: its request runs
    # (and finds the email taken).
    other = api.auth(network_id, role="institution_coordinator", institution_id="inst-a") | key
    theirs = await http.post(url, json=body, headers=other)
    assert theirs.status_code == 409 and REPLAYED not in theirs.headers
    bad = await http.post(url, json=body, headers=api.auth(network_id) | {"Idempotency-Key": ""})
    assert bad.status_code == 400


# ---------------------------------------------------------------- a store that fails


@pytest.fixture(scope="module")
def lone_profiles(jwt_keys, tmp_path_factory) -> Iterator[Platform]:
    """Profiles alone on servers of its own: these tests make the store fail."""
    root = tmp_path_factory.mktemp("lone-profiles")
    servers = Infra(root / "infra", test_commands=True)
    platform = Platform(servers, jwt_keys, root / "platform")
    try:
        servers.start_mongo()
        servers.start_kafka()
        platform.start("profiles")
        yield platform
    finally:
        platform.close()
        servers.close()


@pytest.fixture
async def lone(lone_profiles) -> AsyncIterator[tuple[Platform, httpx.AsyncClient]]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield lone_profiles, http


def _fail_next(uri: str, command: str, skip: int) -> None:
    """Drop the connection of the store's next `command` after `skip` of them succeeded."""
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.admin.command({"configureFailPoint": "failCommand",
                              "mode": {"skip": skip, "times": 1},
                              "data": {"failCommands": [command], "closeConnection": True}})


def _fail_off(uri: str) -> None:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def _record(http: httpx.AsyncClient, platform: Platform, network_id: str,
                  email: str) -> tuple[list[dict], list[dict]]:
    """The people with this email, and the audit entries about each of them."""
    auth = {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"}
    base = f"{platform.url('profiles')}/networks/{network_id}"
    people = [p for p in (await http.get(f"{base}/people", params={"limit": 100},
                                         headers=auth)).json()["items"] if p["email"] == email]
    trail = []
    for person in people:
        trail += (await http.get(f"{base}/audit", params={"target_id": person["id"]},
                                 headers=auth)).json()["items"]
    return people, trail


async def test_a_registration_whose_audit_write_fails_is_not_answered_as_a_failure(lone, network_id):
    # The write of the person succeeds, the next write (its audit entry) loses its connection:
    # that was a 500 for a registration that existed everywhere, with no audit entry.
    platform, http = lone
    await _institution(http, platform, network_id)
    email = f"ada-{network_id}@example.org"
    await in_thread(_fail_next, platform.servers.mongodb_uri, "insert", 1)
    try:
        response = await http.post(
            f"{platform.url('profiles')}/networks/{network_id}/mentees",
            json={"institution_id": "inst-a", "display_name": "Ada", "email": email,
                  "career_stage": "M2"},
            headers={"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"})
    finally:
        await in_thread(_fail_off, platform.servers.mongodb_uri)
    people, trail = await _record(http, platform, network_id, email)
    assert response.status_code == 201, response.text
    assert [p["id"] for p in people] == [response.json()["id"]]
    assert [e["action"] for e in trail] == ["mentee.registered"]


class DropAnswers:
    """A TCP proxy that forwards one request, lets the service answer it completely, and then
    drops the connection instead of passing the answer on: an answer lost on the way."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        body = await reader.readexactly(length)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(head + body)
        await up_writer.drain()
        answer = await up_reader.readuntil(b"\r\n\r\n")  # the service has answered
        up_writer.close()
        writer.close()  # ...and the client never hears it
        assert answer.startswith(b"HTTP/1.1")


async def test_a_retry_after_a_lost_answer_gets_the_first_answer(lone, network_id):
    platform, http = lone
    await _institution(http, platform, network_id)
    email = f"ada-{network_id}@example.org"
    body = {"institution_id": "inst-a", "display_name": "Ada", "email": email, "career_stage": "M2"}
    headers = {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}",
               **_key()}
    path = f"/networks/{network_id}/mentees"
    async with DropAnswers(platform.ports["profiles"]) as proxy:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{proxy}{path}", json=body, headers=headers)
    again = await http.post(f"{platform.url('profiles')}{path}", json=body, headers=headers)
    assert again.status_code == 201 and again.headers.get(REPLAYED) == "true", again.text
    people, trail = await _record(http, platform, network_id, email)
    assert [p["id"] for p in people] == [again.json()["id"]]
    assert [e["action"] for e in trail] == ["mentee.registered"]


async def test_registrations_retried_with_their_keys_across_a_store_crash_exist_once(lone, network_id):
    platform, http = lone
    await _institution(http, platform, network_id)
    token = platform.jwt_keys.token("network_admin", network_id)
    url = f"{platform.url('profiles')}/networks/{network_id}/mentees"

    async def register(n: int) -> tuple[str, httpx.Response]:
        email = f"p{n}-{network_id}@example.org"
        body = {"institution_id": "inst-a", "display_name": f"P {n}", "email": email,
                "career_stage": "M2"}
        headers = {"Authorization": f"Bearer {token}", **_key()}
        await asyncio.sleep(n * 0.05)
        for _ in range(120):
            try:
                response = await http.post(url, json=body, headers=headers)
                if response.status_code < 500 and not (
                        response.status_code == 409 and "in progress" in response.text):
                    return email, response
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        raise AssertionError(f"registration {n} never got an answer")

    writers = asyncio.gather(*(register(n) for n in range(40)))
    await asyncio.sleep(0.8)
    await in_thread(platform.servers.kill_mongo)  # SIGKILL mid-load
    await in_thread(platform.servers.start_mongo)
    answers = await writers
    assert sorted({r.status_code for _, r in answers}) == [201], [
        (r.status_code, r.text) for _, r in answers if r.status_code != 201]
    for email, response in answers:
        people, trail = await _record(http, platform, network_id, email)
        assert [p["id"] for p in people] == [response.json()["id"]], email
        assert [e["action"] for e in trail] == ["mentee.registered"], email
