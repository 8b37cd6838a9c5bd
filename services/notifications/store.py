"""Notifications persistence: the in-app feed."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

NOTIFICATIONS = "notifications"
OUTBOX_COLLECTIONS: tuple[str, ...] = ()


async def create_indexes(db: AsyncDatabase) -> None:
    await db[NOTIFICATIONS].create_index([("person_id", ASCENDING), ("created_at", DESCENDING)])


class FeedStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._feed = db[NOTIFICATIONS]

    async def for_person(self, person_id: str, limit: int = 50) -> list[dict[str, Any]]:
        cursor = self._feed.find({"person_id": person_id}).sort("created_at", DESCENDING).limit(limit)
        return [doc async for doc in cursor]
