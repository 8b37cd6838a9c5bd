"""Payload models of every event, by the service that publishes it.

Names are past tense: they state what happened. Each model's docstring becomes the event's
description in docs/asyncapi.yaml. A new field with a default is a compatible change; a
removed or retyped field needs a new schema version.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.events.registry import event_type
from shared.events.topics import PROFILES_TOPIC


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _PersonRegistered(_Payload):
    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    program_id: str | None = None
    display_name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    career_stage: str = Field(min_length=1)
    specialty_interests: list[str] = Field(default_factory=list)
    registered_at: datetime


@event_type("MenteeRegistered", topic=PROFILES_TOPIC, aggregate="person")
class MenteeRegistered(_PersonRegistered):
    """A person registered as a mentee (in a program when `program_id` is set)."""


@event_type("MentorRegistered", topic=PROFILES_TOPIC, aggregate="person")
class MentorRegistered(_PersonRegistered):
    """A person registered as a mentor, offering `capacity` places for mentees."""

    capacity: int = Field(default=1, ge=0)


@event_type("InstitutionCreated", topic=PROFILES_TOPIC, aggregate="institution")
class InstitutionCreated(_Payload):
    """An institution or chapter (`kind`) joined a network; the subject is its id."""

    institution_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    created_at: datetime


class _ProgramState(_Payload):
    """The whole program after the change, so consumers keep a view from events alone."""

    program_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str | None = None  # None: a network-wide program
    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    cohort_start: date
    cohort_end: date
    enrolment_opens: date
    enrolment_closes: date
    cross_institution: bool
    max_mentors_per_mentee: int = Field(ge=1)
    cadence_days: int = Field(ge=1)
    requires_approval: bool
    version: int = Field(ge=1)


@event_type("ProgramCreated", topic=PROFILES_TOPIC, aggregate="program")
class ProgramCreated(_ProgramState):
    """A program was created (network-wide when `institution_id` is null) at `version` 1."""

    created_at: datetime


@event_type("ProgramUpdated", topic=PROFILES_TOPIC, aggregate="program")
class ProgramUpdated(_ProgramState):
    """A program was edited: its full state at the new `version`, and which fields `changed`."""

    changed: list[str] = Field(default_factory=list)
    updated_at: datetime
