"""Transactional outbox: a state change and the events it causes are one atomic write.

Stores put the events a change causes into the changed document itself (`stage_insert` /
`stage_update`), so a single-document write records both; that is atomic on any MongoDB
deployment, replica set or not. The relay then

1. sweeps staged events into the `outbox` collection, an append-only log ordered by `seq`;
2. publishes the log in order with an acks=all producer, recording per batch where each
   event landed (`outbox_publications`) and how far it got (one cursor document);
3. lets `OutboxVerifier` check that the broker still holds what it acknowledged, appending
   copies of anything it lost.

Everything after the first write is an insert or a per-batch update: on a document store where
each updated document costs about a millisecond, per-event updates would cap the pipeline.
Entries stay for a retention horizon: the broker is a transport, not the record.

Only one relay per service works at a time (a lease in `outbox_state`), so replicas of a
service never publish the same log twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.events import CloudEvent, spec_for
from shared.events.topics import DOMAIN_TOPICS
from shared.logging import get_logger
from shared.messaging.kafka import ensure_topics, topic_layout
from shared.messaging.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG
from shared.messaging.outbox_verify import PUBLICATIONS, OutboxVerifier
from shared.settings import ServiceSettings

log = get_logger(__name__)

PENDING_FIELD = "_pending_events"
PENDING_FLAG = "_outbox_pending"
OUTBOX = "outbox"
STATE = "outbox_state"
CURSOR_ID = "cursor"
LEASE_ID = "lease"
LEASE_SECONDS = 10.0


def _staged(events: Iterable[CloudEvent]) -> list[dict[str, Any]]:
    return [event.model_dump(mode="json") for event in events]


def stage_insert(document: dict[str, Any], events: Sequence[CloudEvent]) -> dict[str, Any]:
    """The document to insert, carrying the events its creation causes."""
    if not events:
        return document
    return {**document, PENDING_FIELD: _staged(events), PENDING_FLAG: True}


def stage_update(update: dict[str, Any], events: Sequence[CloudEvent]) -> dict[str, Any]:
    """An update document that also appends the events this change causes."""
    if not events:
        return update
    staged = dict(update)
    staged["$push"] = {**update.get("$push", {}), PENDING_FIELD: {"$each": _staged(events)}}
    staged["$set"] = {**update.get("$set", {}), PENDING_FLAG: True}
    return staged


def strip_outbox_fields(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored document without the outbox bookkeeping, for reading code."""
    if document is None:
        return None
    return {k: v for k, v in document.items() if k not in (PENDING_FIELD, PENDING_FLAG)}


