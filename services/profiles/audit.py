"""Audit log: who changed what, kept in the service's own database, readable by admins.

An entry names the actor (token subject, and the grants they acted with), the action, the target (a person, program
or institution, and the institution it belongs to, which is how an institution coordinator's
reading is scoped), the names of the fields it changed, and when. It never holds the values:
the log must not become a second copy of personal data that erasure would have to chase.

Entries are written right after the change they describe, not in the same document write;
a crash between the two loses the entry, never the change (the events of the change are
still published). Entry ids sort by time, so the cursor pages oldest first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.profiles.organisation import _now, _time_ordered_id
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.pagination import after_id, id_cursor
from shared.service import Database

AUDIT = "audit"


@dataclass(frozen=True)
class AuditEntry:
    network_id: str
    actor: str
    actor_role: str
    action: str  # e.g. person.registered, profile.updated, enrolment.approved, person.erased
    target_type: str  # person | program | institution | import
    target_id: str
    institution_id: str | None  # the target's; None for network-wide things
    fields: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # for a bulk change (an import): everyone it touched
    at: datetime = field(default_factory=_now)
    id: str = field(default_factory=lambda: _time_ordered_id("audit"))


def entry(
    principal: Principal,
    network_id: str,
    action: str,
    target_type: str,
    target_id: str,
    institution_id: str | None,
    fields: list[str] | tuple[str, ...] = (),
    people: list[str] | tuple[str, ...] = (),
) -> AuditEntry:
    return AuditEntry(
        network_id=network_id,
        actor=principal.subject,
        actor_role=principal.role_label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        institution_id=institution_id,
        fields=tuple(fields),
        people=tuple(people),
    )


async def create_indexes(db: AsyncDatabase) -> None:
    await db[AUDIT].create_index([("network_id", ASCENDING), ("_id", ASCENDING)])
    await db[AUDIT].create_index(
        [("network_id", ASCENDING), ("institution_id", ASCENDING), ("_id", ASCENDING)]
    )
    await db[AUDIT].create_index([("target_id", ASCENDING)])
    await db[AUDIT].create_index([("people", ASCENDING)])


def _document(item: AuditEntry) -> dict[str, Any]:
    document = asdict(item)
    document["_id"] = document.pop("id")
    document["fields"] = list(item.fields)
    document["people"] = list(item.people)
    return document


async def about(db: AsyncDatabase, network_id: str, person_id: str) -> list[dict[str, Any]]:
    """Every entry about one person: as the target, or among the people of a bulk change
    (two indexed queries; an `$or` would scan the log)."""
    found: dict[str, dict[str, Any]] = {}
    for query in ({"target_id": person_id}, {"people": person_id}):
        async for entry in db[AUDIT].find(query):
            if entry["network_id"] == network_id:
                found[entry["_id"]] = entry
    return [found[k] for k in sorted(found)]


async def record(db: AsyncDatabase, *entries: AuditEntry) -> None:
    if entries:
        await db[AUDIT].insert_many([_document(e) for e in entries], ordered=False)


# ---------------------------------------------------------------- reading

router = APIRouter(prefix="/networks/{network_id}", tags=["audit"])


class AuditOut(BaseModel):
    id: str
    network_id: str
    actor: str
    actor_role: str
    action: str
    target_type: str
    target_id: str
    institution_id: str | None
    fields: list[str]
    people: list[str] = []
    at: datetime


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


def _scope(principal: Principal, network_id: str) -> dict[str, Any]:
    """Network admins read the whole log; institution coordinators what concerns the
    institutions they coordinate; nobody else reads it."""
    require_network(principal, network_id)
    if principal.is_network_admin:
        return {}
    if principal.institution_ids:
        return {"institution_id": {"$in": list(principal.institution_ids)}}
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        "The audit log is for network admins and institution coordinators.",
    )


@router.get("/audit", response_model=AuditPage)
async def read_audit(
    network_id: str,
    principal: CurrentPrincipal,
    db: Database,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query()] = None,
    target_id: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
) -> AuditPage:
    query: dict[str, Any] = {"network_id": network_id, **_scope(principal, network_id)}
    if target_id is not None:
        query["$or"] = [{"target_id": target_id}, {"people": target_id}]
    if action is not None:
        query["action"] = action
    after = after_id(cursor)
    if after is not None:
        query["_id"] = {"$gt": after}
    found = [
        AuditOut(id=d["_id"], **{k: v for k, v in d.items() if k != "_id"})
        async for d in db[AUDIT].find(query).sort("_id", ASCENDING).limit(limit)
    ]
    return AuditPage(
        items=found, next_cursor=id_cursor(found[-1].id) if len(found) == limit else None
    )
