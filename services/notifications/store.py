"""Notifications persistence: the in-app feed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

NOTIFICATIONS = "notifications"
# MessageDelivered / MessageFailed, staged per batch on the sender's batch records.
OUTBOX_COLLECTIONS: tuple[str, ...] = ("delivery_sender",)
ORDER = [("created_at", DESCENDING), ("_id", DESCENDING)]


async def create_indexes(db: AsyncDatabase) -> None:
    await db[NOTIFICATIONS].create_index(
        [("person_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="feed"
    )
    await db[NOTIFICATIONS].create_index(
        [("person_id", ASCENDING), ("read", ASCENDING)], name="unread"
    )


class FeedStore:
    """One person's in-app feed, newest first. Every query is scoped to the person."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._feed = db[NOTIFICATIONS]

    async def page(
        self,
        person_id: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
        unread_only: bool = False,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"person_id": person_id}
        if unread_only:
            query["read"] = False
        if before is None:
            cursor = self._feed.find(query).sort(ORDER).limit(limit)
            return [doc async for doc in cursor]
        # After (at, last_id): created before `at`, or at `at` with a smaller id. Asked as
        # "at or before `at`" with the ties dropped here, not as a top-level `$or` (which the
        # embedded store answers by scanning every person's feed).
        at, last_id = before
        query["created_at"] = {"$lte": at}
        page: list[dict[str, Any]] = []
        cursor = self._feed.find(query).sort(ORDER).batch_size(limit + 1)
        try:
            async for doc in cursor:
                if doc["created_at"] == at and doc["_id"] >= last_id:
                    continue
                page.append(doc)
                if len(page) == limit:
                    break
        finally:
            await cursor.close()
        return page

    async def unread_count(self, person_id: str) -> int:
        return await self._feed.count_documents({"person_id": person_id, "read": False})

    async def mark_read(self, person_id: str, notification_id: str | None = None) -> int:
        """Mark one (or, without an id, every) notification of the person read."""
        query: dict[str, Any] = {"person_id": person_id, "read": False}
        if notification_id is not None:
            query["_id"] = notification_id
        result = await self._feed.update_many(
            query, {"$set": {"read": True, "read_at": datetime.now(UTC)}}
        )
        return result.modified_count

    async def exists(self, person_id: str, notification_id: str) -> bool:
        return await self._feed.count_documents({"_id": notification_id, "person_id": person_id}) > 0
