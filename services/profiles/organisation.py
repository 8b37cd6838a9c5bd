"""Organisation domain: institutions (or chapters) of a network, and the programs they run.

Pure logic, no I/O. Each operation returns the new state and the events that announce it, so
the store can write both in one document write (transactional outbox). Every rule raises
`DomainError` with a message meant for the coordinator who typed the values.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from services.profiles.domain import SOURCE, STAGE_RANK, DomainError
from shared.events import CloudEvent, new_event
from shared.events.schemas import InstitutionCreated, ProgramCreated, ProgramUpdated
from shared.text import clean_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_MENTORS_PER_MENTEE = 10
MAX_CADENCE_DAYS = 366
MAX_COHORT_DAYS = 366 * 6  # longer than any residency: a typo, not a program
MAX_ENROLMENT_LEAD_DAYS = 366  # enrolment opening years ahead of the cohort is a typo too
MAX_MENTOR_CAPACITY = 50  # a person's capacity can never exceed it (people.MAX_CAPACITY)
DEFAULT_MENTOR_CAPACITY_LIMIT = 5


class ProgramType(StrEnum):
    FACULTY = "faculty"
    PEER = "peer"
    NEAR_PEER = "near-peer"
    RESEARCH = "research"
    SPECIALTY_SPECIFIC = "specialty-specific"
    LEADERSHIP = "leadership"
    CAREER = "career"


# Who may register themselves as a mentor of a program of each type, unless the program sets
# its own `min_mentor_stage`: near-peer mentors are a stage or two ahead of students (so from
# M2), peers are at the same stage, faculty programs want faculty, and research, career,
# leadership and specialty programs want graduates.
DEFAULT_MIN_MENTOR_STAGE = {
    ProgramType.FACULTY: "faculty-instructor",
    ProgramType.PEER: "M1",
    ProgramType.NEAR_PEER: "M2",
    ProgramType.RESEARCH: "PGY-1",
    ProgramType.SPECIALTY_SPECIFIC: "PGY-1",
    ProgramType.LEADERSHIP: "PGY-1",
    ProgramType.CAREER: "PGY-1",
}


class InstitutionKind(StrEnum):
    INSTITUTION = "institution"
    CHAPTER = "chapter"


class StaleVersion(DomainError):
    """The caller edited a version of the program that is no longer the current one."""


def _now() -> datetime:
    """Millisecond precision, as BSON stores it, so a response equals what a later read returns."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _time_ordered_id(prefix: str) -> str:
    """Ids that sort by creation time, so cursor pagination by id lists oldest first."""
    return f"{prefix}-{time.time_ns():016x}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Institution:
    network_id: str
    id: str  # chosen by the network (tokens name it in `institution_id`), unique in the network
    name: str
    kind: InstitutionKind = InstitutionKind.INSTITUTION
    created_at: datetime = field(default_factory=_now)


def new_institution(institution: Institution) -> tuple[Institution, list[CloudEvent]]:
    if not SLUG.match(institution.id):
        raise DomainError(
            f"Institution id {institution.id!r} is not usable: use 1-64 lower-case letters, "
            "digits, '.', '_' or '-', starting with a letter or digit."
        )
    institution = replace(institution, name=_clean_name(institution.name, "An institution"))
    payload = InstitutionCreated(
        institution_id=institution.id,
        network_id=institution.network_id,
        name=institution.name,
        kind=institution.kind.value,
        created_at=institution.created_at,
    )
    return institution, [_event(payload, institution.id, institution.network_id)]


@dataclass(frozen=True)
class Program:
    network_id: str
    institution_id: str | None  # None: network-wide, drawing on every institution
    name: str
    type: ProgramType
    cohort_start: date
    cohort_end: date
    enrolment_opens: date
    enrolment_closes: date
    cross_institution: bool = False
    max_mentors_per_mentee: int = 1
    cadence_days: int = 30
    requires_approval: bool = False
    auto_accept: bool = False  # proposals become mentorships without asking either side
    reassessment_days: int = 90  # check-in / feedback rhythm
    ranked_preferences: bool = False  # both sides hand in ranked lists
    coordinator_emails: tuple[str, ...] = ()  # who receives the program's digests
    # Self-registration as a mentor needs a (verified) career stage at least this; None: the
    # default of the program's type (DEFAULT_MIN_MENTOR_STAGE).
    min_mentor_stage: str | None = None
    # The most mentees at once a mentor may set for themselves while they mentor here; more
    # needs a coordinator (who sets it, or approves the person's request).
    max_mentor_capacity: int = DEFAULT_MENTOR_CAPACITY_LIMIT
    id: str = field(default_factory=lambda: _time_ordered_id("prog"))
    version: int = 1
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    @property
    def network_wide(self) -> bool:
        return self.institution_id is None

    @property
    def mentor_stage_floor(self) -> str:
        return self.min_mentor_stage or DEFAULT_MIN_MENTOR_STAGE[ProgramType(self.type)]


