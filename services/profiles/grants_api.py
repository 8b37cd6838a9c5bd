"""HTTP API of staff grants: appoint and remove network admins and coordinators.

Who may give which grant: `grants.py`. Each change is audited and announced (`GrantAdded`,
`GrantRevoked`, staged in the grant's own write). A grant names a person of the network by
id, or by email: someone with that email who takes part in no program becomes a staff member.
Revoking takes effect at the holder's next token refresh (within ACCESS_TOKEN_TTL_SECONDS).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, model_validator
from pymongo.asynchronous.database import AsyncDatabase

from services.profiles import audit, grants
from services.profiles.grants import GrantForbidden, GrantRecord
from services.profiles.identity_store import AlreadyExists, IdentityStore
from services.profiles.organisation import _now
from services.profiles.organisation_store import OrganisationStore
from shared.auth import CurrentPrincipal, Grant, GrantRole, Principal, forbidden
from shared.pagination import after_id, id_cursor
from shared.idempotency import outside_transaction
from shared.service import Database, Relay

# Outside the request transaction: a grant is one document with its events staged in it, and
# a duplicate key means "held already" (200), which a transaction would turn into an abort.
router = APIRouter(prefix="/networks/{network_id}/grants", tags=["grants"])


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str | None = Field(default=None, min_length=1, max_length=100)
    email: EmailStr | None = None
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: GrantRole
    institution_id: str | None = Field(default=None, min_length=1, max_length=100)
    program_id: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_person(self) -> GrantIn:
        if (self.person_id is None) == (self.email is None):
            raise ValueError("name the person by person_id or by email (one of them)")
        return self


class GrantOut(BaseModel):
    id: str
    network_id: str
    person_id: str
    role: GrantRole
    institution_id: str | None = None
    program_id: str | None = None
    granted_at: datetime
    granted_by: str | None = None


class GrantPage(BaseModel):
    items: list[GrantOut]
    next_cursor: str | None


def grant_out(record: GrantRecord) -> GrantOut:
    return GrantOut(id=record.id, network_id=record.network_id, person_id=record.person_id,
                    **record.grant.claim(), granted_at=record.granted_at,
                    granted_by=record.granted_by)


async def _program_institution(db: AsyncDatabase, network_id: str, grant: Grant) -> str | None:
    """The institution of the program a program-coordinator grant names (422 when the
    program or institution does not exist)."""
    organisation = OrganisationStore(db)
    if grant.role == GrantRole.INSTITUTION_COORDINATOR:
        if await organisation.institution(network_id, grant.institution_id or "") is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                                f"There is no institution {grant.institution_id!r} in this network.")
    if grant.role == GrantRole.PROGRAM_COORDINATOR:
        program = await organisation.program(network_id, grant.program_id or "")
        if program is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                                f"There is no program {grant.program_id!r} in this network.")
        return program.institution_id
    return None


async def authorise(db: AsyncDatabase, principal: Principal, network_id: str,
                    grant: Grant) -> None:
    institution = await _program_institution(db, network_id, grant)
    try:
        grants.may_manage(principal, network_id, grant, institution)
    except GrantForbidden as exc:
        raise forbidden(str(exc)) from exc


async def give(db: AsyncDatabase, relay: Any, principal: Principal, network_id: str,
               person: dict[str, Any], grant: Grant) -> tuple[GrantRecord, bool]:
    """Record the grant (audited, announced); (the grant, False) when the person already
    holds exactly this one."""
    store = IdentityStore(db)
    # Looked up first, not left to the insert's duplicate: inside a transaction a write error
    # ends the transaction, and the lookup after it could not run.
    held = [r for r in await store.active_grants(network_id, [person["_id"]]) if r.grant == grant]
    if held:
        return held[0], False
    record = GrantRecord(id=grants.new_id(), network_id=network_id, person_id=person["_id"],
                         grant=grant, granted_at=_now(),
                         granted_by=principal.person_id if principal.is_person else None)
    try:
        await store.add_grant(record, grants.added(record, person.get("email"),
                                                   person.get("display_name")))
    except AlreadyExists:
        held = [r for r in await store.active_grants(network_id, [person["_id"]])
                if r.grant == grant]
        if not held:  # revoked between the two reads: let the caller try again
            raise HTTPException(status.HTTP_409_CONFLICT,
                                "This grant is changing right now; try again.") from None
        return held[0], False
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, "grant.added", "person",
                                       person["_id"], grant.institution_id, [grant.role.value]))
    return record, True


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GrantOut)
@outside_transaction
async def add_grant(network_id: str, body: GrantIn, principal: CurrentPrincipal, db: Database,
                    relay: Relay, response: Response) -> GrantOut:
    """Appoint a person (201; 200 when they already hold this very grant)."""
    try:
        grant = Grant(role=body.role, institution_id=body.institution_id,
                      program_id=body.program_id)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"Invalid grant: {reason}.") from exc
    await authorise(db, principal, network_id, grant)
    store = IdentityStore(db)
    if body.person_id is not None:
        person = await store.person(network_id, body.person_id)
        if person is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such person in this network.")
    else:
        found = await store.by_email(network_id, str(body.email))
        person = found[0] if found else await store.ensure_staff(
            network_id, str(body.email), body.display_name, _now())
    record, created = await give(db, relay, principal, network_id, person, grant)
    if not created:
        response.status_code = status.HTTP_200_OK
    return grant_out(record)


def _readable(principal: Principal, network_id: str, record: GrantRecord,
              program_institution: str | None) -> bool:
    if record.person_id == principal.person_id and principal.is_person:
        return True
    try:
        grants.may_manage(principal, network_id, record.grant, program_institution)
    except GrantForbidden:
        return False
    return True


@router.get("", response_model=GrantPage)
async def list_grants(
    network_id: str, principal: CurrentPrincipal, db: Database,
    person_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> GrantPage:
    """Active grants the caller may manage, and their own."""
    if not principal.is_person or principal.network_id != network_id:
        raise forbidden("Your token does not give access to this network.")
    found = await IdentityStore(db).grants(network_id, person_id=person_id, limit=limit,
                                           after=after_id(cursor))
    organisation = OrganisationStore(db)
    items = []
    for record in found:
        institution = None
        if record.grant.program_id:
            program = await organisation.program(network_id, record.grant.program_id)
            institution = program.institution_id if program else None
        if _readable(principal, network_id, record, institution):
            items.append(grant_out(record))
    return GrantPage(items=items,
                     next_cursor=id_cursor(found[-1].id) if len(found) == limit else None)


@router.delete("/{grant_id}", status_code=status.HTTP_204_NO_CONTENT)
@outside_transaction
async def revoke_grant(network_id: str, grant_id: str, principal: CurrentPrincipal,
                       db: Database, relay: Relay) -> Response:
    """Take a grant back; the holder's next token no longer carries it."""
    store = IdentityStore(db)
    record = await store.grant(network_id, grant_id)
    if record is None or record.revoked_at is not None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such active grant in this network.")
    await authorise(db, principal, network_id, record.grant)
    if record.grant.role == GrantRole.NETWORK_ADMIN and await store.network_admins(network_id) <= 1:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            "This is the network's last network admin; appoint another first.")
    now = _now()
    by = principal.person_id if principal.is_person else None
    if not await store.revoke(record, now, by, grants.revoked(record, by, now)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such active grant in this network.")
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, "grant.revoked", "person",
                                       record.person_id, record.grant.institution_id,
                                       [record.grant.role.value]))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