async def ensure_outbox_indexes(db: AsyncDatabase, source_collections: Iterable[str]) -> None:
    for name in source_collections:
        await db[name].create_index([(PENDING_FLAG, ASCENDING)], name="outbox_pending", sparse=True)
    await db[OUTBOX].create_index([("seq", ASCENDING)], name="log_order", unique=True)
    await db[OUTBOX].create_index([("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0)
    await db[PUBLICATIONS].create_index([("verified", ASCENDING)], name="to_verify")
    await db[PUBLICATIONS].create_index(
        [("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0
    )


async def append_to_outbox(
    db: AsyncDatabase,
    events: Sequence[dict[str, Any]],
    *,
    retention: timedelta,
    entry_ids: Sequence[str] | None = None,
) -> int:
    """Append events (CloudEvent dicts) to the log with fresh sequence numbers.

    Idempotent per entry id (the event id unless given): appending an entry twice, as a relay
    that crashed between append and unstaging does, leaves one entry.

    Single appender: the relay publishes up to the highest sequence it sees, so a range
    reserved by one appender and made visible after a later range of another would be
    skipped. Only the relay holding the lease appends (its sweep and its republication run
    one after the other in one task); anything else wanting an event published stages it in
    a document instead. (The benchmark appends directly, with the relay's sweep idle.)
    """
    if not events:
        return 0
    counter = await db[STATE].find_one_and_update(
        {"_id": "seq"},
        {"$inc": {"value": len(events)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    first = int(counter["value"]) - len(events) + 1
    now = datetime.now(UTC)
    entries = []
    for i, event in enumerate(events):
        spec = spec_for(event["type"])
        if spec is None:
            raise ValueError(f"staged event of unregistered type {event['type']!r}")
        entries.append(
            {
                "_id": entry_ids[i] if entry_ids else event["id"],
                "seq": first + i,
                "topic": spec.topic,
                "key": event["subject"],
                "event_id": event["id"],
                "type": event["type"],
                "correlation_id": event["correlationid"],
                # The record value exactly as published: one opaque field is far cheaper for
                # the store to write and read than the event as a nested document.
                "value": json.dumps(event, separators=(",", ":")).encode(),
                "created_at": now,
                "expires_at": now + retention,
            }
        )
    try:
        await db[OUTBOX].insert_many(entries, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
    return len(entries)


class OutboxRelay:
    """Moves staged events into the log, publishes it, and has it verified."""

    def __init__(
        self,
        db: AsyncDatabase,
        settings: ServiceSettings,
        source_collections: Sequence[str],
        producer_factory: Any,
    ) -> None:
        self._db = db
        self._settings = settings
        self._sources = list(source_collections)
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._retention = timedelta(hours=settings.outbox_retention_hours)
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._lease_until = 0.0
        self.verifier = OutboxVerifier(db, settings, self._republish)

    def wake(self) -> None:
        """Called after a write that staged events, so they leave without waiting for a poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        next_verify = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                try:
                    if not await self._hold_lease():
                        await self._sleep(LEASE_SECONDS / 3)
                        continue
                    moved = await self.sweep()
                    published = await self.publish_pending()
                    if loop.time() >= next_verify:
                        if await self.verifier.verify():
                            await self._restore_topics()
                        next_verify = loop.time() + self._settings.outbox_verify_interval_seconds
                    backoff = 0.1
                except Exception as exc:  # broker or database away: keep the events, retry
                    log.warning("outbox.relay_error", error=repr(exc), retry_in=backoff)
                    await self._reset_clients()
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not moved and not published:
                    await self._sleep(self._settings.outbox_poll_interval_ms / 1000)
        finally:
            await self._reset_clients()
            await self._release_lease()

    async def _hold_lease(self) -> bool:
        """Take or renew the lease when less than two thirds of it is left."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._lease_until - LEASE_SECONDS / 3:
            return True
        asked, now = loop.time(), datetime.now(UTC)
        try:
            await self._db[STATE].find_one_and_update(
                {"_id": LEASE_ID, "$or": [{"holder": self._holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": self._holder, "until": now + timedelta(seconds=LEASE_SECONDS)}},
                upsert=True,
            )
        except DuplicateKeyError:
            self._lease_until = 0.0  # someone else holds it
            return False
        self._lease_until = asked + LEASE_SECONDS  # from the asking: the store counts from then
        return True

    async def _release_lease(self) -> None:
        try:
            await self._db[STATE].update_one(
                {"_id": LEASE_ID, "holder": self._holder},
                {"$set": {"until": datetime.now(UTC)}},
            )
        except Exception as exc:
            log.debug("outbox.lease_release_failed", error=repr(exc))

    async def _restore_topics(self) -> None:
        """A broker that lost events may have lost whole topics, recreated with one partition
        by the first client that asked for them: give them their partitions back."""
        await ensure_topics(
            self._settings.kafka_bootstrap_servers,
            DOMAIN_TOPICS,
            **topic_layout(self._settings),
            client_id=f"{self._settings.service_name}-admin",
        )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        else:
            # Woken by a write: linger a moment so concurrent writes share one sweep and one
            # batch (each sweep costs several store round trips whatever its size).
            await asyncio.sleep(self._settings.outbox_linger_ms / 1000)
        self._wake.clear()

    async def _reset_clients(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception as exc:
                log.debug("outbox.producer_stop_failed", error=repr(exc))
        await self.verifier.close()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def sweep(self) -> int:
        """Append staged events to the log, then unstage them from their documents."""
        moved = 0
        for name in self._sources:
            collection = self._db[name]
            cursor = collection.find(
                {PENDING_FLAG: True}, {PENDING_FIELD: 1}, limit=self._settings.outbox_batch_size
            )
            docs = [doc async for doc in cursor]
            if not docs:
                continue
            events = [staged for doc in docs for staged in doc.get(PENDING_FIELD) or []]
            await append_to_outbox(self._db, events, retention=self._retention)
            doc_ids = [doc["_id"] for doc in docs]
            await collection.update_many(
                {"_id": {"$in": doc_ids}},
                {"$pull": {PENDING_FIELD: {"id": {"$in": [e["id"] for e in events]}}}},
            )
            await collection.update_many(
                {"_id": {"$in": doc_ids}, PENDING_FIELD: {"$size": 0}},
                {"$unset": {PENDING_FLAG: "", PENDING_FIELD: ""}},
            )
            moved += len(events)
        return moved

    async def _published_seq(self) -> int:
        cursor = await self._db[STATE].find_one({"_id": CURSOR_ID})
        return int(cursor["seq"]) if cursor else 0

    async def publish_pending(self) -> int:
        """Publish the next entries of the log in order; record where each landed."""
        published_seq = await self._published_seq()
        batch = [
            entry
            async for entry in self._db[OUTBOX]
            .find({"seq": {"$gt": published_seq}})
            .sort("seq", ASCENDING)
            .limit(self._settings.outbox_batch_size)
        ]
        if not batch:
            OUTBOX_BACKLOG.labels(self._settings.service_name).set(0)
            return 0
        producer = await self._ensure_producer()
        futures = []
        for entry in batch:
            futures.append(
                await producer.send(
                    entry["topic"],
                    value=entry["value"],
                    key=entry["key"].encode(),
                    headers=_headers(entry["event_id"], entry["type"], entry["correlation_id"]),
                )
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        placements, failure, last_seq = [], None, published_seq
        for entry, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            placements.append(
                {"e": entry["_id"], "id": entry["event_id"], "t": result.topic,
                 "p": result.partition, "o": result.offset}
            )
            if failure is None:
                last_seq = entry["seq"]
            EVENTS_PUBLISHED.labels(self._settings.service_name, entry["type"]).inc()
        await self.verifier.record(placements)
        if last_seq > published_seq:
            await self._db[STATE].update_one(
                {"_id": CURSOR_ID}, {"$max": {"seq": last_seq}}, upsert=True
            )
        OUTBOX_BACKLOG.labels(self._settings.service_name).set(
            len(batch) - (last_seq - published_seq)
        )
        if failure is not None:
            raise failure  # the rest of the batch goes again after the backoff
        return len(batch)

    async def _republish(self, placements: list[dict[str, Any]]) -> None:
        """Append copies of entries the broker lost (or that landed where no one reads)."""
        entries = {
            e["_id"]: e
            async for e in self._db[OUTBOX].find({"_id": {"$in": [p["e"] for p in placements]}})
        }
        events = [json.loads(entries[p["e"]]["value"]) for p in placements if p["e"] in entries]
        copies = [f"{event['id']}#{os.urandom(4).hex()}" for event in events]
        await append_to_outbox(self._db, events, retention=self._retention, entry_ids=copies)
        self.wake()


def record_headers(event: CloudEvent) -> list[tuple[str, bytes]]:
    """Kafka headers that let tools route and trace without parsing the value."""
    return _headers(event.id, event.type, event.correlationid)


def _headers(event_id: str, event_type: str, correlation_id: str) -> list[tuple[str, bytes]]:
    return [
        ("content-type", b"application/cloudevents+json"),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("correlation_id", correlation_id.encode()),
    ]


__all__ = [
    "OUTBOX",
    "PENDING_FIELD",
    "PENDING_FLAG",
    "OutboxRelay",
    "append_to_outbox",
    "ensure_outbox_indexes",
    "record_headers",
    "stage_insert",
    "stage_update",
    "strip_outbox_fields",
]
