"""Kafka behaviours the platform relies on, checked over real sockets on every broker.

Each test runs once per broker (``noida``, ``tansu``; see conftest.py). A behaviour a broker
lacks is a ``broker_gap`` (strict xfail for that broker only), never a dropped test.

Names are unique per test (uuid) so the tests share the brokers without seeing each other.
Consumers are always stopped with ``await consumer.stop()``; a task blocked in ``getmany`` is
never cancelled (aiokafka would leave a zombie member heartbeating and holding partitions).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, MessageSizeTooLargeError, UnknownError
from aiokafka.structs import ConsumerRecord

pytestmark = pytest.mark.contract

# Short group timings keep the suite fast. 6 s is the smallest session timeout Kafka accepts by
# default (group.min.session.timeout.ms; noida-db refuses less with InvalidSessionTimeoutError).
# Tansu holds a JoinGroup for about half the session timeout, so its rebalances scale with it.
SESSION_MS = 6000
HEARTBEAT_MS = 300
# Tansu answers a fetch only after fetch_max_wait_ms even when records are waiting.
FETCH_WAIT_MS = 10
WAIT_S = 20.0  # upper bound for any single wait in this module

# A record above Kafka's default limit (max.message.bytes = 1048588, producer
# max_request_size = 1048576). A ~900 KB record is under both and is accepted everywhere.
OVERSIZED = 1_200_000
RAISED_LIMIT = 2_000_000


def unique(prefix: str) -> str:
    return f"contract-{prefix}-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def admin(broker) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create_topic(broker, partitions: int = 1, configs: dict[str, str] | None = None) -> str:
    topic = unique("topic")
    async with admin(broker) as client:
        response = await client.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=configs or {},
                )
            ]
        )
    errors = [(name, code) for name, code, *_ in response.topic_errors if code != 0]
    assert not errors, f"create_topics failed: {response}"
    return topic


@asynccontextmanager
async def producer(broker, **overrides) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **overrides)
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


def consumer_config(broker, **overrides) -> dict:
    config = dict(
        bootstrap_servers=broker.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    config.update(overrides)
    return config


@asynccontextmanager
async def consumer(broker, *topics: str, **overrides) -> AsyncIterator[AIOKafkaConsumer]:
    client = AIOKafkaConsumer(*topics, **consumer_config(broker, **overrides))
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


async def read(
    client: AIOKafkaConsumer, count: int, timeout: float = WAIT_S
) -> list[ConsumerRecord]:
    """Exactly ``count`` records (positions advance only past the records returned)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"read {len(records)} of {count} records in {timeout}s"
        batches = await client.getmany(timeout_ms=100, max_records=count - len(records))
        for tp in sorted(batches, key=lambda tp: tp.partition):
            records.extend(batches[tp])
    return records


class Poller:
    """Keeps a subscribed consumer polling in the background; stopped by a flag, not cancel()."""

    def __init__(self, client: AIOKafkaConsumer) -> None:
        self.client = client
        self.running = True
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.running:
            await self.client.getmany(timeout_ms=100)

    async def stop(self) -> None:
        self.running = False
        await self.task


async def wait_until(
    predicate: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition"
) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what} not reached in {timeout}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def partitions(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(count)}


# --------------------------------------------------------------------------------------------


async def test_explicit_topic_creation_with_partitions(broker):
    topic = await create_topic(broker, partitions=3)
    async with admin(broker) as client:
        assert topic in await client.list_topics()
        [description] = await client.describe_topics([topic])
    assert description["error_code"] == 0
    assert sorted(p["partition"] for p in description["partitions"]) == [0, 1, 2]
    async with producer(broker) as client:
        assert await client.partitions_for(topic) == {0, 1, 2}


