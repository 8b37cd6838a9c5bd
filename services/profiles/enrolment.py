"""Enrolment: which programs a person takes part in, and in which role. Pure logic, no I/O.

A person belongs to one institution and may take part in several programs, a mentor in one
and a mentee in another. Their enrolments live in their person document (so an enrolment and
its event are one document write, like every change here). Each enrolment has a status:

* `requested`: the person asked to join a program that requires approval;
* `active`: they take part (`PersonEnrolled` said so);
* `declined`: a coordinator said no (`EnrolmentDeclined`);
* `withdrawn`: they left (`ParticipantWithdrawn`).

The enrolment id is derived from (person, program, role), so asking again after a decline or
a withdrawal reuses the id and nobody can hold two enrolments of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from services.profiles.domain import SOURCE, DomainError, stage_rank
from services.profiles.organisation import Program
from shared.events import CloudEvent, new_event
from shared.events.schemas import (
    EnrolmentDeclined,
    EnrolmentRequested,
    ParticipantWithdrawn,
    PersonEnrolled,
)
from shared.text import clean_text

ROLES = ("mentor", "mentee")
REQUESTED, ACTIVE, DECLINED, WITHDRAWN = "requested", "active", "declined", "withdrawn"
MAX_REASON = 500


class AlreadyEnrolled(DomainError):
    """The person already takes part (or already asked to) in this program in this role."""


class EnrolmentClosed(DomainError):
    """Self-registration outside the program's enrolment window."""


class NotPending(DomainError):
    """Only a request can be approved or declined."""


class NotEligible(DomainError):
    """The person may not register themselves as a mentor of this program."""


@dataclass(frozen=True)
class Enrolment:
    id: str
    program_id: str
    role: str
    status: str
    at: datetime  # when the status was last set
    reason: str = ""


@dataclass(frozen=True)
class Participant:
    """What enrolment needs to know of a person."""

    id: str
    network_id: str
    institution_id: str
    enrolments: tuple[Enrolment, ...] = ()
    career_stage: str = ""  # verified: only coordinators set it (verification.py)
    mentor_capacity: int | None = None  # None: not a mentor yet

    def active_programs(self) -> list[str]:
        return list(dict.fromkeys(e.program_id for e in self.enrolments if e.status == ACTIVE))


def enrolment_id(person_id: str, program_id: str, role: str) -> str:
    return f"{person_id}:{program_id}:{role}"


def check_role(role: str) -> str:
    if role not in ROLES:
        raise DomainError(f"The role in a program is mentor or mentee, not {role!r}.")
    return role


def may_take_part(institution_id: str, program: Program) -> None:
    """A program draws on its own institution, unless network-wide or cross-institution."""
    if program.network_wide or program.cross_institution:
        return
    if program.institution_id != institution_id:
        raise DomainError(
            f"{program.name!r} is a program of {program.institution_id} that does not take "
            f"people from other institutions; this person belongs to {institution_id}."
        )


def check_mentor_eligible(person: Participant, program: Program) -> None:
    """Self-registration as a mentor: the person's verified career stage is at least the
    program's minimum, and their capacity within what the program lets mentors set alone.
    (A coordinator enrolling someone decides for themselves.)"""
    floor = program.mentor_stage_floor
    rank, needed = stage_rank(person.career_stage), stage_rank(floor)
    if rank is None or needed is None or rank < needed:
        raise NotEligible(
            f"{program.name!r} takes mentors from career stage {floor} on, and your career "
            f"stage is {person.career_stage or 'not set'}. A coordinator can enrol you, or "
            "approve a change of your career stage first."
        )
    if person.mentor_capacity is not None and person.mentor_capacity > program.max_mentor_capacity:
        raise NotEligible(
            f"Mentors of {program.name!r} take at most {program.max_mentor_capacity} mentees at "
            f"once unless a coordinator agrees; your capacity is {person.mentor_capacity}. "
            "Lower it first, or ask a coordinator to enrol you."
        )


def _reason(reason: str) -> str:
    cleaned = clean_text(reason)
    if len(cleaned) > MAX_REASON:
        raise DomainError(f"A reason may be at most {MAX_REASON} characters.")
    return cleaned


def enrol(
    person: Participant,
    program: Program,
    role: str,
    *,
    by_self: bool,
    today: date,
    now: datetime,
) -> tuple[Participant, list[CloudEvent], Enrolment]:
    """Enrol the person, or record their request when they ask themselves and the program
    requires approval. A coordinator enrols directly, at any time: the window is for
    self-registration."""
    check_role(role)
    may_take_part(person.institution_id, program)
    key = enrolment_id(person.id, program.id, role)
    current = next((e for e in person.enrolments if e.id == key), None)
    if current is not None and current.status == ACTIVE:
        raise AlreadyEnrolled(f"This person already takes part in {program.name!r} as {role}.")
    if by_self:
        if role == "mentor":
            check_mentor_eligible(person, program)
        if current is not None and current.status == REQUESTED:
            raise AlreadyEnrolled(
                f"You already asked to join {program.name!r} as {role}; a coordinator decides."
            )
        if not program.enrolment_opens <= today <= program.enrolment_closes:
            raise EnrolmentClosed(
                f"Enrolment in {program.name!r} is open from {program.enrolment_opens} to "
                f"{program.enrolment_closes}; today is {today}. Ask a coordinator to enrol you."
            )
    status = REQUESTED if by_self and program.requires_approval else ACTIVE
    enrolment = Enrolment(id=key, program_id=program.id, role=role, status=status, at=now)
    common = _common(person, enrolment)
    payload: Any = (
        EnrolmentRequested(**common, requested_at=now)
        if status == REQUESTED
        else PersonEnrolled(**common, enrolled_at=now)
    )
    return _with(person, enrolment), [_event(payload, person)], enrolment


