"""Profiles persistence: people and their profiles, with their events staged in the same
document write; the vocabularies each network added to the defaults.

Listings page by `_id`; every read of people takes the caller's visibility as a query
(`people_access.Visibility`), so a person outside it is simply never found.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.profiles.domain import Person
from services.profiles.people import Vocabularies, VocabularyKind
from shared.events import CloudEvent
from shared.messaging.outbox import stage_insert, stage_update, strip_outbox_fields

PEOPLE = "people"
VOCABULARIES = "vocabularies"
OUTBOX_COLLECTIONS = (PEOPLE,)


class DuplicateEmail(Exception):
    """Another person of the network already uses this email."""


async def create_indexes(db: AsyncDatabase) -> None:
    await db[PEOPLE].create_index(
        [("network_id", ASCENDING), ("email", ASCENDING)], unique=True, name="email_per_network"
    )
    await db[PEOPLE].create_index([("network_id", ASCENDING), ("institution_id", ASCENDING)])
    await db[PEOPLE].create_index([("network_id", ASCENDING), ("program_ids", ASCENDING)])
    await db[PEOPLE].create_index([("network_id", ASCENDING), ("_id", ASCENDING)])


class VersionConflict(Exception):
    """The profile moved on between reading and writing it (a concurrent edit)."""


def _and(*clauses: dict[str, Any]) -> dict[str, Any]:
    clauses = tuple(c for c in clauses if c)
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": list(clauses)}


def _vocabulary_key(network_id: str, kind: VocabularyKind) -> str:
    return f"{network_id}/{kind.value}"


class PeopleStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._people = db[PEOPLE]
        self._vocabularies = db[VOCABULARIES]

    async def add(
        self, person: Person, events: list[CloudEvent], profile: dict[str, Any] | None = None
    ) -> None:
        document = {"_id": person.id, **asdict(person), **(profile or {})}
        document.pop("id")
        try:
            await self._people.insert_one(stage_insert(document, events))
        except DuplicateKeyError as exc:
            raise DuplicateEmail(person.email) from exc

    async def get(self, network_id: str, person_id: str) -> dict[str, Any] | None:
        return strip_outbox_fields(
            await self._people.find_one({"_id": person_id, "network_id": network_id})
        )

    async def find(
        self, network_id: str, person_id: str, visibility: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The person, only when the caller's visibility reaches them."""
        return strip_outbox_fields(
            await self._people.find_one(
                _and({"_id": person_id, "network_id": network_id}, visibility)
            )
        )

    async def people(
        self,
        network_id: str,
        visibility: dict[str, Any],
        *,
        limit: int,
        after: str | None,
        program_id: str | None = None,
        role: str | None = None,
        career_stage: str | None = None,
        specialty: str | None = None,
        help_offered: str | None = None,
        has_capacity: bool | None = None,
        name: str | None = None,
    ) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = [{"network_id": network_id}, visibility]
        if program_id is not None:
            filters.append({"program_ids": program_id})
        if role is not None:
            filters.append({"roles": role})
        if career_stage is not None:
            filters.append({"career_stage": career_stage})
        if specialty is not None:
            filters.append(
                {"$or": [{"mentor.specialty": specialty}, {"mentee.specialty_interests": specialty}]}
            )
        if help_offered is not None:
            filters.append({"mentor.help_offered": help_offered})
        if has_capacity is not None:
            filters.append({"mentor.accepting": True} if has_capacity
                           else {"$nor": [{"mentor.accepting": True}]})
        if name:
            # Substring of the case-folded name; escaped, so a name with ( or . is just text.
            filters.append({"name_search": {"$regex": re.escape(name.casefold())}})
        if after is not None:
            filters.append({"_id": {"$gt": after}})
        cursor = self._people.find(_and(*filters)).sort("_id", ASCENDING).limit(limit)
        return [strip_outbox_fields(doc) async for doc in cursor]

    async def replace_profile(
        self,
        network_id: str,
        person_id: str,
        previous_version: int,
        profile: dict[str, Any],
        updated_at: datetime,
        events: list[CloudEvent],
    ) -> None:
        """Write the new profile only if nobody wrote since `previous_version` was read."""
        update = {"$set": {**profile, "version": previous_version + 1, "updated_at": updated_at}}
        result = await self._people.update_one(
            {"_id": person_id, "network_id": network_id, "version": previous_version},
            stage_update(update, events),
        )
        if result.matched_count == 0:
            raise VersionConflict(person_id)

    async def vocabularies(self, network_id: str) -> Vocabularies:
        extensions: dict[VocabularyKind, frozenset[str]] = {}
        cursor = self._vocabularies.find({"network_id": network_id})
        async for document in cursor:
            extensions[VocabularyKind(document["kind"])] = frozenset(document.get("terms", []))
        return Vocabularies(extensions)

    async def add_terms(self, network_id: str, kind: VocabularyKind, terms: list[str]) -> None:
        if not terms:
            return
        update = {
            "$setOnInsert": {"network_id": network_id, "kind": kind.value},
            "$addToSet": {"terms": {"$each": terms}},
        }
        key = {"_id": _vocabulary_key(network_id, kind)}
        try:
            await self._vocabularies.update_one(key, update, upsert=True)
        except DuplicateKeyError:  # two first extensions raced: the document exists now
            await self._vocabularies.update_one(key, update)
