"""Rebuild analytics from the beginning of the topics into fresh projections.

Reads every record of the domain topics up to their end at the moment it starts (no consumer
group: nothing of the live service's position moves), folds each event into a new
projection, then replaces the stored facts and registration counts with the rebuilt ones and
records every replayed event in the inbox with the offsets, so the live consumer resumes
after them instead of applying them twice. Run it with the analytics service stopped; the
service loads the rebuilt facts when it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.analytics.domain import registration_increments, scope_id
from services.analytics.facts import to_fact
from services.analytics.live import forget
from services.analytics.projection import Projection
from services.analytics.store import FACTS, REGISTRATIONS, insert_batch
from shared.events import CloudEvent, EventRejected, decode_event
from shared.events.topics import DOMAIN_TOPICS
from shared.messaging.consumer import OFFSETS, applied_ids, record_applied

CHUNK = 5000
FACT_BATCH = 1000


class RebuildRefused(RuntimeError):
    """The live service would keep serving and extending the old projections."""


@dataclass
class Replayed:
    events: list[tuple[CloudEvent, Any]]
    ends: dict[TopicPartition, int]
    rejected: int


async def read_topics(bootstrap: str, topics: Sequence[str] = DOMAIN_TOPICS) -> Replayed:
    """Every decodable event of the topics, from offset 0 to their current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        client_id="analytics-rebuild", max_poll_records=5000,
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetch metadata
        partitions = [
            TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        events: list[tuple[CloudEvent, Any]] = []
        rejected = 0
        if not partitions:
            return Replayed(events, {}, 0)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    try:
                        events.append(decode_event(record.value))
                    except EventRejected:
                        rejected += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return Replayed(events, ends, rejected)
    finally:
        await consumer.stop()


def project(events: Sequence[tuple[CloudEvent, Any]]) -> Projection:
    projection = Projection()
    for event, payload in events:
        projection.apply(event.type, payload)
    return projection


async def rebuild(
    db: AsyncDatabase, bootstrap: str, topics: Sequence[str] = DOMAIN_TOPICS
) -> dict[str, Any]:
    """Replay the topics into fresh projections and store them; returns what was done."""
    replayed = await read_topics(bootstrap, topics)
    projection = project(replayed.events)
    measured = set(projection.event_types)
    facts, counts = [], {}
    for event, payload in replayed.events:
        if event.type not in measured:
            continue
        erased = getattr(payload, "person_id", None) in projection.erased
        facts.append(to_fact(event, payload, erased))
        if event.type in ("MenteeRegistered", "MentorRegistered"):
            for scope, increments in registration_increments(payload):
                doc = counts.setdefault(scope_id(scope), {**scope})
                for name, value in increments.items():
                    doc[name] = doc.get(name, 0) + value
    await db[FACTS].delete_many({})
    await db[REGISTRATIONS].delete_many({})
    batches = [insert_batch(facts[i:i + FACT_BATCH]) for i in range(0, len(facts), FACT_BATCH)]
    for start in range(0, len(batches), 20):
        await db[FACTS].bulk_write(batches[start:start + 20], ordered=True)
    if counts:
        await db[REGISTRATIONS].insert_many([{"_id": k, **v} for k, v in counts.items()])
    await _mark_applied(db, replayed)
    forget(db)
    return {
        "events": len(replayed.events), "facts": len(facts), "rejected": replayed.rejected,
        "partitions": len(replayed.ends), "projection": projection,
    }


async def _mark_applied(db: AsyncDatabase, replayed: Replayed) -> None:
    """The live consumer must resume after the replayed events and never apply them again."""
    ids = [e.id for e, _ in replayed.events]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        known = await applied_ids(db, chunk)
        await record_applied(db, [i for i in chunk if i not in known])
    offsets = [
        UpdateOne({"_id": f"{tp.topic}:{tp.partition}"},
                  {"$set": {"offset": end - 1, "group": "analytics"}}, upsert=True)
        for tp, end in replayed.ends.items() if end > 0
    ]
    if offsets:
        await db[OFFSETS].bulk_write(offsets, ordered=False)


async def rebuild_from_environment(layout: Any, environ: dict[str, str] | Any) -> dict[str, Any]:
    """The CLI's entry: the servers `mentorship up` recorded (or MONGODB_URI / KAFKA_...)."""
    from shared.db import create_client
    from shared.settings import ServiceSettings

    running, url = layout.recorded("analytics")
    if running is not None and running.alive:
        raise RebuildRefused(
            f"analytics is running (pid {running.pid}, {url}): stop it first, for example with "
            "`mentorship down`; it loads the rebuilt projections when it starts again"
        )
    settings = ServiceSettings(service_name="analytics")
    store = layout.store_of("analytics")  # its own store, or the one all services share
    mongo = environ.get("MONGODB_URI") or layout.recorded(store)[1] or settings.mongodb_uri
    kafka = (environ.get("KAFKA_BOOTSTRAP_SERVERS") or layout.recorded("kafka")[1]
             or settings.kafka_bootstrap_servers)
    client = create_client(mongo)
    try:
        database = environ.get("MONGODB_DATABASE") or settings.database_name
        return await rebuild(client[database], kafka)
    finally:
        await client.close()