async def test_same_key_same_partition_read_in_order(broker):
    topic = await create_topic(broker, partitions=4)
    keys = [f"mentee-{i}".encode() for i in range(8)]
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    async with producer(broker, acks="all", linger_ms=2) as client:
        futures = []
        for seq in range(25):  # pipelined, as the outbox relay publishes
            for key in keys:
                value = f"{key.decode()}:{seq}".encode()
                sent[key].append(value)
                futures.append((key, await client.send(topic, value, key=key)))
        for key, future in futures:
            partition_of[key].add((await future).partition)
    assert all(len(p) == 1 for p in partition_of.values()), partition_of
    assert len({p for ps in partition_of.values() for p in ps}) > 1  # keys actually spread

    async with consumer(broker) as client:
        client.assign(sorted(partitions(topic, 4), key=lambda tp: tp.partition))
        await client.seek_to_beginning()
        records = await read(client, len(keys) * 25)
    received: dict[bytes, list[bytes]] = defaultdict(list)
    for record in records:
        assert {record.partition} == partition_of[record.key]
        received[record.key].append(record.value)
    assert received == sent


async def test_group_of_two_splits_partitions_and_survivor_takes_all(broker, record_property):
    topic = await create_topic(broker, partitions=4)
    group = unique("group")
    everything = partitions(topic, 4)
    started = time.monotonic()
    async with consumer(broker, topic, group_id=group) as first:
        first_poll = Poller(first)
        try:
            await wait_until(lambda: first.assignment() == everything, what="first member owns all")
            joined = time.monotonic() - started
            started = time.monotonic()
            async with consumer(broker, topic, group_id=group) as second:
                second_poll = Poller(second)
                try:

                    def split() -> bool:
                        a, b = first.assignment(), second.assignment()
                        return bool(a) and bool(b) and not (a & b) and (a | b) == everything

                    await wait_until(split, what="two members split the partitions")
                    split_s = time.monotonic() - started
                finally:
                    await second_poll.stop()
            # `second` has left the group cleanly (stop() sends LeaveGroup)
            handover = await wait_until(
                lambda: first.assignment() == everything, what="survivor owns all"
            )
        finally:
            await first_poll.stop()
    record_property("measured_first_join_s", round(joined, 2))
    record_property("measured_rebalance_on_join_s", round(split_s, 2))
    record_property("measured_rebalance_on_leave_s", round(handover, 2))


async def test_manual_commit_then_new_member_resumes_after_it(broker, record_property):
    topic = await create_topic(broker)
    group = unique("group")
    tp = TopicPartition(topic, 0)
    async with producer(broker, acks="all") as client:
        for i in range(10):
            await client.send_and_wait(topic, f"event-{i}".encode(), partition=0)

    async with consumer(broker, topic, group_id=group) as first:
        records = await read(first, 4)
        assert [r.offset for r in records] == [0, 1, 2, 3]
        await first.commit()
        assert await first.committed(tp) == 4

    started = time.monotonic()
    async with consumer(broker, topic, group_id=group) as second:
        records = await read(second, 6)
        rejoined = time.monotonic() - started
        assert [r.offset for r in records] == list(range(4, 10))
        assert await second.committed(tp) == 4
    # Tansu keeps a member that left cleanly until its session times out: the next member of
    # the group waits ~1.5 session timeouts (noida: at once).
    record_property("measured_join_after_last_member_left_s", round(rejoined, 2))


async def test_uncommitted_records_are_redelivered(broker):
    topic = await create_topic(broker)
    group = unique("group")
    async with producer(broker, acks="all") as client:
        for i in range(6):
            await client.send_and_wait(topic, f"event-{i}".encode(), partition=0)

    async with consumer(broker, topic, group_id=group) as first:
        await read(first, 2)
        await first.commit()  # offsets 0-1 done
        handled_not_committed = await read(first, 4)  # then "crash" before committing
    async with consumer(broker, topic, group_id=group) as second:
        again = await read(second, 4)
    assert [(r.offset, r.value) for r in again] == [
        (r.offset, r.value) for r in handled_not_committed
    ]
    assert [r.offset for r in again] == [2, 3, 4, 5]


