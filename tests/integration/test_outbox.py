"""The outbox relay on a real broker: writes never wait for Kafka, and nothing a broker loses
is lost to the platform."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer

from shared.events.topics import PROFILES_TOPIC
from shared.messaging.kafka import create_producer, ensure_topics
from shared.messaging.outbox import OUTBOX, PENDING_FLAG, STATE, OutboxRelay, stage_insert
from shared.messaging.outbox_verify import PUBLICATIONS
from tests.support import eventually, mentee_registered_event

THINGS = "things"


class Relay:
    def __init__(self, db, settings):
        self.relay = OutboxRelay(db, settings, [THINGS], lambda: create_producer(settings))

    async def __aenter__(self):
        self.task = asyncio.create_task(self.relay.run())
        return self.relay

    async def __aexit__(self, *exc):
        self.relay.stop()
        await asyncio.wait_for(self.task, 20)


async def _write(db, prefix: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        event = mentee_registered_event(f"{prefix}-{i}", network_id="n-outbox")
        await db[THINGS].insert_one(stage_insert({"_id": event.subject}, [event]))
        ids.append(event.id)
    return ids


async def _ids_on_topic(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        PROFILES_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                # Other tests inject records of their own (some without headers) here.
                seen.update(dict(r.headers or ()).get("ce_id", b"").decode() for r in records)
            positions = {tp: await consumer.position(tp) for tp in end}
            if all(positions[tp] >= end[tp] for tp in end):
                break
    finally:
        await consumer.stop()
    return seen


@pytest.fixture(autouse=True)
async def topics(settings):
    await ensure_topics(settings.kafka_bootstrap_servers, [PROFILES_TOPIC], partitions=3)


async def _published(db) -> int:
    cursor = await db[STATE].find_one({"_id": "cursor"})
    return cursor["seq"] if cursor else 0


async def _placements(db) -> list[dict]:
    return [p async for pub in db[PUBLICATIONS].find() for p in pub["placements"]]


async def test_staged_events_are_published_in_order_and_unstaged(infra, db, settings):
    ids = await _write(db, "a", 5)
    async with Relay(db, settings):
        await eventually(lambda: _published(db), lambda n: n == 5, what="published")
        await eventually(
            lambda: db[PUBLICATIONS].count_documents({"verified": True}), lambda n: n >= 1
        )
    assert await db[THINGS].count_documents({PENDING_FLAG: True}) == 0
    log = [doc async for doc in db[OUTBOX].find().sort("seq", 1)]
    assert [d["_id"] for d in log] == ids
    assert [d["seq"] for d in log] == [1, 2, 3, 4, 5]
    assert all(d["expires_at"] > d["created_at"] for d in log)
    placements = await _placements(db)
    assert sorted(p["id"] for p in placements) == sorted(ids)
    assert all(p["o"] >= 0 and p["t"] == PROFILES_TOPIC for p in placements)
    assert set(ids) <= await _ids_on_topic(infra.kafka_bootstrap)


async def test_only_the_relay_holding_the_lease_publishes(infra, db, settings):
    await _write(db, "lease", 3)
    async with Relay(db, settings), Relay(db, settings):
        await eventually(lambda: _published(db), lambda n: n == 3, what="published")
        await asyncio.sleep(1.0)
    assert len(await _placements(db)) == 3  # published once, not once per relay


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_writes_succeed_while_the_broker_is_down_and_leave_when_it_returns(servers, db, settings):
    await asyncio.to_thread(servers.stop_kafka)
    async with Relay(db, settings):
        ids = await _write(db, "b", 5)  # the write path never touches Kafka
        await asyncio.sleep(1.0)
        assert await _published(db) == 0
        await asyncio.to_thread(servers.start_kafka)
        await eventually(
            lambda: _published(db), lambda n: n == 5, timeout=60, what="published after the broker returned"
        )
    assert set(ids) <= await _ids_on_topic(servers.kafka_bootstrap)


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_events_a_broker_lost_on_kill_are_published_again(servers, db, settings):
    infra = servers
    async with Relay(db, settings):
        settled = await _write(db, "c", 5)
        await eventually(
            lambda: db[PUBLICATIONS].count_documents({"verified": False}),
            lambda n: n == 0,
            what="the first five verified",
        )
        recent = await _write(db, "d", 5)
        await eventually(lambda: _published(db), lambda n: n == 10, what="sent")
        await asyncio.to_thread(infra.kill_kafka)
        # noida-db forgot what it acknowledged: the log is gone, offsets start again at 0.
        await asyncio.to_thread(infra.start_kafka, True)
        await eventually(
            lambda: _ids_on_topic(infra.kafka_bootstrap),
            lambda seen: set(settled + recent) <= seen,
            timeout=90,
            interval=1.0,
            what="every event back on the topic",
        )
    # The lost events went out again as copies with the same event ids.
    copies = [d async for d in db[OUTBOX].find({"_id": {"$regex": "#"}})]
    assert {d["event_id"] for d in copies} == set(settled + recent)
