"""One resident, one sign-in, three roles: mentee of a faculty member in one program, mentor of
a student in another, coordinator of a third. Signed in once through the network's IdP (the
mock), the same session does one action of each kind; the same actions with another person's
session (the faculty mentor's, also signed in through the IdP) are refused."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.identity_flows import Identity
from tests.e2e.test_programs import _program
from tests.e2e.test_sign_in import oidc_network  # noqa: F401 (fixture)
from tests.identity_support import authorization_code_flow
from tests.support import eventually


@pytest.fixture
def identity(api) -> Identity:
    return Identity(api)


async def _sign_in(identity, api, providers, network_id: str, email: str) -> dict[str, str]:
    id_token, nonce = await authorization_code_flow(
        api.http, providers.issuer("a"), providers.clients["a"], email)
    response = await identity.oidc(network_id, id_token, nonce)
    assert response.status_code == 200, response.text
    return identity.bearer(response.json())


async def test_a_resident_is_mentee_mentor_and_coordinator_with_one_session(
    identity, api, identity_providers, oidc_network,
):
    network_id, admin = oidc_network["network_id"], oidc_network["admin"]
    profiles = f"{identity.profiles}/networks/{network_id}"
    matching = f"{api.platform.url('matching')}/networks/{network_id}"
    tag = uuid.uuid4().hex[:6]
    programs = {}
    for key, kind in (("as_mentee", "faculty"), ("as_mentor", "near-peer"), ("coordinated", "peer")):
        created = await api.http.post(f"{profiles}/programs", headers=admin,
                                      json=_program("inst-a", name=f"{key} {tag}", type=kind))
        assert created.status_code == 201, created.text
        programs[key] = created.json()["id"]
    emails = {name: f"{name}-{tag}@example.org" for name in ("rita", "fay", "sam", "quinn")}
    rita = await identity.register(network_id, admin, "mentee", "Rita Resident", emails["rita"],
                                   stage="PGY-2", program_id=programs["as_mentee"])
    fay = await identity.register(network_id, admin, "mentor", "Fay Faculty", emails["fay"],
                                  stage="faculty-professor", program_id=programs["as_mentee"])
    sam = await identity.register(network_id, admin, "mentee", "Sam Student", emails["sam"],
                                  stage="M3", program_id=programs["as_mentor"])
    await identity.register(network_id, admin, "mentee", "Quinn Peer", emails["quinn"],
                            stage="PGY-2", program_id=programs["coordinated"])
    enrolled = await api.http.post(f"{profiles}/programs/{programs['as_mentor']}/enrolments",
                                   json={"person_id": rita, "role": "mentor"}, headers=admin)
    assert enrolled.status_code == 201, enrolled.text
    granted = await identity.grant(network_id, admin, person_id=rita, role="program_coordinator",
                                   program_id=programs["coordinated"])
    assert granted.status_code == 201, granted.text

    async def propose(program: str, mentee: str, mentor: str) -> str:
        async def attempt():
            return await api.http.post(f"{matching}/programs/{programs[program]}/proposals",
                                       json={"mentee_id": mentee, "mentor_id": mentor},
                                       headers=admin)
        done = await eventually(attempt, lambda r: r.status_code == 201, timeout=60,
                                what=f"matching to know the people of {program}")
        return done.json()["mentorship_id"]

    as_mentee = await propose("as_mentee", rita, fay)
    as_mentor = await propose("as_mentor", sam, rita)

    me = await _sign_in(identity, api, identity_providers, network_id, emails["rita"])
    other = await _sign_in(identity, api, identity_providers, network_id, emails["fay"])
    mentorship = f"{matching}/mentorships"
    coordinated = f"{profiles}/programs/{programs['coordinated']}/enrolments"
    settings = f"{matching}/programs/{programs['coordinated']}/matching-settings"

    # Someone else's session: not for Rita's side, not Rita's mentorship, not Rita's program.
    for_rita = await api.http.post(f"{mentorship}/{as_mentee}/accept", json={"side": "mentee"},
                                   headers=other)
    assert for_rita.status_code == 403, for_rita.text
    assert (await api.http.post(f"{mentorship}/{as_mentor}/accept", json={},
                                headers=other)).status_code == 404
    assert (await api.http.get(coordinated, headers=other)).status_code == 403
    assert (await api.http.put(settings, json={}, headers=other)).status_code == 403

    # Rita, one session: as mentee, as mentor, as coordinator.
    accepted = await api.http.post(f"{mentorship}/{as_mentee}/accept", json={}, headers=me)
    assert accepted.status_code == 200 and accepted.json()["accepted_by"]["mentee"] is True
    accepted = await api.http.post(f"{mentorship}/{as_mentor}/accept", json={}, headers=me)
    assert accepted.status_code == 200 and accepted.json()["accepted_by"]["mentor"] is True
    listed = await api.http.get(coordinated, headers=me)
    assert listed.status_code == 200
    assert [e["display_name"] for e in listed.json()["items"]] == ["Quinn Peer"]
    assert (await api.http.put(settings, json={"fair": True}, headers=me)).status_code == 200

    async def whoami():
        return (await api.http.get(f"{identity.profiles}/me", headers=me)).json()

    mine = await eventually(whoami, lambda m: len(m["open_mentorship_ids"]) == 2,
                            what="profiles to see both proposals")
    assert sorted(mine["open_mentorship_ids"]) == sorted([as_mentee, as_mentor])
    assert mine["grants"] == [{"role": "program_coordinator",
                               "program_id": programs["coordinated"]}]
    assert sorted((e["program_id"], e["role"], e["status"]) for e in mine["enrolments"]) == sorted(
        [(programs["as_mentee"], "mentee", "active"), (programs["as_mentor"], "mentor", "active")])
    # Her pairs are people she may see (their public part); the program she only takes part in
    # shows her nobody else.
    seen = await api.http.get(f"{profiles}/people", params={"limit": 100}, headers=me)
    assert sorted(p["display_name"] for p in seen.json()["items"]) == [
        "Fay Faculty", "Quinn Peer", "Rita Resident", "Sam Student"]
    fay_seen = next(p for p in seen.json()["items"] if p["id"] == fay)
    assert "email" not in fay_seen