async def test_headers_round_trip_as_bytes(broker):
    topic = await create_topic(broker)
    headers = [
        ("event-id", str(uuid.uuid4()).encode()),
        ("event-type", b"mentorship.match.proposed"),
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("binary", bytes(range(256))),
        ("empty", b""),
    ]
    async with producer(broker, acks="all") as client:
        await client.send_and_wait(topic, b"{}", key=b"k", headers=headers)
    async with consumer(broker) as client:
        client.assign([TopicPartition(topic, 0)])
        await client.seek_to_beginning()
        [record] = await read(client, 1)
    assert list(record.headers) == headers


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """What the platform does: offsets live in MongoDB, the consumer seeks on assignment."""

    def __init__(self, client: AIOKafkaConsumer, stored: dict[TopicPartition, int]) -> None:
        self.client = client
        self.stored = stored

    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        for tp in assigned:
            if tp in self.stored:
                self.client.seek(tp, self.stored[tp])


async def test_seek_to_stored_offset_on_assignment(broker):
    topic = await create_topic(broker, partitions=2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    async with producer(broker, acks="all") as client:
        for i in range(10):
            await client.send_and_wait(topic, f"p0-{i}".encode(), partition=0)
            await client.send_and_wait(topic, f"p1-{i}".encode(), partition=1)

    client = AIOKafkaConsumer(**consumer_config(broker, group_id=unique("group")))
    await client.start()
    try:
        client.subscribe([topic], listener=SeekToStoredOffsets(client, {tp0: 7, tp1: 3}))
        records = await read(client, 3 + 7)
        by_partition = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record.offset)
        assert by_partition == {0: [7, 8, 9], 1: list(range(3, 10))}

        client.seek(tp0, 2)  # replay from an older stored offset
        replay = await read(client, 8)
        assert [r.offset for r in replay if r.partition == 0] == list(range(2, 10))
        assert [r.value for r in replay] == [f"p0-{i}".encode() for i in range(2, 10)]
    finally:
        await client.stop()


