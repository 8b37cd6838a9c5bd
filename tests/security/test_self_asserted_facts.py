"""A mentee promotes herself to faculty mentor.

The attack: an M3 student self-enrolled as `mentor` in a program that does not require
approval, then PATCHed her own profile to `{"career_stage": "faculty-professor", "mentor":
{"capacity": 50, "training_completed": true}}` (200), and the next matching draft proposed her
as a faculty mentor in 36 pairs. Now the facts others rely on change only by a coordinator's
hand (her own edit becomes a change request a coordinator decides), self-enrolment as a mentor
checks the program's minimum career stage and capacity limit, and matching, fed by profiles'
events, only ever sees verified values.
"""

from __future__ import annotations

from tests.security.attack_support import Network
from tests.support import eventually

PROMOTION = {"career_stage": "faculty-professor",
             "mentor": {"capacity": 50, "training_completed": True}}


async def _pool_entry(api, network: Network, person_id: str) -> dict | None:
    r = await api.http.get(f"{api.platform.url('matching')}/networks/{network.id}/pool/mentees",
                           headers=network.admin())
    return next((e for e in r.json() if e["person_id"] == person_id), None)


async def test_a_mentee_cannot_make_herself_a_faculty_mentor(api, network_id):
    network = Network(api, network_id)
    await network.institution("inst-a")
    await network.institution("inst-b")
    faculty = await network.program("inst-a", type="faculty", name="Faculty mentoring")
    near_peer = await network.program("inst-a", type="near-peer", name="Near-peer")
    professor = await network.register("mentor", "inst-a", program_id=faculty, capacity=2,
                                       career_stage="faculty-professor")
    students = [(await network.register("mentee", "inst-a", program_id=faculty,
                                        career_stage="M1"))["id"] for _ in range(3)]
    mallory = (await network.register("mentee", "inst-a", program_id=near_peer,
                                      career_stage="M3"))["id"]
    she = network.person(mallory)

    async def self_enrol(program: str):
        return await api.http.post(f"{network.profiles}/programs/{program}/enrolments",
                                   json={"person_id": mallory, "role": "mentor"}, headers=she)

    # Self-enrolment as a mentor checks the program's minimum stage (faculty: faculty-instructor).
    refused = await self_enrol(faculty)
    assert refused.status_code == 403, refused.text
    assert "from career stage faculty-instructor on" in refused.json()["detail"]
    # A near-peer program takes an M3 as a mentor: she really may mentor there.
    assert (await self_enrol(near_peer)).status_code == 201

    person_url = f"{network.profiles}/people/{mallory}"
    etag = (await api.http.get(person_url, headers=she)).headers["ETag"]
    promoted = await api.http.patch(f"{person_url}/profile", json=PROMOTION,
                                    headers=she | {"If-Match": etag})
    assert promoted.status_code == 202, promoted.text
    request = promoted.json()["change_request"]
    assert (request["status"], sorted(request["fields"])) == (
        "pending", ["career_stage", "mentor.capacity", "mentor.training_completed"])
    me = (await api.http.get(person_url, headers=she)).json()
    assert (me["career_stage"], me["mentor"]["capacity"], me["mentor"]["training_completed"]) == (
        "M3", 1, False)
    assert (await self_enrol(faculty)).status_code == 403  # the stage is still M3

    # She cannot approve her own request; nor can another institution's coordinator.
    approve = f"{person_url}/change-requests/{request['id']}/approve"
    assert (await api.http.post(approve, headers=she)).status_code == 403
    other = api.auth(network_id, role="institution_coordinator", institution_id="inst-b")
    assert (await api.http.post(approve, headers=other)).status_code == 404

    # A coordinator's edit afterwards publishes her profile again: matching's pool holds the
    # verified values at that version, never the ones she asked for.
    etag = (await api.http.get(person_url, headers=network.admin())).headers["ETag"]
    edit = await api.http.patch(f"{person_url}/profile", json={"mentor": {"languages": ["en"]}},
                                headers=network.admin() | {"If-Match": etag})
    assert edit.status_code == 200, edit.text
    version = edit.json()["version"]
    entry = await eventually(lambda: _pool_entry(api, network, mallory),
                             lambda e: e is not None and e["profile_version"] == version,
                             what="her profile in matching's pool")
    assert (entry["career_stage"], entry["capacity"]) == ("M3", 1)

    # The faculty program's draft proposes its faculty mentor, never her.
    runs = f"{api.platform.url('matching')}/networks/{network_id}/programs/{faculty}/runs"

    async def draft() -> dict:
        r = await api.http.post(runs, json={}, headers=network.admin())
        return r.json() if r.status_code == 201 else {"proposals": [], "status": r.status_code}

    found = await eventually(draft, lambda d: len(d["proposals"]) == 2, timeout=60,
                             what="a draft with the faculty mentor's two places")
    assert {p["mentor_id"] for p in found["proposals"]} == {professor["id"]}
    assert {p["mentee_id"] for p in found["proposals"]} <= set(students)


async def test_a_coordinator_decides_what_a_person_asks_to_change(api, network_id):
    network = Network(api, network_id)
    await network.institution("inst-a")
    program = await network.program("inst-a", max_mentor_capacity=3)
    person = (await network.register("mentor", "inst-a", program_id=program,
                                      career_stage="M3"))["id"]
    she = network.person(person, role="mentor")
    url = f"{network.profiles}/people/{person}"

    async def own_edit(body: dict):
        etag = (await api.http.get(url, headers=she)).headers["ETag"]
        return await api.http.patch(f"{url}/profile", json=body, headers=she | {"If-Match": etag})

    # Within the program's limit, capacity is hers to set; above it, a request.
    assert (await own_edit({"mentor": {"capacity": 3}})).status_code == 200
    above = await own_edit({"mentor": {"capacity": 4}, "display_name": "Ada L."})
    assert above.status_code == 202 and above.json()["person"]["display_name"] == "Ada L."
    assert above.json()["person"]["mentor"]["capacity"] == 3
    stage = await own_edit({"career_stage": "M4"})
    assert stage.status_code == 202
    coordinator = api.auth(network_id, role="institution_coordinator", institution_id="inst-a")
    pending = await api.http.get(f"{network.profiles}/change-requests", headers=coordinator)
    assert [r["changes"] for r in pending.json()["items"]] == [{"career_stage": "M4"}]  # newest

    approved = await api.http.post(
        f"{url}/change-requests/{stage.json()['change_request']['id']}/approve",
        headers=coordinator)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert (await api.http.get(url, headers=she)).json()["career_stage"] == "M4"

    trained = await own_edit({"mentor": {"training_completed": True}})
    declined = await api.http.post(
        f"{url}/change-requests/{trained.json()['change_request']['id']}/decline",
        json={"reason": "No record of the training yet"}, headers=coordinator)
    assert declined.status_code == 200, (declined.status_code, declined.text)
    assert declined.json()["reason"] == "No record of the training yet"
    assert (await api.http.get(url, headers=she)).json()["mentor"]["training_completed"] is False
    statuses = {r["changes"].get("career_stage") or str(r["changes"]): r["status"] for r in
                (await api.http.get(f"{url}/change-requests", headers=she)).json()}
    assert sorted(statuses.values()) == ["approved", "declined", "superseded"]
    audit = await api.http.get(f"{network.profiles}/audit", params={"target_id": person},
                               headers=network.admin())
    actions = [e["action"] for e in audit.json()["items"]]
    assert {"profile_change.requested", "profile_change.approved",
            "profile_change.declined"} <= set(actions)
