"""Registration names an institution the network does not have.

The attack (the README's own first flow did it): `POST /networks/{id}/mentees` with
`institution_id` "st-elsewhere", which nobody created, was 201, and analytics then reported
"st-elsewhere" as an institution of the network. Roster import already refused such rows;
registration must too, with a 422 that says what to do, and nothing may be stored or published.
"""

from __future__ import annotations

from tests.security.attack_support import Network
from tests.support import eventually


async def test_registering_at_an_institution_that_does_not_exist_is_422(api, network_id):
    network = Network(api, network_id)
    await network.institution("inst-a")
    for role in ("mentees", "mentors"):
        r = await api.http.post(
            f"{network.profiles}/{role}",
            json={"institution_id": "st-elsewhere", "display_name": "Ada Lovelace",
                  "email": f"ada-{role}@example.org", "career_stage": "M2"},
            headers=network.admin(),
        )
        assert r.status_code == 422, r.text
        assert "no institution 'st-elsewhere'" in r.json()["detail"]
        assert "POST /networks/" in r.json()["detail"]  # says what to do instead

    people = await api.http.get(f"{network.profiles}/people", headers=network.admin())
    assert people.json()["items"] == []
    # The real institution still works; once analytics counted that registration, it has
    # still never heard of the made-up institution.
    await network.register("mentee", "inst-a")
    await eventually(lambda: api.registrations(network_id), lambda n: n == 1)
    scopes = await api.http.get(
        f"{api.platform.url('analytics')}/networks/{network_id}/report-scopes",
        headers=network.admin(),
    )
    assert "st-elsewhere" not in {s["id"] for s in scopes.json()["scopes"]}