async def test_beginning_and_end_offsets_report_the_log_extent(broker):
    topic = await create_topic(broker, partitions=2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    async with consumer(broker) as client:
        assert await client.end_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        async with producer(broker, acks="all") as prod:
            for i in range(7):
                await prod.send_and_wait(topic, f"e{i}".encode(), partition=0)
        assert await client.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert await client.end_offsets([tp0, tp1]) == {tp0: 7, tp1: 0}


STATIC_SESSION_MS = SESSION_MS
STATIC_RECOVERY_LIMIT_S = 2.0  # "at once": well under the session timeout

STATIC_MEMBER = r"""
import asyncio, sys
from aiokafka import AIOKafkaConsumer

async def main(bootstrap, topic, group, instance, session_ms, heartbeat_ms, fetch_wait_ms):
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, group_instance_id=instance,
        enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=int(session_ms),
        heartbeat_interval_ms=int(heartbeat_ms), fetch_max_wait_ms=int(fetch_wait_ms))
    await consumer.start()
    announced = False
    while True:
        await consumer.getmany(timeout_ms=100)
        if consumer.assignment() and not announced:
            print("ASSIGNED", len(consumer.assignment()), flush=True)
            announced = True

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.broker_gap(
    "tansu",
    reason="Tansu 0.6 accepts group_instance_id and does not wait out the dead member's session, "
    "but runs a full JoinGroup/SyncGroup for the restarted static member (~6 s at "
    "session_timeout_ms=6000, ~8 s at 10000) instead of handing its partitions back at once",
    raises=AssertionError,
)
async def test_static_member_killed_without_leaving_gets_partitions_back(broker, record_property):
    topic = await create_topic(broker, partitions=2)
    group, instance = unique("group"), unique("instance")
    everything = partitions(topic, 2)
    member = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STATIC_MEMBER,
            broker.bootstrap,
            topic,
            group,
            instance,
            str(STATIC_SESSION_MS),
            str(HEARTBEAT_MS),
            str(FETCH_WAIT_MS),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    try:
        line = await asyncio.wait_for(asyncio.to_thread(member.stdout.readline), WAIT_S)
        first_join = time.monotonic() - started
        assert line.strip() == "ASSIGNED 2", line
    finally:
        member.send_signal(signal.SIGKILL)  # dies without LeaveGroup, as a crashed service does
        member.wait()
        member.stdout.close()

    started = time.monotonic()
    async with consumer(
        broker,
        topic,
        group_id=group,
        group_instance_id=instance,
        session_timeout_ms=STATIC_SESSION_MS,
    ) as restarted:
        poll = Poller(restarted)
        try:
            await wait_until(
                lambda: restarted.assignment() == everything, what="restarted member owns all"
            )
            recovered = time.monotonic() - started
        finally:
            await poll.stop()
        async with producer(broker, acks="all") as prod:
            await prod.send_and_wait(topic, b"after-restart", partition=1)
        assert b"after-restart" in [r.value for r in await read(restarted, 1)]
    record_property("measured_static_first_join_s", round(first_join, 2))
    record_property("measured_static_recovery_s", round(recovered, 2))
    assert recovered < STATIC_RECOVERY_LIMIT_S, f"partitions back after {recovered:.1f}s"


@pytest.mark.broker_gap(
    "tansu",
    reason="InitProducerId fails with UnknownError (no idempotent producer or transactions); "
    "the platform sets KAFKA_IDEMPOTENT_PRODUCER=false there",
    raises=UnknownError,
)
async def test_idempotent_producer_with_acks_all(broker):
    topic = await create_topic(broker, partitions=2)
    values = [f"event-{i}".encode() for i in range(20)]
    async with producer(broker, enable_idempotence=True, acks="all") as client:
        futures = [await client.send(topic, v, key=v[-1:]) for v in values]
        metadata = [await f for f in futures]
    assert all(m.offset >= 0 for m in metadata)
    async with consumer(broker) as client:
        client.assign(sorted(partitions(topic, 2), key=lambda tp: tp.partition))
        await client.seek_to_beginning()
        received = [r.value for r in await read(client, len(values))]
        assert sorted(received) == sorted(values)  # each exactly once


async def test_900_kb_record_fits_the_default_limits(broker):
    """~900 KB is under Kafka's default 1 MiB limits: accepted with no configuration."""
    topic = await create_topic(broker)
    async with producer(broker, acks="all") as client:
        await client.send_and_wait(topic, b"x" * 900_000)
    async with consumer(broker) as client:
        client.assign([TopicPartition(topic, 0)])
        await client.seek_to_beginning()
        [record] = await read(client, 1)
    assert len(record.value) == 900_000


@pytest.mark.broker_gap(
    "tansu",
    reason="Tansu enforces no max.message.bytes: a 1.2 MB (and a 2.5 MB) record is accepted on a "
    "default topic",
    raises=pytest.fail.Exception,
)
async def test_oversized_record_refused_on_default_topic(broker):
    topic = await create_topic(broker)
    # The producer's own limit is raised so that it is the broker that must refuse.
    async with producer(broker, acks="all", max_request_size=RAISED_LIMIT) as client:
        with pytest.raises(MessageSizeTooLargeError):
            await client.send_and_wait(topic, b"x" * OVERSIZED)


async def _produce_and_read_oversized(broker, topic: str) -> None:
    async with producer(broker, acks="all", max_request_size=RAISED_LIMIT) as client:
        await client.send_and_wait(topic, b"x" * OVERSIZED)
    async with consumer(broker, max_partition_fetch_bytes=RAISED_LIMIT) as client:
        client.assign([TopicPartition(topic, 0)])
        await client.seek_to_beginning()
        [record] = await read(client, 1)
    assert len(record.value) == OVERSIZED


async def test_oversized_record_accepted_on_topic_created_with_raised_limit(broker):
    topic = await create_topic(broker, configs={"max.message.bytes": str(RAISED_LIMIT)})
    await _produce_and_read_oversized(broker, topic)


@pytest.mark.broker_gap(
    "tansu",
    reason="Tansu has no AlterConfigs API (aiokafka: IncompatibleBrokerVersion)",
    raises=IncompatibleBrokerVersion,
)
async def test_oversized_record_accepted_after_raising_limit_with_alter_configs(broker):
    topic = await create_topic(broker)
    async with admin(broker) as client:
        response = await client.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic,
                    configs={"max.message.bytes": str(RAISED_LIMIT)},
                )
            ]
        )
    assert all(resource[0] == 0 for r in response for resource in r.resources), response
    await _produce_and_read_oversized(broker, topic)
