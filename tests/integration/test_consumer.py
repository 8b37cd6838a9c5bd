"""The idempotent consumer on a real broker and a real MongoDB-protocol server.

Shows: a redelivered event changes nothing twice; malformed, unknown and poison events end in
the dead-letter topic with a reason while the partition keeps moving; a restarted consumer
resumes from the offsets stored with its effects.
"""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import UpdateOne

from shared.events.topics import dead_letter_topic
from shared.messaging.consumer import (
    INBOX_BATCHES,
    OFFSETS,
    EventConsumer,
    applied_ids,
    inbox_outcome,
    record_applied,
)
from shared.messaging.kafka import create_producer, ensure_topics
from shared.messaging.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED
from tests.support import eventually, mentee_registered_event

COUNTS = "counts"


class Consumer:
    """Runs an EventConsumer in the background with a handler that counts and can fail."""

    def __init__(self, db, settings, topic, poison_emails=frozenset()):
        self.poison = poison_emails

        async def count(event, payload, uow):
            if payload.email in self.poison:
                raise RuntimeError(f"cannot handle {payload.email}")
            uow.add(COUNTS, UpdateOne({"_id": "mentees"}, {"$inc": {"n": 1}}, upsert=True))

        self.consumer = EventConsumer(
            db=db,
            settings=settings,
            topics=[topic],
            handlers={"MenteeRegistered": count},
            producer_factory=lambda: create_producer(settings),
        )
        self.task: asyncio.Task | None = None

    async def __aenter__(self):
        self.task = asyncio.create_task(self.consumer.run())
        return self

    async def __aexit__(self, *exc):
        self.consumer.stop()
        await asyncio.wait_for(self.task, 20)


async def _produce(bootstrap, topic, values, key=b"same-key"):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read_all(bootstrap, topic, expected, timeout=20):
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def _count(db) -> int:
    doc = await db[COUNTS].find_one({"_id": "mentees"})
    return doc["n"] if doc else 0


@pytest.fixture
async def topic(settings, unique):
    name = f"test.consumer.{unique}"
    await ensure_topics(settings.kafka_bootstrap_servers, [name], partitions=3)
    return name


async def test_the_same_event_delivered_twice_changes_nothing_the_second_time(
    infra, db, settings, topic
):
    first, second = mentee_registered_event("p1"), mentee_registered_event("p2")
    async with Consumer(db, settings, topic):
        await _produce(infra.kafka_bootstrap, topic, [first.to_bytes(), first.to_bytes()])
        await _produce(infra.kafka_bootstrap, topic, [second.to_bytes()])
        both = [first.id, second.id]
        await eventually(lambda: applied_ids(db, both), lambda ids: ids == set(both),
                         what="2 applied")
        # The first event once more, much later, from a different producer and partition.
        await _produce(infra.kafka_bootstrap, topic, [first.to_bytes()], key=b"other-key")
        await eventually(
            lambda: _sum_metric(settings.service_name, "duplicate"), lambda n: n >= 2, what="dups"
        )
    assert await _count(db) == 2


async def test_malformed_unknown_and_poison_events_are_dead_lettered_and_the_partition_moves_on(
    infra, db, settings, topic
):
    unknown = json.loads(mentee_registered_event("p9").to_bytes())
    unknown["type"] = "MenteeTeleported"
    invalid = json.loads(mentee_registered_event("p8").to_bytes())
    del invalid["data"]["email"]
    poison = mentee_registered_event("p3", email="poison@b.org")
    after = mentee_registered_event("p4")
    async with Consumer(db, settings, topic, poison_emails={"poison@b.org"}):
        await _produce(
            infra.kafka_bootstrap,
            topic,
            [b"{this is not json", json.dumps(unknown).encode(), json.dumps(invalid).encode(),
             poison.to_bytes(), after.to_bytes()],
        )
        await eventually(lambda: _count(db), lambda n: n == 1, what="the event after the bad ones")
        dead = await _read_all(infra.kafka_bootstrap, dead_letter_topic(settings.service_name), 4)
    reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]
    assert len(dead) == 4, reasons
    assert "not JSON" in reasons[0]
    assert "unknown event type 'MenteeTeleported'" in reasons[1]
    assert "invalid MenteeRegistered payload" in reasons[2] and "email" in reasons[2]
    assert "handler failed 3 times" in reasons[3] and "poison@b.org" in reasons[3]
    headers = dict(dead[0].headers)
    assert headers["dlq_original_topic"].decode() == topic
    assert headers["dlq_original_offset"].decode().isdigit()
    assert dead[3].value == poison.to_bytes()
    # The poison event is remembered as dead-lettered: redelivery does not retry it forever.
    assert await inbox_outcome(db, poison.id) == "dead_letter"
    assert await inbox_outcome(db, after.id) == "apply"
    # Each dead letter is counted under its real type; <undecodable> only when it has none.
    service = settings.service_name
    assert _dead_lettered(service) == {
        ("<undecodable>", "undecodable"): 1,
        ("<unknown type>", "unknown_type"): 1,
        ("MenteeRegistered", "invalid"): 1,
        ("MenteeRegistered", "handler_failed"): 1,
    }
    assert _consumed(service, "dead_letter") == {"<undecodable>": 1, "<unknown type>": 1,
                                                 "MenteeRegistered": 2}


