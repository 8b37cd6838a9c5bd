"""The idempotent event consumer every service runs (one consumer group per service).

A batch of records is applied in one MongoDB transaction together with its inbox record (the
ids of the events it applied, one document per batch) and the partition offsets, so an
effect, the fact that it was applied and the position of the consumer can never disagree.
Redelivered events are skipped by id (a unique multikey index on the ids makes two replicas
applying the same event at once conflict instead); offsets kept in the service's own database
survive a broker that forgot its committed offsets, and are restored with `seek` when
partitions are assigned. One inbox document per batch rather than per event: on the embedded
document store a write costs per document, and this was one write per consumed event.

An event that cannot be decoded, is of an unknown type, or keeps failing goes to the
service's dead-letter topic with the reason and its original topic/partition/offset in
headers, and the partition moves on. An unreachable database is not the event's fault: that
is retried until it returns, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from shared.connections import kafka_options
from shared.events import CloudEvent, EventRejected, decode_event, spec_for
from shared.events.topics import dead_letter_topic
from shared.logging import bind_correlation_id, get_logger
from shared.messaging.assignor import assignment_strategy
from shared.messaging.kafka import ensure_topics, topic_layout
from shared.messaging.metrics import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    HANDLER_ERRORS,
)
from shared.messaging.writes import Writes
from shared.settings import ServiceSettings

log = get_logger(__name__)

INBOX_BATCHES = "inbox_batches"  # {_id, ids: [applied or dead-lettered], dead: [...], applied_at}
LEGACY_INBOX = "inbox"  # one document per event ({_id: event id}), written by earlier versions
FETCH_WINDOW_MS = 5
OFFSETS = "consumer_offsets"
WRITE_CONFLICT = 112
LEGACY_CHECK_SECONDS = 3600.0
QUIET_SECONDS = 2.0  # without records for this long, an idle consumer starts polling less
UNDECODABLE = "<undecodable>"
UNKNOWN_TYPE = "<unknown type>"


class UnitOfWork:
    """The writes handlers make for one batch, flushed in order inside its transaction.

    Buffered writes become visible to reads only after `flush()`; a handler that reads what
    an earlier event of the same batch wrote calls it first. Besides pymongo operations, a
    handler may add `Ensure` and `Update` writes, which the batch combines where the result
    is the same (`shared.messaging.writes`).
    """

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession) -> None:
        self.db = db
        self.session = session
        self._writes = Writes()
        self._increments: dict[tuple[str, str], tuple[dict[str, int], dict[str, Any]]] = {}

    def add(self, collection: str, operation: Any) -> None:
        self._writes.add(collection, operation)

    def increment(
        self, collection: str, doc_id: str, counts: dict[str, int], fields: dict[str, Any]
    ) -> None:
        """Add to counters of one document; a batch writes each document once.

        Projections are mostly counters of a few documents; merging a batch's increments
        turns hundreds of updates of the same document into one.
        """
        merged, known = self._increments.setdefault((collection, doc_id), ({}, {}))
        for name, value in counts.items():
            merged[name] = merged.get(name, 0) + value
        known.update(fields)

    async def flush(self) -> None:
        for (collection, doc_id), (counts, fields) in self._increments.items():
            self._writes.add(
                collection, UpdateOne({"_id": doc_id}, {"$inc": counts, "$set": fields}, upsert=True)
            )
        self._increments = {}
        # One bulk write per collection, each collection's writes in the order they were
        # added. Writes to different collections never depend on each other's order, and a
        # batch whose handlers alternate collections (a person, then their deliveries, then
        # the next person) would otherwise cost a round trip per write: 3,008 update commands
        # for 3,000 registrations in notifications.
        for name, writes in self._writes.take().items():
            await self.db[name].bulk_write(writes, ordered=True, session=self.session)


Handler = Callable[[CloudEvent, BaseModel, UnitOfWork], Awaitable[None]]


@dataclass
class _Item:
    record: ConsumerRecord
    event: CloudEvent | None = None
    payload: BaseModel | None = None
    outcome: str = "apply"  # apply | duplicate | ignored | dead_letter
    reason: str = ""
    sent_to_dead_letter: bool = False
    label: str = UNDECODABLE  # the type for metrics: the real one whenever it can be read
    why: str = ""  # undecodable | unknown_type | newer_version | invalid | handler_failed

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.record.topic, self.record.partition)


@dataclass
class _Batch:
    items: list[_Item] = field(default_factory=list)


def is_infrastructure_error(exc: BaseException) -> bool:
    """Errors that say the database is away, not that the event is bad."""
    if isinstance(exc, ConnectionFailure):
        return True
    if isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError"):
        return True
    return isinstance(exc, OperationFailure) and exc.code == WRITE_CONFLICT


async def ensure_consumer_indexes(db: AsyncDatabase, settings: ServiceSettings) -> None:
    retention = int(timedelta(hours=settings.inbox_retention_hours).total_seconds())
    await db[INBOX_BATCHES].create_index(
        [("ids", ASCENDING)], name="event_ids", unique=True, sparse=True
    )
    await db[INBOX_BATCHES].create_index(
        [("applied_at", ASCENDING)], name="retention", expireAfterSeconds=retention
    )
    await db[LEGACY_INBOX].create_index(
        [("applied_at", ASCENDING)], name="retention", expireAfterSeconds=retention
    )


async def record_applied(
    db: AsyncDatabase,
    event_ids: Sequence[str],
    *,
    dead_lettered: Sequence[str] = (),
    session: AsyncClientSession | None = None,
) -> None:
    """Remember events as applied (or dead-lettered): one inbox document for all of them.
    For tools that apply events outside the consumer (a projection rebuilt from the log)."""
    ids = list(dict.fromkeys([*event_ids, *dead_lettered]))
    if not ids:
        return
    await db[INBOX_BATCHES].insert_one(
        {"_id": str(uuid.uuid4()), "ids": ids, "dead": list(dead_lettered),
         "applied_at": datetime.now(UTC)},
        session=session,
    )


async def applied_ids(
    db: AsyncDatabase, event_ids: Sequence[str], *, legacy: bool = True
) -> set[str]:
    """Which of these events were applied or dead-lettered already (inbox of any version)."""
    wanted = list(dict.fromkeys(event_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        async for doc in db[INBOX_BATCHES].find({"ids": {"$in": chunk}}, {"ids": 1}):
            found.update(doc["ids"])
        if legacy:  # two queries, not one $or: SecantusDB plans $or as a collection scan
            async for doc in db[LEGACY_INBOX].find({"_id": {"$in": chunk}}, {"_id": 1}):
                found.add(doc["_id"])
    return found & set(wanted)


async def inbox_outcome(db: AsyncDatabase, event_id: str) -> str | None:
    """'apply' or 'dead_letter' once an event was handled, else None."""
    doc = await db[INBOX_BATCHES].find_one({"ids": event_id}, {"dead": 1})
    if doc is not None:
        return "dead_letter" if event_id in (doc.get("dead") or []) else "apply"
    legacy = await db[LEGACY_INBOX].find_one({"_id": event_id}, {"outcome": 1})
    return legacy.get("outcome", "apply") if legacy else None


class _OffsetRestorer(ConsumerRebalanceListener):
    """Seeks newly assigned partitions to the offsets stored with the effects."""

    def __init__(self, owner: EventConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Effects and offsets are committed together per batch: nothing to flush here.
        log.info("consumer.partitions_revoked", partitions=[str(tp) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._owner.restore_positions(list(assigned))


class EventConsumer:
    def __init__(
        self,
        *,
        db: AsyncDatabase,
        settings: ServiceSettings,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        producer_factory: Callable[[], Any],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._topics = list(topics)
        self._handlers = dict(handlers)
        self._producer_factory = producer_factory
        self._after_commit = after_commit
        self._service = settings.service_name
        self._dlq_topic = dead_letter_topic(self._service)
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: Any = None
        self._stopping = False
        self.assigned: set[TopicPartition] = set()
        self._indexes_ready = False
        self._background: set[asyncio.Task[None]] = set()
        self._legacy_inbox = True  # until looked at: an upgraded service may still have one
        self._next_legacy_check = 0.0

    def stop(self) -> None:
        """Ask the loop to finish its batch and leave the group (never cancel a fetch)."""
        self._stopping = True

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                await self._start()
                backoff = 0.2
                await self._loop()
            except Exception as exc:
                log.warning("consumer.error", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await self._shutdown()

    async def _start(self) -> None:
        if not self._indexes_ready:
            await ensure_consumer_indexes(self._db, self._settings)
            self._indexes_ready = True
        await ensure_topics(
            self._settings.kafka_bootstrap_servers,
            [*self._topics, self._dlq_topic],
            **topic_layout(self._settings),
            client_id=f"{self._service}-admin",
            **kafka_options(self._settings),
        )
        self._dlq_producer = self._producer_factory()
        await self._dlq_producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._service,
            group_instance_id=self._settings.group_instance_id,
            client_id=f"{self._service}-consumer",
            partition_assignment_strategy=assignment_strategy(self._settings.group_instance_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(1000, self._settings.kafka_session_timeout_ms // 4),
            fetch_max_wait_ms=50,
            max_poll_records=1000,
            # Notice within seconds when a topic's partitions change (a broker that lost a
            # topic recreates it smaller, and the relay grows it back); the default is 5 min.
            metadata_max_age_ms=5_000,
            **kafka_options(self._settings),
        )
        self._consumer.subscribe(self._topics, listener=_OffsetRestorer(self))
        await self._consumer.start()
        log.info("consumer.started", topics=self._topics, group=self._service)

    async def _shutdown(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._dlq_producer = self._dlq_producer, None
        for client in (consumer, producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:
                    log.debug("consumer.stop_failed", error=repr(exc))
        self.assigned.clear()

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        loop = asyncio.get_running_loop()
        shortest = self._settings.consumer_idle_poll_ms / 1000
        longest = max(shortest, self._settings.consumer_idle_poll_max_ms / 1000)
        idle_pause = shortest
        last_records = loop.time()
        next_lag = 0.0
        while not self._stopping:
            records = await consumer.getmany(timeout_ms=FETCH_WINDOW_MS, max_records=1000)
            if records:
                # No fetching while the batch is applied: noida-db answers a fetch of a drained
                # partition at once, so aiokafka's fetcher would spin on the idle partitions for
                # as long as the batch's transaction takes (70 % of notifications' CPU while it
                # caught up on a roster import). The next fetch starts when the batch is done.
                consumer.pause(*consumer.assignment())
                try:
                    await self.process([r for batch in records.values() for r in batch])
                finally:
                    consumer.resume(*consumer.paused())
                await self._record_lag(records.keys())
                idle_pause, last_records = shortest, loop.time()
                await asyncio.sleep(0)  # requests get the loop between batches of a catch-up
                continue
            if loop.time() >= next_lag:
                # The lag gauge moves when nothing arrives too (a stalled partition, a consumer
                # that caught up): from the partitions' end offsets, now and then.
                next_lag = loop.time() + self._settings.consumer_lag_interval_seconds
                await self._record_lag(consumer.assignment(), fetch_ends=True)
            # noida-db answers an empty fetch at once instead of holding it for
            # fetch_max_wait_ms, and aiokafka's fetcher then spins (~80% of a core per idle
            # consumer). Pausing the partitions between short fetch windows keeps an idle
            # consumer near zero; after a couple of quiet seconds the pause grows, up to
            # consumer_idle_poll_max_ms of latency for the first event after a quiet spell
            # (a steady stream, even a slow one, keeps the short pause).
            consumer.pause(*consumer.assignment())
            await asyncio.sleep(idle_pause)
            if loop.time() - last_records > QUIET_SECONDS:
                idle_pause = min(longest, idle_pause * 2)
            consumer.resume(*consumer.paused())

    async def restore_positions(self, assigned: list[TopicPartition]) -> None:
        assert self._consumer is not None
        self.assigned = set(assigned)
        if not assigned:
            return
        stored = {
            doc["_id"]: doc["offset"]
            async for doc in self._db[OFFSETS].find(
                {"_id": {"$in": [_offset_key(tp) for tp in assigned]}}
            )
        }
        consumer = self._consumer
        if consumer is None:
            return  # stopped while the offsets were read (a rebalance during shutdown)
        ends = await consumer.end_offsets(assigned)
        went_back = False
        for tp in assigned:
            last = stored.get(_offset_key(tp))
            if last is None:
                continue
            if last + 1 <= ends[tp]:
                consumer.seek(tp, last + 1)
            else:
                # The broker's log is shorter than what we applied: it lost records. Read the
                # partition again from the start; the inbox skips what was applied already.
                log.warning("consumer.log_went_backwards", tp=str(tp), stored=last, end=ends[tp])
                await consumer.seek_to_beginning(tp)
                went_back = True
        if went_back:
            # It may have lost whole topics too, recreated with one partition by whoever asked
            # first: this service's dead-letter topic included.
            task = asyncio.create_task(self._restore_topics())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        log.info("consumer.positions_restored", partitions=len(assigned), from_db=len(stored))

    async def _restore_topics(self) -> None:
        try:
            await ensure_topics(
                self._settings.kafka_bootstrap_servers,
                [*self._topics, self._dlq_topic],
                **topic_layout(self._settings),
                client_id=f"{self._service}-admin",
            )
        except Exception as exc:
            log.warning("consumer.topics_not_restored", error=repr(exc))

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply a batch of records (public for tests that feed records directly)."""
        batch = _Batch([self._decode(r) for r in records])
        await self._skip_applied(batch)
        try:
            await self._retry_infrastructure(lambda: self._commit(batch.items))
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            log.warning("consumer.batch_failed_isolating", error=repr(exc), size=len(batch.items))
            for item in batch.items:
                await self._process_alone(item)
        for item in batch.items:
            EVENTS_CONSUMED.labels(self._service, item.label, item.outcome).inc()
            if item.outcome == "dead_letter":
                EVENTS_DEAD_LETTERED.labels(self._service, item.label, item.why).inc()
        if self._after_commit is not None:
            self._after_commit()

    def _decode(self, record: ConsumerRecord) -> _Item:
        item = _Item(record)
        try:
            item.event, item.payload = decode_event(record.value)
        except EventRejected as exc:
            item.outcome, item.reason = "dead_letter", str(exc)
            item.label, item.why = _rejected_kind(record.value, str(exc))
            return item
        item.label = item.event.type
        if item.event.type not in self._handlers:
            item.outcome = "ignored"
        return item

    async def _skip_applied(self, batch: _Batch) -> None:
        ids = [i.event.id for i in batch.items if i.event is not None and i.outcome != "dead_letter"]
        if not ids:
            return
        seen = await applied_ids(self._db, ids, legacy=await self._legacy_inbox_exists())
        for item in batch.items:
            if item.event is None or item.outcome == "dead_letter":
                continue
            if item.event.id in seen:
                item.outcome = "duplicate"
            seen.add(item.event.id)  # the same event twice in one batch applies once

    async def _process_alone(self, item: _Item) -> None:
        attempts = self._settings.consumer_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._retry_infrastructure(lambda: self._commit([item]))
                return
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                HANDLER_ERRORS.labels(self._service, item.event.type if item.event else "?").inc()
                log.warning("consumer.handler_failed", attempt=attempt, error=repr(exc))
                if attempt == attempts:
                    item.outcome, item.why = "dead_letter", "handler_failed"
                    item.reason = f"handler failed {attempts} times: {exc!r}"[:2000]
                    await self._retry_infrastructure(lambda: self._commit([item]))
                    return
                await asyncio.sleep(self._settings.consumer_retry_backoff_ms / 1000 * 2 ** (attempt - 1))

    async def _retry_infrastructure(self, action: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.1
        while True:
            try:
                await action()
                return
            except Exception as exc:
                if not is_infrastructure_error(exc) or self._stopping:
                    raise
                log.warning("consumer.database_unavailable", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _commit(self, items: list[_Item]) -> None:
        try:
            await self._commit_once(items)
        except (DuplicateKeyError, BulkWriteError) as exc:
            if not _duplicate_key(exc):
                raise
            # Some event was applied meanwhile (another replica during a rebalance, or a
            # commit whose reply was lost): that is a duplicate, not a failing handler.
            await self._skip_applied(_Batch(items))
            await self._commit_once(items)

    async def _commit_once(self, items: list[_Item]) -> None:
        for item in items:
            if item.outcome == "dead_letter" and not item.sent_to_dead_letter:
                await self._dead_letter(item)
        async with self._db.client.start_session() as session:
            async with await session.start_transaction():
                uow = UnitOfWork(self._db, session)
                for item in items:
                    if item.outcome == "apply":
                        assert item.event is not None and item.payload is not None
                        bind_correlation_id(item.event.correlationid)
                        await self._handlers[item.event.type](item.event, item.payload, uow)
                        log.debug("event.applied", type=item.event.type, event_id=item.event.id)
                await uow.flush()
                handled = [i for i in items if i.event is not None]
                await record_applied(
                    self._db,
                    [i.event.id for i in handled if i.outcome == "apply"],  # type: ignore[union-attr]
                    dead_lettered=[i.event.id for i in handled if i.outcome == "dead_letter"],  # type: ignore[union-attr]
                    session=session,
                )
                await self._store_offsets(items, session)
        await self._commit_to_kafka(items)

    async def _store_offsets(self, items: list[_Item], session: AsyncClientSession) -> None:
        last: dict[TopicPartition, int] = {}
        for item in items:
            last[item.tp] = max(last.get(item.tp, -1), item.record.offset)
        await self._db[OFFSETS].bulk_write(
            [
                UpdateOne(
                    {"_id": _offset_key(tp)},
                    {"$set": {"offset": offset, "group": self._service}},
                    upsert=True,
                )
                for tp, offset in last.items()
            ],
            ordered=False,
            session=session,
        )

    async def _commit_to_kafka(self, items: list[_Item]) -> None:
        """Best effort: the database holds the truth; Kafka's copy serves lag tooling."""
        if self._consumer is None:
            return
        last: dict[TopicPartition, int] = {}
        for item in items:
            if item.tp in self.assigned:
                last[item.tp] = max(last.get(item.tp, -1), item.record.offset + 1)
        if not last:
            return
        try:
            await self._consumer.commit(last)
        except Exception as exc:
            log.debug("consumer.kafka_commit_failed", error=repr(exc))

    async def _dead_letter(self, item: _Item) -> None:
        record = item.record
        headers = list(record.headers or ()) + [
            ("dlq_reason", item.reason.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_service", self._service.encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self._dlq_producer.send_and_wait(
            self._dlq_topic, value=record.value, key=record.key, headers=headers
        )
        item.sent_to_dead_letter = True
        log.warning(
            "consumer.dead_lettered",
            reason=item.reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    async def _legacy_inbox_exists(self) -> bool:
        """Whether per-event inbox documents of an earlier version remain (they expire with
        the inbox retention): only then is the second look-up worth its cost."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_legacy_check:
            self._next_legacy_check = loop.time() + LEGACY_CHECK_SECONDS
            self._legacy_inbox = await self._db[LEGACY_INBOX].estimated_document_count() > 0
        return self._legacy_inbox

    async def _record_lag(self, partitions: Any, *, fetch_ends: bool = False) -> None:
        if self._consumer is None:
            return
        partitions = list(partitions)
        ends: dict[TopicPartition, int] = {}
        if fetch_ends and partitions:
            try:
                ends = await self._consumer.end_offsets(partitions)
            except Exception as exc:
                log.debug("consumer.end_offsets_failed", error=repr(exc))
                return
        for tp in partitions:
            high = ends.get(tp, self._consumer.highwater(tp)) if self._consumer else None
            if high is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except Exception:
                continue
            CONSUMER_LAG.labels(self._service, tp.topic, str(tp.partition)).set(max(0, high - position))


def _rejected_kind(value: bytes | None, reason: str) -> tuple[str, str]:
    """(type label, reason kind) of a record that could not be used: its real type whenever
    the value is a JSON object naming one; `<undecodable>` only when it is not."""
    try:
        document = json.loads(value or b"")
    except (UnicodeDecodeError, ValueError):
        return UNDECODABLE, "undecodable"
    kind = document.get("type") if isinstance(document, dict) else None
    if not isinstance(kind, str) or not kind:
        return UNDECODABLE, "undecodable"
    if spec_for(kind) is None:
        return UNKNOWN_TYPE, "unknown_type"
    if "newer than the supported" in reason:
        return kind, "newer_version"
    return kind, "invalid"


def _duplicate_key(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    errors = (getattr(exc, "details", None) or {}).get("writeErrors", [])
    return bool(errors) and all(e.get("code") == 11000 for e in errors)


def _offset_key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"

