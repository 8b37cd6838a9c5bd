"""Facts others rely on: what a person's own edit may change alone, and who may self-enrol as
a mentor (pure rules, services/profiles/verification.py and enrolment.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.profiles import enrolment, verification
from services.profiles.organisation import Program, ProgramType
from services.profiles.people import MentorProfile, Profile


def _program(kind: ProgramType, **fields) -> Program:
    return Program(network_id="n", institution_id="i", name="P", type=kind,
                   cohort_start=date(2027, 1, 1), cohort_end=date(2027, 6, 1),
                   enrolment_opens=date(2026, 1, 1), enrolment_closes=date(2027, 1, 1), **fields)


STUDENT = Profile(display_name="Mallory", career_stage="M3", mentor=MentorProfile(capacity=1))


def test_the_attack_edit_is_all_facts():
    direct, facts = verification.split(STUDENT, {
        "career_stage": "faculty-professor",
        "mentor": {"capacity": 50, "training_completed": True, "languages": ["en"]},
    }, capacity_limit=5)
    assert direct == {"mentor": {"languages": ["en"]}}
    assert facts == {"career_stage": "faculty-professor",
                     "mentor": {"capacity": 50, "training_completed": True}}


@pytest.mark.parametrize("capacity, needs_approval", [(0, False), (5, False), (6, True)])
def test_capacity_is_the_persons_own_up_to_the_limit(capacity, needs_approval):
    _, facts = verification.split(STUDENT, {"mentor": {"capacity": capacity}}, capacity_limit=5)
    assert bool(facts) is needs_approval


def test_a_capacity_a_coordinator_set_may_be_kept_or_lowered():
    verified = Profile("Ada", "faculty-professor", mentor=MentorProfile(capacity=10))
    assert verification.split(verified, {"mentor": {"capacity": 8}}, capacity_limit=5)[1] == {}
    assert verification.split(verified, {"career_stage": "faculty-professor"}, 5)[1] == {}


def test_the_limit_is_the_smallest_of_the_mentor_programs():
    programs = [_program(ProgramType.PEER, max_mentor_capacity=n) for n in (4, 2)]
    assert verification.self_capacity_limit(programs) == 2
    assert verification.self_capacity_limit([]) == 5


@pytest.mark.parametrize("kind, stage, eligible", [
    (ProgramType.FACULTY, "M3", False),
    (ProgramType.FACULTY, "faculty-instructor", True),
    (ProgramType.NEAR_PEER, "M1", False),
    (ProgramType.NEAR_PEER, "M2", True),
    (ProgramType.RESEARCH, "M4", False),
    (ProgramType.RESEARCH, "PGY-1", True),
    (ProgramType.PEER, "a-network-term", False),
])
def test_self_enrolment_as_mentor_needs_the_programs_minimum_stage(kind, stage, eligible):
    person = enrolment.Participant("p", "n", "i", career_stage=stage)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    enrol = lambda: enrolment.enrol(person, _program(kind), "mentor", by_self=True,  # noqa: E731
                                    today=now.date(), now=now)
    if eligible:
        enrol()
    else:
        with pytest.raises(enrolment.NotEligible):
            enrol()
    # A coordinator enrols whom they judge fit.
    enrolment.enrol(person, _program(kind), "mentor", by_self=False, today=now.date(), now=now)


def test_a_program_may_set_its_own_minimum_and_capacity_limit():
    program = _program(ProgramType.PEER, min_mentor_stage="PGY-3", max_mentor_capacity=2)
    assert program.mentor_stage_floor == "PGY-3"
    with pytest.raises(enrolment.NotEligible, match="at most 2 mentees"):
        enrolment.check_mentor_eligible(
            enrolment.Participant("p", "n", "i", career_stage="PGY-4", mentor_capacity=3), program)