async def test_a_restarted_consumer_resumes_from_the_offsets_stored_with_its_effects(
    infra, db, settings, topic
):
    events = [mentee_registered_event(f"p{i}") for i in range(5)]
    async with Consumer(db, settings, topic):
        await _produce(infra.kafka_bootstrap, topic, [e.to_bytes() for e in events[:3]])
        await eventually(lambda: _count(db), lambda n: n == 3, what="3 applied")
    stored = await db[OFFSETS].find_one({"_id": {"$regex": f"^{topic}:"}})
    assert stored is not None and stored["offset"] == 2
    duplicates_before = _sum_metric(settings.service_name, "duplicate")
    await _produce(infra.kafka_bootstrap, topic, [e.to_bytes() for e in events[3:]])
    async with Consumer(db, settings, topic):
        await eventually(lambda: _count(db), lambda n: n == 5, what="5 applied")
    # It sought to the stored position: none of the three applied before was read again. (A
    # rebalance while the new member joins can hand it the two new records twice; the inbox
    # drops the second copy. Reading from the start would count three or more.)
    assert _sum_metric(settings.service_name, "duplicate") - duplicates_before <= len(events[3:])


def _dead_lettered(service: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["type"], s.labels["reason"]): s.value
        for metric in EVENTS_DEAD_LETTERED.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["service"] == service
    }


def _consumed(service: str, outcome: str) -> dict[str, float]:
    return {
        s.labels["type"]: s.value
        for metric in EVENTS_CONSUMED.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["service"] == service
        and s.labels["outcome"] == outcome
    }


def _sum_metric(service: str, outcome: str) -> float:
    total = 0.0
    for metric in EVENTS_CONSUMED.collect():
        for sample in metric.samples:
            if (
                sample.name.endswith("_total")
                and sample.labels["service"] == service
                and sample.labels["outcome"] == outcome
            ):
                total += sample.value
    return total


async def test_an_event_applied_meanwhile_by_someone_else_counts_as_a_duplicate(
    infra, db, settings, topic
):
    """The inbox already holds the id when the batch commits (another replica applied it
    during a rebalance): the batch must skip it, not dead-letter it."""
    event, other = mentee_registered_event("p-raced"), mentee_registered_event("p-other")
    wrapper = Consumer(db, settings, topic)
    consumer = wrapper.consumer
    original = consumer._skip_applied
    raced = False

    async def skip_then_race(batch):
        nonlocal raced
        await original(batch)
        if not raced:  # after our look-up, "another replica" applies the event
            raced = True
            await record_applied(db, [event.id])

    consumer._skip_applied = skip_then_race
    async with wrapper:
        await _produce(infra.kafka_bootstrap, topic, [event.to_bytes(), other.to_bytes()])
        await eventually(lambda: _count(db), lambda n: n == 1, what="the other event applied")
    assert await inbox_outcome(db, other.id) == "apply"
    assert await inbox_outcome(db, event.id) == "apply"
    assert await db[INBOX_BATCHES].count_documents({"dead.0": {"$exists": True}}) == 0
    dead = await _read_all(infra.kafka_bootstrap, dead_letter_topic(settings.service_name), 1, 3)
    assert dead == [], [dict(r.headers).get("dlq_reason") for r in dead]


