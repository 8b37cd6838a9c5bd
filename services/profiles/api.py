"""Profiles HTTP API: register a mentee or mentor (the first flow). Reading, listing and
editing people: `people_api.py`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, EmailStr, Field

from pymongo.asynchronous.database import AsyncDatabase

from services.profiles import audit, enrolment, people_access
from services.profiles.domain import DomainError, Person, register
from services.profiles.organisation import Program
from services.profiles.organisation_store import OrganisationStore
from services.profiles.people import VocabularyKind, registration_fields
from services.profiles.store import DuplicateEmail, PeopleStore
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["people"])


class RegistrationIn(BaseModel):
    institution_id: str = Field(min_length=1, max_length=100)
    program_id: str | None = Field(default=None, max_length=100)
    display_name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    career_stage: str = Field(min_length=1, max_length=60)
    specialty_interests: list[str] = Field(default_factory=list, max_length=20)


class MentorRegistrationIn(RegistrationIn):
    capacity: int = Field(default=1, ge=0, le=50)


class PersonOut(BaseModel):
    id: str
    network_id: str
    institution_id: str
    program_id: str | None
    role: str
    display_name: str
    email: str
    career_stage: str
    specialty_interests: list[str]
    capacity: int
    registered_at: datetime


async def people_store(db: Database) -> PeopleStore:
    return PeopleStore(db)


Store = Annotated[PeopleStore, Depends(people_store)]


async def _authorise_registration(
    principal: Principal, network_id: str, body: RegistrationIn, db: AsyncDatabase
) -> Program | None:
    """The program registered into (422 when it does not exist), once the caller may register
    this person there: `people_access.may_register`, the rule enrolment and import share."""
    require_network(principal, network_id)
    program = None
    if body.program_id is not None:
        program = await OrganisationStore(db).program(network_id, body.program_id)
        if program is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                f"There is no program {body.program_id!r} in this network.",
            )
    people_access.may_register(principal, network_id, body.institution_id, program)
    return program


async def _register(
    network_id: str,
    body: RegistrationIn,
    role: str,
    capacity: int,
    store: PeopleStore,
    relay: Relay,
    db: AsyncDatabase,
    principal: Principal,
    program: Program | None,
) -> PersonOut:
    person = Person(
        network_id=network_id,
        institution_id=body.institution_id,
        program_id=body.program_id,
        display_name=body.display_name.strip(),
        email=str(body.email),
        role=role,
        career_stage=body.career_stage,
        specialty_interests=body.specialty_interests,
        capacity=capacity,
    )
    vocab = await store.vocabularies(network_id)
    try:
        person, events = register(
            person,
            vocab.terms(VocabularyKind.CAREER_STAGES),
            vocab.terms(VocabularyKind.SPECIALTIES),
        )
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    profile = registration_fields(
        role, capacity, person.specialty_interests, person.program_id, person.display_name
    )
    if program is not None:
        # Registered into a program: enrolled in it too, in the same write, so consumers
        # that follow enrolments (PersonEnrolled) see the same as those that follow
        # registrations.
        try:
            participant, enrolled, _ = enrolment.enrol(
                enrolment.Participant(person.id, network_id, person.institution_id),
                program, role, by_self=False, today=date.today(), now=person.registered_at,
            )
        except DomainError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
        profile.update(enrolment.enrolments_document(participant))
        events = [*events, *enrolled]
    try:
        await store.add(person, events, profile)
    except DuplicateEmail as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Someone in this network is already registered with {person.email}.",
        ) from exc
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, f"{role}.registered", "person",
                                       person.id, person.institution_id, ["profile"]))
    return PersonOut(**{**person.__dict__})


@router.post("/mentees", status_code=status.HTTP_201_CREATED, response_model=PersonOut)
async def register_mentee(
    network_id: str, body: RegistrationIn, principal: CurrentPrincipal, store: Store, relay: Relay,
    db: Database,
) -> PersonOut:
    program = await _authorise_registration(principal, network_id, body, db)
    return await _register(network_id, body, "mentee", 0, store, relay, db, principal, program)


@router.post("/mentors", status_code=status.HTTP_201_CREATED, response_model=PersonOut)
async def register_mentor(
    network_id: str,
    body: MentorRegistrationIn,
    principal: CurrentPrincipal,
    store: Store,
    relay: Relay,
    db: Database,
) -> PersonOut:
    program = await _authorise_registration(principal, network_id, body, db)
    return await _register(network_id, body, "mentor", body.capacity, store, relay, db,
                           principal, program)
