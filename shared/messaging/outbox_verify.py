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
checked again. A suffix was lost, so the newest verified record still in place (found by
bisecting the verified placements) bounds what needs reading: only the records after it.
Topics are given their partitions back first (the broker recreates a lost topic with one).

After a loss the broker hands the lost offsets to new records, and a consumer whose position
was already past them skips those records without any error. So a loss also sets a "reused up
to" mark on the partition (its highest offset before the loss): every event that lands at or
below it is published again until it lands above it, where every consumer reads. The mark is
cleared once the partition's end has stayed above it, with nothing pending below it, for a
settle period.

Whatever needs publishing again is appended to the log as a copy with the same event id, and
its old placement is removed from the publication records (it will get a new one), so it is
never counted again; consumers deduplicate by id. On a durable Kafka cluster this only ever
confirms, at the cost of re-reading a few seconds of the platform's own events.

The verifier runs beside the publisher, never inside its loop: new events keep flowing while
it re-reads and republishes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
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

PUBLICATIONS = "outbox_publications"
STATE = "outbox_state"
REUSED_ID = "reused_offsets"
READ_TIMEOUT_SECONDS = 5.0
Placement = dict[str, Any]  # id: event id, t: topic, p: partition, o: offset


def _tp(placement: Placement) -> TopicPartition:
    return TopicPartition(placement["t"], placement["p"])


def _key(placement: Placement) -> tuple[str, str, int, int]:
    return placement["id"], placement["t"], placement["p"], placement["o"]