async def test_consumer_lag_is_corrected_while_no_batch_arrives(infra, db, settings, topic):
    """The lag gauge is refreshed from the partitions' end offsets now and then, not only when
    a batch arrives: a consumer that caught up shows 0 even if the last value it set was not."""
    settings = settings.model_copy(update={"consumer_lag_interval_seconds": 0.5})
    events = [mentee_registered_event(f"lag{i}") for i in range(3)]
    await _produce(infra.kafka_bootstrap, topic, [e.to_bytes() for e in events])
    service = settings.service_name
    async with Consumer(db, settings, topic):
        await eventually(lambda: _count(db), lambda n: n == 3, what="applied")
        partitions = [str(p) for p in range(3)]
        for partition in partitions:  # a stale value, as left by an earlier batch
            CONSUMER_LAG.labels(service, topic, partition).set(461)
        await eventually(
            lambda: [CONSUMER_LAG.labels(service, topic, p)._value.get() for p in partitions],
            lambda lags: lags == [0, 0, 0], timeout=15, what="lag refreshed to 0",
        )


async def test_an_inbox_of_the_earlier_version_still_prevents_applying_twice(
    infra, db, settings, topic
):
    """Upgrade: events recorded one document each by the version before are still skipped."""
    old, new = mentee_registered_event("p-old"), mentee_registered_event("p-new")
    await db["inbox"].insert_one({"_id": old.id, "outcome": "apply"})
    async with Consumer(db, settings, topic):
        await _produce(infra.kafka_bootstrap, topic, [old.to_bytes(), new.to_bytes()])
        await eventually(lambda: _count(db), lambda n: n == 1, what="the new event applied")
        await eventually(lambda: applied_ids(db, [new.id]), lambda ids: ids == {new.id})
    assert await _count(db) == 1


async def test_nothing_is_fetched_while_a_batch_is_applied(infra, db, settings, topic):
    """While its batch's transaction runs the consumer's partitions are paused: noida-db
    answers a fetch of a drained partition at once, and aiokafka's fetcher spun on them for as
    long as the batch took (70 % of notifications' CPU while it caught up on an import)."""
    consumer = Consumer(db, settings, topic)
    seen: list[tuple[set, set]] = []
    count = consumer.consumer._handlers["MenteeRegistered"]  # noqa: SLF001

    async def observe(event, payload, uow):
        kafka = consumer.consumer._consumer  # noqa: SLF001
        seen.append((set(kafka.paused()), set(kafka.assignment())))
        await count(event, payload, uow)

    consumer.consumer._handlers["MenteeRegistered"] = observe  # noqa: SLF001
    async with consumer:
        await _produce(infra.kafka_bootstrap, topic,
                       [mentee_registered_event(f"paused{i}").to_bytes() for i in range(4)])
        await eventually(lambda: _count(db), lambda n: n == 4, what="applied")
        assert seen and all(assigned and paused == assigned for paused, assigned in seen), seen
        # ...and fetching resumes afterwards: a later event is applied too
        await _produce(infra.kafka_bootstrap, topic, [mentee_registered_event("later").to_bytes()])
        await eventually(lambda: _count(db), lambda n: n == 5, what="applied after the batch")


async def test_a_batch_writes_each_collection_once_in_the_order_its_writes_were_added(infra):
    """Handlers that alternate collections (a person, then their delivery, then the next
    person) cost one bulk write per collection, not one per write; each collection's writes
    keep their order (the later update wins)."""
    from pymongo import InsertOne, monitoring

    from shared.db import create_client
    from shared.messaging.consumer import UnitOfWork

    class Writes(monitoring.CommandListener):
        def __init__(self):
            self.commands: list[str] = []

        def started(self, event):
            if event.command_name in ("insert", "update"):
                self.commands.append(f"{event.command_name} {event.command[event.command_name]}")

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    writes = Writes()
    client = create_client(infra.mongodb_uri, event_listeners=[writes])
    db = client[f"uow_{uuid4().hex[:10]}"]
    try:
        async with client.start_session() as session:
            async with await session.start_transaction():
                uow = UnitOfWork(db, session)
                for n in range(50):
                    uow.add("people", UpdateOne({"_id": f"p{n}"}, {"$set": {"v": 1}}, upsert=True))
                    uow.add("deliveries", InsertOne({"_id": f"d{n}", "to": f"p{n}"}))
                    uow.add("people", UpdateOne({"_id": f"p{n}"}, {"$set": {"v": 2}}))
                await uow.flush()
        assert sorted(writes.commands) == ["insert deliveries", "update people"]
        assert await db["people"].count_documents({"v": 2}) == 50
        assert await db["deliveries"].count_documents({}) == 50
    finally:
        await client.drop_database(db.name)
        await client.close()
