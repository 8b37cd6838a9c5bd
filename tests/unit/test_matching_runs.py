"""The run document of a matching run as pure code: proof, seed and thin profiles."""

from __future__ import annotations

from services.matching import runs
from services.matching.scoring import Mentee, Mentor, Weights
from services.matching.thin_profiles import thin_profiles

PROGRAM = {"_id": "p", "network_id": "n", "institution_id": "i1", "type": "near-peer",
           "max_mentors_per_mentee": 2, "cross_institution": False}


def mentor(pid, name, capacity=2, **profile):
    return {"_id": pid, "display_name": name, "institution_id": "i1", "career_stage": "PGY-2",
            "capacity": capacity, "mentor_programs": ["p"], "mentor_profile": profile}


def mentee(pid, name, **profile):
    return {"_id": pid, "display_name": name, "institution_id": "i1", "career_stage": "M4",
            "mentee_programs": ["p"], "mentee_profile": profile}


def inputs(mentors, mentees, preferences=()):
    return runs.Inputs(PROGRAM, {}, mentors, mentees, [], list(preferences))


def scene():
    mentors = [mentor("m1", "Mira", help_offered=["research"], languages=["en"]),
               mentor("m2", "Omar"),  # registered, never filled in the profile
               mentor("m3", "Ines", capacity=0)]  # blank too, but has no place to give
    mentees = [mentee("e1", "Ana", needs=["research"]),
               mentee("e2", "Ben"),  # blank
               mentee("e3", "Caro", specialty_interests=["surgery"], mentors_wanted=2)]
    return mentors, mentees


def test_a_draft_run_lists_the_profiles_too_thin_to_match_on():
    mentors, mentees = scene()
    for algorithm in runs.ALGORITHMS:
        doc = runs.run(inputs(mentors, mentees), algorithm, seed=7)
        thin = doc["thin_profiles"]
        assert thin["mentees"]["count"] == 1 and thin["mentors"]["count"] == 1
        [ben] = thin["mentees"]["people"]
        [omar] = thin["mentors"]["people"]
        assert (ben["person_id"], ben["display_name"]) == ("e2", "Ben")
        assert (omar["person_id"], omar["display_name"]) == ("m2", "Omar")
        assert "needs" in ben["missing"] and "help offered" in omar["missing"]
        assert "needs" in thin["rule"]


def test_a_min_cost_flow_run_says_it_is_proven_and_records_its_seed():
    mentors, mentees = scene()
    doc = runs.run(inputs(mentors, mentees), "min-cost-flow", seed=12345)
    assert doc["proven_optimal"] is True and doc["certificate"]["proven"] is True
    assert doc["parameters"]["seed"] == 12345
    assert doc == runs.run(inputs(mentors, mentees), "min-cost-flow", seed=12345) | {
        "timings_ms": doc["timings_ms"], "certificate": doc["certificate"]}
    # every proposal's score is its explanation's integer points / 10, and the total their sum
    assert doc["total_score"] == sum(round(p["score"] * 10) for p in doc["proposals"]) / 10


def test_deferred_acceptance_runs_give_a_mentee_one_mentor_per_wanted_need():
    mentors = [mentor("m1", "Mira", help_offered=["research"]),
               mentor("m2", "Omar", help_offered=["wellbeing"])]
    mentees = [mentee("e1", "Ana", needs=["research", "wellbeing"], mentors_wanted=2)]
    prefs = [{"person_id": "e1", "role": "mentee", "ranked": ["m2", "m1"]},
             {"person_id": "m1", "role": "mentor", "ranked": ["e1"]},
             {"person_id": "m2", "role": "mentor", "ranked": ["e1"]}]
    doc = runs.run(inputs(mentors, mentees, prefs), "deferred-acceptance")
    assert doc["stable"] is True
    assert {(p["need"], p["mentor_id"]) for p in doc["proposals"]} == {
        ("research", "m1"), ("wellbeing", "m2")}


def test_the_thin_profile_rule_follows_the_program_weights():
    blank = Mentee("e", "i", "M1", languages=frozenset(), meeting_modes=frozenset(), utc_offset=None)
    speaks = Mentee("s", "i", "M1", languages=frozenset({"es"}), meeting_modes=frozenset(),
                    utc_offset=None)
    m = Mentor("m", "i", "M3", 1, help_offered=frozenset({"research"}))
    default = thin_profiles([blank, speaks], [m], Weights())
    assert [p["person_id"] for p in default["mentees"]["people"]] == ["e", "s"]
    assert default["mentors"]["count"] == 0
    # a program that weighs neither needs nor specialty judges by the logistics it weighs
    logistics = Weights(needs=0, specialty=0)
    assert [p["person_id"] for p in thin_profiles([blank, speaks], [m], logistics)["mentees"]["people"]] == ["e"]

def test_a_proposal_names_its_program_type_and_a_peer_program_scores_as_one():
    """A network-wide career program's proposal said "(faculty program)": the program document's
    type was folded into near-peer or faculty before scoring, so a peer program also scored
    stage gaps as a near-peer one would."""
    mentors = [mentor("m1", "Mira", help_offered=["research"])]
    mentees = [mentee("e1", "Ana", needs=["research"])]
    career = runs.Inputs(PROGRAM | {"type": "career", "institution_id": None}, {}, mentors,
                         mentees, [], [])
    [proposal] = runs.run(career, "min-cost-flow", seed=1)["proposals"]
    [stage] = [line for line in proposal["explanation"] if line.startswith("career stage")]
    assert "(career program)" in stage and "faculty" not in stage
    # and a peer program keeps its own career-stage rule (same stage), not near-peer's
    peer = runs.Inputs(PROGRAM | {"type": "peer"}, {}, mentors, mentees, [], [])
    assert peer.model_program.type == "peer"
