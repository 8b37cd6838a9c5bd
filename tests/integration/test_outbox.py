"""The outbox relay on a real broker: writes never wait for Kafka, and nothing a broker loses
is lost to the platform."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer

from shared.events import new_event
from shared.events.schemas import MenteeRegistered
from shared.events.topics import PROFILES_TOPIC
from shared.messaging.kafka import create_producer, ensure_topics
from shared.messaging.outbox import OUTBOX, PENDING_FLAG, OutboxRelay, stage_insert
from tests.support import eventually

THINGS = "things"


def _event(person_id: str):
    payload = MenteeRegistered(
        person_id=person_id,
        network_id="n-outbox",
        institution_id="i1",
        display_name="Test Person",
        email=f"{person_id}@b.org",
        career_stage="M1",
        registered_at=datetime.now(UTC),
    )
    return new_event(payload, subject=person_id, tenant_id="n-outbox", source="/tests")


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
        event = _event(f"{prefix}-{i}")
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
                seen.update(dict(r.headers)["ce_id"].decode() for r in records)
            positions = {tp: await consumer.position(tp) for tp in end}
            if all(positions[tp] >= end[tp] for tp in end):
                break
    finally:
        await consumer.stop()
    return seen


@pytest.fixture(autouse=True)
async def topics(settings):
    await ensure_topics(settings.kafka_bootstrap_servers, [PROFILES_TOPIC], partitions=3)


async def test_staged_events_are_published_in_order_and_unstaged(infra, db, settings):
    ids = await _write(db, "a", 5)
    async with Relay(db, settings):
        await eventually(
            lambda: db[OUTBOX].count_documents({"published": True}), lambda n: n == 5, what="published"
        )
    assert await db[THINGS].count_documents({PENDING_FLAG: True}) == 0
    placed = [doc async for doc in db[OUTBOX].find().sort("seq", 1)]
    assert [d["_id"] for d in placed] == ids
    assert all(d["offset"] >= 0 and d["expires_at"] > d["published_at"] for d in placed)
    assert set(ids) <= await _ids_on_topic(infra.kafka_bootstrap)


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_writes_succeed_while_the_broker_is_down_and_leave_when_it_returns(servers, db, settings):
    await asyncio.to_thread(servers.stop_kafka)
    async with Relay(db, settings):
        ids = await _write(db, "b", 5)  # the write path never touches Kafka
        await asyncio.sleep(1.0)
        assert await db[OUTBOX].count_documents({"published": True}) == 0
        await asyncio.to_thread(servers.start_kafka)
        await eventually(
            lambda: db[OUTBOX].count_documents({"published": True}),
            lambda n: n == 5,
            timeout=60,
            what="published after the broker returned",
        )
    assert set(ids) <= await _ids_on_topic(servers.kafka_bootstrap)


@pytest.mark.parametrize("servers", ["private"], indirect=True)
async def test_events_a_broker_lost_on_kill_are_published_again(servers, db, settings):
    infra = servers
    async with Relay(db, settings):
        settled = await _write(db, "c", 5)
        await eventually(
            lambda: db[OUTBOX].count_documents({"verified": True}), lambda n: n == 5, what="verified"
        )
        recent = await _write(db, "d", 5)
        await eventually(
            lambda: db[OUTBOX].count_documents({"published": True}), lambda n: n == 10, what="sent"
        )
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
    assert await db[OUTBOX].count_documents({"published": True}) == 10
