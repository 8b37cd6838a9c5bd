"""Runs of a program as pure code: who waits, places left, hard-constraint checks, both
algorithms over pool documents; and the pool's view of events."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.matching import domain, runs
from services.matching.pool_models import constraints_of, mentee_model, mentor_model
from services.matching.profile_mapping import utc_offset
from shared.events.schemas import IdentityAttributesChanged, ProgramCreated

T = datetime(2026, 10, 1, tzinfo=UTC)
PROGRAM = {"_id": "p", "network_id": "n", "institution_id": "i1", "type": "near-peer", "max_mentors_per_mentee": 1,
           "cross_institution": False}


def mentor(pid: str, capacity: int = 1, help_offered=("research",), **extra) -> dict:
    return {"_id": pid, "institution_id": "i1", "career_stage": "PGY-2", "capacity": capacity,
            "mentor_programs": ["p"], "mentor_profile": {"help_offered": list(help_offered), **extra}}


def mentee(pid: str, needs=("research",), wanted: int = 1, stage: str = "M4") -> dict:
    return {"_id": pid, "institution_id": "i1", "career_stage": stage, "mentee_programs": ["p"],
            "mentee_profile": {"needs": list(needs), "mentors_wanted": wanted}}


def ms(mentee_id: str, mentor_id: str, status: str, rematch: bool | None = None, ended_at=T) -> dict:
    return {"mentee_id": mentee_id, "mentor_id": mentor_id, "status": status, "program_id": "p",
            "rematch": rematch, "ended_at": ended_at}


def inputs(mentors, mentees, mentorships=(), program=PROGRAM, preferences=()) -> runs.Inputs:
    return runs.Inputs(program, {}, mentors, mentees, list(mentorships), list(preferences))


def test_places_left_count_active_mentorships_and_open_proposals():
    left = runs.places_left([mentor("a", 3), mentor("b", 1)],
                            [ms("x", "a", "active"), ms("y", "a", "proposed"), ms("z", "a", "ended"), ms("w", "b", "declined")])
    assert left == {"a": 1, "b": 1}
    assert runs.places_left([mentor("a", 1)], [ms("x", "a", "active"), ms("y", "a", "active")]) == {"a": 0}


def test_who_is_waiting():
    program = {**PROGRAM, "max_mentors_per_mentee": 2}
    wanted = runs.still_wanted(
        [mentee("two", wanted=3), mentee("done"), mentee("again"), mentee("open")],
        [ms("done", "a", "ended", rematch=False), ms("again", "a", "ended", rematch=False, ended_at=T),
         ms("again", "b", "ended", rematch=True, ended_at=T.replace(month=11)), ms("open", "a", "proposed")],
        program,
    )
    assert wanted == {"two": 2, "done": 0, "again": 1, "open": 0}


def test_a_run_of_no_mentors_or_no_capacity_proposes_nothing():
    for mentors in ([], [mentor("a", 0)]):
        result = runs.run(inputs(mentors, [mentee("e")]), "min-cost-flow")
        assert (result["proposals"], result["mentees_matched"], result["total_score"]) == ([], 0, 0)
        assert result["mentees_eligible"] == 1


def test_a_min_cost_flow_run_explains_every_proposal_and_never_repeats_a_closed_pair():
    mentors = [mentor("a"), mentor("b", help_offered=("wellbeing",))]
    result = runs.run(inputs(mentors, [mentee("e")]), "min-cost-flow")
    assert [(p["mentee_id"], p["mentor_id"]) for p in result["proposals"]] == [("e", "a")]
    assert any("research" in line for line in result["proposals"][0]["explanation"])
    assert result["parameters"]["program_type"] == "near-peer" and result["inputs"]["mentors"] == [
        {"mentor_id": "a", "places": 1}, {"mentor_id": "b", "places": 1}]
    assert result["inputs"]["mentees"] == [{"mentee_id": "e", "wanted": 1}]
    after = runs.run(inputs(mentors, [mentee("e")], [ms("e", "a", "declined")]), "min-cost-flow")
    assert [p["mentor_id"] for p in after["proposals"]] == ["b"]


def test_deferred_acceptance_uses_only_allowed_ranked_pairs_and_is_stable():
    prefs = [{"person_id": "e1", "role": "mentee", "ranked": ["a", "b"]},
             {"person_id": "e2", "role": "mentee", "ranked": ["a", "b"]},
             {"person_id": "a", "role": "mentor", "ranked": ["e2", "e1"]},
             {"person_id": "b", "role": "mentor", "ranked": ["e1", "e2"]}]
    mentors = [mentor("a"), mentor("b", do_not_match=["e1"])]
    result = runs.run(inputs(mentors, [mentee("e1"), mentee("e2")], preferences=prefs), "deferred-acceptance")
    assert result["stable"] is True
    # b may not mentor e1 (a boundary), so e1, rejected by a, stays unmatched.
    assert [(p["mentee_id"], p["mentor_id"]) for p in result["proposals"]] == [("e2", "a")]


def test_check_pair_names_the_broken_constraint():
    mentors = [mentor("a"), mentor("b", do_not_match=["e"]), mentor("paused"), mentor("senior-not", help_offered=())]
    mentors[2]["paused"] = True
    mentors[3]["career_stage"] = "M1"
    data = inputs(mentors, [mentee("e"), mentee("f")], [ms("f", "a", "ended", rematch=True)])
    cases = {
        ("x", "a"): "not a mentee", ("e", "x"): "not a mentor",
        ("e", "b"): "supervises or evaluates", ("e", "paused"): "paused",
        ("e", "senior-not"): "not further along", ("f", "a"): "already had a mentorship",
    }
    for (e, m), reason in cases.items():
        with pytest.raises(runs.PairRejected, match=reason):
            runs.check_pair(data, e, m, None)
    ok = runs.check_pair(data, "e", "a", "research")
    assert ok["score"] > 0 and ok["need"] == "research"
    with pytest.raises(runs.PairRejected, match="no free place"):
        runs.check_pair(data, "f", "a", None, alongside=[ok])
    with pytest.raises(runs.PairRejected, match="does not offer"):
        runs.check_pair(data, "e", "a", "wellbeing")
    with pytest.raises(runs.PairRejected, match="already in the run"):
        runs.check_pair(data, "e", "a", None, alongside=[ok])


def test_models_from_pool_documents():
    identity = {"attributes": {"first_generation": "true"}, "use_for_matching": True}
    doc = {**mentor("a", time_zone="America/New_York", languages=["es"], capacity=5), "capacity": 5,
           "affinities": ["first_generation:true"], "identity": identity}
    m = mentor_model(doc, 2)
    assert m.capacity == 2 and m.languages == frozenset({"es"}) and m.program_ids == frozenset({"p"})
    assert m.utc_offset in (-5.0, -4.0) and len(m.affinities) == 1
    assert mentor_model({**mentor("a"), "erased": True}, 1).paused
    e = mentee_model(mentee("e", wanted=2), "p")
    assert e.mentors_wanted == 2 and e.program_id == "p" and e.needs == ("research",)
    assert mentee_model(mentee("e"), "other").program_id == ""
    assert utc_offset("Not/AZone") is None and utc_offset(None) is None
    both = {**mentee("e"), "affinities": ["first_generation:true"], "identity": identity}
    assert mentee_model(both, "p").affinity_preferences == m.affinities  # the same tokens both sides
    c = constraints_of([mentor("a", do_not_match=["e"])], [ms("e", "b", "ended"), ms("f", "b", "declined"),
                                                           ms("g", "b", "active")])
    assert ("e", "a") in c.boundaries and ("g", "b") in (getattr(c, "excluded", None) or c.boundaries)
    assert c.ended == {("e", "b")} and c.declined == {("f", "b")}


def test_pool_views_of_events():
    change = IdentityAttributesChanged(person_id="x", network_id="n", institution_id="i",
                                       attributes={"first_generation": "true", "gender": ""},
                                       use_for_matching=True, version=2, changed_at=T)
    assert domain.affinities(change) == ["first_generation:true"]
    assert domain.affinities(change.model_copy(update={"use_for_matching": False})) == []
    assert domain.identity_view(change) == {"attributes": change.attributes, "use_for_matching": True}
    assert domain.identity_view(change.model_copy(update={"use_for_matching": False})) is None
    program = ProgramCreated(program_id="p", network_id="n", institution_id=None, name="N", type="faculty",
                             cohort_start=date(2026, 9, 1), cohort_end=date(2027, 6, 1), enrolment_opens=date(2026, 6, 1),
                             enrolment_closes=date(2026, 9, 1), cross_institution=False, max_mentors_per_mentee=2,
                             cadence_days=30, requires_approval=False, version=3, auto_accept=True, created_at=T)
    view = domain.program_view(program)
    assert view["version"] == 3 and view["auto_accept"] is True and domain.institution_rule(view) == "either"
    assert domain.institution_rule({"institution_id": "i", "cross_institution": False}) == "same"
    assert domain.membership_field("mentor") == "mentor_programs"
    with pytest.raises(ValueError):
        domain.membership_field("admin")
    assert domain.erased_fields()["display_name"] == "(erased)"


def test_explanations_never_name_identity_attributes():
    from services.matching.scoring import Program, explain

    first_gen = {"attributes": {"first_generation": "true"}, "use_for_matching": True}
    woman = {"attributes": {"gender": "woman"}, "use_for_matching": True}
    shared = {**mentor("a"), "affinities": ["first_generation:true"], "identity": first_gen}
    other = {**mentor("b"), "affinities": ["gender:woman"], "identity": woman}
    e = mentee_model({**mentee("e"), "affinities": ["first_generation:true"], "identity": first_gen}, "p")
    for doc, shares in ((shared, True), (other, False)):
        explanation = explain(e, mentor_model(doc, 1), Program(id="p"))
        public = runs.public_lines(explanation)
        assert len(public) == len(explanation.lines())
        assert not any("first_generation" in line or "gender" in line for line in public)
        [affinity] = [line for line in public if line.startswith("affinity")]
        assert ("none" in affinity) is not shares


def test_a_run_with_nobody_waiting_is_empty_and_says_so():
    everyone_served = inputs([mentor("a", 2)], [mentee("e")], [ms("e", "b", "active")])
    for algorithm in runs.ALGORITHMS:
        result = runs.run(everyone_served, algorithm)
        assert (result["mentees_eligible"], result["proposals"], result["total_score"]) == (0, [], 0)
    with pytest.raises(ValueError, match="algorithm"):
        runs.run(everyone_served, "greedy")


def test_program_settings_reach_the_solver():
    cross = {**PROGRAM, "cross_institution": True}
    far = {**mentor("far", 2), "institution_id": "i2"}
    data = inputs([far], [mentee("e"), mentee("f")], program=cross)
    assert len(runs.run(data, "min-cost-flow")["proposals"]) == 2
    data.settings = {"institution_cap": 1, "weights": {"training": 0}}
    capped = runs.run(data, "min-cost-flow")
    assert len(capped["proposals"]) == 1 and capped["solver"].startswith("integer program")
    assert capped["proven_optimal"] is True
    assert capped["parameters"]["weights"]["training"] == 0 and capped["parameters"]["institution_rule"] == "either"
