"""Attacks on who may see whom (docs/access-model.md):

* a dry-run import told an institution coordinator which other institution an email belongs to;
* a program coordinator's candidate pool (matching) listed people that profiles hides from him;
* a mentee of a network-wide program listed everyone of it across every institution;
* a program coordinator took over (and so saw) anyone whose email he knew through an import.
"""

from __future__ import annotations

from tests.e2e.test_programs import Org, _program
from tests.support import eventually, finished_import


async def _register(api, org, network_id, n, role, institution, program=None) -> str:
    body = {"institution_id": institution, "display_name": f"Person {n}",
            "email": f"person{n}-{network_id}@example.org",
            "career_stage": "faculty-professor" if role == "mentor" else "M2",
            **({"program_id": program} if program else {})}
    response = await api.http.post(f"{org.base}/{role}s", json=body, headers=org.auth())
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_a_dry_run_import_does_not_say_where_an_email_belongs(api, network_id):
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    await _register(api, org, network_id, 1, "mentee", "inst-a")
    roster = ("email,first_name,last_name,institution_id,career_stage,role\n"
              f"person1-{network_id}@example.org,Pat,Doe,inst-b,M2,mentee\n")
    coordinator = org.auth(role="institution_coordinator", institution_id="inst-b")
    report = await api.http.post(f"{org.base}/imports", params={"dry_run": "true"},
                                 content=roster, headers=coordinator | {"content-type": "text/csv"})
    assert report.status_code == 200 and len(report.json()["invalid"]) == 1
    assert "inst-a" not in report.text


async def test_a_program_coordinators_pool_holds_only_people_profiles_shows_him(api, network_id):
    org = Org(api, network_id)
    await org.setup("inst-a")
    mine = (await org.create(_program("inst-a", name="Mine"))).json()["id"]
    other = (await org.create(_program("inst-a", name="Other"))).json()["id"]
    inside = await _register(api, org, network_id, 1, "mentee", "inst-a", mine)
    outside = await _register(api, org, network_id, 2, "mentee", "inst-a", other)
    unenrolled = await _register(api, org, network_id, 3, "mentee", "inst-a")
    coordinator = org.auth(role="program_coordinator", institution_id="inst-a",
                           program_ids=[mine])
    everyone = {inside, outside, unenrolled}

    async def pool_of(headers) -> set[str]:
        response = await api.http.get(
            f"{api.platform.url('matching')}/networks/{network_id}/pool/mentees", headers=headers)
        assert response.status_code == 200, response.text
        return {e["person_id"] for e in response.json()} & everyone

    await eventually(lambda: pool_of(org.auth()), lambda seen: seen == everyone,
                     what="matching's pool to hold the three")
    profiles_shows = {p["id"] for p in (await api.http.get(
        f"{org.base}/people", headers=coordinator)).json()["items"]}
    assert profiles_shows == {inside}
    assert await pool_of(coordinator) == {inside}


async def test_a_mentee_of_a_network_wide_program_does_not_list_its_people(api, network_id):
    org = Org(api, network_id)
    institutions = ("inst-a", "inst-b", "inst-c")
    await org.setup(*institutions)
    program = (await org.create(_program(None, name="Everyone"))).json()["id"]
    ids = [await _register(api, org, network_id, n, "mentor" if n % 2 else "mentee",
                           institutions[n % 3], program) for n in range(6)]
    me = org.auth(role="mentee", person_id=ids[0])
    listed = await api.http.get(f"{org.base}/people", params={"limit": 100}, headers=me)
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["items"]] == [ids[0]]
    for other in ids[1:]:
        assert (await api.http.get(f"{org.base}/people/{other}", headers=me)).status_code == 404


async def test_an_import_does_not_take_over_someone_the_importer_cannot_see(api, network_id):
    """A coordinator of a network-wide program imported a row with a stranger's email, her
    institution and his program: her name, career stage and training were overwritten, she was
    enrolled in his program, and from then on he saw her profile in full. The answer also said
    whether the email was registered, and at which institution (the row naming the right one
    went through)."""
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    wide = (await org.create(_program(None, name="Network-wide"))).json()["id"]
    stranger = await _register(api, org, network_id, 1, "mentor", "inst-b")
    coordinator = org.auth(role="program_coordinator", program_ids=[wide])
    reasons = []
    for institution in ("inst-a", "inst-b"):
        roster = ("email,first_name,last_name,institution_id,career_stage,role,program_id\n"
                  f"person1-{network_id}@example.org,Evil,Name,{institution},faculty-professor,"
                  f"mentor,{wide}\n")
        for dry_run in ("true", "false"):
            started = await api.http.post(
                f"{org.base}/imports", params={"dry_run": dry_run}, content=roster,
                headers=coordinator | {"content-type": "text/csv"})
            report = (await finished_import(api.http, started, coordinator)).json()
            assert report["updated"] == 0 and len(report["invalid"]) == 1, str((dry_run, report))
            reasons.append(report["invalid"][0]["reason"])
    assert len(set(reasons)) == 1, reasons  # the same answer wherever she is registered
    stored = (await api.http.get(f"{org.base}/people/{stranger}", headers=org.auth())).json()
    assert stored["display_name"] == "Person 1"
    assert wide not in (stored.get("program_ids") or [])
    seen = await api.http.get(f"{org.base}/people/{stranger}", headers=coordinator)
    assert seen.status_code == 404
