"""The outbox log: events waiting to be published, then kept for a retention horizon.

One document holds a batch of events (up to `LOG_DOC_EVENTS`) in order, numbered by `seq`.
On the embedded document store the cost of a write is per document, not per byte: one
document of 500 events goes in an order of magnitude faster than 500 documents. Event ids
are indexed (`ids`, multikey) so the relay can tell whether an event is already in the log.

Single appender: the relay publishes documents in `seq` order, so a number reserved by one
appender and made visible after a later number of another would be skipped. Only the relay
holding the lease appends (its sweep and its republication share one lock), and the sequence
counter refuses an appender whose lease epoch is older than the last one seen.

Documents written by earlier versions held one event each (`_id` = event id, the event's
fields at the top level); they are read the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events import spec_for
from shared.filters import at_most
from shared.messaging.outbox_lease import STATE, LeaseLost

OUTBOX = "outbox"
SEQ_ID = "seq"
LOG_DOC_EVENTS = 500
STAGED_KEY = "_staged"  # inside a staged event: when it was staged (ns), never published


@dataclass(frozen=True)
class Appended:
    """One log document as written: its number, how many events, the oldest staging time."""

    seq: int
    count: int
    staged_ns: int


def published_value(event: dict[str, Any]) -> bytes:
    """The record value exactly as published (bookkeeping keys starting with _ removed)."""
    clean = {k: v for k, v in event.items() if not k.startswith("_")}
    return json.dumps(clean, separators=(",", ":")).encode()


def _entry(event: dict[str, Any]) -> dict[str, Any]:
    spec = spec_for(event["type"])
    if spec is None:
        raise ValueError(f"staged event of unregistered type {event['type']!r}")
    return {
        "id": event["id"],
        "topic": spec.topic,
        "key": event["subject"],
        "type": event["type"],
        "correlation_id": event["correlationid"],
        # One opaque field is far cheaper for the store to write and read than the event as
        # a nested document.
        "value": published_value(event),
    }


async def append_to_outbox(
    db: AsyncDatabase,
    events: Sequence[dict[str, Any]],
    *,
    retention: timedelta,
    epoch: int | None = None,
) -> list[Appended]:
    """Append events (CloudEvent dicts) to the log, in order, as few documents as possible.

    `epoch` is the appending relay's lease epoch: an appender older than the last one raises
    LeaseLost. None (a benchmark appending with the relay's sweep idle) is not checked.
    """
    if not events:
        return []
    entries = [_entry(event) for event in events]
    chunks = [entries[i : i + LOG_DOC_EVENTS] for i in range(0, len(entries), LOG_DOC_EVENTS)]
    staged = [
        min(int(e.get(STAGED_KEY) or time.time_ns()) for e in events[i : i + LOG_DOC_EVENTS])
        for i in range(0, len(events), LOG_DOC_EVENTS)
    ]
    first = await _reserve(db, len(chunks), epoch)
    now = datetime.now(UTC)
    documents = [
        {
            "_id": f"log-{first + i}",
            "seq": first + i,
            "ids": [e["id"] for e in chunk],
            "entries": chunk,
            "count": len(chunk),
            "staged_ns": staged[i],
            "created_at": now,
            "expires_at": now + retention,
        }
        for i, chunk in enumerate(chunks)
    ]
    await db[OUTBOX].insert_many(documents, ordered=True)
    return [Appended(d["seq"], d["count"], d["staged_ns"]) for d in documents]


async def _reserve(db: AsyncDatabase, count: int, epoch: int | None) -> int:
    """Reserve `count` consecutive numbers; the first one."""
    if epoch is None:
        counter = await db[STATE].find_one_and_update(
            {"_id": SEQ_ID}, {"$inc": {"value": count}}, upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(counter["value"]) - count + 1
    try:
        counter = await db[STATE].find_one_and_update(
            {"_id": SEQ_ID, **at_most("epoch", epoch)},
            {"$inc": {"value": count}, "$max": {"epoch": epoch}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError as exc:
        raise LeaseLost("the log's sequence was taken by a newer lease holder") from exc
    return int(counter["value"]) - count + 1


async def last_reserved(db: AsyncDatabase) -> int:
    counter = await db[STATE].find_one({"_id": SEQ_ID})
    return int(counter["value"]) if counter else 0


def entries_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a log document, whichever version wrote it."""
    if "entries" in document:
        return document["entries"]
    return [
        {
            "id": document["event_id"],
            "topic": document["topic"],
            "key": document["key"],
            "type": document["type"],
            "correlation_id": document["correlation_id"],
            "value": document["value"],
        }
    ]


def staged_ns_of(document: dict[str, Any]) -> int:
    if "staged_ns" in document:
        return int(document["staged_ns"])
    created = document.get("created_at") or datetime.now(UTC)
    return int(created.timestamp() * 1e9)


async def ids_in_log(db: AsyncDatabase, event_ids: Sequence[str]) -> set[str]:
    """Which of these events the log holds (in documents of either version)."""
    wanted = list(dict.fromkeys(event_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        async for doc in db[OUTBOX].find({"ids": {"$in": chunk}}, {"ids": 1}):
            found.update(doc["ids"])
        # Two queries rather than one $or: SecantusDB plans $or as a collection scan.
        async for doc in db[OUTBOX].find({"_id": {"$in": chunk}}, {"_id": 1}):
            found.add(doc["_id"])
    return found & set(wanted)


async def events_in_log(db: AsyncDatabase, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The events themselves (as CloudEvent dicts), by id, for publishing them again."""
    wanted = set(event_ids)
    found: dict[str, dict[str, Any]] = {}
    ids = list(wanted)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for query in ({"ids": {"$in": chunk}}, {"_id": {"$in": chunk}}):
            async for doc in db[OUTBOX].find(query):
                for entry in entries_of(doc):
                    if entry["id"] in wanted and entry["id"] not in found:
                        found[entry["id"]] = json.loads(entry["value"])
    return found
