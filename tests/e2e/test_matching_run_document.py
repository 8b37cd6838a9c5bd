"""A draft run read over HTTP: whether it is proven optimal, the seed that drew its ties (given
again, it replays the run), and the people whose profiles are too thin to match on."""

from __future__ import annotations

from tests.e2e.test_matching_lifecycle import Matching
from tests.e2e.test_programs import _program


async def test_a_draft_run_reports_its_proof_its_seed_and_thin_profiles(api, network_id):
    m = Matching(api, network_id)
    await m.org.setup("inst-a")
    created = await m.org.create(_program("inst-a", name="Blank profiles", max_mentors_per_mentee=1))
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    await m.register("Mira", "mentor", stage="PGY-2", program_id=pid, capacity=2,
                     profile={"mentor": {"help_offered": ["research"]}})
    await m.register("Omar", "mentor", stage="PGY-3", program_id=pid, capacity=2)  # never filled in
    await m.register("Ana", "mentee", stage="M3", program_id=pid, profile={"mentee": {"needs": ["research"]}})
    await m.register("Ben", "mentee", stage="M3", program_id=pid)
    await m.register("Caro", "mentee", stage="M3", program_id=pid)
    await m.settled("Mira", "Omar", "Ana", "Ben", "Caro")

    draft = await m.program(pid, "/runs", "POST", {"algorithm": "min-cost-flow"})
    assert draft.status_code == 201, draft.text
    run = draft.json()
    assert run["proven_optimal"] is True and run["certificate"]["proven"] is True
    assert run["mentees_matched"] == 3
    thin = run["thin_profiles"]
    assert {(p["person_id"], p["display_name"]) for p in thin["mentees"]["people"]} == {
        (m.ids["Ben"], "Ben"), (m.ids["Caro"], "Caro")}
    assert thin["mentees"]["count"] == 2 and thin["mentors"]["count"] == 1
    assert thin["mentors"]["people"][0]["display_name"] == "Omar"
    stored = (await m.program(pid, f"/runs/{run['run_id']}")).json()
    assert stored["thin_profiles"] == thin and stored["proven_optimal"] is True

    seed = run["parameters"]["seed"]
    again = (await m.program(pid, "/runs", "POST", {"algorithm": "min-cost-flow", "seed": seed})).json()
    assert again["parameters"]["seed"] == seed and again["proposals"] == run["proposals"]
    bad = await m.program(pid, "/runs", "POST", {"algorithm": "min-cost-flow", "seed": -1})
    assert bad.status_code == 422
