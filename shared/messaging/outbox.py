"""Transactional outbox: a state change and the events it causes are one atomic write.

Stores put the events a change causes into the changed document itself (`stage_insert` /
`stage_update`), with a staging mark, so a single-document write records both; that is atomic
on any MongoDB deployment, replica set or not. The relay then, in tasks of its own:

1. sweeps staged events into the `outbox` log, a few documents per batch ordered by `seq`,
   without writing the changed documents on the way (`outbox_staging`); the events are
   removed from them later, when the relay has nothing else to do;
2. publishes the log in order with an acks=all producer, recording per round where each
   event landed and how far it got (`outbox_publish`);
3. has `OutboxVerifier` check, beside publishing, that the broker still holds what it
   acknowledged, appending copies of anything it lost (`outbox_verify`).

Only the relay holding a lease publishes (`outbox_lease`), so replicas of a service never
publish the same log twice. Entries stay for a retention horizon: the broker is a transport,
not the record. While idle the relay polls rarely (a write in this process wakes it at once);
`backlog()` and `wait_below()` tell how much is waiting, for a large import to pace itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.connections import kafka_options
from shared.events import CloudEvent
from shared.events.topics import ALL_TOPICS, dead_letter_topic
from shared.logging import get_logger
from shared.messaging.kafka import ensure_topics, topic_layout
from shared.messaging.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from shared.messaging.outbox_lease import STATE, Lease, LeaseLost
from shared.messaging.outbox_log import (
    OUTBOX,
    STAGED_KEY,
    Appended,
    append_to_outbox,
    events_in_log,
)
from shared.messaging.outbox_publish import CURSOR_ID, Publisher, _headers
from shared.messaging.outbox_staging import (
    PENDING_FIELD,
    PENDING_FLAG,
    StagingSweeper,
    staging_mark,
)
from shared.messaging.outbox_verify import PUBLICATIONS, OutboxVerifier
from shared.settings import ServiceSettings

log = get_logger(__name__)

IDLE_CHECK_SECONDS = 2.0
QUIET_BEFORE_CLEANING_SECONDS = 1.0
QUIET_SECONDS = 2.0  # after this long without work, idle polling slows down
IDLE_VERIFY_SECONDS = 10.0
TOPIC_CHECK_SECONDS = 30.0
STANDBY_POLL_SECONDS = 1.0


def _staged(events: Iterable[CloudEvent], mark: int) -> list[dict[str, Any]]:
    return [{**event.model_dump(mode="json"), STAGED_KEY: mark} for event in events]


def stage_insert(document: dict[str, Any], events: Sequence[CloudEvent]) -> dict[str, Any]:
    """The document to insert, carrying the events its creation causes."""
    if not events:
        return document
    mark = staging_mark()
    return {**document, PENDING_FIELD: _staged(events, mark), PENDING_FLAG: mark}


def stage_update(update: dict[str, Any], events: Sequence[CloudEvent]) -> dict[str, Any]:
    """An update document that also appends the events this change causes."""
    if not events:
        return update
    mark = staging_mark()
    staged = dict(update)
    staged["$push"] = {**update.get("$push", {}), PENDING_FIELD: {"$each": _staged(events, mark)}}
    staged["$set"] = {**update.get("$set", {}), PENDING_FLAG: mark}
    return staged


# The projection of reads that return whole documents: a busy document carries every event
# staged since the cleaner last passed it (the cleaner waits for a quiet moment; a mentorship
# played through its months carried up to 31), which each read would decode and throw away.
WITHOUT_OUTBOX = {PENDING_FIELD: 0, PENDING_FLAG: 0}


def strip_outbox_fields(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored document without the outbox bookkeeping, for reading code."""
    if document is None:
        return None
    return {k: v for k, v in document.items() if k not in (PENDING_FIELD, PENDING_FLAG)}


