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


class _MentorProfileState(_Payload):
    specialty: str | None = None
    subspecialty: str | None = None
    help_offered: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    meeting_modes: list[str] = Field(default_factory=list)
    time_zone: str | None = None
    capacity: int = Field(default=1, ge=0)
    paused: bool = False
    training_completed: bool = False
    do_not_match: list[str] = Field(default_factory=list)


class _Goal(_Payload):
    text: str
    category: str
    target_date: date | None = None


class _MenteeProfileState(_Payload):
    specialty_interests: list[str] = Field(default_factory=list)
    goals: list[_Goal] = Field(default_factory=list)
    needs: list[str] = Field(default_factory=list)
    prefer_same_institution: bool | None = None
    preferred_mode: str | None = None
    preferred_language: str | None = None
    mentors_wanted: int = Field(default=1, ge=1)
    mentors_for_needs: list[str] = Field(default_factory=list)


@event_type("ProfileUpdated", topic=PROFILES_TOPIC, aggregate="person")
class ProfileUpdated(_Payload):
    """A person's profile changed: its whole state at `version` (mentor and mentee parts, null
    when the person is not one), and which parts `changed`. Opt-in identity attributes are
    never part of it; an edit of those alone publishes nothing."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    career_stage: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list)
    mentor: _MentorProfileState | None = None
    mentee: _MenteeProfileState | None = None
    changed: list[str] = Field(default_factory=list)
    version: int = Field(ge=1)
    updated_at: datetime


@event_type("MentorCapacityChanged", topic=PROFILES_TOPIC, aggregate="person")
class MentorCapacityChanged(_Payload):
    """A mentor now takes `capacity` mentees at once (`previous_capacity` null when the person
    just became a mentor through a profile edit)."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    capacity: int = Field(ge=0)
    previous_capacity: int | None = None
    version: int = Field(ge=1)
    changed_at: datetime


@event_type("MentorPaused", topic=PROFILES_TOPIC, aggregate="person")
class MentorPaused(_Payload):
    """A mentor paused matching (`paused` true) or resumed it (`paused` false)."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    paused: bool
    version: int = Field(ge=1)
    changed_at: datetime
