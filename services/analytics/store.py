"""Analytics persistence: the sanitised facts every projection is rebuilt from.

Facts are insert-only (one document per applied event, `_id` the event id, which the inbox
guarantees is applied once): SecantusDB inserts in bulk at ~20,000 documents/s but updates
at ~1,000/s, so the consumer never updates a document per event. The only update is an
erasure, rare by nature, which strips personal fields from that person's facts.
"""

from __future__ import annotations

from typing import Any

from pymongo import InsertOne, UpdateMany
from pymongo.asynchronous.database import AsyncDatabase

from services.analytics.facts import PERSONAL, payload_of
from services.analytics.projection import Projection

REGISTRATIONS = "registration_counts"
FACTS = "analytics_facts"
OUTBOX_COLLECTIONS: tuple[str, ...] = ()
LOAD_BATCH = 5000


async def create_indexes(db: AsyncDatabase) -> None:
    await db[REGISTRATIONS].create_index("network_id")
    await db[FACTS].create_index("person_id", sparse=True)


def insert_fact(fact: dict[str, Any]) -> InsertOne:
    return InsertOne(fact)


def erase_person(person_id: str) -> UpdateMany:
    return UpdateMany(
        {"person_id": person_id}, {"$unset": {f"data.{name}": "" for name in PERSONAL}}
    )


async def load_projection(db: AsyncDatabase, projection: Projection | None = None) -> Projection:
    """Replay every stored fact (any order will do) into a projection."""
    projection = projection or Projection()
    async for fact in db[FACTS].find({}, batch_size=LOAD_BATCH):
        payload = payload_of(fact)
        if payload is not None:
            projection.apply(fact["type"], payload)
    return projection


class RegistrationCounts:
    def __init__(self, db: AsyncDatabase) -> None:
        self._counts = db[REGISTRATIONS]

    async def for_network(self, network_id: str) -> dict[str, Any]:
        network = await self._counts.find_one({"_id": f"network:{network_id}"}) or {}
        institutions = [
            doc
            async for doc in self._counts.find(
                {"network_id": network_id, "scope": "institution"}
            ).sort("institution_id")
        ]
        return {"network": network, "institutions": institutions}
