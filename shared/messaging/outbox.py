"""Transactional outbox: a state change and the events it causes are one atomic write.

Stores put the events a change causes into the changed document itself (`stage_insert` /
`stage_update`), so a single-document write records both; that is atomic on any MongoDB
deployment, replica set or not. The relay then moves staged events into the `outbox`
collection (idempotently, by event id), publishes them in order with an acks=all producer,
and records where each landed. Published events stay in the outbox for a retention horizon:
the broker is a transport, not the record, and `OutboxVerifier` republishes whatever a broker
lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import CloudEvent, spec_for
from shared.events.topics import DOMAIN_TOPICS
from shared.logging import get_logger
from shared.messaging.kafka import ensure_topics
from shared.messaging.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG
from shared.messaging.outbox_verify import OutboxVerifier
from shared.settings import ServiceSettings

log = get_logger(__name__)

PENDING_FIELD = "_pending_events"
PENDING_FLAG = "_outbox_pending"
OUTBOX = "outbox"
COUNTERS = "outbox_counters"


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
        await db[name].create_index(
            [(PENDING_FLAG, ASCENDING)], name="outbox_pending", sparse=True
        )
    outbox = db[OUTBOX]
    await outbox.create_index([("published", ASCENDING), ("seq", ASCENDING)], name="to_publish")
    await outbox.create_index(
        [("topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)], name="placement"
    )
    await outbox.create_index(
        [("published", ASCENDING), ("verified", ASCENDING)], name="to_verify"
    )
    await outbox.create_index([("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0)


class OutboxRelay:
    """Moves staged events into the outbox and publishes them; one loop per service process."""

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
        self.verifier = OutboxVerifier(db, settings)

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
                    moved = await self.sweep()
                    published = await self.publish_pending()
                    if loop.time() >= next_verify:
                        if await self.verifier.verify():
                            await self._restore_topics()
                        next_verify = loop.time() + self._settings.outbox_verify_interval_seconds
                    backoff = 0.1
                except Exception as exc:  # broker or database away: keep the events, retry
                    log.warning("outbox.relay_error", error=repr(exc), retry_in=backoff)
                    await self._reset_producer()
                    await self.verifier.close()
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not moved and not published:
                    await self._sleep(self._settings.outbox_poll_interval_ms / 1000)
        finally:
            await self._reset_producer()
            await self.verifier.close()

    async def _restore_topics(self) -> None:
        """A broker that lost events may have lost whole topics, recreated with one partition
        by the first client that asked for them: give them their partitions back."""
        await ensure_topics(
            self._settings.kafka_bootstrap_servers,
            DOMAIN_TOPICS,
            partitions=self._settings.kafka_topic_partitions,
            client_id=f"{self._settings.service_name}-admin",
        )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _reset_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception as exc:
                log.debug("outbox.producer_stop_failed", error=repr(exc))

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
        """Copy staged events into the outbox with a sequence number, then unstage them.

        Idempotent: a crash between the copy and the unstaging copies nothing twice because
        the outbox document is keyed by event id and only inserted once.
        """
        moved = 0
        for name in self._sources:
            collection = self._db[name]
            cursor = collection.find(
                {PENDING_FLAG: True}, {PENDING_FIELD: 1}, limit=self._settings.outbox_batch_size
            )
            docs = [doc async for doc in cursor]
            events = [
                (doc["_id"], staged) for doc in docs for staged in doc.get(PENDING_FIELD) or []
            ]
            if events:
                first_seq = await self._reserve_sequence(len(events))
                await self._db[OUTBOX].bulk_write(
                    [
                        UpdateOne(
                            {"_id": staged["id"]},
                            {"$setOnInsert": self._outbox_document(staged, first_seq + i)},
                            upsert=True,
                        )
                        for i, (_, staged) in enumerate(events)
                    ],
                    ordered=True,
                )
            unstage = []
            for doc in docs:
                ids = [staged["id"] for staged in doc.get(PENDING_FIELD) or []]
                unstage.append(
                    UpdateOne({"_id": doc["_id"]}, {"$pull": {PENDING_FIELD: {"id": {"$in": ids}}}})
                )
                unstage.append(
                    UpdateOne(
                        {"_id": doc["_id"], PENDING_FIELD: {"$size": 0}},
                        {"$unset": {PENDING_FLAG: "", PENDING_FIELD: ""}},
                    )
                )
            if unstage:
                await collection.bulk_write(unstage, ordered=True)
            moved += len(events)
        return moved

    async def _reserve_sequence(self, count: int) -> int:
        counter = await self._db[COUNTERS].find_one_and_update(
            {"_id": "outbox_seq"}, {"$inc": {"value": count}}, upsert=True, return_document=True
        )
        return int(counter["value"]) - count + 1

    def _outbox_document(self, staged: dict[str, Any], seq: int) -> dict[str, Any]:
        spec = spec_for(staged["type"])
        if spec is None:
            raise ValueError(f"staged event of unregistered type {staged['type']!r}")
        return {
            "seq": seq,
            "topic": spec.topic,
            "key": staged["subject"],
            "event": staged,
            "published": False,
            "verified": False,
            "created_at": datetime.now(UTC),
            "expires_at": None,
        }

    async def publish_pending(self) -> int:
        """Publish the oldest unpublished events; record partition and offset of each."""
        batch = [
            doc
            async for doc in self._db[OUTBOX]
            .find({"published": False})
            .sort("seq", ASCENDING)
            .limit(self._settings.outbox_batch_size)
        ]
        OUTBOX_BACKLOG.labels(self._settings.service_name).set(
            await self._db[OUTBOX].count_documents({"published": False}) if batch else 0
        )
        if not batch:
            return 0
        producer = await self._ensure_producer()
        futures = []
        for doc in batch:
            event = CloudEvent.model_validate(doc["event"])
            futures.append(
                await producer.send(
                    doc["topic"],
                    value=event.to_bytes(),
                    key=doc["key"].encode(),
                    headers=record_headers(event),
                )
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        now = datetime.now(UTC)
        updates, failures = [], []
        for doc, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(result)
                continue
            updates.append(
                UpdateOne(
                    {"_id": doc["_id"]},
                    {
                        "$set": {
                            "published": True,
                            "verified": False,
                            "published_at": now,
                            "partition": result.partition,
                            "offset": result.offset,
                            "expires_at": now + self._retention,
                        }
                    },
                )
            )
            EVENTS_PUBLISHED.labels(self._settings.service_name, doc["event"]["type"]).inc()
        if updates:
            await self._db[OUTBOX].bulk_write(updates, ordered=False)
        if failures:
            raise failures[0]
        return len(updates)


def record_headers(event: CloudEvent) -> list[tuple[str, bytes]]:
    """Kafka headers that let tools route and trace without parsing the value."""
    return [
        ("content-type", b"application/cloudevents+json"),
        ("ce_id", event.id.encode()),
        ("ce_type", event.type.encode()),
        ("correlation_id", event.correlationid.encode()),
    ]
