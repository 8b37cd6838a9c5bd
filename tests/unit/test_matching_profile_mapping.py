"""From event-shaped profile dicts to scoring models, and the hard constraints they carry."""

from datetime import UTC, datetime

from services.matching.assignment import batch_match
from services.matching.profile_mapping import (
    affinity_tokens,
    boundary_pairs,
    mentee_from_profile,
    mentor_from_profile,
    program_from_state,
    utc_offset,
)
from services.matching.scoring import explain, ineligibility, score_value
from services.matching.suggestions import suggest
from services.matching.table import MentorTable
from shared.events.schemas import IdentityAttributesChanged, ProfileUpdated

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)  # winter: New York is UTC-5


def profile_updated(person_id, stage, mentor=None, mentee=None, institution="inst-a"):
    """A real ProfileUpdated payload, dumped as the pool would keep it."""
    payload = ProfileUpdated(
        person_id=person_id,
        network_id="net",
        institution_id=institution,
        display_name=person_id,
        career_stage=stage,
        roles=[r for r, part in (("mentor", mentor), ("mentee", mentee)) if part is not None],
        mentor=mentor,
        mentee=mentee,
        version=3,
        updated_at=NOW,
    )
    return payload.model_dump(mode="json")


MENTOR_PART = {
    "specialty": "cardiology",
    "help_offered": ["research", "wellbeing"],
    "languages": ["en", "es"],
    "meeting_modes": ["virtual"],
    "time_zone": "America/New_York",
    "capacity": 3,
    "paused": False,
    "training_completed": True,
    "do_not_match": ["student-9"],
}
MENTEE_PART = {
    "specialty_interests": ["cardiology"],
    "needs": ["research", "career-planning", "wellbeing"],
    "prefer_same_institution": True,
    "preferred_mode": "virtual",
    "preferred_language": "es",
    "mentors_wanted": 2,
    "mentors_for_needs": ["wellbeing", "research"],
}


def test_a_mentor_from_a_profile_event():
    m = mentor_from_profile(
        profile_updated("doc-1", "PGY-3", mentor=MENTOR_PART), program_ids=["p1"], at=NOW
    )
    assert m.id == "doc-1" and m.institution_id == "inst-a" and m.career_stage == "PGY-3"
    assert m.capacity == 3 and not m.paused and m.trained
    assert m.help_offered == {"research", "wellbeing"} and m.specialties == {"cardiology"}
    assert m.languages == {"en", "es"} and m.meeting_modes == {"virtual"}
    assert m.utc_offset == -5 and m.program_ids == {"p1"} and m.do_not_match == {"student-9"}
    # places already taken by active mentorships are not offered again
    assert mentor_from_profile(profile_updated("d", "PGY-3", mentor=MENTOR_PART), active_mentees=2).capacity == 1
    assert mentor_from_profile(profile_updated("d", "PGY-3", mentor=MENTOR_PART), active_mentees=5).capacity == 0


def test_a_mentee_from_a_profile_event():
    e = mentee_from_profile(profile_updated("stu-1", "M2", mentee=MENTEE_PART), program_id="p1")
    assert e.id == "stu-1" and e.program_id == "p1" and e.career_stage == "M2"
    assert e.needs == ("research", "career-planning", "wellbeing")
    assert e.mentors_wanted == 2 and e.slot_needs() == ["wellbeing", "research"]
    assert e.specialties == {"cardiology"} and e.languages == {"es"}
    assert e.meeting_modes == {"virtual"} and e.institution_preference == "same"
    assert e.utc_offset is None  # mentee profiles carry no time zone
    no_pref = mentee_from_profile(profile_updated("s", "M2", mentee={"needs": ["research"]}))
    assert no_pref.languages == frozenset() and no_pref.meeting_modes == frozenset()
    assert no_pref.institution_preference is None and no_pref.slot_needs() == [None]


def test_the_pool_entry_shape_and_a_bare_registration_work_too():
    entry = {
        "_id": "doc-2",
        "institution_id": "inst-b",
        "career_stage": "fellow",
        "specialty_interests": ["oncology"],
        "capacity": 2,
        "paused": True,
        "mentor_profile": None,
        "mentee_profile": None,
    }
    m = mentor_from_profile(entry)
    assert m.id == "doc-2" and m.capacity == 2 and m.paused and m.specialties == {"oncology"}
    assert m.utc_offset is None and m.languages == frozenset()
    # the section fills in what the entry does not say; the entry's own capacity / paused
    # (kept fresh by MentorCapacityChanged / MentorPaused) win over the section's
    entry["mentor_profile"] = {**MENTOR_PART, "capacity": 4}
    m = mentor_from_profile(entry)
    assert m.capacity == 2 and m.paused and m.help_offered == {"research", "wellbeing"}
    del entry["capacity"], entry["paused"]
    m = mentor_from_profile(entry)
    assert m.capacity == 4 and not m.paused


