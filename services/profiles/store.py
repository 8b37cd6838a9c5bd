"""Profiles persistence: people, with their events staged in the same document write."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.profiles.domain import Person
from shared.events import CloudEvent
from shared.messaging.outbox import stage_insert, strip_outbox_fields

PEOPLE = "people"
OUTBOX_COLLECTIONS = (PEOPLE,)


class DuplicateEmail(Exception):
    """Another person of the network already uses this email."""


async def create_indexes(db: AsyncDatabase) -> None:
    await db[PEOPLE].create_index(
        [("network_id", ASCENDING), ("email", ASCENDING)], unique=True, name="email_per_network"
    )
    await db[PEOPLE].create_index([("network_id", ASCENDING), ("institution_id", ASCENDING)])


class PeopleStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._people = db[PEOPLE]

    async def add(self, person: Person, events: list[CloudEvent]) -> None:
        document = {"_id": person.id, **asdict(person)}
        document.pop("id")
        try:
            await self._people.insert_one(stage_insert(document, events))
        except DuplicateKeyError as exc:
            raise DuplicateEmail(person.email) from exc

    async def get(self, network_id: str, person_id: str) -> dict[str, Any] | None:
        return strip_outbox_fields(
            await self._people.find_one({"_id": person_id, "network_id": network_id})
        )
