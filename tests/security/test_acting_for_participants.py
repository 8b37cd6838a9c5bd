"""Attack: the coordinator of institution I2 accepted, on behalf of the mentee, a proposal in a
program of institution I1, because the mentor was at I2. Acting for a participant belongs to
the program's coordinators and the network admin only; seeing a mentorship (one side is of
your institution) does not make you its coordinator."""

from __future__ import annotations

from tests.e2e.test_programs import Org, _program
from tests.support import eventually


async def test_a_coordinator_of_the_other_side_cannot_act_for_the_pair(api, network_id):
    org = Org(api, network_id)
    await org.setup("inst-1", "inst-2")
    program = (await org.create(_program("inst-1", name="I1 cross", cross_institution=True,
                                         type="faculty"))).json()["id"]
    profiles = f"{api.platform.url('profiles')}/networks/{network_id}"
    matching = f"{api.platform.url('matching')}/networks/{network_id}"
    ids = {}
    for role, institution, stage in (("mentee", "inst-1", "M3"),
                                     ("mentor", "inst-2", "faculty-professor")):
        response = await api.http.post(f"{profiles}/{role}s", headers=org.auth(), json={
            "institution_id": institution, "program_id": program, "display_name": f"{role} x",
            "email": f"{role}-{network_id}@example.org", "career_stage": stage,
            **({"capacity": 2} if role == "mentor" else {})})
        assert response.status_code == 201, response.text
        ids[role] = response.json()["id"]

    async def propose():
        return await api.http.post(f"{matching}/programs/{program}/proposals", headers=org.auth(),
                                   json={"mentee_id": ids["mentee"], "mentor_id": ids["mentor"]})

    proposal = await eventually(propose, lambda r: r.status_code == 201, timeout=60,
                                what="matching to know both people")
    mentorship = f"{matching}/mentorships/{proposal.json()['mentorship_id']}"
    other_side = api.auth(network_id, role="institution_coordinator", institution_id="inst-2")
    assert (await api.http.get(mentorship, headers=other_side)).status_code == 200  # may see it
    for side in ("mentee", "mentor"):
        acted = await api.http.post(f"{mentorship}/accept", json={"side": side},
                                    headers=other_side)
        assert acted.status_code == 403, acted.text
    declined = await api.http.post(f"{mentorship}/decline", json={"side": "mentee"},
                                   headers=other_side)
    assert declined.status_code == 403
    still = (await api.http.get(mentorship, headers=org.auth())).json()
    assert still["status"] == "proposed" and still["accepted_by"] == {"mentor": False,
                                                                     "mentee": False}
    # The program's own coordinator may.
    own = api.auth(network_id, role="institution_coordinator", institution_id="inst-1")
    accepted = await api.http.post(f"{mentorship}/accept", json={"side": "mentee"}, headers=own)
    assert accepted.status_code == 200, accepted.text
