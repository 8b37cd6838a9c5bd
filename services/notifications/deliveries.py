"""Deliveries: exactly one message per (source, recipient, channel), sent with retries.

A handler or a scheduled job records a delivery in the same write that applies its cause,
keyed by source (event id or job key), recipient and channel, so a redelivered event or a
rerun job finds the record and adds nothing. The worker claims due deliveries in batches with
an atomic update carrying its claim token, so two instances never send the same one; then it
decides (preferences, quiet hours, digest, erasure), composes, sends, and settles each with one
update that also stages MessageDelivered or MessageFailed (the outbox publishes them).

A claim that outlived its process is ambiguous (the SMTP server may have accepted the message):
an email or webhook is marked failed as interrupted and never resent automatically, so no one
gets a message twice; an in-app message is written idempotently, so it simply goes again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import new_event
from shared.events.schemas import MessageDelivered, MessageFailed
from shared.messaging.outbox import stage_update

DELIVERIES = "deliveries"
SOURCE = "/notifications"
INTERRUPTED = (
    "interrupted while sending (the service stopped); not resent automatically so that no one "
    "gets it twice: retry by hand if it did not arrive"
)
OPEN = ("pending", "held", "sending")


async def create_indexes(db: AsyncDatabase) -> None:
    await db[DELIVERIES].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[DELIVERIES].create_index([("network_id", ASCENDING), ("status", ASCENDING)])
    await db[DELIVERIES].create_index([("claim", ASCENDING)], sparse=True)
    await db[DELIVERIES].create_index([("person_id", ASCENDING), ("status", ASCENDING)])
    await db[DELIVERIES].create_index([("about", ASCENDING)])


def upsert(document: dict[str, Any]) -> UpdateOne:
    """Insert once: a second write of the same delivery (a redelivered event) changes nothing."""
    return UpdateOne({"_id": document["_id"]}, {"$setOnInsert": document}, upsert=True)


@dataclass(frozen=True)
class Outcome:
    delivery: dict[str, Any]
    status: str  # sent | retry | failed | skipped | held | defer | cancelled
    at: datetime | None = None
    reason: str = ""
    to: str | None = None
    subject: str | None = None


def _delivered(d: dict[str, Any], at: datetime) -> Any:
    payload = MessageDelivered(
        delivery_id=d["_id"], network_id=d["network_id"], recipient_id=d.get("person_id"),
        kind=d["kind"], channel=d["channel"], mentorship_id=d.get("mentorship_id"),
        program_id=d.get("program_id"), delivered_at=at)
    return new_event(payload, subject=d["_id"], tenant_id=d["network_id"], source=SOURCE, at=at)


def _failed(d: dict[str, Any], reason: str, at: datetime) -> Any:
    payload = MessageFailed(
        delivery_id=d["_id"], network_id=d["network_id"], recipient_id=d.get("person_id"),
        kind=d["kind"], channel=d["channel"], reason=reason[:500], failed_at=at)
    return new_event(payload, subject=d["_id"], tenant_id=d["network_id"], source=SOURCE, at=at)


def settle_update(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The one update that records an attempt's outcome (and its event, when final)."""
    d, unset = outcome.delivery, {"claimed_until": "", "claim": ""}
    if outcome.status == "sent":
        fields = {"status": "sent", "sent_at": now, "to": outcome.to, "subject": outcome.subject}
        return stage_update({"$set": fields, "$unset": unset}, [_delivered(d, now)])
    if outcome.status == "failed":
        fields = {"status": "failed", "last_error": outcome.reason, "failed_at": now,
                  **({"to": d["to"]} if d.get("to") else {})}
        return stage_update({"$set": fields, "$unset": unset}, [_failed(d, outcome.reason, now)])
    if outcome.status == "retry":
        return {"$set": {"status": "pending", "next_attempt_at": outcome.at,
                         "last_error": outcome.reason, **({"to": d["to"]} if d.get("to") else {})},
                "$unset": unset}
    not_an_attempt = {"$inc": {"attempts": -1}, "$unset": unset}
    if outcome.status == "defer":
        return {"$set": {"status": "pending", "next_attempt_at": outcome.at,
                         "deferred_because": outcome.reason}, **not_an_attempt}
    if outcome.status in ("skipped", "held", "cancelled"):
        return {"$set": {"status": outcome.status, "reason": outcome.reason}, **not_an_attempt}
    raise ValueError(f"unknown outcome {outcome.status!r}")


class DeliveryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._deliveries = db[DELIVERIES]

    async def claim_due(self, now: datetime, claim_for: timedelta) -> dict[str, Any] | None:
        """Claim the next due delivery (one at a time; the worker uses claim_batch)."""
        return await self._deliveries.find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            {"$set": {"status": "sending", "claimed_until": now + claim_for}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def claim_batch(self, now: datetime, claim_for: timedelta, limit: int) -> list[dict[str, Any]]:
        """Claim up to `limit` due deliveries: only those this claim token won are returned."""
        due = {"status": "pending", "next_attempt_at": {"$lte": now}}
        ids = [d["_id"] async for d in self._deliveries.find(due, {"_id": 1})
               .sort("next_attempt_at", ASCENDING).limit(limit)]
        if not ids:
            return []
        token = os.urandom(8).hex()
        await self._deliveries.update_many(
            {**due, "_id": {"$in": ids}},
            {"$set": {"status": "sending", "claimed_until": now + claim_for, "claim": token},
             "$inc": {"attempts": 1}},
        )
        return [d async for d in self._deliveries.find({"claim": token, "status": "sending"})]

    async def settle(self, outcomes: list[Outcome], now: datetime) -> None:
        if not outcomes:
            return
        await self._deliveries.bulk_write(
            [UpdateOne({"_id": o.delivery["_id"], "status": "sending",
                        **({"claim": o.delivery["claim"]} if o.delivery.get("claim") else {})},
                       settle_update(o, now)) for o in outcomes],
            ordered=False,
        )

    async def mark_sent(self, delivery_id: str, now: datetime) -> None:
        d = await self._deliveries.find_one({"_id": delivery_id})
        if d:
            await self.settle([Outcome(d, "sent", to=d.get("to"), subject=d.get("subject"))], now)

    async def resolve_interrupted(self, now: datetime) -> int:
        stale = [d async for d in self._deliveries.find(
            {"status": "sending", "claimed_until": {"$lt": now}})]
        for d in stale:
            if d["channel"] == "in_app":  # idempotent write: safe to do again
                update = {"$set": {"status": "pending", "next_attempt_at": now},
                          "$unset": {"claimed_until": "", "claim": ""}}
            else:
                update = settle_update(Outcome(d, "failed", reason=INTERRUPTED), now)
            await self._deliveries.update_one(
                {"_id": d["_id"], "status": "sending", "claimed_until": {"$lt": now}}, update)
        return len(stale)

    async def retry_by_hand(self, network_id: str, delivery_id: str, now: datetime) -> bool:
        result = await self._deliveries.update_one(
            {"_id": delivery_id, "network_id": network_id, "status": "failed"},
            {"$set": {"status": "pending", "next_attempt_at": now, "attempts": 0}},
        )
        return result.modified_count == 1

    async def list(self, network_id: str, status: str | None, limit: int, *,
                   channel: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"network_id": network_id}
        for field, value in (("status", status), ("channel", channel), ("kind", kind)):
            if value:
                query[field] = value
        cursor = self._deliveries.find(query, {"context": 0}).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]
