"""Attack: a program coordinator enrolled a person into another program (one they do not
coordinate) by registering them with its `program_id`, while the same enrolment through
`/programs/{id}/enrolments` was refused. Every path that writes an enrolment asks one rule."""

from __future__ import annotations

from tests.e2e.test_programs import Org, _program


async def test_registration_into_a_program_obeys_the_enrolment_rule(api, network_id):
    org = Org(api, network_id)
    await org.setup("inst-a")
    mine = (await org.create(_program("inst-a", name="Mine"))).json()["id"]
    theirs = (await org.create(_program("inst-a", name="Theirs"))).json()["id"]
    coordinator = api.auth(network_id, role="program_coordinator", institution_id="inst-a",
                           program_ids=[mine])
    profiles = f"{api.platform.url('profiles')}/networks/{network_id}"

    def body(n: int, program_id: str) -> dict:
        return {"institution_id": "inst-a", "program_id": program_id, "display_name": f"P {n}",
                "email": f"p{n}-{network_id}@example.org", "career_stage": "M2"}

    for role in ("mentees", "mentors"):
        escaped = await api.http.post(f"{profiles}/{role}", json=body(1, theirs),
                                      headers=coordinator)
        assert escaped.status_code == 403, escaped.text
    roster = ("email,first_name,last_name,institution_id,career_stage,role,program_id\n"
              f"r-{network_id}@example.org,Rae,Roe,inst-a,M2,mentee,{theirs}\n")
    imported = await api.http.post(f"{profiles}/imports", content=roster, headers=coordinator
                                   | {"content-type": "text/csv"})
    assert imported.status_code == 200 and imported.json()["created"] == 0
    assert len(imported.json()["invalid"]) == 1
    # The program they do coordinate takes people by every path.
    allowed = await api.http.post(f"{profiles}/mentees", json=body(2, mine), headers=coordinator)
    assert allowed.status_code == 201, allowed.text
    listed = await api.http.get(f"{profiles}/programs/{theirs}/enrolments", headers=org.auth())
    assert listed.json()["items"] == []
