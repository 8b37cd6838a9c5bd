"""HTTP API of enrolment: coordinators enrol people into programs; people register themselves
into an open program (a request when it requires approval, which a coordinator approves or
declines); anyone leaves a program, or all of them.

Who may do it:
* the person themselves (their own token): self-registration within the program's enrolment
  window, and withdrawal;
* for someone else, `people_access.may_enrol` (the rule registration and import share too):
  network admins anyone into any program; program coordinators into the programs they
  coordinate; institution coordinators into their institution's programs, and their
  institution's people into programs that span institutions.

A person outside the caller's reach is a 404 (as for reads); a program the caller may not
manage is a 403. Domain rules (`enrolment.py`) say 409 (already enrolled, window closed,
nothing to decide) or 422 (a program that does not take people of that institution).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.profiles import audit, enrolment, people_access
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.domain import DomainError
from services.profiles.organisation import Program, _now
from services.profiles.organisation_api import Store as OrganisationStoreDep
from services.profiles.people import (
    PersonRef,
    profile_document,
    profile_from_document,
    update_profile,
)
from services.profiles.store import PeopleStore, VersionConflict
from shared.auth import CurrentPrincipal, Principal
from shared.events import CloudEvent
from shared.pagination import after_id, id_cursor
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["enrolment"])

NOT_FOUND = "No such person in this network, or not one you can see."
ATTEMPTS = 5
UNSET = "$unset"  # in the fields a change returns: names of fields to remove


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(min_length=1, max_length=100)
    role: Literal["mentor", "mentee"]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: str | None = Field(
        default=None, max_length=100, description="Omit to leave every program"
    )
    role: Literal["mentor", "mentee"] | None = Field(
        default=None, description="Omit to leave in both roles"
    )
    reason: str = Field(default="", max_length=500)


class EnrolmentOut(BaseModel):
    id: str
    person_id: str
    program_id: str
    role: str
    status: str
    at: datetime
    reason: str = ""
    display_name: str | None = None


class EnrolmentPage(BaseModel):
    items: list[EnrolmentOut]
    next_cursor: str | None


def _out(person_id: str, e: enrolment.Enrolment, name: str | None = None) -> EnrolmentOut:
    return EnrolmentOut(person_id=person_id, display_name=name, **e.__dict__)


def today() -> date:
    return datetime.now(UTC).date()


def own(principal: Principal, person_id: str) -> bool:
    return principal.is_self(person_id)


def may_manage(principal: Principal, program: Program, person_institution: str) -> None:
    """May this caller enrol, approve, decline or withdraw for `program`? (`may_enrol`, the
    rule every path that writes an enrolment shares.)"""
    people_access.may_enrol(principal, program, person_institution)


async def _program(organisation: Any, network_id: str, program_id: str) -> Program:
    program = await organisation.program(network_id, program_id)
    if program is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such program in this network.")
    return program


def _domain_error(exc: DomainError) -> HTTPException:
    if isinstance(exc, enrolment.AlreadyEnrolled | enrolment.EnrolmentClosed | enrolment.NotPending):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc))


Change = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], list[CloudEvent], Any]]]


async def change_person(
    people: PeopleStore, network_id: str, person_id: str, visibility: dict[str, Any],
    change: Change,
) -> tuple[dict[str, Any], Any]:
    """Read the person, compute the change on what was read, write it guarded by the version;
    on a concurrent write, start again from the new state (the decision is remade on it)."""
    for _ in range(ATTEMPTS):
        document = await people.find(network_id, person_id, visibility)
        if document is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        try:
            fields, events, result = await change(document)
        except DomainError as exc:
            raise _domain_error(exc) from exc
        unset = fields.pop(UNSET, None)
        try:
            await people.update_person(
                network_id, person_id, document.get("version", 1), fields, events, unset
            )
        except VersionConflict:
            continue
        return document, result
    raise HTTPException(
        status.HTTP_409_CONFLICT, "This person is being changed by others right now; try again."
    )


async def enrolment_fields(
    people: PeopleStore,
    document: dict[str, Any],
    participant: enrolment.Participant,
    events: list[CloudEvent],
    role: str | None,
) -> tuple[dict[str, Any], list[CloudEvent]]:
    """The fields to write for new enrolments; a person enrolled in a role they have no
    profile for yet gets that part with defaults (announced as a profile edit)."""
    fields = enrolment.enrolments_document(participant)
    fields["program_id"] = (
        document.get("program_id")
        if document.get("program_id") in fields["program_ids"]
        else None
    )
    profile = profile_from_document(document)
    if role is not None and role not in profile.roles:
        version = document.get("version", 1)
        ref = PersonRef(document["_id"], document["network_id"], document["institution_id"],
                        version)
        profile, profile_events = update_profile(
            ref, profile, {role: {}}, version, await people.vocabularies(document["network_id"])
        )
        fields.update(profile_document(profile), updated_at=_now())
        events = [*profile_events, *events]
    return fields, events


@router.post(
    "/programs/{program_id}/enrolments",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrolmentOut,
)
async def enrol(
    network_id: str,
    program_id: str,
    body: EnrolIn,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    relay: Relay,
    db: Database,
) -> EnrolmentOut:
    """Enrol a person (coordinators, admins), or register yourself (`status` is `requested`
    when the program requires approval, `active` otherwise)."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    program = await _program(organisation, network_id, program_id)
    by_self = own(principal, body.person_id)

    async def change(document: dict[str, Any]):
        if not by_self:
            may_manage(principal, program, document["institution_id"])
        participant, events, done = enrolment.enrol(
            enrolment.participant_from_document(document), program, body.role,
            by_self=by_self, today=today(), now=_now(),
        )
        role = body.role if done.status == enrolment.ACTIVE else None
        fields, events = await enrolment_fields(people, document, participant, events, role)
        return fields, events, done

    document, done = await change_person(people, network_id, body.person_id, visible.query, change)
    relay.wake()
    action = "enrolment.requested" if done.status == enrolment.REQUESTED else "enrolment.enrolled"
    await audit.record(db, audit.entry(principal, network_id, action, "person", body.person_id,
                                       document["institution_id"], ["enrolments"]))
    return _out(body.person_id, done)


