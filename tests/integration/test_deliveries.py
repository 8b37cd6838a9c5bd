"""Delivery records on a real store: one claimer per delivery, interrupted sends never resent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.notifications.deliveries import INTERRUPTED, DeliveryStore, create_indexes


def _pending(n: int, now: datetime) -> dict:
    return {"_id": f"d{n}", "network_id": "n1", "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now, "to": f"p{n}@example.org",
            "channel": "email", "kind": "welcome", "recipient": f"p{n}", "person_id": f"p{n}"}


async def test_concurrent_claimers_never_take_the_same_delivery(db):
    await create_indexes(db)
    now = datetime.now(UTC)
    await db["deliveries"].insert_many([_pending(n, now) for n in range(20)])
    stores = [DeliveryStore(db) for _ in range(4)]

    async def drain(store: DeliveryStore) -> list[str]:
        taken = []
        while (claimed := await store.claim_due(now, timedelta(seconds=60))) is not None:
            taken.append(claimed["_id"])
        return taken

    results = await asyncio.gather(*(drain(store) for store in stores))
    claimed = [d for taken in results for d in taken]
    assert sorted(claimed) == sorted(f"d{n}" for n in range(20))  # each exactly once
    assert await db["deliveries"].count_documents({"attempts": 1, "status": "sending"}) == 20


async def test_a_send_interrupted_by_a_crash_is_marked_failed_not_resent(db):
    now = datetime.now(UTC)
    store = DeliveryStore(db)
    await db["deliveries"].insert_many([_pending(1, now), _pending(2, now)])
    crashed = await store.claim_due(now, timedelta(seconds=60))  # then the process died
    assert await store.resolve_interrupted(now + timedelta(seconds=30)) == 0  # claim still valid
    assert await store.resolve_interrupted(now + timedelta(seconds=61)) == 1
    record = await db["deliveries"].find_one({"_id": crashed["_id"]})
    assert (record["status"], record["last_error"]) == ("failed", INTERRUPTED)
    nxt = await store.claim_due(now + timedelta(seconds=61), timedelta(seconds=60))
    assert nxt["_id"] != crashed["_id"]  # never claimed again automatically
    assert await store.claim_due(now + timedelta(seconds=61), timedelta(seconds=60)) is None
    assert await store.retry_by_hand("n1", crashed["_id"], now) is True
    assert (await store.claim_due(now + timedelta(seconds=62), timedelta(seconds=60)))["_id"] == crashed["_id"]
