"""Deliveries: exactly one message per (source, recipient, channel), sent with retries.

A handler or a scheduled job records a delivery in the same write that applies its cause,
keyed by source (event id or job key), recipient and channel, so a redelivered event or a
rerun job finds the record and adds nothing.

One instance sends at a time: it holds the sender lease (one document, renewed), so two
instances never both send. Each channel (in-app, webhook, email) is claimed and sent on its own,
so a slow mail server never holds back the feed or the webhooks. Before sending a batch the
worker records the batch's ids in one in-flight document, renewed while the batch is being
sent however long the mail server takes; then it decides (preferences, quiet hours, digest,
erasure), composes, sends, and settles.

Settling costs one statement per outcome kind, not one per message: every delivery sent in a
chunk of the batch is marked sent by one `update_many` (the same change for all), and what
differs per message (the address used, the subject) rides in one inserted record per chunk
with the MessageDelivered events it stages for the outbox, in the same transaction. Retries
and failures, rarer, are recorded one by one with their reasons.

An in-flight record whose renewals stopped belongs to a process that died mid-send: that is
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

from pymongo import ASCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from shared.events import new_event
from shared.events.schemas import MessageDelivered, MessageFailed
from shared.messaging.outbox import stage_insert

DELIVERIES = "deliveries"
SENDER_STATE = "delivery_sender"
LEASE_ID = "lease"
# Settled batch records keep the address and subject of each message sent, for the admins'
# delivery list; after this the list shows the person's current address and no subject.
SENT_DETAILS_RETAINED = timedelta(days=30)
SOURCE = "/notifications"
INTERRUPTED = (
    "interrupted while sending (the service stopped); not resent automatically so that no one "
    "gets it twice: retry by hand if it did not arrive"
)
OPEN = ("pending", "held")
# A sign-in link's facts, removed from the record once the message left (or never will).
SECRET_FACTS = {"context.link_url": "", "context.email": "", "context.display_name": ""}
_OBSOLETE_INDEXES = ("status_1_next_attempt_at_1", "person_id_1_status_1")


async def create_indexes(db: AsyncDatabase) -> None:
    # Every index is rewritten on every update of a delivery on SecantusDB: keep only those
    # a query needs (claims per channel, the admins' list, erasure and digests by recipient).
    await db[DELIVERIES].create_index(
        [("status", ASCENDING), ("channel", ASCENDING), ("next_attempt_at", ASCENDING)], name="due")
    await db[DELIVERIES].create_index([("network_id", ASCENDING), ("status", ASCENDING)])
    await db[DELIVERIES].create_index([("recipient", ASCENDING)])
    await db[DELIVERIES].create_index([("about", ASCENDING)])
    for name in _OBSOLETE_INDEXES:
        try:
            await db[DELIVERIES].drop_index(name)
        except OperationFailure:
            pass  # never created here, or already gone
    await db[SENDER_STATE].create_index([("kind", ASCENDING)])
    await db[SENDER_STATE].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)


def upsert(document: dict[str, Any]) -> UpdateOne:
    """Insert once: a second write of the same delivery (a redelivered event) changes nothing."""
    return UpdateOne({"_id": document["_id"]}, {"$setOnInsert": document}, upsert=True)


@dataclass(frozen=True)
class Outcome:
    delivery: dict[str, Any]
    # sent | retry | failed | skipped | held | defer | cancelled | release (not attempted)
    status: str
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


def settle_update(outcome: Outcome, now: datetime) -> tuple[dict[str, Any] | None, list[Any]]:
    """The update that records one outcome other than `sent` (sent ones are settled together,
    see `DeliveryStore.settle`), and its event when final. None: nothing to write."""
    d = outcome.delivery
    attempts = {"attempts": d.get("attempts", 0)}
    to = {"to": d["to"]} if d.get("to") else {}
    if outcome.status == "failed":
        fields = {"status": "failed", "last_error": outcome.reason, "failed_at": now, **attempts, **to}
        return {"$set": fields, "$unset": SECRET_FACTS}, [_failed(d, outcome.reason, now)]
    if outcome.status == "retry":
        return {"$set": {"status": "pending", "next_attempt_at": outcome.at, **attempts,
                         "last_error": outcome.reason, **to}}, []
    # Not an attempt: the stored count stays as it was.
    if outcome.status == "defer":
        return {"$set": {"status": "pending", "next_attempt_at": outcome.at,
                         "deferred_because": outcome.reason}}, []
    if outcome.status in ("skipped", "held", "cancelled"):
        return {"$set": {"status": outcome.status, "reason": outcome.reason}, "$unset": SECRET_FACTS}, []
    if outcome.status == "release":
        return None, []  # never attempted: claimable again once the batch record lets it go
    raise ValueError(f"unknown outcome {outcome.status!r}")


class DeliveryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db
        self._deliveries = db[DELIVERIES]
        self._state = db[SENDER_STATE]
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"

    async def hold_lease(self, now: datetime, lease_for: timedelta) -> bool:
        """Take or renew the sender lease; False while another live instance holds it.

        Renew it, else take it if it expired, else create it: one update by id each. The
        collection also keeps every sent batch's record, and the embedded store scanned them
        all at each renewal for an `$or` in the filter (38 ms a renewal after a 300-person
        demo) and for any findAndModify (see `shared.db.update_and_read`)."""
        fields = {"holder": self.holder, "until": now + lease_for}
        for guard in ({"holder": self.holder}, {"until": {"$lt": now}}):
            taken = await self._state.update_one({"_id": LEASE_ID, **guard}, {"$set": fields})
            if taken.matched_count:
                return True
        try:
            await self._state.insert_one({"_id": LEASE_ID, **fields})
        except DuplicateKeyError:
            return False
        return True

    async def release_lease(self) -> None:
        await self._state.update_one({"_id": LEASE_ID, "holder": self.holder},
                                     {"$set": {"until": datetime.fromtimestamp(0, UTC)}})

    async def claim_batch(self, now: datetime, claim_for: timedelta, limit: int,
                          channel: str | None = None, *,
                          claimed_at: datetime | None = None) -> list[dict[str, Any]]:
        """Due deliveries of a channel (None: any) that are in no in-flight batch, recorded as
        this batch (one insert). Call only while holding the lease.

        The query names only indexed fields (status, channel, due time) and the busy ones are
        dropped here: SecantusDB plans a filter with one more field, such as `_id: {$nin}`,
        as a scan of every pending delivery."""
        busy = {i async for f in self._state.find({"kind": "in_flight"}, {"ids": 1}) for i in f.get("ids", ())}
        due: dict[str, Any] = {"status": "pending", "next_attempt_at": {"$lte": now}}
        if channel is not None:
            due = {"status": "pending", "channel": channel, "next_attempt_at": {"$lte": now}}
        found = self._deliveries.find(due).sort("next_attempt_at", ASCENDING).limit(limit + len(busy))
        batch = [d async for d in found if d["_id"] not in busy][:limit]
        if not batch:
            return []
        token = f"in-flight:{os.urandom(8).hex()}"
        await self._state.insert_one({"_id": token, "kind": "in_flight", "holder": self.holder,
                                      "channel": channel, "ids": [d["_id"] for d in batch],
                                      "until": (claimed_at or now) + claim_for})
        for d in batch:
            d["attempts"] = d.get("attempts", 0) + 1
            d["claim"] = token
        return batch

    async def renew(self, token: str, until: datetime) -> bool:
        """Keep a batch claimed while it is being sent; False when it is no longer ours (it
        was resolved as interrupted after renewals stopped for a whole claim period)."""
        result = await self._state.update_one({"_id": token, "kind": "in_flight", "holder": self.holder},
                                              {"$set": {"until": until}})
        return result.matched_count == 1

    async def abandon(self, token: str) -> None:
        """Give a claimed batch back untouched (nothing of it was sent)."""
        await self._state.delete_one({"_id": token, "kind": "in_flight"})

    async def settle(self, outcomes: list[Outcome], now: datetime, token: str | None = None, *,
                     final: bool = True) -> None:
        """Record outcomes in one transaction: sent deliveries by one update_many, the others
        one by one, and one inserted record holding what differs per message sent (address,
        subject) and the chunk's MessageDelivered / MessageFailed events for the outbox.

        `final=False` settles a chunk of a batch still being sent: the batch stays in flight
        (its other deliveries claimed) until the last chunk lets it go."""
        if not outcomes and (not final or token is None):
            return
        token = token or (outcomes[0].delivery.get("claim") if outcomes else None) \
            or f"settled:{os.urandom(8).hex()}"
        record_id = f"{token}.{os.urandom(4).hex()}"
        sent = {o.delivery["_id"]: o for o in outcomes if o.status == "sent"}
        others: list[Any] = []
        other_events: list[Any] = []
        for o in outcomes:
            if o.status == "sent":
                continue
            update, staged = settle_update(o, now)
            if update is not None:
                # Only a delivery still pending: an erasure may have cancelled it meanwhile.
                others.append(UpdateOne({"_id": o.delivery["_id"], "status": "pending"}, update))
            other_events.extend(staged)

        async def write(session: Any) -> None:
            # Which sent ones are still pending, read in the transaction: one cancelled by an
            # erasure meanwhile keeps its state, and its address goes into no record (a
            # concurrent erasure conflicts with this transaction, which then runs again).
            still = [sent[d["_id"]] async for d in self._deliveries.find(
                {"_id": {"$in": list(sent)}}, {"status": 1}, session=session)
                if d["status"] == "pending"] if sent else []
            operations = list(others)
            if still:
                operations.append(UpdateMany(
                    {"_id": {"$in": [o.delivery["_id"] for o in still]}, "status": "pending"},
                    {"$set": {"status": "sent", "sent_at": now, "batch": record_id},
                     "$inc": {"attempts": 1}, "$unset": SECRET_FACTS}))
            events = [_delivered(o.delivery, now) for o in still] + other_events
            if operations:
                await self._deliveries.bulk_write(operations, ordered=False, session=session)
            if still or events:  # an insert: far cheaper here than growing the batch's record
                record = {"_id": record_id, "kind": "settled", "batch": token, "settled_at": now,
                          "expires_at": now + SENT_DETAILS_RETAINED,
                          "sent": [{"id": o.delivery["_id"], "to": o.to, "subject": o.subject} for o in still]}
                await self._state.insert_one(stage_insert(record, events), session=session)
            if final:
                await self._state.delete_one({"_id": token, "kind": "in_flight"}, session=session)

        # The consumer may cancel the same deliveries meanwhile (an erasure): that transaction
        # conflicts with this one, and `with_transaction` runs it again.
        async with self._db.client.start_session() as session:
            await session.with_transaction(write)

    async def resolve_interrupted(self, now: datetime) -> int:
        """Close the in-flight batches of dead processes (see the module docstring)."""
        resolved = 0
        async for flight in self._state.find({"kind": "in_flight", "until": {"$lt": now}}):
            ids = flight.get("ids", [])
            stale = [d async for d in self._deliveries.find({"_id": {"$in": ids}})
                     if d["status"] == "pending" and d["channel"] != "in_app"]
            for d in stale:
                d["attempts"] = d.get("attempts", 0) + 1
            await self.settle([Outcome(d, "failed", reason=INTERRUPTED) for d in stale], now, flight["_id"])
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
        documents = [doc async for doc in cursor]
        await self._add_sent_details(documents)
        return documents

    async def _add_sent_details(self, documents: list[dict[str, Any]]) -> None:
        """The address and subject of sent messages, kept in their batch's record."""
        wanted = {d["_id"]: d for d in documents if d.get("batch")}
        if not wanted:
            return
        tokens = list({d["batch"] for d in wanted.values()})
        async for batch in self._state.find({"_id": {"$in": tokens}}, {"sent": 1}):
            for entry in batch.get("sent", []):
                if (d := wanted.get(entry["id"])) is not None:
                    d["to"], d["subject"] = entry.get("to"), entry.get("subject")

    async def counts(self, channels: tuple[str, ...], statuses: tuple[str, ...]) -> dict[tuple[str, str], int]:
        """How many deliveries per (channel, status), for the metrics."""
        return {(c, s): await self._deliveries.count_documents({"status": s, "channel": c})
                for c in channels for s in statuses}


async def forget_sent_details(db: AsyncDatabase, person_id: str, session: Any = None) -> None:
    """Erasure: drop the address and subject recorded for every message to or about a person
    from the batch records (the delivery records themselves are scrubbed by the handler)."""
    by_batch: dict[str, list[str]] = {}
    for query in ({"recipient": person_id}, {"about": person_id}):
        async for d in db[DELIVERIES].find(query, {"batch": 1}, session=session):
            if d.get("batch"):
                by_batch.setdefault(d["batch"], []).append(d["_id"])
    for token, ids in by_batch.items():
        await db[SENDER_STATE].update_one({"_id": token}, {"$pull": {"sent": {"id": {"$in": ids}}}},
                                          session=session)