class OutboxVerifier:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: ServiceSettings,
        republish: Callable[[list[str]], Awaitable[None]],
        restore_topics: Callable[[], Awaitable[None]],
    ) -> None:
        self._db = db
        self._settings = settings
        self._republish = republish
        self._restore_topics = restore_topics
        self._settle = timedelta(seconds=settings.outbox_verify_settle_seconds)
        self._retention = timedelta(hours=settings.outbox_retention_hours)
        self._consumer: AIOKafkaConsumer | None = None
        # Highest verified offset per partition, to notice a log that went backwards.
        self._verified_high: dict[TopicPartition, int] | None = None
        # Per partition after a loss: offsets up to here were handed out twice.
        self.reused_until: dict[TopicPartition, int] = {}
        self._reused_clear_since: dict[TopicPartition, float] = {}
        # Per partition: the newest (offset, event id) this process has read back.
        self._confirmed: dict[TopicPartition, tuple[int, str]] = {}
        # Unverified publication records, kept in memory once loaded: this relay writes them.
        self._pending: list[dict[str, Any]] | None = None
        self.recorded = asyncio.Event()

    async def load(self) -> None:
        """Start afresh as the new lease holder; only the reused-offset marks carry over
        (another holder may have recovered from a loss and not be done yet)."""
        self._verified_high, self._pending = None, None
        self._confirmed.clear()
        self._reused_clear_since.clear()
        doc = await self._db[STATE].find_one({"_id": REUSED_ID}) or {}
        self.reused_until = {
            TopicPartition(topic, int(partition)): int(offset)
            for topic, partition, offset in doc.get("marks") or []
        }

    async def _save_reused(self) -> None:
        await self._db[STATE].update_one(
            {"_id": REUSED_ID},
            {"$set": {"marks": [[tp.topic, tp.partition, o] for tp, o in self.reused_until.items()]}},
            upsert=True,
        )

    @property
    def has_pending(self) -> bool:
        return self._pending is None or bool(self._pending) or bool(self.reused_until)

    async def record(self, placements: list[Placement]) -> None:
        """Remember where one round of events landed (one document per round)."""
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
        self.recorded.set()

    async def close(self) -> None:
        self._pending = None  # after an error, trust the database rather than memory
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await consumer.stop()
            except Exception as exc:
                log.debug("outbox.verifier_stop_failed", error=repr(exc))

    async def verify(self, full: bool = True) -> int:
        """One pass; returns how many events were appended again. With full=False and nothing
        pending, only the partitions' end offsets are looked at."""
        if self._verified_high is None:
            self._verified_high = await self._load_verified_high()
        if self._pending is None:
            self._pending = [
                pub
                async for pub in self._db[PUBLICATIONS]
                .find({"verified": False})
                .sort("published_at", ASCENDING)
            ]
        by_tp = self._pending_by_tp()
        partitions = set(by_tp) | set(self._verified_high)
        if not partitions:
            return 0
        reader = await self._reader()
        ends = await self._end_offsets(reader, partitions | set(self._confirmed))
        lost = any(self._verified_high.get(tp, -1) >= ends.get(tp, 0) for tp in partitions)
        if not lost and not full and not by_tp:
            return 0  # a quick look: the ends did not go back
        for tp in set(by_tp) | set(self._confirmed):
            if not lost:
                lost = not await self._confirm(reader, tp, by_tp.get(tp, []), ends.get(tp, 0))
        if lost:
            return await self._recover(reader)
        again = [
            p for tp, ps in by_tp.items() for p in ps if p["o"] <= self.reused_until.get(tp, -1)
        ]
        if again:
            await self._publish_again(again, lost=0)
        if self._clear_reused_marks(ends):
            await self._save_reused()
        await self._mark_verified()
        return len(again)

    def _pending_by_tp(self) -> dict[TopicPartition, list[Placement]]:
        by_tp: dict[TopicPartition, list[Placement]] = defaultdict(list)
        for pub in self._pending or []:
            for placement in pub["placements"]:
                by_tp[_tp(placement)].append({**placement, "pub": pub["_id"]})
        return by_tp

    def _clear_reused_marks(self, ends: dict[TopicPartition, int]) -> bool:
        """Forget a partition's reused offsets once its end has stayed above them, with
        nothing pending at or below them, for a settle period (a round in flight when the
        end was read may still land there)."""
        by_tp = self._pending_by_tp()
        now = time.monotonic()
        cleared = False
        for tp, until in list(self.reused_until.items()):
            below = any(p["o"] <= until for p in by_tp.get(tp, []))
            if ends.get(tp, 0) <= until or below:
                self._reused_clear_since.pop(tp, None)
                continue
            since = self._reused_clear_since.setdefault(tp, now)
            if now - since >= self._settle.total_seconds():
                del self.reused_until[tp]
                del self._reused_clear_since[tp]
                cleared = True
        return cleared

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

    async def _mark_verified(self) -> None:
        """Publications settled and read back in full are durable. Works on the current
        pending list: placements published again were taken out of it already."""
        assert self._pending is not None and self._verified_high is not None
        settled_before = datetime.now(UTC) - self._settle

        def confirmed(placement: Placement) -> bool:
            newest = self._confirmed.get(_tp(placement))
            return newest is not None and placement["o"] <= newest[0]

        done = [
            pub
            for pub in self._pending
            if pub["published_at"] <= settled_before and all(map(confirmed, pub["placements"]))
        ]
        if not done:
            return
        finished = {pub["_id"] for pub in done}
        await self._db[PUBLICATIONS].update_many(
            {"_id": {"$in": list(finished)}}, {"$set": {"verified": True}}
        )
        self._pending = [pub for pub in self._pending if pub["_id"] not in finished]
        for pub in done:
            for placement in pub["placements"]:
                tp = _tp(placement)
                self._verified_high[tp] = max(self._verified_high.get(tp, -1), placement["o"])

    async def _recover(self, reader: AIOKafkaConsumer) -> int:
        """The broker lost records: compare every retained publication with the log."""
        started = time.monotonic()
        log.warning("outbox.broker_lost_records")
        await self._restore_topics()
        await reader._client.force_metadata_update()
        self._confirmed.clear()
        self._pending = None
        by_tp: dict[TopicPartition, list[tuple[Placement, bool]]] = defaultdict(list)
        async for pub in self._db[PUBLICATIONS].find({}, {"placements": 1, "verified": 1}):
            for placement in pub["placements"]:
                by_tp[_tp(placement)].append(({**placement, "pub": pub["_id"]}, pub["verified"]))
        ends = await self._end_offsets(reader, set(by_tp))
        starts = await reader.beginning_offsets(list(ends)) if ends else {}
        handled: list[Placement] = []
        lost_count = 0
        high: dict[TopicPartition, int] = {}
        for tp, entries in by_tp.items():
            end, start = ends.get(tp, 0), starts.get(tp, 0)
            intact = await self._intact_below(reader, tp, entries, start, end)
            present = await self._read_ids(reader, tp, max(start, intact + 1), end)
            before = max(p["o"] for p, _ in entries)
            self.reused_until[tp] = max(self.reused_until.get(tp, -1), before)
            self._reused_clear_since.pop(tp, None)
            for placement, verified in entries:
                o = placement["o"]
                if o < start or o <= intact:
                    if verified:
                        high[tp] = max(high.get(tp, -1), o)  # in place (or aged out by retention)
                elif present.get(o) != placement["id"]:
                    handled.append(placement)
                    lost_count += 1
                elif not verified and o <= self.reused_until[tp]:
                    handled.append(placement)
                elif verified:
                    high[tp] = max(high.get(tp, -1), o)
            log.warning(
                "outbox.partition_rechecked",
                topic=tp.topic, partition=tp.partition, end=end, intact_through=intact,
            )
        self._verified_high = high
        await self._save_reused()
        await self._publish_again(handled, lost=lost_count)
        log.warning("outbox.recovery_done", seconds=round(time.monotonic() - started, 2),
                    republished=len(handled))
        return len(handled)

    async def _intact_below(
        self,
        reader: AIOKafkaConsumer,
        tp: TopicPartition,
        entries: list[tuple[Placement, bool]],
        start: int,
        end: int,
    ) -> int:
        """The highest verified offset whose record is still there (-1 if none): the broker
        lost a suffix, so everything below it is intact too. Found by bisection."""
        verified = sorted(
            (p["o"], p["id"]) for p, ok in entries if ok and start <= p["o"] < end
        )
        low, high, found = 0, len(verified) - 1, -1
        while low <= high:
            middle = (low + high) // 2
            offset, event_id = verified[middle]
            present = await self._read_ids(reader, tp, offset, offset + 1)
            if present.get(offset) == event_id:
                found, low = offset, middle + 1
            else:
                high = middle - 1
        return found

    async def _publish_again(self, placements: list[Placement], *, lost: int) -> None:
        """Append copies, then take the old placements out of their publication records
        (and out of memory), so they are never counted again."""
        if not placements:
            return
        await self._republish(list(dict.fromkeys(p["id"] for p in placements)))
        handled = {_key(p) for p in placements}
        pub_ids = list({p["pub"] for p in placements})
        emptied, changed = [], []
        for start in range(0, len(pub_ids), 500):
            async for pub in self._db[PUBLICATIONS].find({"_id": {"$in": pub_ids[start : start + 500]}}):
                remaining = [p for p in pub["placements"] if _key(p) not in handled]
                (changed if remaining else emptied).append((pub["_id"], remaining))
        for start in range(0, len(emptied), 500):
            chunk = [pub_id for pub_id, _ in emptied[start : start + 500]]
            await self._db[PUBLICATIONS].delete_many({"_id": {"$in": chunk}})
        for pub_id, remaining in changed:
            await self._db[PUBLICATIONS].update_one(
                {"_id": pub_id}, {"$set": {"placements": remaining}}
            )
        if self._pending is not None:
            for pub in self._pending:
                pub["placements"] = [p for p in pub["placements"] if _key(p) not in handled]
            self._pending = [pub for pub in self._pending if pub["placements"]]
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
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
                max_partition_fetch_bytes=4 * 1024 * 1024,
                # A topic the broker lost leaves stale metadata behind; fail fast and start over
                # with a fresh client rather than wait out aiokafka's 40 s default.
                request_timeout_ms=5_000,
                metadata_max_age_ms=30_000,
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
        deadline = loop.time() + READ_TIMEOUT_SECONDS + (end - start) / 20_000
        try:
            while loop.time() < deadline:
                records = await reader.getmany(tp, timeout_ms=200, max_records=5000)
                for record in records.get(tp, []):
                    if record.offset >= end:
                        continue
                    event_id = dict(record.headers or ()).get("ce_id")
                    if event_id is not None:
                        present[record.offset] = event_id.decode()
                if await reader.position(tp) >= end:
                    return present
        finally:
            reader.pause(tp)  # no background fetching (noida answers empty fetches at once)
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
