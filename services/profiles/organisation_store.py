"""Persistence of networks, institutions and programs, events staged in the same write.

Dates are stored as ISO strings (BSON has no date-only type, and ISO dates sort correctly).
Listings page by `_id`: institution ids sort by name-slug, program ids by creation time.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.profiles.organisation import Institution, InstitutionKind, Program, ProgramType
from shared.events import CloudEvent
from shared.messaging.outbox import stage_insert, stage_update, strip_outbox_fields

NETWORKS, INSTITUTIONS, PROGRAMS = "networks", "institutions", "programs"
OUTBOX_COLLECTIONS = (INSTITUTIONS, PROGRAMS)
DATE_FIELDS = ("cohort_start", "cohort_end", "enrolment_opens", "enrolment_closes")


class AlreadyExists(Exception):
    """The id is taken in this network."""


class VersionConflict(Exception):
    """The program moved on between reading and writing it (a concurrent edit)."""


async def create_indexes(db: AsyncDatabase) -> None:
    await db[INSTITUTIONS].create_index(
        [("network_id", ASCENDING), ("id", ASCENDING)], unique=True, name="id_per_network"
    )
    await db[PROGRAMS].create_index([("network_id", ASCENDING), ("_id", ASCENDING)])
    await db[PROGRAMS].create_index(
        [("network_id", ASCENDING), ("institution_id", ASCENDING), ("_id", ASCENDING)]
    )


def _institution_key(network_id: str, institution_id: str) -> str:
    return f"{network_id}/{institution_id}"


def _program_document(program: Program) -> dict[str, Any]:
    document = asdict(program)
    document["_id"] = document.pop("id")
    document["type"] = program.type.value
    document["coordinator_emails"] = list(program.coordinator_emails)
    for name in DATE_FIELDS:
        document[name] = document[name].isoformat()
    return document


def program_from_document(document: dict[str, Any]) -> Program:
    values = {k: v for k, v in strip_outbox_fields(document).items() if k != "_id"}
    for name in DATE_FIELDS:
        values[name] = date.fromisoformat(values[name])
    values["type"] = ProgramType(values["type"])
    values["coordinator_emails"] = tuple(values.get("coordinator_emails") or ())
    return Program(id=document["_id"], **values)


def institution_from_document(document: dict[str, Any]) -> Institution:
    return Institution(
        network_id=document["network_id"],
        id=document["id"],
        name=document["name"],
        kind=InstitutionKind(document["kind"]),
        created_at=document["created_at"],
    )


class OrganisationStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._networks = db[NETWORKS]
        self._institutions = db[INSTITUTIONS]
        self._programs = db[PROGRAMS]

    @classmethod
    def of(cls, db: AsyncDatabase) -> OrganisationStore:
        """The store of a database, made once per process (see `PeopleStore.of`)."""
        from services.profiles.store import per_database

        return per_database(cls, db)

    async def _touch_network(self, network_id: str) -> None:
        """The network's own record, made on its first institution or program (idempotent)."""
        try:
            await self._networks.update_one(
                {"_id": network_id},
                {"$setOnInsert": {"created_at": datetime.now(UTC)}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # two first writes raced to create it: it exists, which is all we need

    async def add_institution(self, institution: Institution, events: list[CloudEvent]) -> None:
        document = {
            "_id": _institution_key(institution.network_id, institution.id),
            **asdict(institution),
            "kind": institution.kind.value,
        }
        await self._touch_network(institution.network_id)
        try:
            await self._institutions.insert_one(stage_insert(document, events))
        except DuplicateKeyError as exc:
            raise AlreadyExists(institution.id) from exc

    async def institution(self, network_id: str, institution_id: str) -> Institution | None:
        document = await self._institutions.find_one(
            {"_id": _institution_key(network_id, institution_id)}
        )
        return institution_from_document(document) if document else None

    async def institution_ids(self, network_id: str) -> set[str]:
        cursor = self._institutions.find({"network_id": network_id}, {"id": 1})
        return {doc["id"] async for doc in cursor}

    async def institutions(
        self, network_id: str, *, limit: int, after: str | None
    ) -> list[Institution]:
        query: dict[str, Any] = {"network_id": network_id}
        if after is not None:
            query["_id"] = {"$gt": _institution_key(network_id, after)}
        cursor = self._institutions.find(query).sort("_id", ASCENDING).limit(limit)
        return [institution_from_document(doc) async for doc in cursor]

    async def add_program(self, program: Program, events: list[CloudEvent]) -> None:
        await self._touch_network(program.network_id)
        try:
            await self._programs.insert_one(stage_insert(_program_document(program), events))
        except DuplicateKeyError as exc:
            raise AlreadyExists(program.id) from exc

    async def program(self, network_id: str, program_id: str) -> Program | None:
        document = await self._programs.find_one({"_id": program_id, "network_id": network_id})
        return program_from_document(document) if document else None

    async def replace_program(
        self, program: Program, previous_version: int, events: list[CloudEvent]
    ) -> None:
        """Write the new state only if nobody wrote since `previous_version` was read."""
        document = _program_document(program)
        document.pop("_id")
        result = await self._programs.update_one(
            {"_id": program.id, "network_id": program.network_id, "version": previous_version},
            stage_update({"$set": document}, events),
        )
        if result.matched_count == 0:
            raise VersionConflict(program.id)

    async def programs(
        self,
        network_id: str,
        *,
        limit: int,
        after: str | None,
        institution_id: str | None = None,
        network_wide: bool | None = None,
        program_type: ProgramType | None = None,
    ) -> list[Program]:
        query: dict[str, Any] = {"network_id": network_id}
        if network_wide is not None:
            query["institution_id"] = None if network_wide else {"$ne": None}
        if institution_id is not None:
            query["institution_id"] = institution_id
        if program_type is not None:
            query["type"] = program_type.value
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._programs.find(query).sort("_id", ASCENDING).limit(limit)
        return [program_from_document(doc) async for doc in cursor]
