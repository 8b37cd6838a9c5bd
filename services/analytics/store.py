"""Analytics persistence: projections built from events."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

REGISTRATIONS = "registration_counts"
OUTBOX_COLLECTIONS: tuple[str, ...] = ()


async def create_indexes(db: AsyncDatabase) -> None:
    await db[REGISTRATIONS].create_index("network_id")


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
