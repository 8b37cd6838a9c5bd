"""HTTP API of change requests: facts people asked to change about themselves (career stage,
mentor training, a capacity above what they may set alone), waiting for a coordinator.

* `PATCH /people/{id}/profile` by the person themselves: the rest of the edit applies, the
  facts become a request (202 with the request);
* `GET /change-requests?status=pending`: the requests of the people the caller may see
  (coordinators and network admins);
* `GET /people/{id}/change-requests`: the person's own, or a coordinator's view of them;
* `POST /people/{id}/change-requests/{request_id}/approve` and `.../decline`: a coordinator or
  network admin who may edit the person, never the person themselves.

The rules are in `verification.py`; who may edit whom in `people_access.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.profiles import audit, enrolment, people_access, verification
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.domain import DomainError
from services.profiles.organisation import Program, _now
from services.profiles.organisation_api import Store as OrganisationStoreDep
from services.profiles.organisation_store import OrganisationStore
from services.profiles.people import (
    PersonRef,
    Profile,
    Vocabularies,
    profile_document,
    profile_from_document,
    update_profile,
)
from services.profiles.store import PeopleStore, VersionConflict
from shared.auth import CurrentPrincipal, Principal
from shared.events import CloudEvent
from shared.pagination import after_id, id_cursor
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["change requests"])

NOT_FOUND = "No such person in this network, or not one you can see."
ATTEMPTS = 5


class ChangeRequestOut(BaseModel):
    id: str
    person_id: str
    changes: dict[str, Any] = Field(description="The facts asked for, in the shape of an edit")
    fields: list[str]
    status: Literal["pending", "approved", "declined", "superseded"]
    requested_at: datetime
    requested_by: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str = ""
    display_name: str | None = None


class ChangeRequestPage(BaseModel):
    items: list[ChangeRequestOut]
    next_cursor: str | None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


def _out(person_id: str, request: verification.ChangeRequest, name: str | None = None
         ) -> ChangeRequestOut:
    return ChangeRequestOut(person_id=person_id, fields=request.fields, display_name=name,
                            **request.__dict__)


async def mentor_programs(
    organisation: OrganisationStore, network_id: str, document: dict[str, Any]
) -> list[Program]:
    """The programs the person mentors in, or asked to."""
    found = []
    for e in enrolment.participant_from_document(document).enrolments:
        if e.role == "mentor" and e.status in (enrolment.ACTIVE, enrolment.REQUESTED):
            program = await organisation.program(network_id, e.program_id)
            if program is not None:
                found.append(program)
    return found


async def request_facts(
    principal: Principal,
    visible: people_access.Visibility,
    document: dict[str, Any],
    person: PersonRef,
    profile: Profile,
    events: list[CloudEvent],
    facts: dict[str, Any],
    vocab: Vocabularies,
    people: PeopleStore,
    relay: Any,
    db: Any,
    view: Callable[[Principal, people_access.Visibility, dict[str, Any]], Any],
) -> JSONResponse:
    """Write the person's own edit without its facts, and a request for the facts, at once."""
    try:
        request, requests, requested = verification.request_change(
            person, profile, facts, verification.requests_from_document(document), vocab,
            by=principal.subject, now=_now(),
        )
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    fields = {**profile_document(profile),
              "change_requests": verification.requests_document(requests)}
    try:
        await people.replace_profile(
            person.network_id, person.id, person.version, fields, _now(), [*events, *requested]
        )
    except VersionConflict as exc:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            "Someone else edited this profile at the same moment; read it again and reapply "
            "your change.",
        ) from exc
    relay.wake()
    changed = [n for n in ("display_name", "mentor", "mentee", "identity")
               if fields.get(n) != document.get(n)]
    await audit.record(db, *(
        [audit.entry(principal, person.network_id, "profile.updated", "person", person.id,
                     person.institution_id, changed)] if changed else []
    ), audit.entry(principal, person.network_id, "profile_change.requested", "person",
                   person.id, person.institution_id, request.fields))
    stored = await people.find(person.network_id, person.id, {})
    return JSONResponse(
        status_code=status.HTTP_202_ACCEPTED,
        content={
            "detail": "Your career stage, mentor training and a capacity above "
                      "what your programs let you set yourself are checked by a coordinator: "
                      "your request waits for their approval. The rest of your edit is saved.",
            "person": view(principal, visible, stored).model_dump(mode="json", exclude_unset=True),
            "change_request": _out(person.id, request).model_dump(mode="json"),
        },
        headers={"ETag": f'"{stored.get("version", 1)}"'},
    )


