"""Matching persistence: the candidate pool."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

POOL = "pool"
OUTBOX_COLLECTIONS: tuple[str, ...] = ()


async def create_indexes(db: AsyncDatabase) -> None:
    await db[POOL].create_index([("network_id", ASCENDING), ("role", ASCENDING)])


class PoolStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._pool = db[POOL]

    async def list(self, network_id: str, role: str) -> list[dict[str, Any]]:
        cursor = self._pool.find({"network_id": network_id, "role": role}).sort("_id", ASCENDING)
        return [doc async for doc in cursor]