def test_identity_is_used_only_when_the_person_allowed_it():
    allowed = IdentityAttributesChanged(
        person_id="p", network_id="n", institution_id="i",
        attributes={"first_generation": "true", "gender": "Woman", "under_represented": "false"},
        use_for_matching=True, version=2, changed_at=NOW,
    ).model_dump(mode="json")
    assert affinity_tokens(allowed) == {"first_generation=true", "gender=woman"}
    assert affinity_tokens({**allowed, "use_for_matching": False}) == frozenset()
    assert affinity_tokens(None) == frozenset()
    e = mentee_from_profile(profile_updated("s", "M1", mentee=MENTEE_PART), identity=allowed)
    m = mentor_from_profile(profile_updated("d", "M3", mentor=MENTOR_PART), identity=allowed)
    other = mentor_from_profile(profile_updated("d2", "M3", mentor=MENTOR_PART))
    program = program_from_state({"program_id": "", "type": "near-peer", "cross_institution": True})
    assert score_value(e, m, program) > score_value(e, other, program)
    words = " ".join(explain(e, m, program).lines())
    assert "woman" not in words.lower() and "first_generation" not in words


def test_time_zones_follow_daylight_saving_and_unknown_is_none():
    summer = datetime(2026, 7, 1, tzinfo=UTC)
    assert utc_offset("America/New_York", NOW) == -5
    assert utc_offset("America/New_York", summer) == -4
    assert utc_offset("Asia/Kolkata", NOW) == 5.5
    assert utc_offset("Not/AZone", NOW) is None and utc_offset(None) is None


def test_program_state_sets_the_rules():
    state = {"program_id": "p1", "type": "faculty", "cross_institution": False}
    p = program_from_state(state)
    assert p.id == "p1" and p.type == "faculty" and p.institution_rule == "same"
    assert program_from_state({**state, "cross_institution": True}).institution_rule == "either"


def test_do_not_match_holds_in_both_directions():
    # doc-1 evaluates stu-9 (listed on doc-1's mentor profile); stu-9 is also a mentor who
    # supervises doc-3 (listed on stu-9's own mentor profile).
    doc1 = mentor_from_profile(
        profile_updated("doc-1", "PGY-3", mentor={**MENTOR_PART, "do_not_match": ["stu-9"]})
    )
    stu9_profile = profile_updated(
        "stu-9", "M2", mentee=MENTEE_PART, mentor={**MENTOR_PART, "do_not_match": ["doc-3"]}
    )
    stu9 = mentee_from_profile(stu9_profile)
    doc3 = mentor_from_profile(profile_updated("doc-3", "PGY-3", mentor=MENTOR_PART))
    program = program_from_state({"program_id": "", "type": "near-peer"})
    assert "supervises or evaluates" in ineligibility(stu9, doc1, program)
    assert "supervises or evaluates" in ineligibility(stu9, doc3, program)
    assert batch_match([stu9], [doc1, doc3], program).assignments == []
    assert suggest(stu9, [doc1, doc3], program) == []
    table = MentorTable([doc1, doc3], program)
    assert suggest(stu9, [doc1, doc3], program, table=table) == []
    assert boundary_pairs([stu9_profile]) == {("stu-9", "doc-3"), ("doc-3", "stu-9")}


def test_mapped_people_match_end_to_end_with_explanations():
    program = program_from_state({"program_id": "p1", "type": "near-peer", "cross_institution": True})
    mentors = [
        mentor_from_profile(
            profile_updated(f"doc-{i}", "M4", mentor={**MENTOR_PART, "help_offered": offered}),
            program_ids=["p1"], at=NOW,
        )
        for i, offered in enumerate([["research"], ["wellbeing"], ["career-planning"]])
    ]
    mentee = mentee_from_profile(profile_updated("stu-1", "M2", mentee=MENTEE_PART), program_id="p1")
    result = batch_match([mentee], mentors, program)
    assert {(a.need, a.mentor_id) for a in result.assignments} == {
        ("wellbeing", "doc-1"), ("research", "doc-0")
    }
    lines = result.assignments[0].explanation.lines()
    assert any("time zone is unknown" in line for line in lines)
    assert any("both speak: es" in line for line in lines)