@router.get("/programs/{program_id}/enrolments", response_model=EnrolmentPage)
async def list_enrolments(
    network_id: str,
    program_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    status_: Annotated[
        Literal["requested", "active", "declined", "withdrawn"] | None,
        Query(alias="status", description="Only enrolments in this status"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query()] = None,
) -> EnrolmentPage:
    """The program's enrolments among the people the caller can see (coordinators: the
    requests waiting for a decision are `?status=requested`)."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    program = await _program(organisation, network_id, program_id)
    if not principal.is_staff:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Coordinators read a program's enrolments.")
    if principal.program_ids and not principal.institution_ids and not (
        principal.is_network_admin or principal.coordinates_program(program.id)
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You do not coordinate this program.")
    # Only the people the caller's grants reach: being paired with someone shows their
    # public profile, not their enrolments.
    found = await people.enrolled(
        network_id, program_id, visible.staff_query, status_, limit=limit, after=after_id(cursor)
    )
    items = [
        _out(d["_id"], e, d.get("display_name"))
        for d in found
        for e in enrolment.participant_from_document(d).enrolments
        if e.program_id == program_id and (status_ is None or e.status == status_)
    ]
    return EnrolmentPage(
        items=items, next_cursor=id_cursor(found[-1]["_id"]) if len(found) == limit else None
    )


async def _decide(
    approve: bool, network_id: str, program_id: str, enrolment_id: str, reason: str,
    principal: Principal, people: PeopleStore, organisation: Any, relay: Any, db: Any,
) -> EnrolmentOut:
    visible = await people_access.visibility(principal, network_id, organisation, people)
    program = await _program(organisation, network_id, program_id)
    person_id, _, _ = enrolment_id.partition(":")
    if not enrolment_id.startswith(f"{person_id}:{program_id}:"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such request in this program.")

    async def change(document: dict[str, Any]):
        may_manage(principal, program, document["institution_id"])
        participant, events, done = enrolment.decide(
            enrolment.participant_from_document(document), enrolment_id,
            approve=approve, reason=reason, now=_now(),
        )
        role = done.role if approve else None
        fields, events = await enrolment_fields(people, document, participant, events, role)
        return fields, events, done

    document, done = await change_person(people, network_id, person_id, visible.query, change)
    relay.wake()
    action = "enrolment.approved" if approve else "enrolment.declined"
    await audit.record(db, audit.entry(principal, network_id, action, "person", person_id,
                                       document["institution_id"], ["enrolments"]))
    return _out(person_id, done)


@router.post(
    "/programs/{program_id}/enrolments/{enrolment_id}/approve", response_model=EnrolmentOut
)
async def approve(
    network_id: str, program_id: str, enrolment_id: str, principal: CurrentPrincipal,
    people: PeopleStoreDep, organisation: OrganisationStoreDep, relay: Relay, db: Database,
) -> EnrolmentOut:
    return await _decide(True, network_id, program_id, enrolment_id, "", principal, people,
                         organisation, relay, db)


@router.post(
    "/programs/{program_id}/enrolments/{enrolment_id}/decline", response_model=EnrolmentOut
)
async def decline(
    network_id: str, program_id: str, enrolment_id: str, body: DecisionIn,
    principal: CurrentPrincipal, people: PeopleStoreDep, organisation: OrganisationStoreDep,
    relay: Relay, db: Database,
) -> EnrolmentOut:
    return await _decide(False, network_id, program_id, enrolment_id, body.reason, principal,
                         people, organisation, relay, db)


@router.post("/people/{person_id}/withdrawals", response_model=list[EnrolmentOut])
async def withdraw(
    network_id: str,
    person_id: str,
    body: WithdrawIn,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    relay: Relay,
    db: Database,
) -> list[EnrolmentOut]:
    """Leave a program (or all of them): the person themselves, or whoever manages it (for
    every program: network admins and coordinators of the person's institution)."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    program = (
        await _program(organisation, network_id, body.program_id) if body.program_id else None
    )
    by_self = own(principal, person_id)

    async def change(document: dict[str, Any]):
        if not by_self:
            if program is not None:
                may_manage(principal, program, document["institution_id"])
            elif not (principal.is_network_admin
                      or principal.coordinates_institution(document["institution_id"])):
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    "Only the person, a network admin or a coordinator of their institution "
                    "can withdraw them from every program.",
                )
        participant, events = enrolment.withdraw(
            enrolment.participant_from_document(document), body.program_id, body.role,
            reason=body.reason, now=_now(),
        )
        fields, events = await enrolment_fields(people, document, participant, events, None)
        return fields, events, participant

    document, participant = await change_person(
        people, network_id, person_id, visible.query, change
    )
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, "enrolment.withdrawn", "person",
                                       person_id, document["institution_id"], ["enrolments"]))
    return [_out(person_id, e) for e in participant.enrolments]


@router.get("/people/{person_id}/enrolments", response_model=list[EnrolmentOut])
async def person_enrolments(
    network_id: str,
    person_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
) -> list[EnrolmentOut]:
    """A person's enrolments, for themselves and those who manage them (other participants
    see only shared programs, in the person's `program_ids`)."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    document = await people.find(network_id, person_id, visible.query)
    if document is None or not visible.in_full(principal, document):
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return [_out(person_id, e) for e in enrolment.participant_from_document(document).enrolments]