@router.get("/change-requests", response_model=ChangeRequestPage)
async def list_change_requests(
    network_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    status_: Annotated[
        Literal["pending", "approved", "declined", "superseded"] | None,
        Query(alias="status", description="Only requests in this status (default: pending)"),
    ] = "pending",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ChangeRequestPage:
    """The change requests of the people the caller may see: coordinators and admins."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    if not principal.is_staff:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Coordinators and network admins review change requests.")
    # Only the people their grants reach (not a mentorship partner seen through the pair).
    visible = people_access.Visibility(visible.staff_query, staff=visible.staff)
    found = await people.with_change_requests(
        network_id, visible.query, status_, limit=limit, after=after_id(cursor)
    )
    items = [
        _out(d["_id"], r, d.get("display_name"))
        for d in found
        for r in verification.requests_from_document(d)
        if status_ is None or r.status == status_
    ]
    return ChangeRequestPage(
        items=items, next_cursor=id_cursor(found[-1]["_id"]) if len(found) == limit else None
    )


@router.get("/people/{person_id}/change-requests", response_model=list[ChangeRequestOut])
async def person_change_requests(
    network_id: str, person_id: str, principal: CurrentPrincipal, people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
) -> list[ChangeRequestOut]:
    visible = await people_access.visibility(principal, network_id, organisation, people)
    document = await people.find(network_id, person_id, visible.query)
    # The person and the staff their grants reach; a mentorship partner sees the public part
    # of a profile only, never what its owner asked to change.
    if document is None or not visible.in_full(principal, document):
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return [_out(person_id, r) for r in verification.requests_from_document(document)]


async def _decide(
    approve: bool, network_id: str, person_id: str, request_id: str, reason: str,
    principal: Principal, people: PeopleStore, organisation: OrganisationStore, relay: Any,
    db: Any,
) -> ChangeRequestOut:
    visible = await people_access.visibility(principal, network_id, organisation, people)
    for _ in range(ATTEMPTS):
        document = await people.find(network_id, person_id, visible.query)
        if document is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        if visible.own(principal, person_id) or not visible.in_full(principal, document):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "A coordinator who may edit this person decides their change requests; "
                "nobody approves their own.",
            )
        people_access.may_edit(principal, visible, document, {})
        version = document.get("version", 1)
        ref = PersonRef(person_id, network_id, document["institution_id"], version)
        try:
            decided, requests, events = verification.decide(
                ref, verification.requests_from_document(document), request_id,
                approve=approve, reason=reason, by=principal.subject, now=_now(),
            )
            fields: dict[str, Any] = {}
            if approve:
                profile, changed = update_profile(
                    ref, profile_from_document(document), decided.changes, version,
                    await people.vocabularies(network_id),
                )
                fields = profile_document(profile)
                events = [*changed, *events]
        except verification.NotPending as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except DomainError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"This change can no longer be applied: {exc}") from exc
        fields["change_requests"] = verification.requests_document(requests)
        try:
            await people.replace_profile(network_id, person_id, version, fields, _now(), events)
        except VersionConflict:
            continue
        relay.wake()
        action = "profile_change.approved" if approve else "profile_change.declined"
        await audit.record(db, audit.entry(principal, network_id, action, "person", person_id,
                                           document["institution_id"], decided.fields))
        return _out(person_id, decided)
    raise HTTPException(status.HTTP_409_CONFLICT,
                        "This person is being changed by others right now; try again.")


@router.post("/people/{person_id}/change-requests/{request_id}/approve",
             response_model=ChangeRequestOut)
async def approve(
    network_id: str, person_id: str, request_id: str, principal: CurrentPrincipal,
    people: PeopleStoreDep, organisation: OrganisationStoreDep, relay: Relay, db: Database,
) -> ChangeRequestOut:
    """Apply the facts asked for (a profile edit, published as usual)."""
    return await _decide(True, network_id, person_id, request_id, "", principal, people,
                         organisation, relay, db)


@router.post("/people/{person_id}/change-requests/{request_id}/decline",
             response_model=ChangeRequestOut)
async def decline(
    network_id: str, person_id: str, request_id: str, body: DecisionIn,
    principal: CurrentPrincipal, people: PeopleStoreDep, organisation: OrganisationStoreDep,
    relay: Relay, db: Database,
) -> ChangeRequestOut:
    return await _decide(False, network_id, person_id, request_id, body.reason, principal,
                         people, organisation, relay, db)
