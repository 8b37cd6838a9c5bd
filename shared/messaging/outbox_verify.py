"""Notices when the broker lost events it had acknowledged, and has them published again.

noida-db (the embedded broker) is not crash-durable: on kill -9 it forgets roughly the last
second of acknowledged records, sometimes a whole topic, and then hands the lost offsets to
new records. Reading an event once proves nothing about whether it survives, so a batch of
publications counts as durable only when every event is still at its recorded offset, with
its own id, `settle` seconds after it was published. Until then it is re-read on each pass.

Records are read once: a broker loses a suffix of its log, so each pass re-reads only the
newest record it already confirmed on a partition (if that one is still there with its own
id, everything before it is too) plus what was published since.

A loss anywhere means the broker restarted, and it may have lost older, already verified
records too while new ones cover the gap: then every partition the log was published to is
re-checked from its start.

After a loss the broker hands the lost offsets to new records, and a consumer whose position
was already past them skips those records without any error. So a loss also sets a "reused up
to" mark on the partition (its highest offset before the loss): every event that lands at or
below it is published again until it lands above it, where every consumer reads.

Whatever needs publishing again is appended to the log as a copy with the same event id;
consumers deduplicate by id. On a durable Kafka cluster this only ever confirms, at the cost
of re-reading a few seconds of the platform's own events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.connections import kafka_options
from shared.logging import get_logger
from shared.messaging.metrics import EVENTS_REPUBLISHED
from shared.settings import ServiceSettings

log = get_logger(__name__)

PUBLICATIONS = "outbox_publications"
READ_TIMEOUT_SECONDS = 5.0
Placement = dict[str, Any]  # e: entry id, id: event id, t: topic, p: partition, o: offset


def _tp(placement: Placement) -> TopicPartition:
    return TopicPartition(placement["t"], placement["p"])


class OutboxVerifier:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: ServiceSettings,
        republish: Callable[[list[Placement]], Awaitable[None]],
    ) -> None:
        self._db = db
        self._settings = settings
        self._republish = republish
        self._settle = timedelta(seconds=settings.outbox_verify_settle_seconds)
        self._retention = timedelta(hours=settings.outbox_retention_hours)
        self._consumer: AIOKafkaConsumer | None = None
        # Highest verified offset per partition, to notice a log that went backwards.
        self._verified_high: dict[TopicPartition, int] | None = None
        # Per partition after a loss: offsets up to here were handed out twice.
        self._reused_until: dict[TopicPartition, int] = {}
        # Per partition: the newest (offset, event id) this process has read back.
        self._confirmed: dict[TopicPartition, tuple[int, str]] = {}
        # Unverified publication records, kept in memory once loaded: this relay writes them.
        self._pending: list[dict[str, Any]] | None = None

    async def record(self, placements: list[Placement]) -> None:
        """Remember where one batch of events landed (one document per batch)."""
        if not placements:
            return
        now = datetime.now(UTC)
        publication = {
            "_id": str(uuid.uuid4()),
            "placements": placements,
            "published_at": now,
            "verified": False,
            "expires_at": now + self._retention,
        }
        await self._db[PUBLICATIONS].insert_one(publication)
        if self._pending is not None:
            self._pending.append(publication)

    async def close(self) -> None:
        self._pending = None  # after an error, trust the database rather than memory
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def verify(self) -> int:
        """One pass; returns how many events were appended again."""
        if self._verified_high is None:
            self._verified_high = await self._load_verified_high()
        if self._pending is None:
            self._pending = [
                pub
                async for pub in self._db[PUBLICATIONS]
                .find({"verified": False})
                .sort("published_at", ASCENDING)
            ]
        pending = self._pending
        by_tp: dict[TopicPartition, list[Placement]] = defaultdict(list)
        for pub in pending:
            for placement in pub["placements"]:
                by_tp[_tp(placement)].append(placement)
        partitions = set(by_tp) | set(self._verified_high)
        if not partitions:
            return 0
        reader = await self._reader()
        ends = await self._end_offsets(reader, partitions | set(self._confirmed))
        went_back = any(self._verified_high.get(tp, -1) >= ends.get(tp, 0) for tp in partitions)
        lost = went_back
        for tp in set(by_tp) | set(self._confirmed):
            if not lost:
                lost = not await self._confirm(reader, tp, by_tp.get(tp, []), ends.get(tp, 0))
        if lost:
            return await self._recheck_everything(reader)
        again = [p for tp, ps in by_tp.items() for p in ps if p["o"] <= self._reused_until.get(tp, -1)]
        if again:
            await self._publish_again(again, lost=0)
        for tp in list(self._reused_until):
            if ends.get(tp, 0) > self._reused_until[tp] and not by_tp.get(tp):
                del self._reused_until[tp]
        await self._mark_verified(pending, again)
        return len(again)

    async def _confirm(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, placements: list[Placement], end: int
    ) -> bool:
        """Read what is new on a partition; False when the log lost something."""
        newest = self._confirmed.get(tp)
        start = newest[0] if newest else min(p["o"] for p in placements)
        present = await self._read_ids(reader, tp, start, end)
        if newest and present.get(newest[0]) != newest[1]:
            return False
        for placement in placements:
            if placement["o"] >= start and present.get(placement["o"]) != placement["id"]:
                return False
        if present:
            high = max(present)
            self._confirmed[tp] = (high, present[high])
        return True

    async def _mark_verified(self, pending: list[dict[str, Any]], again: list[Placement]) -> None:
        settled_before = datetime.now(UTC) - self._settle
        handled = {p["e"] for p in again}

        def confirmed(placement: Placement) -> bool:
            newest = self._confirmed.get(_tp(placement))
            return newest is not None and placement["o"] <= newest[0]

        done = [
            pub
            for pub in pending
            if pub["published_at"] <= settled_before
            and all(confirmed(p) and p["e"] not in handled for p in pub["placements"])
        ]
        if not done:
            return
        finished = {pub["_id"] for pub in done}
        self._pending = [pub for pub in pending if pub["_id"] not in finished]
        await self._db[PUBLICATIONS].update_many(
            {"_id": {"$in": [pub["_id"] for pub in done]}}, {"$set": {"verified": True}}
        )
        for pub in done:
            for placement in pub["placements"]:
                tp = _tp(placement)
                self._verified_high[tp] = max(self._verified_high.get(tp, -1), placement["o"])  # type: ignore[index]

    async def _recheck_everything(self, reader: AIOKafkaConsumer) -> int:
        """The broker lost records: compare every retained publication with the log."""
        self._confirmed.clear()
        pubs = [pub async for pub in self._db[PUBLICATIONS].find({})]
        by_tp: dict[TopicPartition, list[tuple[Placement, bool]]] = defaultdict(list)
        for pub in pubs:
            for placement in pub["placements"]:
                by_tp[_tp(placement)].append((placement, pub["verified"]))
        ends = await self._end_offsets(reader, set(by_tp))
        lost, reused, high = [], [], {}
        for tp, entries in by_tp.items():
            end = ends.get(tp, 0)
            present = await self._read_ids(reader, tp, 0, end)
            before = max(p["o"] for p, _ in entries)
            self._reused_until[tp] = max(self._reused_until.get(tp, -1), before)
            for placement, verified in entries:
                if present.get(placement["o"]) != placement["id"]:
                    lost.append(placement)
                elif not verified and placement["o"] <= self._reused_until[tp]:
                    reused.append(placement)
                elif verified:
                    high[tp] = max(high.get(tp, -1), placement["o"])
            log.warning(
                "outbox.partition_rechecked", topic=tp.topic, partition=tp.partition, end=end
            )
        self._verified_high = high
        await self._publish_again(lost + reused, lost=len(lost))
        return len(lost) + len(reused)

    async def _publish_again(self, placements: list[Placement], *, lost: int) -> None:
        if not placements:
            return
        await self._republish(placements)
        handled = [p["e"] for p in placements]
        await self._db[PUBLICATIONS].update_many(
            {"placements.e": {"$in": handled}},
            {"$pull": {"placements": {"e": {"$in": handled}}}},
        )
        self._pending = None  # reload: placements were pulled from some records
        EVENTS_REPUBLISHED.labels(self._settings.service_name).inc(len(placements))
        log.warning(
            "outbox.publishing_again",
            lost_by_broker=lost,
            at_reused_offsets=len(placements) - lost,
        )

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
                **kafka_options(self._settings),
            )
            try:
                await consumer.start()
            except Exception:
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer

    async def _end_offsets(
        self, reader: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        def known() -> list[TopicPartition]:
            return [
                tp
                for tp in partitions
                if tp.partition in (reader.partitions_for_topic(tp.topic) or set())
            ]

        found = known()
        if len(found) < len(partitions):
            # assign() narrowed the topics the client keeps metadata for to the one it read
            # last: a service publishing on two topics (its own and its audit topic) needs both.
            await reader._client.set_topics({tp.topic for tp in partitions})
            await reader._client.force_metadata_update()  # a topic may have vanished or appeared
            found = known()
        return await reader.end_offsets(found) if found else {}

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
                event_id = dict(record.headers or ()).get("ce_id")
                if event_id is not None:
                    present[record.offset] = event_id.decode()
            if await reader.position(tp) >= end:
                reader.pause(tp)  # no background fetching (noida answers empty fetches at once)
                return present
        raise KafkaError(f"timed out re-reading {tp.topic}[{tp.partition}] from {start} to {end}")

    async def _load_verified_high(self) -> dict[TopicPartition, int]:
        rows = await self._db[PUBLICATIONS].aggregate(
            [
                {"$match": {"verified": True}},
                {"$unwind": "$placements"},
                {
                    "$group": {
                        "_id": {"t": "$placements.t", "p": "$placements.p"},
                        "high": {"$max": "$placements.o"},
                    }
                },
            ]
        )
        return {TopicPartition(r["_id"]["t"], r["_id"]["p"]): r["high"] async for r in rows}
