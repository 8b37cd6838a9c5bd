"""The outbox relay on a real broker: writes never wait for Kafka, and nothing a broker loses
is lost to the platform."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.events.topics import DOMAIN_TOPICS, PROFILES_TOPIC, dead_letter_topic
from shared.messaging.kafka import create_producer, ensure_topics
from shared.messaging.metrics import EVENTS_REPUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from shared.messaging.outbox import (
    OUTBOX,
    PENDING_FIELD,
    PENDING_FLAG,
    STATE,
    OutboxRelay,
    stage_insert,
    stage_update,
)
from shared.messaging.outbox_log import STAGED_KEY
from shared.messaging.outbox_verify import PUBLICATIONS
from tests.support import eventually, mentee_registered_event, stays

THINGS = "things"


def _fast(settings, **extra):
    """Short lease, clean-up and late-check delays so tests see them happen."""
    return settings.model_copy(update={
        "outbox_lease_seconds": 5.0,
        "outbox_unstage_after_seconds": 0.5,
        "outbox_clean_interval_seconds": 0.2,
        "outbox_late_check_seconds": 0.5,
        "outbox_gap_grace_seconds": 1.0,
        **extra,
    })


class Relay:
    def __init__(self, db, settings):
        self.relay = OutboxRelay(db, settings, [THINGS], lambda: create_producer(settings))

    async def __aenter__(self):
        self.task = asyncio.create_task(self.relay.run())
        return self.relay

    async def __aexit__(self, *exc):
        self.relay.stop()
        await asyncio.wait_for(self.task, 20)


def _event(prefix: str, i: int):
    return mentee_registered_event(f"{prefix}-{i}", network_id="n-outbox")


async def _write(db, prefix: str, n: int, pause: float = 0.0) -> list[str]:
    ids = []
    for i in range(n):
        event = _event(prefix, i)
        await db[THINGS].insert_one(stage_insert({"_id": event.subject}, [event]))
        ids.append(event.id)
        if pause:
            await asyncio.sleep(pause)
    return ids


async def _records_on_topic(bootstrap: str) -> list[tuple[str, int, int]]:
    """(event id, partition, offset) of every record of the profiles topic, in order."""
    consumer = AIOKafkaConsumer(
        PROFILES_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: list[tuple[str, int, int]] = []
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                # Other tests inject records of their own (some without headers) here.
                seen.extend(
                    (dict(r.headers or ()).get("ce_id", b"").decode(), tp.partition, r.offset)
                    for r in records
                )
            positions = {tp: await consumer.position(tp) for tp in end}
            if all(positions[tp] >= end[tp] for tp in end):
                break
    finally:
        await consumer.stop()
    return seen


async def _ids_on_topic(bootstrap: str) -> set[str]:
    return {event_id for event_id, _, _ in await _records_on_topic(bootstrap)}


@pytest.fixture(autouse=True)
async def topics(settings):
    await ensure_topics(settings.kafka_bootstrap_servers, [PROFILES_TOPIC], partitions=3)


async def _placements(db) -> list[dict]:
    return [p async for pub in db[PUBLICATIONS].find() for p in pub["placements"]]


async def _published_ids(db) -> list[str]:
    return [p["id"] for p in await _placements(db)]


async def _verified(db, ids: list[str]) -> None:
    """Wait until these events were published and read back as durable."""
    async def unverified() -> set[str]:
        verified = {p["id"] async for pub in db[PUBLICATIONS].find({"verified": True})
                    for p in pub["placements"]}
        return set(ids) - verified
    await eventually(unverified, lambda left: not left, timeout=60, what="events verified")


async def _log_ids(db) -> list[str]:
    return [e["id"] async for doc in db[OUTBOX].find().sort("seq", 1) for e in doc["entries"]]


def _metric(gauge, service: str) -> float:
    return gauge.labels(service)._value.get()


async def test_staged_events_are_published_in_order_and_later_unstaged(infra, db, settings):
    settings = _fast(settings)
    ids = await _write(db, "a", 5)
    async with Relay(db, settings):
        await eventually(lambda: _published_ids(db), lambda p: sorted(p) == sorted(ids),
                         what="published")
        await eventually(
            lambda: db[PUBLICATIONS].count_documents({"verified": True}), lambda n: n >= 1
        )
        # The swept events leave their documents afterwards, when the relay is idle.
        await eventually(lambda: db[THINGS].count_documents({PENDING_FLAG: {"$exists": True}}),
                         lambda n: n == 0, what="documents unstaged")
    assert await db[THINGS].count_documents({PENDING_FIELD: {"$exists": True}}) == 0
    assert await _log_ids(db) == ids  # the log keeps the order they were written in
    log = [doc async for doc in db[OUTBOX].find().sort("seq", 1)]
    assert all(d["expires_at"] > d["created_at"] for d in log)
    placements = await _placements(db)
    assert all(p["o"] >= 0 and p["t"] == PROFILES_TOPIC for p in placements)
    on_topic = [i for i, _, _ in await _records_on_topic(infra.kafka_bootstrap) if i in set(ids)]
    assert sorted(on_topic) == sorted(ids)
    # What went out is the event itself, without the relay's bookkeeping.
    assert all(STAGED_KEY.encode() not in e["value"] for d in log for e in d["entries"])


async def test_a_write_that_commits_after_the_sweep_passed_its_mark_is_still_published(
    infra, db, settings
):
    """Concurrent writers: a write's mark is taken before it commits, so the sweep can pass
    it (a later mark committed first). The late check must find it."""
    settings = _fast(settings)
    async with Relay(db, settings) as relay:
        first = await _write(db, "early", 3)
        await eventually(lambda: _published_ids(db), lambda p: set(first) <= set(p))
        # A write whose mark is two seconds older than what the sweep has already read.
        event = _event("slow-writer", 0)
        document = stage_insert({"_id": event.subject}, [event])
        old = document[PENDING_FLAG] - 2_000_000_000
        document[PENDING_FLAG] = old
        document[PENDING_FIELD][0][STAGED_KEY] = old
        assert old < relay.sweeper._marks[THINGS].hot
        await db[THINGS].insert_one(document)
        await eventually(lambda: _published_ids(db), lambda p: event.id in p, timeout=20,
                         what="the late write published")
    assert Counter(await _published_ids(db))[event.id] == 1


async def test_a_document_changed_again_publishes_only_its_new_events(infra, db, settings):
    settings = _fast(settings)
    async with Relay(db, settings):
        [first] = await _write(db, "again", 1)
        await eventually(lambda: _published_ids(db), lambda p: first in p)
        second = _event("again", 0)  # a later change of the same document, still staged
        await db[THINGS].update_one(
            {"_id": second.subject}, stage_update({"$set": {"changed": True}}, [second])
        )
        await eventually(lambda: _published_ids(db), lambda p: second.id in p)
        await eventually(lambda: db[THINGS].count_documents({PENDING_FLAG: {"$exists": True}}),
                         lambda n: n == 0, what="unstaged")
    published = Counter(await _published_ids(db))
    assert published[first] == 1 and published[second.id] == 1
    assert (await db[THINGS].find_one({"_id": second.subject}))["changed"] is True


async def test_events_staged_by_an_earlier_version_are_published(infra, db, settings):
    """Upgrade: documents flagged `true` and one-event log entries left by the version
    before are still published, once."""
    settings = _fast(settings)
    staged, logged = _event("legacy", 0), _event("legacy", 1)
    await db[THINGS].insert_one({"_id": staged.subject, PENDING_FLAG: True,
                                 PENDING_FIELD: [staged.model_dump(mode="json")]})
    await db[OUTBOX].insert_one({
        "_id": logged.id, "seq": 1, "topic": PROFILES_TOPIC, "key": logged.subject,
        "event_id": logged.id, "type": logged.type, "correlation_id": logged.correlationid,
        "value": logged.to_bytes(),
    })
    await db[STATE].insert_one({"_id": "seq", "value": 1})
    async with Relay(db, settings):
        await eventually(lambda: _published_ids(db), lambda p: {staged.id, logged.id} <= set(p),
                         what="legacy events published")
        await eventually(lambda: db[THINGS].count_documents({PENDING_FLAG: True}),
                         lambda n: n == 0, what="legacy document unstaged")
    assert sorted(await _published_ids(db)) == sorted([staged.id, logged.id])


async def test_exactly_one_relay_publishes_and_a_standby_takes_over(infra, db, settings):
    settings = _fast(settings, outbox_lease_seconds=3.0)
    first, second = Relay(db, settings), Relay(db, settings)
    await first.__aenter__()
    await second.__aenter__()
    try:
        await eventually(lambda: first.relay.leading or second.relay.leading, bool)
        leader, standby = (first, second) if first.relay.leading else (second, first)
        written = await _write(db, "lease", 10, pause=0.05)
        await eventually(lambda: _published_ids(db), lambda p: set(written) <= set(p))
        await stays(lambda: standby.relay.leading, False, seconds=1.0)

        # A clean shutdown hands over within about a second (the standby's poll).
        stopped = time.monotonic()
        await leader.__aexit__(None, None, None)
        await eventually(lambda: standby.relay.leading, bool, timeout=10)
        clean_handover = time.monotonic() - stopped
        more = await _write(db, "lease-b", 5)
        await eventually(lambda: _published_ids(db), lambda p: set(more) <= set(p))

        # A relay that dies without releasing: the lease runs out first.
        third = Relay(db, settings)
        await third.__aenter__()
        standby.relay.lease.release = _noop  # as if the process were killed
        died = time.monotonic()
        standby.relay.stop()
        await asyncio.wait_for(standby.task, 20)
        await eventually(lambda: third.relay.leading, bool, timeout=20)
        crash_handover = time.monotonic() - died
        last = await _write(db, "lease-c", 5)
        await eventually(lambda: _published_ids(db), lambda p: set(last) <= set(p))
        await third.__aexit__(None, None, None)
    finally:
        for relay in (first, second):
            if not relay.task.done():
                await relay.__aexit__(None, None, None)
    # Published once each, never once per relay.
    counts = Counter(await _published_ids(db))
    assert all(counts[i] == 1 for i in written + more + last), counts
    print(f"lease hand-over: clean {clean_handover:.2f}s, crashed {crash_handover:.2f}s "
          f"(lease {settings.outbox_lease_seconds:.0f}s)")
    assert crash_handover >= settings.outbox_lease_seconds - 1.5  # it waited for the lease


async def _noop() -> None:
    return None


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_while_the_broker_is_down_writes_succeed_and_the_backlog_says_so(
    servers, db, settings
):
    """outbox_backlog is the count of events written and not yet acknowledged by the broker,
    moving while the publisher waits in the producer's retries, with the oldest one's age."""
    settings = _fast(settings)
    service = settings.service_name
    async with Relay(db, settings) as relay:
        await eventually(lambda: relay.leading, bool)
        await asyncio.to_thread(servers.stop_kafka)
        ids = await _write(db, "b", 5)  # the write path never touches Kafka
        relay.wake()
        # The true count, while the publisher waits in the producer's retries.
        await eventually(lambda: _metric(OUTBOX_BACKLOG, service), lambda n: n == 5, timeout=15,
                         what="outbox_backlog during the outage")
        assert relay.backlog() == 5
        await eventually(lambda: _metric(OUTBOX_OLDEST_SECONDS, service), lambda s: s >= 1.5,
                         what="the oldest event's age growing")
        assert relay.status()["backlog"] == 5 and relay.status()["publishing"] is True
        # Backpressure for a large import: nothing drains while the broker is away.
        assert await relay.wait_below(3, timeout=0.5) is False
        draining = asyncio.create_task(relay.wait_below(1, timeout=60))
        await asyncio.to_thread(servers.start_kafka)
        assert await draining is True
        await eventually(lambda: _published_ids(db), lambda p: set(ids) <= set(p), timeout=60,
                         what="published after the broker returned")
        await eventually(lambda: _metric(OUTBOX_BACKLOG, service), lambda n: n == 0)
        assert _metric(OUTBOX_OLDEST_SECONDS, service) == 0
    assert set(ids) <= await _ids_on_topic(servers.kafka_bootstrap)


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([t for t in topics if t in existing])
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


def _republished(service: str) -> float:
    return EVENTS_REPUBLISHED.labels(service)._value.get()


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_after_the_broker_lost_its_log_republishing_stops_once_everything_is_back(
    servers, db, settings
):
    """Broker log loss plus reused offsets: events written after the restart land on offsets
    the broker hands out a second time and are published again until they land above them.
    That must end: once every event is back, nothing is republished any more."""
    settings = _fast(settings)
    service = settings.service_name
    async with Relay(db, settings):
        settled = await _write(db, "c", 90)
        await _verified(db, settled)
        await asyncio.to_thread(servers.kill_kafka)
        await asyncio.to_thread(servers.start_kafka, True)  # the log is gone, offsets restart
        during = await _write(db, "d", 10, pause=0.05)
        await eventually(lambda: _republished(service), lambda n: n > 0, timeout=60,
                         what="the loss noticed")
        # Steady writes after the recovery land on offsets the broker hands out again, on
        # some partitions, while others have passed them: some publications settle in the
        # same pass as others are published again.
        after = await _write(db, "g", 45, pause=0.1)
        everything = settled + during + after
        await eventually(
            lambda: _ids_on_topic(servers.kafka_bootstrap),
            lambda seen: set(everything) <= seen,
            timeout=90, interval=1.0, what="every event back on the topic",
        )
        # Republishing comes to an end (before the fix, the same events went out again on
        # every pass, forever).
        await _settles(lambda: _republished(service), seconds=5.0, timeout=60)
        total = _republished(service)
    assert total <= 3 * len(everything), total
    records = await _records_on_topic(servers.kafka_bootstrap)
    copies = Counter(i for i, _, _ in records if i in set(everything))
    assert max(copies.values()) <= 3, copies.most_common(3)


async def _settles(probe, *, seconds: float, timeout: float) -> None:
    """Wait until probe() keeps one value for `seconds` (fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    value, since = probe(), time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            raise AssertionError(f"still changing after {timeout}s (last value {value})")
        await asyncio.sleep(0.2)
        current = probe()
        if current != value:
            value, since = current, time.monotonic()


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_after_broker_log_loss_new_events_flow_while_recovery_runs(servers, db, settings):
    """Recovery runs beside publishing: while it re-reads the broker's partitions (made slow
    here), fresh writes are published within seconds, the relay keeps its lease, and the
    topics, dead-letter topic included, come back with their partitions."""
    settings = _fast(settings)
    recovering = asyncio.Event()
    release = asyncio.Event()
    async with Relay(db, settings) as relay:
        settled = await _write(db, "e", 10)
        await _verified(db, settled)
        epoch = relay.lease.epoch
        intact_below = relay.verifier._intact_below

        async def slow_recheck(*args, **kwargs):
            recovering.set()
            await release.wait()  # a recovery that takes as long as the test wants
            return await intact_below(*args, **kwargs)

        relay.verifier._intact_below = slow_recheck
        await asyncio.to_thread(servers.kill_kafka)
        await asyncio.to_thread(servers.start_kafka, True)
        await eventually(lambda: recovering.is_set(), bool, timeout=30, what="recovery started")
        fresh = await _write(db, "f", 3)
        relay.wake()
        await eventually(lambda: _ids_on_topic(servers.kafka_bootstrap),
                         lambda seen: set(fresh) <= seen, timeout=15, interval=0.5,
                         what="fresh events published while recovery runs")
        wanted = [*DOMAIN_TOPICS, dead_letter_topic(settings.service_name)]
        await eventually(lambda: _partition_counts(servers.kafka_bootstrap, wanted),
                         lambda counts: all(counts.get(t) == 3 for t in wanted), timeout=30,
                         what="topics with their partitions")
        assert not release.is_set()  # still recovering, and still the publisher:
        assert relay.leading and relay.lease.epoch == epoch
        release.set()
        await eventually(lambda: _ids_on_topic(servers.kafka_bootstrap),
                         lambda seen: set(settled) <= seen, timeout=60, interval=1.0,
                         what="the lost events back")


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_the_relay_publishes_again_after_the_store_stalled(servers, db, settings):
    """The store stops answering, again and again, for about as long as a lease renewal
    waits (a busy SecantusDB stalled 5 s at a time in a full test run) while writes keep
    coming, then answers again: the relay must go back to publishing. In that run it took the
    lease back after each stall and, after the last, published nothing more at all, while the
    service kept accepting writes."""
    settings = _fast(settings)
    written: list[str] = []

    async def writes() -> None:
        n = 0
        while True:
            try:
                written.extend(await _write(db, f"stall-{n}", 1))
            except Exception:
                await asyncio.sleep(0.1)
            n += 1
            await asyncio.sleep(0.05)

    async with Relay(db, settings) as relay:
        await eventually(lambda: relay.leading, bool)
        load = asyncio.create_task(writes())
        try:
            for _ in range(3):
                await asyncio.sleep(1.0)
                await asyncio.to_thread(servers.pause_mongo)
                try:
                    await asyncio.sleep(settings.outbox_lease_seconds * 0.9)
                finally:
                    await asyncio.to_thread(servers.resume_mongo)
            await asyncio.sleep(2.0)
        finally:
            load.cancel()
        after = await _write(db, "stall-after", 5)
        await eventually(lambda: _published_ids(db), lambda p: set(written + after) <= set(p),
                         timeout=60, what="every event written across the stalls published")
