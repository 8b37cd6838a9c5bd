"""Enrolment (pure code): several programs per person, self-registration window, approval,
withdrawal, and the documents they store."""

from datetime import UTC, date, datetime

import pytest

from services.profiles.domain import DomainError
from services.profiles.enrolment import (
    ACTIVE,
    DECLINED,
    REQUESTED,
    WITHDRAWN,
    AlreadyEnrolled,
    EnrolmentClosed,
    NotPending,
    Participant,
    decide,
    enrol,
    enrolments_document,
    participant_from_document,
    withdraw,
)
from services.profiles.organisation import Program, ProgramType

NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)
TODAY = NOW.date()
GRACE = Participant(id="p1", network_id="n1", institution_id="inst-a")


def _program(program_id: str = "prog-1", **fields) -> Program:
    values = dict(
        network_id="n1", institution_id="inst-a", name="Near-peer", type=ProgramType.NEAR_PEER,
        cohort_start=date(2026, 9, 1), cohort_end=date(2027, 6, 30),
        enrolment_opens=date(2026, 6, 1), enrolment_closes=date(2026, 8, 31), id=program_id,
    )
    return Program(**{**values, **fields})


def test_one_person_in_two_programs_in_two_roles():
    person, events, first = enrol(GRACE, _program("a"), "mentee", by_self=False, today=TODAY, now=NOW)
    person, more, second = enrol(person, _program("b"), "mentor", by_self=False, today=TODAY, now=NOW)
    assert (first.status, second.status) == (ACTIVE, ACTIVE)
    assert person.active_programs() == ["a", "b"]
    assert [e.type for e in events + more] == ["PersonEnrolled", "PersonEnrolled"]
    assert more[0].data["role"] == "mentor" and more[0].data["program_id"] == "b"
    with pytest.raises(AlreadyEnrolled):
        enrol(person, _program("a"), "mentee", by_self=False, today=TODAY, now=NOW)
    # The same program in the other role is another enrolment.
    person, _, _ = enrol(person, _program("a"), "mentor", by_self=False, today=TODAY, now=NOW)
    assert len(person.enrolments) == 3 and person.active_programs() == ["a", "b"]


def test_self_registration_needs_an_open_window_coordinators_do_not():
    closed = _program(enrolment_opens=date(2026, 7, 2), enrolment_closes=date(2026, 8, 1))
    with pytest.raises(EnrolmentClosed, match="open from 2026-07-02"):
        enrol(GRACE, closed, "mentee", by_self=True, today=TODAY, now=NOW)
    _, _, done = enrol(GRACE, closed, "mentee", by_self=False, today=TODAY, now=NOW)
    assert done.status == ACTIVE
    edge = _program(enrolment_opens=TODAY, enrolment_closes=TODAY)
    assert enrol(GRACE, edge, "mentee", by_self=True, today=TODAY, now=NOW)[2].status == ACTIVE


def test_approval_request_then_approve_or_decline():
    program = _program(requires_approval=True)
    person, events, asked = enrol(GRACE, program, "mentee", by_self=True, today=TODAY, now=NOW)
    assert asked.status == REQUESTED and events[0].type == "EnrolmentRequested"
    assert person.active_programs() == []
    with pytest.raises(AlreadyEnrolled, match="already asked"):
        enrol(person, program, "mentee", by_self=True, today=TODAY, now=NOW)
    approved, events, done = decide(person, asked.id, approve=True, reason="", now=NOW)
    assert done.status == ACTIVE and events[0].type == "PersonEnrolled"
    assert approved.active_programs() == [program.id]
    with pytest.raises(NotPending, match="already decided"):
        decide(approved, asked.id, approve=False, reason="", now=NOW)
    declined, events, done = decide(person, asked.id, approve=False, reason="  Full  ", now=NOW)
    assert done.status == DECLINED and events[0].data["reason"] == "Full"
    # Asking again after a decline is allowed, with the same enrolment id.
    _, _, again = enrol(declined, program, "mentee", by_self=True, today=TODAY, now=NOW)
    assert again.status == REQUESTED and again.id == asked.id
    # A coordinator enrolling directly needs no approval.
    assert enrol(GRACE, program, "mentee", by_self=False, today=TODAY, now=NOW)[2].status == ACTIVE


def test_programs_of_another_institution_only_when_they_span():
    other = _program(institution_id="inst-b")
    with pytest.raises(DomainError, match="does not take people from other institutions"):
        enrol(GRACE, other, "mentee", by_self=False, today=TODAY, now=NOW)
    for spanning in (_program(institution_id="inst-b", cross_institution=True),
                     _program(institution_id=None)):
        assert enrol(GRACE, spanning, "mentee", by_self=False, today=TODAY, now=NOW)[2].status == ACTIVE
    with pytest.raises(DomainError, match="mentor or mentee"):
        enrol(GRACE, _program(), "coach", by_self=False, today=TODAY, now=NOW)


def test_withdrawal_from_one_program_one_role_or_everything():
    person = GRACE
    for program_id, role in (("a", "mentee"), ("b", "mentor"), ("b", "mentee")):
        person, _, _ = enrol(person, _program(program_id), role, by_self=False, today=TODAY, now=NOW)
    person, _, _ = enrol(person, _program("c", requires_approval=True), "mentee", by_self=True,
                         today=TODAY, now=NOW)
    left, events = withdraw(person, "b", "mentor", reason="busy", now=NOW)
    assert left.active_programs() == ["a", "b"]
    assert events[0].data == {**events[0].data, "program_id": "b", "role": "mentor", "reason": "busy"}
    with pytest.raises(NotPending, match="nothing to withdraw"):
        withdraw(left, "b", "mentor", reason="", now=NOW)
    gone, events = withdraw(left, None, None, reason="", now=NOW)
    assert gone.active_programs() == []
    assert {e.status for e in gone.enrolments} == {WITHDRAWN}  # the pending request too
    assert events[0].data["program_id"] is None and events[0].data["role"] is None
    with pytest.raises(NotPending):
        withdraw(gone, None, None, reason="", now=NOW)


def test_documents_round_trip_and_legacy_registrations_get_an_enrolment():
    person, _, _ = enrol(GRACE, _program("a"), "mentee", by_self=False, today=TODAY, now=NOW)
    document = {"_id": "p1", "network_id": "n1", "institution_id": "inst-a",
                **enrolments_document(person)}
    assert document["program_ids"] == ["a"]
    assert participant_from_document(document) == person
    legacy = {"_id": "p2", "network_id": "n1", "institution_id": "inst-a", "role": "mentor",
              "program_ids": ["a"], "registered_at": NOW}
    restored = participant_from_document(legacy)
    assert restored.active_programs() == ["a"] and restored.enrolments[0].role == "mentor"
