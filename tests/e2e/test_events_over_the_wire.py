"""Redelivery and poison records injected straight into the profiles topic."""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events.topics import PROFILES_TOPIC, dead_letter_topic
from tests.support import eventually, mentee_registered_event, stays


async def _produce(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(PROFILES_TOPIC, value, key=key)
    finally:
        await producer.stop()


async def _dead_letters(bootstrap: str, service: str, key: bytes) -> list:
    consumer = AIOKafkaConsumer(
        dead_letter_topic(service), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found = []
    try:
        for _ in range(10):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(r for r in records if r.key == key)
    finally:
        await consumer.stop()
    return found


async def test_the_same_event_delivered_twice_changes_nothing(api, platform, network_id):
    event = mentee_registered_event("person-twice", network_id=network_id, institution_id="inst-a")
    await _produce(platform.servers.kafka_bootstrap, [(b"k-twice", event.to_bytes())] * 2)
    await eventually(lambda: api.registrations(network_id), lambda n: n == 1)
    # Once more later, behind a fresh event on the same partition: when the fresh one has
    # been counted, the duplicate before it has been seen and skipped.
    fresh = mentee_registered_event("person-fresh", network_id=network_id, institution_id="inst-a")
    await _produce(
        platform.servers.kafka_bootstrap,
        [(b"k-twice", event.to_bytes()), (b"k-twice", fresh.to_bytes())],
    )
    await eventually(lambda: api.registrations(network_id), lambda n: n >= 2)
    await stays(lambda: api.registrations(network_id), 2, seconds=1.5)
    assert await api.pool_size(network_id) == 2
    assert len(await api.feed(network_id, "person-twice")) == 1


async def test_malformed_and_unknown_events_are_dead_lettered_and_the_partition_moves_on(
    api, platform, network_id
):
    key = f"poison-{network_id}".encode()
    unknown = json.loads(mentee_registered_event("person-x", network_id=network_id, institution_id="inst-a").to_bytes())
    unknown["type"] = "MenteeTeleported"
    after = mentee_registered_event("person-after", network_id=network_id, institution_id="inst-a")
    await _produce(
        platform.servers.kafka_bootstrap,
        [(key, b"\x00not json at all"), (key, json.dumps(unknown).encode()), (key, after.to_bytes())],
    )
    await eventually(lambda: api.registrations(network_id), lambda n: n == 1, what="event after")
    for service in ("matching", "notifications", "analytics"):
        dead = await eventually(
            lambda s=service: _dead_letters(platform.servers.kafka_bootstrap, s, key),
            lambda found: len(found) >= 2,
            what=f"{service} dead letters",
        )
        reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
        assert len(dead) == 2, reasons
        assert reasons[0].startswith("record value is not JSON")
        assert reasons[1] == "unknown event type 'MenteeTeleported'"
        assert {dict(r.headers)["dlq_original_topic"] for r in dead} == {PROFILES_TOPIC.encode()}
    await asyncio.sleep(0)