def decide(
    person: Participant, key: str, *, approve: bool, reason: str, now: datetime
) -> tuple[Participant, list[CloudEvent], Enrolment]:
    """A coordinator approves (`PersonEnrolled`) or declines (`EnrolmentDeclined`) a request."""
    current = next((e for e in person.enrolments if e.id == key), None)
    if current is None:
        raise NotPending("There is no such request for this person.")
    if current.status != REQUESTED:
        raise NotPending(f"This request was already decided: it is {current.status}.")
    reason = _reason(reason)
    common = _common(person, current)
    if approve:
        enrolment = replace(current, status=ACTIVE, at=now, reason="")
        payload: Any = PersonEnrolled(**common, enrolled_at=now)
    else:
        enrolment = replace(current, status=DECLINED, at=now, reason=reason)
        payload = EnrolmentDeclined(**common, reason=reason, declined_at=now)
    return _with(person, enrolment), [_event(payload, person)], enrolment


def withdraw(
    person: Participant,
    program_id: str | None,
    role: str | None,
    *,
    reason: str,
    now: datetime,
) -> tuple[Participant, list[CloudEvent]]:
    """Leave one program (or all when `program_id` is None), in one role (or both).

    Pending requests that match are withdrawn too, silently: nobody was enrolled by them.
    One `ParticipantWithdrawn` says what was left, in the terms the caller used."""
    if role is not None:
        check_role(role)
    reason = _reason(reason)

    def matches(e: Enrolment) -> bool:
        return (
            e.status in (ACTIVE, REQUESTED)
            and (program_id is None or e.program_id == program_id)
            and (role is None or e.role == role)
        )

    if not any(matches(e) and e.status == ACTIVE for e in person.enrolments):
        where = "any program" if program_id is None else "this program"
        raise NotPending(
            f"This person does not take part in {where}"
            + (f" as {role}" if role else "")
            + "; there is nothing to withdraw from."
        )
    enrolments = tuple(
        replace(e, status=WITHDRAWN, at=now, reason=reason) if matches(e) else e
        for e in person.enrolments
    )
    payload = ParticipantWithdrawn(
        person_id=person.id,
        network_id=person.network_id,
        institution_id=person.institution_id,
        program_id=program_id,
        role=role,
        reason=reason,
        withdrawn_at=now,
    )
    return replace(person, enrolments=enrolments), [_event(payload, person)]


def _with(person: Participant, enrolment: Enrolment) -> Participant:
    others = tuple(e for e in person.enrolments if e.id != enrolment.id)
    return replace(person, enrolments=(*others, enrolment))


def _common(person: Participant, enrolment: Enrolment) -> dict[str, Any]:
    return dict(
        enrolment_id=enrolment.id,
        person_id=person.id,
        network_id=person.network_id,
        institution_id=person.institution_id,
        program_id=enrolment.program_id,
        role=enrolment.role,
    )


def _event(payload: Any, person: Participant) -> CloudEvent:
    return new_event(payload, subject=person.id, tenant_id=person.network_id, source=SOURCE)


# ---------------------------------------------------------------- documents


def enrolments_document(person: Participant) -> dict[str, Any]:
    """The fields of the person document enrolment owns; `program_ids` (active programs) is
    what visibility queries and the `program` filter use."""
    return {
        "enrolments": [
            {"id": e.id, "program_id": e.program_id, "role": e.role, "status": e.status,
             "at": e.at, "reason": e.reason}
            for e in person.enrolments
        ],
        "program_ids": person.active_programs(),
    }


def participant_from_document(document: dict[str, Any]) -> Participant:
    """People registered before enrolments existed get one from their registration."""
    stored = document.get("enrolments")
    if stored is None:
        stored = [
            {"id": enrolment_id(document["_id"], p, document.get("role") or "mentee"),
             "program_id": p, "role": document.get("role") or "mentee", "status": ACTIVE,
             "at": document.get("registered_at")}
            for p in document.get("program_ids") or []
        ]
    mentor = document.get("mentor")
    return Participant(
        id=document["_id"],
        network_id=document["network_id"],
        institution_id=document["institution_id"],
        career_stage=document.get("career_stage") or "",
        mentor_capacity=mentor.get("capacity") if isinstance(mentor, dict) else None,
        enrolments=tuple(
            Enrolment(id=e["id"], program_id=e["program_id"], role=e["role"],
                      status=e["status"], at=e["at"], reason=e.get("reason", ""))
            for e in stored
        ),
    )
