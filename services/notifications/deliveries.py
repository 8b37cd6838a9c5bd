"""Deliveries: exactly one message per (source, recipient, channel), sent with retries.

A handler or a scheduled job records a delivery in the same write that applies its cause,
keyed by source (event id or job key), recipient and channel, so a redelivered event or a
rerun job finds the record and adds nothing.

One instance sends at a time: it holds the sender lease (one document, renewed), so two
instances never both send. Before sending a batch it records the batch's ids in one in-flight
document (a claim written once per batch: on this store every updated document costs about a
millisecond, and per-delivery claims halved the throughput); then it decides (preferences,
quiet hours, digest, erasure), composes, sends, and settles each delivery with one update that
also stages MessageDelivered or MessageFailed (the outbox publishes them), and drops the
in-flight record.

An in-flight record that outlived its deadline belongs to a process that died mid-send: that is
ambiguous (the SMTP server may have accepted the message), so its unsettled emails and webhooks
are marked failed as interrupted and never resent automatically (no one gets a message twice;
an admin can retry by hand), while in-app messages, written idempotently, simply go again.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events import new_event
from shared.events.schemas import MessageDelivered, MessageFailed
from shared.messaging.outbox import stage_update

DELIVERIES = "deliveries"
SENDER_STATE = "delivery_sender"
LEASE_ID = "lease"
RETAIN_BATCHES = timedelta(days=2)  # settled batch records, kept a while after the relay sent their events
SOURCE = "/notifications"
INTERRUPTED = (
    "interrupted while sending (the service stopped); not resent automatically so that no one "
    "gets it twice: retry by hand if it did not arrive"
)
OPEN = ("pending", "held")


async def create_indexes(db: AsyncDatabase) -> None:
    await db[DELIVERIES].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[DELIVERIES].create_index([("network_id", ASCENDING), ("status", ASCENDING)])
    await db[DELIVERIES].create_index([("person_id", ASCENDING), ("status", ASCENDING)])
    await db[DELIVERIES].create_index([("about", ASCENDING)])
    await db[SENDER_STATE].create_index([("kind", ASCENDING)])
    await db[SENDER_STATE].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)


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


def settle_update(outcome: Outcome, now: datetime) -> tuple[dict[str, Any], list[Any]]:
    """The update that records an attempt's outcome, and its event when final (the caller
    stages the events of a whole batch in one document, written in the same transaction)."""
    d, unset = outcome.delivery, {"last_claim": ""}
    attempts = {"attempts": d.get("attempts", 0)}
    if outcome.status == "sent":
        fields = {"status": "sent", "sent_at": now, "to": outcome.to, "subject": outcome.subject, **attempts}
        return {"$set": fields, "$unset": unset}, [_delivered(d, now)]
    if outcome.status == "failed":
        fields = {"status": "failed", "last_error": outcome.reason, "failed_at": now, **attempts,
                  **({"to": d["to"]} if d.get("to") else {})}
        return {"$set": fields, "$unset": unset}, [_failed(d, outcome.reason, now)]
    if outcome.status == "retry":
        return {"$set": {"status": "pending", "next_attempt_at": outcome.at, **attempts,
                         "last_error": outcome.reason, **({"to": d["to"]} if d.get("to") else {})},
                "$unset": unset}, []
    # Not an attempt: the stored count stays as it was.
    if outcome.status == "defer":
        return {"$set": {"status": "pending", "next_attempt_at": outcome.at,
                         "deferred_because": outcome.reason}, "$unset": unset}, []
    if outcome.status in ("skipped", "held", "cancelled"):
        return {"$set": {"status": outcome.status, "reason": outcome.reason}, "$unset": unset}, []
    raise ValueError(f"unknown outcome {outcome.status!r}")


class DeliveryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db
        self._deliveries = db[DELIVERIES]
        self._state = db[SENDER_STATE]
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"

    async def hold_lease(self, now: datetime, lease_for: timedelta) -> bool:
        """Take or renew the sender lease; False while another live instance holds it."""
        try:
            await self._state.find_one_and_update(
                {"_id": LEASE_ID, "$or": [{"holder": self.holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": self.holder, "until": now + lease_for}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def release_lease(self) -> None:
        await self._state.update_one({"_id": LEASE_ID, "holder": self.holder},
                                     {"$set": {"until": datetime.fromtimestamp(0, UTC)}})

    async def claim_batch(self, now: datetime, claim_for: timedelta, limit: int) -> list[dict[str, Any]]:
        """Due deliveries not in anyone's in-flight batch, recorded as this batch (one insert).
        Call only while holding the lease."""
        busy = [i async for f in self._state.find({"kind": "in_flight"}, {"ids": 1}) for i in f["ids"]]
        due: dict[str, Any] = {"status": "pending", "next_attempt_at": {"$lte": now}}
        if busy:
            due["_id"] = {"$nin": busy}
        batch = [d async for d in self._deliveries.find(due).sort("next_attempt_at", ASCENDING).limit(limit)]
        if not batch:
            return []
        token = f"in-flight:{os.urandom(8).hex()}"
        await self._state.insert_one({"_id": token, "kind": "in_flight", "holder": self.holder,
                                      "ids": [d["_id"] for d in batch], "until": now + claim_for})
        for d in batch:
            d["attempts"] = d.get("attempts", 0) + 1
            d["claim"] = token
        return batch

    async def abandon(self, token: str) -> None:
        """Give a claimed batch back untouched (nothing of it was sent)."""
        await self._state.delete_one({"_id": token, "kind": "in_flight"})

    async def settle(self, outcomes: list[Outcome], now: datetime, token: str | None = None) -> None:
        """Record a batch's outcomes and stage its events on the batch's own record, in one
        transaction: the deliveries' states and their events are written together."""
        if not outcomes:
            return
        updates, events = [], []
        for o in outcomes:
            update, staged = settle_update(o, now)
            updates.append(UpdateOne({"_id": o.delivery["_id"], "status": "pending"}, update))
            events.extend(staged)
        token = token or outcomes[0].delivery.get("claim") or f"settled:{os.urandom(8).hex()}"
        batch = stage_update({"$set": {"kind": "settled", "until": now, "expires_at": now + RETAIN_BATCHES},
                              "$unset": {"ids": ""}}, events)


        async def write(session: Any) -> None:
            await self._deliveries.bulk_write(updates, ordered=False, session=session)
            await self._state.update_one({"_id": token}, batch, upsert=True, session=session)

        # The consumer may cancel the same deliveries meanwhile (an erasure): that transaction
        # conflicts with this one, and `with_transaction` runs it again. The filters only touch
        # deliveries still pending, so a cancelled one stays cancelled.
        async with self._db.client.start_session() as session:
            await session.with_transaction(write)

    async def resolve_interrupted(self, now: datetime) -> int:
        """Close the in-flight batches of dead processes (see the module docstring)."""
        resolved = 0
        async for flight in self._state.find({"kind": "in_flight", "until": {"$lt": now}}):
            stale = [d async for d in self._deliveries.find(
                {"_id": {"$in": flight["ids"]}, "status": "pending", "channel": {"$ne": "in_app"}})]
            for d in stale:
                d["attempts"] = d.get("attempts", 0) + 1
            await self.settle([Outcome(d, "failed", reason=INTERRUPTED) for d in stale], now, flight["_id"])
            if not stale:
                await self._state.delete_one({"_id": flight["_id"]})
            resolved += len(stale)
        return resolved

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
