"""Profiles domain: who takes part. Pure logic, no I/O.

Registering a person produces the person record and the events that announce it; the store
writes both at once (transactional outbox).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.events import CloudEvent, new_event
from shared.events.schemas import MenteeRegistered, MentorRegistered
from shared.text import clean_text

SOURCE = "/services/profiles"

# The default vocabulary; networks extend it (issue 3).
CAREER_STAGES = frozenset(
    ["M1", "M2", "M3", "M4"]
    + [f"PGY-{n}" for n in range(1, 9)]
    + [
        "fellow",
        "faculty-instructor",
        "faculty-assistant-professor",
        "faculty-associate-professor",
        "faculty-professor",
        "practising-physician",
    ]
)


# Seniority of the default stages (the same ladder matching scores the stage gap on). A term a
# network added to its vocabulary is not on it: nobody self-enrols as a mentor with it, a
# coordinator enrols them.
STAGE_RANK: dict[str, int] = {
    **{f"M{n}": n for n in range(1, 5)},
    **{f"PGY-{n}": 4 + n for n in range(1, 9)},
    "fellow": 13,
    "practising-physician": 14,
    "faculty-instructor": 14,
    "faculty-assistant-professor": 15,
    "faculty-associate-professor": 16,
    "faculty-professor": 17,
}


def stage_rank(stage: str | None) -> int | None:
    return STAGE_RANK.get(stage or "")


class DomainError(ValueError):
    """A rule of the domain was broken; the message is meant for a person."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass
class Person:
    network_id: str
    institution_id: str
    display_name: str
    email: str
    role: str  # "mentee" | "mentor"
    career_stage: str
    program_id: str | None = None
    specialty_interests: list[str] = field(default_factory=list)
    capacity: int = 0
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    registered_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1


def register(
    person: Person,
    career_stages: frozenset[str] = CAREER_STAGES,
    specialties: frozenset[str] | None = None,
) -> tuple[Person, list[CloudEvent]]:
    """Validate a new participant and say what happened.

    `career_stages` and `specialties` are the network's vocabularies (defaults plus what the
    network added); specialty interests are not checked when `specialties` is None.
    """
    person.display_name = clean_text(person.display_name)
    if not person.display_name:
        raise DomainError("A person needs a name (letters, not only spaces or control characters).")
    if len(person.display_name) > 200:
        raise DomainError("A name may be at most 200 characters.")
    if person.career_stage not in career_stages:
        raise DomainError(
            f"Unknown career stage {person.career_stage!r}; use one of: "
            + ", ".join(sorted(career_stages))
        )
    if specialties is not None:
        unknown = [s for s in person.specialty_interests if s not in specialties]
        if unknown:
            raise DomainError(
                f"Unknown specialty {unknown[0]!r} in specialty interests; use one of: "
                + ", ".join(sorted(specialties))
            )
    if person.role == "mentor" and person.capacity < 0:
        raise DomainError("A mentor's capacity cannot be negative.")
    person.email = normalise_email(person.email)
    common = dict(
        person_id=person.id,
        network_id=person.network_id,
        institution_id=person.institution_id,
        program_id=person.program_id,
        display_name=person.display_name,
        email=person.email,
        career_stage=person.career_stage,
        specialty_interests=person.specialty_interests,
        registered_at=person.registered_at,
    )
    payload = (
        MentorRegistered(**common, capacity=person.capacity)
        if person.role == "mentor"
        else MenteeRegistered(**common)
    )
    event = new_event(payload, subject=person.id, tenant_id=person.network_id, source=SOURCE)
    return person, [event]