# What a PATCH may change. The institution is not among them: moving a program to another
# institution changes who may manage it, so it is a new program, not an edit.
EDITABLE = (
    "name", "type", "cohort_start", "cohort_end", "enrolment_opens", "enrolment_closes",
    "cross_institution", "max_mentors_per_mentee", "cadence_days", "requires_approval",
    "auto_accept", "reassessment_days", "ranked_preferences", "coordinator_emails",
    "min_mentor_stage", "max_mentor_capacity",
)
MAX_REASSESSMENT_DAYS = 366
MAX_COORDINATOR_EMAILS = 20
# Deliberately simple: one @, a dot in the domain, no spaces; the API's EmailStr is stricter.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_program(program: Program) -> Program:
    """The program with its name tidied, or DomainError naming the first broken rule."""
    name = _clean_name(program.name, "A program")
    try:
        kind = ProgramType(program.type)
    except ValueError:
        raise DomainError(
            f"Unknown program type {program.type!r}; use one of: "
            + ", ".join(t.value for t in ProgramType)
        ) from None
    if program.cohort_end <= program.cohort_start:
        raise DomainError(
            f"The cohort must end after it starts (start {program.cohort_start}, "
            f"end {program.cohort_end})."
        )
    if (program.cohort_end - program.cohort_start).days > MAX_COHORT_DAYS:
        raise DomainError(f"A cohort may last at most {MAX_COHORT_DAYS} days.")
    if program.enrolment_closes < program.enrolment_opens:
        raise DomainError(
            f"Enrolment must close on or after the day it opens (opens "
            f"{program.enrolment_opens}, closes {program.enrolment_closes})."
        )
    if (program.cohort_start - program.enrolment_opens).days > MAX_ENROLMENT_LEAD_DAYS:
        raise DomainError(
            f"Enrolment may open at most {MAX_ENROLMENT_LEAD_DAYS} days before the cohort "
            f"starts ({program.cohort_start}); it opens {program.enrolment_opens}."
        )
    if program.enrolment_closes > program.cohort_end:
        raise DomainError(
            f"Enrolment must close by the end of the cohort ({program.cohort_end}); it closes "
            f"{program.enrolment_closes}."
        )
    if not 1 <= program.max_mentors_per_mentee <= MAX_MENTORS_PER_MENTEE:
        raise DomainError(
            f"A mentee may have between 1 and {MAX_MENTORS_PER_MENTEE} mentors, not "
            f"{program.max_mentors_per_mentee}."
        )
    if not 1 <= program.cadence_days <= MAX_CADENCE_DAYS:
        raise DomainError(
            f"The meeting cadence is a number of days between 1 and {MAX_CADENCE_DAYS}, not "
            f"{program.cadence_days}."
        )
    if not 1 <= program.reassessment_days <= MAX_REASSESSMENT_DAYS:
        raise DomainError(
            f"The reassessment rhythm is a number of days between 1 and "
            f"{MAX_REASSESSMENT_DAYS}, not {program.reassessment_days}."
        )
    if program.min_mentor_stage is not None and program.min_mentor_stage not in STAGE_RANK:
        raise DomainError(
            f"The minimum mentor stage must be one of the ordered career stages ("
            + ", ".join(STAGE_RANK) + f"), not {program.min_mentor_stage[:60]!r}."
        )
    if not 1 <= program.max_mentor_capacity <= MAX_MENTOR_CAPACITY:
        raise DomainError(
            f"The capacity a mentor may set for themselves is between 1 and "
            f"{MAX_MENTOR_CAPACITY}, not {program.max_mentor_capacity}."
        )
    if program.auto_accept and program.ranked_preferences:
        raise DomainError(
            "A program either starts proposals automatically (auto_accept) or collects ranked "
            "preferences from both sides, not both: ranked lists are what people accept by."
        )
    return replace(program, name=name, type=kind,
                   coordinator_emails=_coordinator_emails(program.coordinator_emails))


def _coordinator_emails(emails: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Lower-cased, duplicates dropped (order kept), each one checked."""
    if len(emails) > MAX_COORDINATOR_EMAILS:
        raise DomainError(
            f"A program may list at most {MAX_COORDINATOR_EMAILS} coordinator emails."
        )
    cleaned: list[str] = []
    for email in emails:
        address = email.strip().lower()
        if not EMAIL.match(address) or len(address) > 254:
            raise DomainError(f"{email!r} in coordinator emails is not an email address.")
        if address not in cleaned:
            cleaned.append(address)
    return tuple(cleaned)


def create_program(program: Program) -> tuple[Program, list[CloudEvent]]:
    program = replace(validate_program(program), updated_at=program.created_at)
    payload = ProgramCreated(**_state(program), created_at=program.created_at)
    return program, [_event(payload, program.id, program.network_id)]


def update_program(
    current: Program, changes: dict[str, Any], expected_version: int
) -> tuple[Program, list[CloudEvent]]:
    """Apply a partial edit to the version the caller read; no event when nothing changed."""
    if expected_version != current.version:
        raise StaleVersion(
            f"This program has changed since you read it (you edited version {expected_version}, "
            f"it is now at version {current.version}). Read it again and reapply your change."
        )
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise DomainError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    candidate = validate_program(replace(current, **changes))
    changed = [name for name in EDITABLE if getattr(candidate, name) != getattr(current, name)]
    if not changed:
        return current, []
    updated = replace(candidate, version=current.version + 1, updated_at=_now())
    payload = ProgramUpdated(**_state(updated), changed=changed, updated_at=updated.updated_at)
    return updated, [_event(payload, updated.id, updated.network_id)]


def _state(program: Program) -> dict[str, Any]:
    state = asdict(program)
    state["program_id"] = state.pop("id")
    state["coordinator_emails"] = list(program.coordinator_emails)
    state.pop("created_at")
    state.pop("updated_at")
    return state


def _clean_name(name: str, what: str) -> str:
    cleaned = clean_text(name)
    if not cleaned:
        raise DomainError(f"{what} needs a name.")
    if len(cleaned) > 200:
        raise DomainError(f"{what} name may be at most 200 characters.")
    return cleaned


def _event(payload: Any, subject: str, network_id: str) -> CloudEvent:
    return new_event(payload, subject=subject, tenant_id=network_id, source=SOURCE)
