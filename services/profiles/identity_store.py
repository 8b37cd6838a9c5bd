"""Persistence of networks, staff members and grants, events staged in the same write.

Staff members are people who hold a grant but take part in no program (a network's first
admin, a dean's coordinator): they have a person id and an email like participants, and sign
in the same way, but no profile. When the same email is (or later becomes) a participant too,
both ids are the same person: sign-in finds the participant and counts the grants of both.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.profiles.domain import normalise_email
from services.profiles.grants import GrantRecord, active_key
from services.profiles.store import NOT_ERASED, PEOPLE
from shared.auth import Grant
from shared.events import CloudEvent
from shared.messaging.outbox import stage_insert, stage_update, strip_outbox_fields

NETWORKS, STAFF, GRANTS = "networks", "staff", "grants"
OUTBOX_COLLECTIONS = (NETWORKS, GRANTS)


class AlreadyExists(Exception):
    """The network, or this very grant, exists already."""


async def create_indexes(db: AsyncDatabase) -> None:
    await db[STAFF].create_index([("network_id", ASCENDING), ("email", ASCENDING)], unique=True,
                                 name="staff_email_per_network")
    await db[GRANTS].create_index([("key", ASCENDING)], unique=True, name="one_active_grant")
    await db[GRANTS].create_index([("network_id", ASCENDING), ("person_id", ASCENDING)])
    await db[GRANTS].create_index([("network_id", ASCENDING), ("_id", ASCENDING)])


def record_from_document(doc: dict[str, Any]) -> GrantRecord:
    return GrantRecord(
        id=doc["_id"], network_id=doc["network_id"], person_id=doc["person_id"],
        grant=Grant(role=doc["role"], institution_id=doc.get("institution_id"),
                    program_id=doc.get("program_id")),
        granted_at=doc["granted_at"], granted_by=doc.get("granted_by"),
        revoked_at=doc.get("revoked_at"),
    )


class IdentityStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._networks, self._staff = db[NETWORKS], db[STAFF]
        self._grants, self._people = db[GRANTS], db[PEOPLE]

    # ------------------------------------------------------------ networks

    async def network(self, network_id: str) -> dict[str, Any] | None:
        return strip_outbox_fields(await self._networks.find_one({"_id": network_id}))

    async def add_network(self, document: dict[str, Any], events: list[CloudEvent]) -> None:
        try:
            await self._networks.insert_one(stage_insert(document, events))
        except DuplicateKeyError as exc:
            raise AlreadyExists(document["_id"]) from exc

    async def networks(self, *, limit: int, after: str | None,
                       only: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if only is not None:
            query["_id"] = only
        elif after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._networks.find(query).sort("_id", ASCENDING).limit(limit)
        return [strip_outbox_fields(d) async for d in cursor]  # type: ignore[misc]

    # ------------------------------------------------------------ people and staff

    async def person(self, network_id: str, person_id: str) -> dict[str, Any] | None:
        """A participant (not erased) or a staff member of the network, by id."""
        doc = await self._people.find_one({"_id": person_id, "network_id": network_id,
                                           **NOT_ERASED})
        if doc is not None:
            return strip_outbox_fields(doc)
        return await self._staff.find_one({"_id": person_id, "network_id": network_id})

    async def by_email(self, network_id: str, email: str) -> list[dict[str, Any]]:
        """Everyone of the network with this email: the participant first, then the staff
        member (at most one of each)."""
        email = normalise_email(email)
        found = []
        person = await self._people.find_one({"network_id": network_id, "email": email,
                                              **NOT_ERASED})
        if person is not None:
            found.append(strip_outbox_fields(person))
        staff = await self._staff.find_one({"network_id": network_id, "email": email})
        if staff is not None:
            found.append(staff)
        return found

    async def networks_of_email(self, email: str, limit: int = 5) -> list[str]:
        """Networks where this email is someone (for a clear 'wrong network' refusal)."""
        email = normalise_email(email)
        found = {d["network_id"] async for d in self._people.find(
            {"email": email, **NOT_ERASED}, {"network_id": 1}).limit(limit)}
        found |= {d["network_id"] async for d in self._staff.find(
            {"email": email}, {"network_id": 1}).limit(limit)}
        return sorted(found)

    async def ensure_staff(self, network_id: str, email: str, display_name: str | None,
                           now: datetime) -> dict[str, Any]:
        """The staff member with this email, created when there is none."""
        email = normalise_email(email)
        doc = await self._staff.find_one({"network_id": network_id, "email": email})
        if doc is not None:
            return doc
        doc = {"_id": str(uuid.uuid4()), "network_id": network_id, "email": email,
               "display_name": display_name or email.split("@")[0], "created_at": now}
        try:
            await self._staff.insert_one(doc)
        except DuplicateKeyError:  # created meanwhile by another request
            found = await self._staff.find_one({"network_id": network_id, "email": email})
            assert found is not None
            return found
        return doc

    async def local_people(self, network_id: str, limit: int) -> list[dict[str, Any]]:
        """People one may act as with local sign-in: staff first, then participants."""
        staff = [d async for d in self._staff.find({"network_id": network_id})
                 .sort("_id", ASCENDING).limit(limit)]
        people = [strip_outbox_fields(d) async for d in self._people.find(
            {"network_id": network_id, **NOT_ERASED},
            {"display_name": 1, "email": 1, "roles": 1, "institution_id": 1},
        ).sort("_id", ASCENDING).limit(max(0, limit - len(staff)))]
        return staff + people  # type: ignore[operator]

    # ------------------------------------------------------------ grants

    async def add_grant(self, record: GrantRecord, events: list[CloudEvent]) -> None:
        document = {
            "_id": record.id, "key": active_key(record.network_id, record.person_id,
                                                record.grant),
            "network_id": record.network_id, "person_id": record.person_id,
            **record.grant.claim(), "granted_at": record.granted_at,
            "granted_by": record.granted_by, "revoked_at": None,
        }
        try:
            await self._grants.insert_one(stage_insert(document, events))
        except DuplicateKeyError as exc:
            raise AlreadyExists(document["key"]) from exc

    async def grant(self, network_id: str, grant_id: str) -> GrantRecord | None:
        doc = await self._grants.find_one({"_id": grant_id, "network_id": network_id})
        return record_from_document(doc) if doc else None

    async def revoke(self, record: GrantRecord, at: datetime, by: str | None,
                     events: list[CloudEvent]) -> bool:
        """Revoke an active grant; False when it was revoked meanwhile."""
        result = await self._grants.update_one(
            {"_id": record.id, "revoked_at": None},
            stage_update({"$set": {"revoked_at": at, "revoked_by": by,
                                   "key": f"revoked/{record.id}"}}, events),
        )
        return result.modified_count == 1

    async def active_grants(self, network_id: str, person_ids: list[str]) -> list[GrantRecord]:
        cursor = self._grants.find({"network_id": network_id, "person_id": {"$in": person_ids},
                                    "revoked_at": None}).sort("_id", ASCENDING)
        return [record_from_document(d) async for d in cursor]

    async def grants(self, network_id: str, *, person_id: str | None, limit: int,
                     after: str | None) -> list[GrantRecord]:
        query: dict[str, Any] = {"network_id": network_id, "revoked_at": None}
        if person_id is not None:
            query["person_id"] = person_id
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._grants.find(query).sort("_id", ASCENDING).limit(limit)
        return [record_from_document(d) async for d in cursor]

    async def network_admins(self, network_id: str) -> int:
        return await self._grants.count_documents(
            {"network_id": network_id, "role": "network_admin", "revoked_at": None})