async def ensure_outbox_indexes(db: AsyncDatabase, source_collections: Iterable[str]) -> None:
    for name in source_collections:
        await db[name].create_index([(PENDING_FLAG, ASCENDING)], name="outbox_pending", sparse=True)
    await db[OUTBOX].create_index([("seq", ASCENDING)], name="log_order", unique=True)
    await db[OUTBOX].create_index([("ids", ASCENDING)], name="event_ids", sparse=True)
    await db[OUTBOX].create_index([("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0)
    await db[PUBLICATIONS].create_index([("verified", ASCENDING)], name="to_verify")
    await db[PUBLICATIONS].create_index(
        [("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0
    )


async def read_backlog(db: AsyncDatabase) -> dict[str, Any]:
    """The backlog the lease holder last reported (for tools outside the service)."""
    lease = await db[STATE].find_one({"_id": "lease"}, {"report": 1}) or {}
    return lease.get("report") or {}


class _Waker:
    """An event a task waits on with a timeout, for work that someone else signals."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
            woken = True
        except TimeoutError:
            woken = False
        self._event.clear()
        return woken


class OutboxRelay:
    """Moves staged events into the log, publishes it, and has it verified."""

    def __init__(
        self,
        db: AsyncDatabase,
        settings: ServiceSettings,
        source_collections: Sequence[str],
        producer_factory: Callable[[], AIOKafkaProducer],
    ) -> None:
        self._db = db
        self._settings = settings
        self._service = settings.service_name
        self._retention = timedelta(hours=settings.outbox_retention_hours)
        self._stopping = False
        self._append_lock = asyncio.Lock()
        self.lease = Lease(db, settings.outbox_lease_seconds, self)
        self.sweeper = StagingSweeper(db, source_collections, settings, self._append)
        self.verifier = OutboxVerifier(db, settings, self._republish, self._restore_topics)
        self.publisher = Publisher(
            db, settings, producer_factory, self._record_published, self._restore_topics,
            on_broker_went_back=self._look_now,
        )
        self._sweep_wake = _Waker()
        self._publish_wake = _Waker()
        self._verify_wake = _Waker()
        self._stopped = asyncio.Event()
        self._backlog_changed = asyncio.Event()
        self._min_poll = settings.outbox_poll_interval_ms / 1000
        self._max_poll = max(self._min_poll, settings.outbox_idle_poll_ms / 1000)
        self._idle: dict[str, float] = {}
        self._last_swept = self._last_sent = 0.0
        self._verifier_idle = False
        self._next_full_verify = 0.0
        self._last_append = 0.0
        self._next_topic_check = 0.0

    # ------------------------------------------------------------------ public surface

    def wake(self) -> None:
        """Called after a write that staged events, so they leave without waiting for a poll."""
        self._sweep_wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        for waker in (self._sweep_wake, self._publish_wake, self._verify_wake):
            waker.set()
        self._backlog_changed.set()

    @property
    def leading(self) -> bool:
        return self.lease.held()

    def backlog(self) -> int:
        """Events written but not yet acknowledged by the broker (swept or not)."""
        if self.leading:
            return self.sweeper.in_hand + self.publisher.backlog.count
        return int(self.lease.holder_report.get("backlog", 0))

    def oldest_unpublished_seconds(self) -> float:
        """Age of the oldest event written and not yet acknowledged by the broker (0: none)."""
        if not self.leading:
            return float(self.lease.holder_report.get("oldest_seconds", 0.0))
        marks = [m for m in (self.sweeper.in_hand_oldest, self.publisher.backlog.oldest_ns) if m]
        return max(0.0, (time.time_ns() - min(marks)) / 1e9) if marks else 0.0

    def status(self) -> dict[str, Any]:
        """What an operator reads: the backlog, its age, and whether this relay publishes."""
        return {
            "publishing": self.leading,
            "backlog": self.backlog(),
            "oldest_unpublished_seconds": round(self.oldest_unpublished_seconds(), 3),
        }

    async def wait_below(self, limit: int, timeout: float | None = None) -> bool:
        """Wait until fewer than `limit` events are waiting to be published (backpressure for
        a large import: it writes faster than the log drains). False when `timeout` ran out."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.backlog() >= limit and not self._stopping:
            remaining = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if remaining <= 0:
                return False
            self._backlog_changed.clear()
            try:
                await asyncio.wait_for(self._backlog_changed.wait(), remaining)
            except TimeoutError:
                pass
        return True

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        backoff = 0.2
        try:
            while not self._stopping:
                try:
                    if await self.lease.acquire_or_renew():
                        await self._lead()
                        backoff = 0.2
                        continue
                    backoff = 0.2
                except Exception as exc:  # the database is away: try again
                    log.warning("outbox.lease_error", error=repr(exc), retry_in=backoff)
                    await self._rest_unless_stopping(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._report_metrics()
                await self._rest_unless_stopping(min(STANDBY_POLL_SECONDS, self.lease.renew_every))
        finally:
            await self.lease.release()
            self._report_metrics()

    async def _lead(self) -> None:
        """Act as the holder until the lease is lost or the relay stops."""
        await self.sweeper.load()
        await self.publisher.load()
        await self.verifier.load()
        log.info("outbox.publishing", epoch=self.lease.epoch, cursor=self.publisher.cursor)
        tasks = [
            asyncio.create_task(self._keep_lease(), name="outbox-lease"),
            asyncio.create_task(self._loop("sweep", self._sweep_once, self._sweep_wake), name="outbox-sweep"),
            asyncio.create_task(self._loop("publish", self._publish_once, self._publish_wake), name="outbox-publish"),
            asyncio.create_task(self._loop("verify", self._verify_once, self._verify_wake), name="outbox-verify"),
            asyncio.create_task(self._loop("clean", self._clean_once, None), name="outbox-clean"),
            asyncio.create_task(self._report_loop(), name="outbox-report"),
            asyncio.create_task(self.publisher.scan_backlog(), name="outbox-scan"),
        ]
        try:
            # The lease task, sweep, publish, verify and clean each return only when the lease
            # is lost or the relay stops: whichever does first ends this term for all of them
            # (a holder whose workers stopped must not go on renewing the lease).
            await asyncio.wait(tasks[:5], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stop_leading()
            await asyncio.wait(tasks, timeout=5)  # each finishes its step, then sees it
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self.sweeper.persist(force=True)
            except Exception as exc:
                log.debug("outbox.persist_failed", error=repr(exc))
            await self.publisher.close()
            await self.verifier.close()
            if not self._stopping:
                self.lease.drop()

    def stop_leading(self) -> None:
        self.lease.drop()
        for waker in (self._sweep_wake, self._publish_wake, self._verify_wake):
            waker.set()

    async def _keep_lease(self) -> None:
        """Renew every third of the lease, whatever the other tasks are doing.

        Returns as soon as the lease is no longer held, also when another task dropped it
        meanwhile (an append found it expired during a store stall): the other tasks stop when
        they see it dropped, so renewing it here would keep a holder with nobody working (the
        relay then published nothing more). `_lead` ends, and the run loop takes the lease
        again with a fresh set of tasks."""
        while not self._stopping and self.lease.held():
            await self._rest_unless_stopping(self.lease.renew_every)
            if self._stopping or not self.lease.held():
                return
            try:
                self.lease.report = self._report()
                # A slow store is not a lost lease: wait as long as the lease is still valid.
                await asyncio.wait_for(self.lease.acquire_or_renew(), self.lease.time_left())
            except Exception as exc:
                log.warning("outbox.lease_renewal_failed", error=repr(exc))

    async def _rest_unless_stopping(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            pass

    async def _loop(
        self, name: str, step: Callable[[], Awaitable[float]], waker: _Waker | None
    ) -> None:
        """Run one kind of work while holding the lease: `step` returns how long to wait
        (woken earlier by `waker`); errors back off without stopping the other kinds."""
        backoff = 0.1
        while not self._stopping and self.lease.held():
            try:
                pause = await step()
                backoff = 0.1
            except LeaseLost:
                log.warning("outbox.lease_superseded", task=name)
                self.lease.drop()
                return
            except Exception as exc:  # broker or database away: keep the events, retry
                log.warning("outbox.relay_error", task=name, error=repr(exc), retry_in=backoff)
                await self._reset(name)
                pause, backoff = backoff, min(backoff * 2, 5.0)
            if pause > 0:
                if waker is None:
                    await self._rest_unless_stopping(pause)
                else:
                    await waker.wait(pause)
            else:
                await asyncio.sleep(0)

    async def _reset(self, name: str) -> None:
        if name == "publish":
            self._verify_wake.set()  # the broker may have restarted: have it looked at now
            await self.publisher.close()
        elif name == "verify":
            await self.verifier.close()

    # ------------------------------------------------------------------ the steps

    async def _append(self, events: list[dict[str, Any]]) -> list[Appended]:
        """The only way anything enters the log while this relay holds the lease."""
        if not self.lease.held():
            raise LeaseLost("the lease ran out before appending")
        async with self._append_lock:
            appended = await append_to_outbox(
                self._db, events, retention=self._retention, epoch=self.lease.epoch
            )
        self.publisher.backlog.appended(appended)
        self._last_append = time.monotonic()
        self._publish_wake.set()
        self._backlog_changed.set()
        return appended

    async def _sweep_once(self) -> float:
        moved = await self.sweeper.sweep()
        if self.sweeper.late_check_due():
            moved += await self.sweeper.late_check()
        await self.sweeper.persist()
        if moved:
            self._last_swept = time.monotonic()
            return self._settings.outbox_linger_ms / 1000  # let concurrent writes share a sweep
        # Nothing staged: after a couple of quiet seconds, poll less and less often (writes
        # in this process wake the sweep at once; the poll serves writes of other replicas).
        return self._idle_pause("sweep", self._last_swept)

    async def _publish_once(self) -> float:
        sent = await self.publisher.publish_round()
        self._backlog_changed.set()
        if sent:
            self._last_sent = time.monotonic()
            return 0.0
        # Nothing to send: the sweep wakes this task when it appends; the poll only serves
        # appends made outside the relay (a benchmark) and gaps in the sequence.
        return self._idle_pause("publish", self._last_sent)

    def _idle_pause(self, name: str, last_work: float) -> float:
        """The short poll for a couple of seconds after the last work, then twice as long
        each time up to outbox_idle_poll_ms."""
        if time.monotonic() - last_work < QUIET_SECONDS:
            self._idle[name] = self._min_poll
        else:
            self._idle[name] = min(self._max_poll, self._idle.get(name, self._min_poll) * 2)
        return self._idle[name]

    async def _verify_once(self) -> float:
        idle, self._verifier_idle = self._verifier_idle, False
        loop = asyncio.get_running_loop()
        full = not idle or loop.time() >= self._next_full_verify
        if full:
            self._next_full_verify = loop.time() + IDLE_VERIFY_SECONDS
        if await self.verifier.verify(full=full):
            self._publish_wake.set()
        await self._check_topics()
        if self.verifier.has_pending:
            return self._settings.outbox_verify_interval_seconds
        # Nothing to verify: look at the partitions' ends every couple of seconds (a broker
        # that lost its log while nothing was published; one cheap request), re-read the
        # newest records every IDLE_VERIFY_SECONDS, and wake when something is published.
        self._verifier_idle = True
        return IDLE_CHECK_SECONDS

    async def _record_published(self, placements: list[dict[str, Any]]) -> None:
        await self.verifier.record(placements)
        if self._verifier_idle and placements:
            self._verifier_idle = False
            self._verify_wake.set()

    def _look_now(self) -> None:
        self._verify_wake.set()

    async def _check_topics(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_topic_check:
            self._next_topic_check = loop.time() + TOPIC_CHECK_SECONDS
            await self._restore_topics()

    async def _clean_once(self) -> float:
        """Take swept events out of their documents, only while nothing else is going on."""
        quiet = time.monotonic() - self._last_append >= QUIET_BEFORE_CLEANING_SECONDS
        busy = self.sweeper.in_hand or self.publisher.backlog.count or not quiet
        if busy or not self.sweeper.cleaning_due():
            return self._settings.outbox_clean_interval_seconds
        started = time.monotonic()
        cleaned = await self.sweeper.clean()
        await self.sweeper.persist()
        if cleaned or self.sweeper.cleaning_due():
            # Small batches (or empty windows still short of the end) with a rest three times
            # as long as the step took: cleaning holds the store at most a quarter of the time,
            # and a request waits behind one batch.
            return max(0.05, 3 * (time.monotonic() - started))
        return self._settings.outbox_clean_interval_seconds

    async def _restore_topics(self) -> None:
        """Domain and audit topics and this service's dead-letter topic with their partitions (a broker
        that lost a topic recreates it with one partition for the first client that asks)."""
        await ensure_topics(
            self._settings.kafka_bootstrap_servers,
            [*ALL_TOPICS, dead_letter_topic(self._service)],
            **topic_layout(self._settings),
            client_id=f"{self._service}-admin",
            **kafka_options(self._settings),
        )

    async def _republish(self, event_ids: list[str]) -> None:
        """Append copies of events the broker lost (or that landed where no one reads)."""
        found = await events_in_log(self._db, event_ids)
        events = [found[i] for i in event_ids if i in found]
        missing = len(event_ids) - len(events)
        if missing:
            log.warning("outbox.republish_missing_from_log", missing=missing)
        for start in range(0, len(events), 1000):
            await self._append(events[start : start + 1000])

    # ------------------------------------------------------------------ reporting

    def _report(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog(),
            "oldest_seconds": round(self.oldest_unpublished_seconds(), 3),
            "at": datetime.now(UTC),
        }

    def _report_metrics(self) -> None:
        backlog = self.backlog() if self.leading else 0
        OUTBOX_BACKLOG.labels(self._service).set(backlog)
        OUTBOX_OLDEST_SECONDS.labels(self._service).set(
            self.oldest_unpublished_seconds() if self.leading else 0.0
        )

    async def _report_loop(self) -> None:
        """Gauges from memory once a second: they move even while the broker is away and the
        publisher waits in the producer's retries."""
        while not self._stopping and self.lease.held():
            self._report_metrics()
            self._backlog_changed.set()
            await self._rest_unless_stopping(1.0)


def record_headers(event: CloudEvent) -> list[tuple[str, bytes]]:
    """Kafka headers that let tools route and trace without parsing the value."""
    return _headers(event.id, event.type, event.correlationid)


__all__ = [
    "CURSOR_ID",
    "OUTBOX",
    "PENDING_FIELD",
    "PENDING_FLAG",
    "STATE",
    "OutboxRelay",
    "append_to_outbox",
    "ensure_outbox_indexes",
    "read_backlog",
    "record_headers",
    "stage_insert",
    "stage_update",
    "strip_outbox_fields",
]
