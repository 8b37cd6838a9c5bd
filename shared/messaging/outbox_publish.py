"""Publishes the outbox log in order and knows how much of it is still unpublished.

The position is one document (`cursor`: the last log document fully published, and how many
events of the next one were). Each round reads a few log documents by number (SecantusDB
materialises every match of a query before applying a limit, so an open-ended "everything
after the cursor" would cost the whole backlog on each round), sends their events with an
acks=all producer, records where each landed (one publication document per round, for the
verifier) and moves the cursor.

A number reserved but never written (an append that failed) leaves a gap: the publisher waits
`outbox_gap_grace_seconds` for it to appear, then moves past it with a warning.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.logging import get_logger
from shared.messaging.metrics import EVENTS_PUBLISHED
from shared.messaging.outbox_lease import STATE
from shared.messaging.outbox_log import OUTBOX, Appended, entries_of, last_reserved, staged_ns_of
from shared.settings import ServiceSettings

log = get_logger(__name__)

CURSOR_ID = "cursor"
MAX_DOCS_PER_ROUND = 1000


class LogBacklog:
    """Unpublished log documents this relay knows of: number -> (events, staged ns)."""

    def __init__(self) -> None:
        self._docs: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._through = (0, 0)  # published: documents up to seq, plus `skip` events of the next

    def reset(self, seq: int, skip: int) -> None:
        self._docs.clear()
        self._through = (seq, skip)

    def add(self, seq: int, count: int, staged_ns: int) -> None:
        if seq <= self._through[0] or seq in self._docs:
            return
        self._docs[seq] = (count, staged_ns)
        if len(self._docs) > 1 and seq < next(reversed(self._docs)):
            self._docs = OrderedDict(sorted(self._docs.items()))

    def appended(self, documents: list[Appended]) -> None:
        for doc in documents:
            self.add(doc.seq, doc.count, doc.staged_ns)

    def published_through(self, seq: int, skip: int) -> None:
        self._through = (seq, skip)
        while self._docs and next(iter(self._docs)) <= seq:
            self._docs.popitem(last=False)

    def caught_up(self) -> None:
        self._docs.clear()

    @property
    def count(self) -> int:
        done, skip = self._through
        total = sum(count for count, _ in self._docs.values())
        if skip and done + 1 in self._docs:
            total -= min(skip, self._docs[done + 1][0])
        return max(0, total)

    @property
    def oldest_ns(self) -> int | None:
        return min((staged for _, staged in self._docs.values()), default=None)


def _headers(event_id: str, event_type: str, correlation_id: str) -> list[tuple[str, bytes]]:
    return [
        ("content-type", b"application/cloudevents+json"),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("correlation_id", correlation_id.encode()),
    ]


class Publisher:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: ServiceSettings,
        producer_factory: Callable[[], AIOKafkaProducer],
        record: Callable[[list[dict[str, Any]]], Any],
        before_producer: Callable[[], Any],
        *,
        on_broker_went_back: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._producer_factory = producer_factory
        self._record = record
        self._before_producer = before_producer
        self._producer: AIOKafkaProducer | None = None
        self.backlog = LogBacklog()
        self.cursor = (0, 0)
        self._docs_per_round = 8
        self._gap: tuple[int, float] | None = None  # (first missing seq, first seen)
        self._high: dict[TopicPartition, int] = {}
        self._on_broker_went_back = on_broker_went_back

    async def load(self) -> None:
        doc = await self._db[STATE].find_one({"_id": CURSOR_ID}) or {}
        self.cursor = (int(doc.get("seq", 0)), int(doc.get("skip", 0)))
        self.backlog.reset(*self.cursor)
        self._gap = None

    async def scan_backlog(self) -> None:
        """Learn the unpublished documents left by a previous holder (in small windows)."""
        top = await last_reserved(self._db)
        start = self.cursor[0]
        while start < top:
            async for doc in self._db[OUTBOX].find({"seq": {"$gt": start, "$lte": start + 50}}):
                self.backlog.add(int(doc["seq"]), len(entries_of(doc)), staged_ns_of(doc))
            start += 50
            await asyncio.sleep(0)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception as exc:
                log.debug("outbox.producer_stop_failed", error=repr(exc))

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await self._before_producer()  # topics with their partitions, before any send
            producer = self._producer_factory()
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _read_window(self) -> list[dict[str, Any]]:
        done, _ = self.cursor
        docs = [
            doc
            async for doc in self._db[OUTBOX]
            .find({"seq": {"$gt": done, "$lte": done + self._docs_per_round}})
            .sort("seq", ASCENDING)
        ]
        contiguous = []
        for doc in docs:
            if int(doc["seq"]) != done + 1 + len(contiguous):
                break
            contiguous.append(doc)
        if docs and not contiguous:
            await self._at_gap(done + 1, int(docs[0]["seq"]) - 1)
        elif not docs and await last_reserved(self._db) > done:
            await self._at_gap(done + 1, None)
        else:
            self._gap = None
        return contiguous

    async def _at_gap(self, first: int, last: int | None) -> None:
        """Numbers reserved but not (yet) written: wait a little, then move past them."""
        now = time.monotonic()
        if self._gap is None or self._gap[0] != first:
            self._gap = (first, now)
            return
        if now - self._gap[1] < self._settings.outbox_gap_grace_seconds:
            return
        if last is None:
            last = await last_reserved(self._db)
        log.warning("outbox.sequence_gap_skipped", first=first, last=last)
        self._gap = None
        await self._move_cursor(last, 0)

    async def publish_round(self) -> int:
        """Publish the next events of the log; how many were sent."""
        docs = await self._read_window()
        if not docs:
            if self._gap is None:
                self.backlog.caught_up()
            return 0
        for doc in docs:
            self.backlog.add(int(doc["seq"]), len(entries_of(doc)), staged_ns_of(doc))
        limit = max(1, self._settings.outbox_batch_size)
        batch: list[tuple[int, int, dict[str, Any]]] = []  # (seq, index, entry)
        _, skip = self.cursor
        for position, doc in enumerate(docs):
            entries = entries_of(doc)
            first = skip if position == 0 else 0
            for index in range(first, len(entries)):
                batch.append((int(doc["seq"]), index, entries[index]))
            if len(batch) >= limit:
                break
        total = sum(len(entries_of(d)) for d in docs)
        if total < limit // 2:
            self._docs_per_round = min(MAX_DOCS_PER_ROUND, self._docs_per_round * 2)
        elif total > limit * 2:
            self._docs_per_round = max(1, self._docs_per_round // 2)
        if not batch:
            await self._move_cursor(int(docs[-1]["seq"]), 0)
            return 0
        return await self._send(batch, {int(d["seq"]): len(entries_of(d)) for d in docs})

    async def _send(self, batch: list[tuple[int, int, dict[str, Any]]], sizes: dict[int, int]) -> int:
        producer = await self._ensure_producer()
        futures = []
        for _, _, entry in batch:
            futures.append(
                await producer.send(
                    entry["topic"],
                    value=entry["value"],
                    key=entry["key"].encode(),
                    headers=_headers(entry["id"], entry["type"], entry["correlation_id"]),
                )
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        placements, failure = [], None
        through = self.cursor
        for (seq, index, entry), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            placements.append(
                {"id": entry["id"], "t": result.topic, "p": result.partition, "o": result.offset}
            )
            tp = TopicPartition(result.topic, result.partition)
            if result.offset < self._high.get(tp, -1):
                self._on_broker_went_back()  # the broker lost its log: the verifier looks now
            self._high[tp] = max(self._high.get(tp, -1), result.offset)
            EVENTS_PUBLISHED.labels(self._settings.service_name, entry["type"]).inc()
            if failure is None:
                through = (seq, 0) if index + 1 == sizes[seq] else (seq - 1, index + 1)
        await self._record(placements)
        if through != self.cursor:
            await self._move_cursor(*through)
        if failure is not None:
            raise failure  # the rest goes again after the backoff
        return len(batch)

    async def _move_cursor(self, seq: int, skip: int) -> None:
        await self._db[STATE].update_one(
            {"_id": CURSOR_ID}, {"$set": {"seq": seq, "skip": skip}}, upsert=True
        )
        self.cursor = (seq, skip)
        self.backlog.published_through(seq, skip)
