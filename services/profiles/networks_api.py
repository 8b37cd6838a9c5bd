"""HTTP API of networks: the platform operator creates one with its first network admin; the
people of a network read it.

Creating is retry-safe without a multi-document transaction: the admin's staff record, then
the grant (`GrantAdded`), then the network (`NetworkCreated`); a retry after a crash finds
what was written and completes the rest. A network that exists only because institutions were
added to it before (scripts, the demo seed) has no name yet, and creating it gives it one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.profiles import audit
from services.profiles.domain import SOURCE
from services.profiles.grants_api import give
from services.profiles.identity_store import NETWORKS, AlreadyExists, IdentityStore
from services.profiles.organisation import _now
from shared.auth import CurrentPrincipal, Grant, GrantRole, forbidden, require_operator
from shared.events import new_event
from shared.events.schemas import NetworkCreated
from shared.messaging.outbox import stage_update
from shared.pagination import after_id, id_cursor
from shared.service import Database, Relay

router = APIRouter(prefix="/networks", tags=["networks"])


class NetworkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    network_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", max_length=64,
                            description="Stable id in every URL, e.g. 'northern-health'")
    name: str = Field(min_length=1, max_length=200)
    admin_email: EmailStr
    admin_name: str | None = Field(default=None, min_length=1, max_length=200)


class NetworkOut(BaseModel):
    network_id: str
    name: str | None = None
    created_at: datetime | None = None


class CreatedNetwork(NetworkOut):
    admin_person_id: str
    admin_grant_id: str


class NetworkPage(BaseModel):
    items: list[NetworkOut]
    next_cursor: str | None


def _out(doc: dict[str, Any]) -> NetworkOut:
    return NetworkOut(network_id=doc["_id"], name=doc.get("name"), created_at=doc.get("created_at"))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreatedNetwork)
async def create_network(body: NetworkIn, principal: CurrentPrincipal, db: Database,
                         relay: Relay) -> CreatedNetwork:
    """Create a network and appoint its first network admin (platform operator only)."""
    require_operator(principal)
    store = IdentityStore(db)
    existing = await store.network(body.network_id)
    if existing is not None and existing.get("name"):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"There is already a network {body.network_id!r}.")
    now = _now()
    found = await store.by_email(body.network_id, str(body.admin_email))
    admin = found[0] if found else await store.ensure_staff(
        body.network_id, str(body.admin_email), body.admin_name, now)
    record, _ = await give(db, relay, principal, body.network_id, admin,
                           Grant(role=GrantRole.NETWORK_ADMIN))
    event = new_event(NetworkCreated(network_id=body.network_id, name=body.name,
                                     created_at=now),
                      subject=body.network_id, tenant_id=body.network_id, source=SOURCE)
    document = {"_id": body.network_id, "name": body.name, "created_at": now,
                "created_by": principal.subject}
    if existing is None:
        try:
            await store.add_network(document, [event])
        except AlreadyExists:  # created a moment ago by another request
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"There is already a network {body.network_id!r}.") from None
    else:
        # Made nameless by an earlier institution or program: name it now, once. (Inserting
        # and catching the duplicate would not do: a write error ends the transaction.)
        named = await db[NETWORKS].update_one(
            {"_id": body.network_id, "name": {"$exists": False}},
            stage_update({"$set": {"name": body.name, "created_by": principal.subject}},
                         [event]))
        if named.modified_count == 0:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"There is already a network {body.network_id!r}.")
    relay.wake()
    await audit.record(db, audit.entry(principal, body.network_id, "network.created", "network",
                                       body.network_id, None, ["name"]))
    return CreatedNetwork(network_id=body.network_id, name=body.name, created_at=now,
                          admin_person_id=admin["_id"], admin_grant_id=record.id)


@router.get("", response_model=NetworkPage)
async def list_networks(
    principal: CurrentPrincipal, db: Database,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> NetworkPage:
    """Every network for the operator; a person's own network for anyone else."""
    if principal.is_service:
        raise forbidden("Service tokens are not accepted here.")
    only = None if principal.is_operator else principal.network_id
    found = await IdentityStore(db).networks(limit=limit, after=after_id(cursor), only=only)
    return NetworkPage(items=[_out(d) for d in found],
                       next_cursor=id_cursor(found[-1]["_id"]) if len(found) == limit else None)


@router.get("/{network_id}", response_model=NetworkOut)
async def get_network(network_id: str, principal: CurrentPrincipal, db: Database) -> NetworkOut:
    if not (principal.is_operator or (principal.is_person and principal.network_id == network_id)):
        raise forbidden("Your token does not give access to this network.")
    doc = await IdentityStore(db).network(network_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such network.")
    return _out(doc)
