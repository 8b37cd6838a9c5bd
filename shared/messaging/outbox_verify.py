"""Notices when the broker lost events it had acknowledged, and schedules them again.

noida-db (the embedded broker) is not crash-durable: on kill -9 it forgets roughly the last
second of acknowledged records and then hands their offsets to new records. Reading an event
once proves nothing about whether it survives, so an event counts as durable only when it is
still at its recorded offset, with its own id, `settle` seconds after it was published. Until
then the verifier re-reads it each pass. An event that is missing or replaced is marked
unpublished, and the relay publishes it again; consumers deduplicate by event id.

A partition whose end offset fell below an offset we had verified has lost more than the
recent past (a whole topic once vanished on restart): everything of that partition still in
the outbox is re-checked.

After a loss the broker hands the lost offsets to new records, and a consumer whose position
was already past them skips those new records without any error. So once a loss is seen on a
partition, its highest offset before the loss becomes a "reused up to" mark: every event that
lands at or below it is published again until it lands above it, where every consumer reads.

On a durable Kafka cluster this only ever confirms, at the cost of re-reading a few seconds of
the platform's own events.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.logging import get_logger
from shared.messaging.metrics import EVENTS_REPUBLISHED
from shared.settings import ServiceSettings

log = get_logger(__name__)

OUTBOX = "outbox"
READ_TIMEOUT_SECONDS = 5.0


class OutboxVerifier:
    def __init__(self, db: AsyncDatabase, settings: ServiceSettings) -> None:
        self._db = db
        self._settings = settings
        self._settle = timedelta(seconds=settings.outbox_verify_settle_seconds)
        self._consumer: AIOKafkaConsumer | None = None
        # Highest offset verified per partition, to notice a log that went backwards.
        self._verified_high: dict[TopicPartition, int] | None = None
        # Per partition after a loss: offsets up to here were handed out twice.
        self._reused_until: dict[TopicPartition, int] = {}

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def _reader(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                client_id=f"{self._settings.service_name}-outbox-verifier",
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=50,
                max_partition_fetch_bytes=4 * 1024 * 1024,
                # A topic the broker lost leaves stale metadata behind; fail fast and start over
                # with a fresh client rather than wait out aiokafka's 40 s default.
                request_timeout_ms=5_000,
                metadata_max_age_ms=5_000,
            )
            try:
                await consumer.start()
            except Exception:
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer

    async def verify(self) -> int:
        """One pass; returns how many events were scheduled for republication."""
        if self._verified_high is None:
            self._verified_high = await self._load_verified_high()
        pending = [
            doc
            async for doc in self._db[OUTBOX]
            .find(
                {"published": True, "verified": False},
                {"topic": 1, "partition": 1, "offset": 1, "published_at": 1},
            )
            .sort("seq", ASCENDING)
            .limit(20_000)
        ]
        by_partition: dict[TopicPartition, list[dict[str, Any]]] = defaultdict(list)
        for doc in pending:
            by_partition[TopicPartition(doc["topic"], doc["partition"])].append(doc)
        partitions = set(by_partition) | set(self._verified_high)
        if not partitions:
            return 0
        reader = await self._reader()
        ends = await self._end_offsets(reader, partitions)
        lost = 0
        for tp in partitions:
            end = ends.get(tp, 0)
            if self._verified_high.get(tp, -1) >= end:
                lost += await self._recheck_partition(reader, tp, end)
            elif by_partition.get(tp):
                lost += await self._check(reader, tp, by_partition[tp], end)
        if lost:
            # A broker that lost records lost them everywhere, older verified ones included,
            # and new records may already cover the gap: re-check every partition we used.
            everywhere = await self._partitions_in_outbox()
            ends = await self._end_offsets(reader, everywhere)
            for tp in everywhere:
                lost += await self._recheck_partition(reader, tp, ends.get(tp, 0))
        return lost

    async def _partitions_in_outbox(self) -> set[TopicPartition]:
        rows = await self._db[OUTBOX].aggregate(
            [
                {"$match": {"published": True}},
                {"$group": {"_id": {"t": "$topic", "p": "$partition"}}},
            ]
        )
        return {TopicPartition(r["_id"]["t"], r["_id"]["p"]) async for r in rows}

    async def _end_offsets(
        self, reader: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        known = {tp for tp in partitions if tp.partition in (reader.partitions_for_topic(tp.topic) or set())}
        if len(known) < len(partitions):
            await reader._client.force_metadata_update()  # a topic may have vanished or appeared
            known = {
                tp for tp in partitions if tp.partition in (reader.partitions_for_topic(tp.topic) or set())
            }
        if not known:
            return {}
        return await reader.end_offsets(list(known))

    async def _check(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, docs: list[dict[str, Any]], end: int
    ) -> int:
        start = min(doc["offset"] for doc in docs)
        present = await self._read_ids(reader, tp, start, end)
        missing = [d for d in docs if present.get(d["offset"]) != d["_id"]]
        if missing:
            await self._mark_reused(tp)
        reused_until = self._reused_until.get(tp, -1)
        settled_before = datetime.now(UTC) - self._settle
        verified, again = [], [d["_id"] for d in missing]
        for doc in docs:
            if present.get(doc["offset"]) != doc["_id"]:
                continue
            if doc["offset"] <= reused_until:
                again.append(doc["_id"])  # a consumer past this offset would never see it
            elif doc["published_at"] <= settled_before:
                verified.append(doc)
        if verified:
            await self._db[OUTBOX].update_many(
                {"_id": {"$in": [d["_id"] for d in verified]}}, {"$set": {"verified": True}}
            )
            high = max(d["offset"] for d in verified)
            self._verified_high[tp] = max(self._verified_high.get(tp, -1), high)  # type: ignore[index]
        if again:
            await self._publish_again(tp, again, lost=len(missing))
        if tp in self._reused_until and end > reused_until and not again:
            del self._reused_until[tp]
        return len(again)

    async def _mark_reused(self, tp: TopicPartition) -> None:
        """Remember the highest offset this partition had before it lost records."""
        rows = await self._db[OUTBOX].aggregate(
            [
                {"$match": {"topic": tp.topic, "partition": tp.partition}},
                {"$group": {"_id": None, "high": {"$max": "$offset"}}},
            ]
        )
        high = max([row["high"] async for row in rows if row["high"] is not None], default=-1)
        self._reused_until[tp] = max(self._reused_until.get(tp, -1), high)

    async def _publish_again(self, tp: TopicPartition, event_ids: list[str], *, lost: int) -> None:
        await self._db[OUTBOX].update_many(
            {"_id": {"$in": event_ids}}, {"$set": {"published": False, "verified": False}}
        )
        EVENTS_REPUBLISHED.labels(self._settings.service_name).inc(len(event_ids))
        log.warning(
            "outbox.publishing_again",
            topic=tp.topic,
            partition=tp.partition,
            lost_by_broker=lost,
            at_reused_offsets=len(event_ids) - lost,
        )

    async def _recheck_partition(self, reader: AIOKafkaConsumer, tp: TopicPartition, end: int) -> int:
        """Check every retained event published to this partition, verified or not."""
        log.warning("outbox.rechecking_partition", topic=tp.topic, partition=tp.partition, end=end)
        docs = [
            doc
            async for doc in self._db[OUTBOX].find(
                {"topic": tp.topic, "partition": tp.partition, "published": True},
                {"offset": 1, "verified": 1},
            )
        ]
        present = await self._read_ids(reader, tp, 0, end) if end else {}
        missing = [d for d in docs if present.get(d["offset"]) != d["_id"]]
        if missing:
            await self._mark_reused(tp)
        reused_until = self._reused_until.get(tp, -1)
        again = [d["_id"] for d in missing] + [
            d["_id"]
            for d in docs
            if present.get(d["offset"]) == d["_id"]
            and not d.get("verified")
            and d["offset"] <= reused_until
        ]
        if again:
            await self._publish_again(tp, again, lost=len(missing))
        self._verified_high[tp] = max(  # type: ignore[index]
            (d["offset"] for d in docs if d.get("verified") and d["_id"] not in again), default=-1
        )
        return len(again)

    async def _read_ids(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
    ) -> dict[int, str]:
        """Offset -> event id of the records in [start, end) of one partition."""
        present: dict[int, str] = {}
        if start >= end:
            return present
        reader.assign([tp])
        reader.seek(tp, start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_TIMEOUT_SECONDS
        while loop.time() < deadline:
            records = await reader.getmany(tp, timeout_ms=200, max_records=5000)
            for record in records.get(tp, []):
                headers = dict(record.headers or ())
                event_id = headers.get("ce_id")
                if event_id is not None:
                    present[record.offset] = event_id.decode()
            if await reader.position(tp) >= end:
                return present
        raise KafkaError(f"timed out re-reading {tp.topic}[{tp.partition}] from {start} to {end}")

    async def _load_verified_high(self) -> dict[TopicPartition, int]:
        rows = await self._db[OUTBOX].aggregate(
            [
                {"$match": {"published": True, "verified": True}},
                {"$group": {"_id": {"t": "$topic", "p": "$partition"}, "high": {"$max": "$offset"}}},
            ]
        )
        return {TopicPartition(r["_id"]["t"], r["_id"]["p"]): r["high"] async for r in rows}
