"""Every MongoDB operation the platform's stores use, checked on each document store.

Runs against SecantusDB (the embedded store, root fixture ``infra.mongodb_uri``) and, when the
environment variable ``CONTRACT_MONGODB_URI`` names one, against a real MongoDB as well (it must
be a replica set, for transactions). The client is the platform's own (``shared.db``), so the
options it sets (``tz_aware=True``) are part of the contract. Each test uses a fresh database.

An operation a store gets wrong stays in the suite: decorate the test with
``@store_gap("secantus", reason=..., raises=...)`` and that store's parameter becomes
``xfail(strict=True)``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pymongo import (
    ASCENDING,
    DESCENDING,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateOne,
)
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from shared.db import create_client

pytestmark = pytest.mark.contract

STORES = ("secantus", "mongodb")
REAL_MONGODB_URI = os.environ.get("CONTRACT_MONGODB_URI", "")
WRITE_CONFLICT = 112


def store_gap(store: str, reason: str, raises: type[BaseException] | None = None) -> Callable:
    """Mark a known gap of one store: its parameter of the test is xfail(strict=True)."""
    assert store in STORES

    def mark(test: Callable) -> Callable:
        test.__dict__.setdefault("store_gaps", {})[store] = pytest.mark.xfail(
            strict=True, reason=f"known gap on {store}: {reason}", raises=raises
        )
        return test

    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db" not in metafunc.fixturenames:
        return
    gaps = getattr(metafunc.function, "store_gaps", {})
    params = []
    for store in STORES:
        marks = [gaps[store]] if store in gaps else []
        if store == "mongodb" and not REAL_MONGODB_URI:
            marks.append(pytest.mark.skip(reason="CONTRACT_MONGODB_URI is not set"))
        params.append(pytest.param(store, id=store, marks=marks))
    metafunc.parametrize("store", params)


@pytest.fixture
async def db(request: pytest.FixtureRequest, store: str) -> AsyncIterator[AsyncDatabase]:
    uri = request.getfixturevalue("infra").mongodb_uri if store == "secantus" else REAL_MONGODB_URI
    client = create_client(uri)
    name = f"contract_{uuid.uuid4().hex[:16]}"
    try:
        yield client[name]
    finally:
        try:
            await client.drop_database(name)
        finally:
            await client.close()


def new_id() -> str:
    return str(uuid.uuid4())


# -- inserts ---------------------------------------------------------------------------------


async def test_insert_one_and_find_one_by_string_uuid(db):
    person_id = new_id()
    result = await db.people.insert_one({"_id": person_id, "name": "Ada", "network_id": "n1"})
    assert result.inserted_id == person_id
    assert await db.people.find_one({"_id": person_id, "network_id": "n1"}) == {
        "_id": person_id,
        "name": "Ada",
        "network_id": "n1",
    }
    assert await db.people.find_one({"_id": person_id, "network_id": "other"}) is None
    assert await db.people.find_one({"_id": new_id()}) is None


async def test_insert_many_unordered_reports_duplicates_and_inserts_the_rest(db):
    existing = new_id()
    await db.inbox.insert_one({"_id": existing, "n": 0})
    fresh = [new_id() for _ in range(3)]
    docs = [
        {"_id": fresh[0], "n": 1},
        {"_id": existing, "n": 2},
        {"_id": fresh[1], "n": 3},
        {"_id": fresh[0], "n": 4},
        {"_id": fresh[2], "n": 5},
    ]
    with pytest.raises(BulkWriteError) as caught:
        await db.inbox.insert_many(docs, ordered=False)
    details = caught.value.details
    assert details["nInserted"] == 3
    errors = details["writeErrors"]
    assert sorted(e["index"] for e in errors) == [1, 3]
    assert all(e["code"] == 11000 for e in errors)
    assert {e["op"]["_id"] for e in errors} == {existing, fresh[0]}
    stored = {d["_id"]: d["n"] async for d in db.inbox.find({})}
    assert stored == {existing: 0, fresh[0]: 1, fresh[1]: 3, fresh[2]: 5}


async def test_insert_many_ordered_stops_at_the_first_duplicate(db):
    ids = [new_id() for _ in range(3)]
    with pytest.raises(BulkWriteError) as caught:
        await db.inbox.insert_many(
            [{"_id": ids[0]}, {"_id": ids[1]}, {"_id": ids[0]}, {"_id": ids[2]}], ordered=True
        )
    assert caught.value.details["nInserted"] == 2
    assert [e["index"] for e in caught.value.details["writeErrors"]] == [2]
    assert await db.inbox.count_documents({}) == 2


# -- queries ---------------------------------------------------------------------------------


async def _seed_pool(db) -> list[dict]:
    docs = [
        {
            "_id": f"p{i:02d}",
            "network_id": "n1" if i % 3 else "n2",
            "role": "mentor" if i % 2 else "mentee",
            "score": i * 10,
            "tags": ["cardio"] if i % 4 == 0 else ["neuro", "peds"],
            "name": f"Person {i}",
        }
        for i in range(12)
    ]
    await db.pool.insert_many(docs)
    return docs


async def test_find_with_filter_projection_sort_and_limit(db):
    docs = await _seed_pool(db)
    cursor = (
        db.pool.find(
            {
                "network_id": "n1",
                "role": {"$in": ["mentor", "mentee"]},
                "score": {"$gte": 20, "$lt": 100},
            },
            {"name": 1, "score": 1},
        )
        .sort([("score", DESCENDING)])
        .limit(3)
    )
    got = [d async for d in cursor]
    expected = sorted(
        (d for d in docs if d["network_id"] == "n1" and 20 <= d["score"] < 100),
        key=lambda d: -d["score"],
    )[:3]
    assert got == [{"_id": d["_id"], "name": d["name"], "score": d["score"]} for d in expected]

    # the relay's form: positional projection, limit as keyword; exclusion projection
    got = [d async for d in db.pool.find({"tags": "cardio"}, {"tags": 1}, limit=2)]
    assert len(got) == 2 and all(set(d) == {"_id", "tags"} for d in got)
    got = await db.pool.find_one({"_id": "p01"}, {"name": 0, "tags": 0})
    assert got == {"_id": "p01", "network_id": "n1", "role": "mentor", "score": 10}
    # multi-key sort
    got = [
        d["_id"]
        async for d in db.pool.find({}, {"_id": 1}).sort(
            [("role", ASCENDING), ("score", DESCENDING)]
        )
    ]
    assert got == [d["_id"] for d in sorted(docs, key=lambda d: (d["role"], -d["score"]))]


async def test_cursor_pagination_by_id(db):
    ids = sorted(new_id() for _ in range(23))
    await db.items.insert_many([{"_id": i, "v": n} for n, i in enumerate(ids)])
    pages, last = [], None
    while True:
        query = {"_id": {"$gt": last}} if last is not None else {}
        page = [d async for d in db.items.find(query).sort("_id", ASCENDING).limit(10)]
        if not page:
            break
        pages.append([d["_id"] for d in page])
        last = page[-1]["_id"]
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [i for p in pages for i in p] == ids


async def test_count_documents(db):
    docs = await _seed_pool(db)
    assert await db.pool.count_documents({}) == len(docs)
    assert await db.pool.count_documents({"network_id": "n1"}) == sum(
        d["network_id"] == "n1" for d in docs
    )
    assert await db.pool.count_documents({"network_id": "n1", "role": "mentor"}) == sum(
        d["network_id"] == "n1" and d["role"] == "mentor" for d in docs
    )
    assert await db.pool.count_documents({"network_id": "none"}) == 0
    assert await db.pool.count_documents({}, limit=5) == 5


async def test_query_array_first_element_exists_and_size(db):
    await db.people.insert_many(
        [
            {"_id": "a", "pending": [{"id": "e1"}], "flag": True},
            {"_id": "b", "pending": []},
            {"_id": "c"},
            {"_id": "d", "pending": [{"id": "e2"}, {"id": "e3"}]},
        ]
    )

    async def ids(query: dict) -> list[str]:
        return sorted([d["_id"] async for d in db.people.find(query, {"_id": 1})])

    assert await ids({"pending.0": {"$exists": True}}) == ["a", "d"]
    assert await ids({"pending.0": {"$exists": False}}) == ["b", "c"]
    assert await ids({"pending": {"$size": 0}}) == ["b"]
    assert await ids({"pending": {"$size": 2}}) == ["d"]
    assert await ids({"flag": True}) == ["a"]
    assert await ids({"pending.id": "e3"}) == ["d"]


# -- updates ---------------------------------------------------------------------------------


async def test_find_one_and_update_upsert_returns_the_document_after(db):
    doc = await db.counters.find_one_and_update(
        {"_id": "outbox_seq"},
        {"$inc": {"value": 5}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc == {"_id": "outbox_seq", "value": 5}
    doc = await db.counters.find_one_and_update(
        {"_id": "outbox_seq"}, {"$inc": {"value": 3}}, upsert=True, return_document=True
    )  # the relay's form
    assert doc == {"_id": "outbox_seq", "value": 8}
    before = await db.counters.find_one_and_update(
        {"_id": "outbox_seq"}, {"$inc": {"value": 1}}, return_document=ReturnDocument.BEFORE
    )
    assert before["value"] == 8
    assert await db.counters.find_one_and_update({"_id": "missing"}, {"$inc": {"value": 1}}) is None
    assert await db.counters.count_documents({}) == 1


async def test_concurrent_find_one_and_update_increments_are_not_lost(db):
    async def reserve(n: int) -> int:
        doc = await db.counters.find_one_and_update(
            {"_id": "seq"},
            {"$inc": {"value": n}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return doc["value"]

    await reserve(0)
    results = await asyncio.gather(*(reserve(1) for _ in range(40)))
    assert sorted(results) == list(range(1, 41))


async def test_update_one_set_inc_setoninsert_unset(db):
    pid = new_id()
    result = await db.people.update_one(
        {"_id": pid},
        {
            "$set": {"name": "Ada", "obsolete": 1},
            "$setOnInsert": {"created": 1},
            "$inc": {"visits": 1},
        },
        upsert=True,
    )
    assert (result.matched_count, result.modified_count, result.upserted_id) == (0, 0, pid)
    result = await db.people.update_one(
        {"_id": pid},
        {
            "$set": {"name": "Ada L."},
            "$setOnInsert": {"created": 2},
            "$inc": {"visits": 2},
            "$unset": {"obsolete": ""},
        },
        upsert=True,
    )
    assert (result.matched_count, result.modified_count, result.upserted_id) == (1, 1, None)
    assert await db.people.find_one({"_id": pid}) == {
        "_id": pid,
        "name": "Ada L.",
        "created": 1,
        "visits": 3,
    }
    result = await db.people.update_one({"_id": pid}, {"$set": {"name": "Ada L."}})
    assert (result.matched_count, result.modified_count) == (1, 0)  # no-op update
    result = await db.people.update_one({"_id": new_id()}, {"$set": {"name": "x"}})
    assert (result.matched_count, result.modified_count, result.upserted_id) == (0, 0, None)


async def test_update_many(db):
    await _seed_pool(db)
    result = await db.pool.update_many(
        {"network_id": "n2"}, {"$set": {"archived": True}, "$inc": {"score": 1}}
    )
    assert result.matched_count == result.modified_count == 4
    assert sorted([d["score"] async for d in db.pool.find({"archived": True})]) == [1, 31, 61, 91]
    assert await db.pool.count_documents({"archived": {"$exists": False}}) == 8
    result = await db.pool.update_many({"network_id": "none"}, {"$set": {"x": 1}})
    assert (result.matched_count, result.modified_count) == (0, 0)


async def test_array_updates_push_each_pull_in_addtoset(db):
    pid = new_id()
    await db.people.insert_one({"_id": pid, "tags": ["a"]})
    await db.people.update_one(
        {"_id": pid},
        {
            "$push": {"pending": {"$each": [{"id": "e1", "n": 1}, {"id": "e2", "n": 2}]}},
            "$set": {"has_pending": True},
        },
    )
    await db.people.update_one(
        {"_id": pid}, {"$push": {"pending": {"$each": [{"id": "e3", "n": 3}]}}}
    )
    await db.people.update_one({"_id": pid}, {"$addToSet": {"tags": {"$each": ["a", "b"]}}})
    await db.people.update_one({"_id": pid}, {"$addToSet": {"tags": "c"}})
    await db.people.update_one({"_id": pid}, {"$addToSet": {"tags": "c"}})
    doc = await db.people.find_one({"_id": pid})
    assert [p["id"] for p in doc["pending"]] == ["e1", "e2", "e3"]
    assert doc["tags"] == ["a", "b", "c"]

    # the outbox sweep: pull the moved events, then unset the fields once the array is empty
    result = await db.people.update_one(
        {"_id": pid}, {"$pull": {"pending": {"id": {"$in": ["e1", "e3", "e9"]}}}}
    )
    assert result.modified_count == 1
    assert (await db.people.find_one({"_id": pid}))["pending"] == [{"id": "e2", "n": 2}]
    result = await db.people.update_one(
        {"_id": pid, "pending": {"$size": 0}}, {"$unset": {"has_pending": "", "pending": ""}}
    )
    assert result.matched_count == 0
    await db.people.update_one({"_id": pid}, {"$pull": {"pending": {"id": {"$in": ["e2"]}}}})
    result = await db.people.update_one(
        {"_id": pid, "pending": {"$size": 0}}, {"$unset": {"has_pending": "", "pending": ""}}
    )
    assert result.modified_count == 1
    assert await db.people.find_one({"_id": pid}) == {"_id": pid, "tags": ["a", "b", "c"]}


async def test_conditional_update_on_stale_version_matches_nothing(db):
    mid = new_id()
    await db.matches.insert_one({"_id": mid, "version": 1, "status": "proposed"})
    result = await db.matches.update_one(
        {"_id": mid, "version": 1}, {"$set": {"status": "accepted"}, "$inc": {"version": 1}}
    )
    assert (result.matched_count, result.modified_count) == (1, 1)
    stale = await db.matches.update_one(
        {"_id": mid, "version": 1}, {"$set": {"status": "declined"}, "$inc": {"version": 1}}
    )
    assert (stale.matched_count, stale.modified_count) == (0, 0)
    assert await db.matches.find_one({"_id": mid}) == {
        "_id": mid,
        "version": 2,
        "status": "accepted",
    }
    assert (
        await db.matches.find_one_and_update(
            {"_id": mid, "version": 1}, {"$set": {"status": "declined"}}
        )
        is None
    )


async def test_bulk_write_ordered_mixed_operations(db):
    await db.outbox.insert_many(
        [{"_id": "keep", "v": 0}, {"_id": "gone", "v": 0}, {"_id": "replace", "v": 0}]
    )
    result = await db.outbox.bulk_write(
        [
            InsertOne({"_id": "new", "v": 1}),
            UpdateOne({"_id": "keep"}, {"$set": {"v": 2}}),
            UpdateOne({"_id": "upserted"}, {"$setOnInsert": {"v": 3, "seq": 1}}, upsert=True),
            UpdateOne(
                {"_id": "upserted"}, {"$setOnInsert": {"v": 99}}, upsert=True
            ),  # already there
            ReplaceOne({"_id": "replace"}, {"only": "this"}),
            DeleteOne({"_id": "gone"}),
        ],
        ordered=True,
    )
    assert (
        result.inserted_count,
        result.matched_count,
        result.modified_count,
        result.deleted_count,
        result.upserted_count,
    ) == (1, 3, 2, 1, 1)
    assert result.upserted_ids == {2: "upserted"}
    assert {d["_id"]: d async for d in db.outbox.find({})} == {
        "keep": {"_id": "keep", "v": 2},
        "new": {"_id": "new", "v": 1},
        "replace": {"_id": "replace", "only": "this"},
        "upserted": {"_id": "upserted", "v": 3, "seq": 1},
    }


async def test_bulk_write_ordered_stops_at_error_unordered_continues(db):
    await db.outbox.insert_one({"_id": "dup"})
    with pytest.raises(BulkWriteError) as caught:
        await db.outbox.bulk_write(
            [InsertOne({"_id": "a"}), InsertOne({"_id": "dup"}), InsertOne({"_id": "b"})],
            ordered=True,
        )
    assert caught.value.details["nInserted"] == 1
    assert await db.outbox.count_documents({}) == 2
    with pytest.raises(BulkWriteError) as caught:
        await db.outbox.bulk_write(
            [
                InsertOne({"_id": "c"}),
                InsertOne({"_id": "dup"}),
                InsertOne({"_id": "d"}),
                UpdateOne({"_id": "a"}, {"$set": {"x": 1}}),
            ],
            ordered=False,
        )
    assert caught.value.details["nInserted"] == 2
    assert caught.value.details["nModified"] == 1
    assert [e["index"] for e in caught.value.details["writeErrors"]] == [1]
    assert await db.outbox.count_documents({}) == 4


# -- indexes ---------------------------------------------------------------------------------


async def _index(db, collection: str, name: str) -> dict:
    indexes = {i["name"]: i async for i in await db[collection].list_indexes()}
    assert name in indexes, sorted(indexes)
    return indexes[name]


async def test_unique_index_refuses_duplicates(db):
    await db.people.create_index("email", unique=True, name="email_unique")
    await db.people.insert_one({"_id": new_id(), "email": "a@example.org"})
    with pytest.raises(DuplicateKeyError) as caught:
        await db.people.insert_one({"_id": new_id(), "email": "a@example.org"})
    assert caught.value.code == 11000
    with pytest.raises(DuplicateKeyError):
        await db.people.update_one(
            {"email": "b@example.org"}, {"$set": {"email": "a@example.org"}}, upsert=True
        )
    assert (await _index(db, "people", "email_unique"))["unique"] is True


async def test_compound_unique_index(db):
    await db.people.create_index(
        [("network_id", ASCENDING), ("email", ASCENDING)], unique=True, name="email_per_network"
    )
    await db.people.insert_one({"_id": new_id(), "network_id": "n1", "email": "a@example.org"})
    await db.people.insert_one({"_id": new_id(), "network_id": "n2", "email": "a@example.org"})
    with pytest.raises(DuplicateKeyError):
        await db.people.insert_one({"_id": new_id(), "network_id": "n1", "email": "a@example.org"})
    index = await _index(db, "people", "email_per_network")
    assert list(index["key"].items()) == [("network_id", 1), ("email", 1)]


async def test_partial_unique_index(db):
    await db.matches.create_index(
        [("mentee_id", ASCENDING)],
        unique=True,
        name="one_active_per_mentee",
        partialFilterExpression={"status": "active"},
    )
    await db.matches.insert_many(
        [
            {"_id": new_id(), "mentee_id": "m1", "status": "active"},
            {"_id": new_id(), "mentee_id": "m1", "status": "ended"},
            {"_id": new_id(), "mentee_id": "m1", "status": "ended"},
        ]
    )
    with pytest.raises(DuplicateKeyError):
        await db.matches.insert_one({"_id": new_id(), "mentee_id": "m1", "status": "active"})
    index = await _index(db, "matches", "one_active_per_mentee")
    assert index["partialFilterExpression"] == {"status": "active"}


async def test_sparse_indexes(db):
    await db.people.create_index(
        [("outbox_pending", ASCENDING)], name="outbox_pending", sparse=True
    )
    await db.people.create_index("badge", unique=True, sparse=True, name="badge_unique")
    await db.people.insert_many(
        [{"_id": "a"}, {"_id": "b"}, {"_id": "c", "outbox_pending": True, "badge": "x"}]
    )
    with pytest.raises(DuplicateKeyError):
        await db.people.insert_one({"_id": "d", "badge": "x"})
    assert [d["_id"] async for d in db.people.find({"outbox_pending": True})] == ["c"]
    assert (await _index(db, "people", "outbox_pending"))["sparse"] is True


async def test_ttl_index_accepted_and_listed(db):
    await db.outbox.create_index(
        [("expires_at", ASCENDING)], name="retention", expireAfterSeconds=0
    )
    await db.inbox.create_index(
        [("applied_at", ASCENDING)], name="retention", expireAfterSeconds=30 * 24 * 3600
    )
    assert (await _index(db, "outbox", "retention"))["expireAfterSeconds"] == 0
    assert (await _index(db, "inbox", "retention"))["expireAfterSeconds"] == 30 * 24 * 3600
    # documents without the field (unpublished events: expires_at None) are simply kept
    await db.outbox.insert_many([{"_id": "a", "expires_at": None}, {"_id": "b"}])
    assert await db.outbox.count_documents({}) == 2


async def test_create_index_twice_is_idempotent(db):
    for _ in range(2):
        name = await db.notifications.create_index(
            [("person_id", ASCENDING), ("created_at", DESCENDING)]
        )
        assert name == "person_id_1_created_at_-1"
        assert await db.pool.create_index("network_id") == "network_id_1"
        await db.people.create_index(
            [("network_id", ASCENDING), ("email", ASCENDING)], unique=True, name="email_per_network"
        )
    names = sorted([i["name"] async for i in await db.notifications.list_indexes()])
    assert names == ["_id_", "person_id_1_created_at_-1"]


# -- transactions ----------------------------------------------------------------------------


async def test_transaction_commit_makes_both_writes_visible(db):
    await db.inbox.insert_one({"_id": "setup"})  # collections exist before the transaction
    await db.offsets.insert_one({"_id": "setup"})
    async with db.client.start_session() as session:
        async with await session.start_transaction():
            await db.inbox.insert_many(
                [{"_id": "e1"}, {"_id": "e2"}], ordered=True, session=session
            )
            await db.offsets.update_one(
                {"_id": "t:0"}, {"$set": {"offset": 42}}, upsert=True, session=session
            )
            # inside: visible to the session, not outside it
            assert await db.inbox.count_documents({}, session=session) == 3
            assert await db.inbox.count_documents({}) == 1
    assert await db.inbox.count_documents({}) == 3
    assert (await db.offsets.find_one({"_id": "t:0"}))["offset"] == 42


async def test_transaction_abort_leaves_nothing(db):
    await db.inbox.insert_one({"_id": "setup", "v": 0})
    await db.offsets.insert_one({"_id": "setup"})

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.client.start_session() as session:
            async with await session.start_transaction():
                await db.inbox.insert_one({"_id": "e1"}, session=session)
                await db.inbox.update_one({"_id": "setup"}, {"$set": {"v": 1}}, session=session)
                await db.offsets.bulk_write(
                    [UpdateOne({"_id": "t:0"}, {"$set": {"offset": 1}}, upsert=True)],
                    ordered=True,
                    session=session,
                )
                raise Boom
    assert [d async for d in db.inbox.find({})] == [{"_id": "setup", "v": 0}]
    assert await db.offsets.count_documents({}) == 1

    async with db.client.start_session() as session:  # explicit abort
        await session.start_transaction()
        await db.inbox.insert_one({"_id": "e2"}, session=session)
        await session.abort_transaction()
    assert await db.inbox.count_documents({}) == 1


async def test_duplicate_key_inside_transaction_aborts_it_cleanly(db):
    await db.inbox.insert_one({"_id": "seen"})
    await db.offsets.insert_one({"_id": "setup"})
    with pytest.raises((DuplicateKeyError, BulkWriteError)):
        async with db.client.start_session() as session:
            async with await session.start_transaction():
                await db.offsets.update_one(
                    {"_id": "t:0"}, {"$set": {"offset": 7}}, upsert=True, session=session
                )
                await db.inbox.insert_one({"_id": "new"}, session=session)
                await db.inbox.insert_one({"_id": "seen"}, session=session)
    assert await db.offsets.find_one({"_id": "t:0"}) is None
    assert [d["_id"] async for d in db.inbox.find({})] == ["seen"]

    # the same with the consumer's ordered insert_many; then the client is still fine
    with pytest.raises(BulkWriteError):
        async with db.client.start_session() as session:
            async with await session.start_transaction():
                await db.inbox.insert_many(
                    [{"_id": "x"}, {"_id": "seen"}], ordered=True, session=session
                )
    async with db.client.start_session() as session:
        async with await session.start_transaction():
            await db.inbox.insert_one({"_id": "after"}, session=session)
    assert sorted([d["_id"] async for d in db.inbox.find({})]) == ["after", "seen"]


async def test_concurrent_transactions_on_one_document_write_conflict(db):
    """The consumer retries a batch whose transaction hit a write conflict (code 112)."""
    await db.offsets.insert_one({"_id": "t:0", "offset": 0})
    client = db.client
    async with client.start_session() as first, client.start_session() as second:
        await first.start_transaction()
        await second.start_transaction()
        await db.offsets.update_one({"_id": "t:0"}, {"$set": {"offset": 1}}, session=first)
        with pytest.raises(OperationFailure) as caught:
            await db.offsets.update_one({"_id": "t:0"}, {"$set": {"offset": 2}}, session=second)
        assert caught.value.code == WRITE_CONFLICT
        assert caught.value.has_error_label("TransientTransactionError")
        await second.abort_transaction()
        await first.commit_transaction()
    assert (await db.offsets.find_one({"_id": "t:0"}))["offset"] == 1


# -- aggregation, deletes, types -------------------------------------------------------------


async def test_aggregate_match_group_sort(db):
    await db.outbox.insert_many(
        [
            {
                "_id": new_id(),
                "topic": "a",
                "partition": p,
                "offset": o,
                "published": True,
                "verified": o < 5,
            }
            for p in (0, 1)
            for o in range(8)
        ]
        + [
            {
                "_id": new_id(),
                "topic": "b",
                "partition": 0,
                "offset": 3,
                "published": True,
                "verified": True,
            },
            {
                "_id": new_id(),
                "topic": "b",
                "partition": 0,
                "offset": 9,
                "published": False,
                "verified": False,
            },
        ]
    )
    cursor = await db.outbox.aggregate(
        [
            {"$match": {"published": True, "verified": True}},
            {
                "$group": {
                    "_id": {"t": "$topic", "p": "$partition"},
                    "high": {"$max": "$offset"},
                    "n": {"$sum": 1},
                }
            },
            {"$sort": {"_id.t": 1, "_id.p": 1}},
        ]
    )
    rows = [r async for r in cursor]
    assert rows == [
        {"_id": {"t": "a", "p": 0}, "high": 4, "n": 5},
        {"_id": {"t": "a", "p": 1}, "high": 4, "n": 5},
        {"_id": {"t": "b", "p": 0}, "high": 3, "n": 1},
    ]
    cursor = await db.outbox.aggregate(
        [{"$group": {"_id": "$topic", "count": {"$sum": 1}}}, {"$sort": {"count": -1}}]
    )
    assert [r async for r in cursor] == [{"_id": "a", "count": 16}, {"_id": "b", "count": 2}]


async def test_delete_one_and_delete_many(db):
    await _seed_pool(db)
    result = await db.pool.delete_one({"network_id": "n2"})
    assert result.deleted_count == 1
    result = await db.pool.delete_many({"network_id": "n2"})
    assert result.deleted_count == 3
    result = await db.pool.delete_many({"_id": {"$in": ["p01", "p02", "nope"]}})
    assert result.deleted_count == 2
    assert (await db.pool.delete_one({"_id": "nope"})).deleted_count == 0
    assert await db.pool.count_documents({}) == 6


async def test_datetimes_round_trip_timezone_aware_utc(db):
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    offset = datetime(2024, 3, 10, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    await db.events.insert_many(
        [{"_id": "a", "at": now}, {"_id": "b", "at": later}, {"_id": "c", "at": offset}]
    )
    doc = await db.events.find_one({"_id": "a"})
    assert doc["at"].tzinfo is not None and doc["at"].utcoffset() == timedelta(0)
    # BSON dates have millisecond precision
    assert doc["at"] == now.replace(microsecond=now.microsecond // 1000 * 1000)
    stored = await db.events.find_one({"_id": "c"})
    assert stored["at"] == offset and stored["at"].utcoffset() == timedelta(
        0
    )  # same instant, in UTC
    assert [d["_id"] async for d in db.events.find({"at": {"$gt": now}})] == ["b"]
    assert [d["_id"] async for d in db.events.find({}).sort("at", ASCENDING)] == ["c", "a", "b"]


async def test_lease_upsert_refused_while_another_holds_it(db):
    """The outbox relay's lease: an upsert whose filter does not match an existing document
    tries to insert the same _id and fails with a duplicate key, so only one holder wins."""
    now = datetime.now(UTC)

    async def take(holder: str, at: datetime) -> bool:
        try:
            await db.state.find_one_and_update(
                {"_id": "lease", "$or": [{"holder": holder}, {"until": {"$lt": at}}]},
                {"$set": {"holder": holder, "until": at + timedelta(seconds=10)}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    assert await take("a", now)
    assert not await take("b", now)  # a holds it until now + 10 s
    assert await take("a", now)  # the holder renews
    assert await take("b", now + timedelta(seconds=11))  # expired: b takes over
    assert (await db.state.find_one({"_id": "lease"}))["holder"] == "b"


async def test_max_only_moves_a_cursor_forward(db):
    await db.state.update_one({"_id": "cursor"}, {"$max": {"seq": 5}}, upsert=True)
    await db.state.update_one({"_id": "cursor"}, {"$max": {"seq": 3}}, upsert=True)
    assert (await db.state.find_one({"_id": "cursor"}))["seq"] == 5
    await db.state.update_one({"_id": "cursor"}, {"$max": {"seq": 9}}, upsert=True)
    assert (await db.state.find_one({"_id": "cursor"}))["seq"] == 9


async def test_unwind_group_max_and_pull_from_array_of_subdocuments(db):
    """The outbox verifier's publication records: highest offset per partition, and
    removing handled placements from every record that holds them."""
    await db.pubs.insert_many(
        [
            {"_id": "p1", "verified": True, "placements": [
                {"e": "a", "t": "x", "p": 0, "o": 4}, {"e": "b", "t": "x", "p": 1, "o": 7}]},
            {"_id": "p2", "verified": True, "placements": [
                {"e": "c", "t": "x", "p": 0, "o": 9}]},
            {"_id": "p3", "verified": False, "placements": [
                {"e": "d", "t": "x", "p": 0, "o": 12}]},
        ]
    )
    rows = await db.pubs.aggregate(
        [
            {"$match": {"verified": True}},
            {"$unwind": "$placements"},
            {"$group": {"_id": {"t": "$placements.t", "p": "$placements.p"},
                        "high": {"$max": "$placements.o"}}},
        ]
    )
    highs = {(r["_id"]["t"], r["_id"]["p"]): r["high"] async for r in rows}
    assert highs == {("x", 0): 9, ("x", 1): 7}
    result = await db.pubs.update_many(
        {"placements.e": {"$in": ["b", "c"]}}, {"$pull": {"placements": {"e": {"$in": ["b", "c"]}}}}
    )
    assert result.modified_count == 2
    assert [p["e"] for p in (await db.pubs.find_one({"_id": "p1"}))["placements"]] == ["a"]
    assert (await db.pubs.find_one({"_id": "p2"}))["placements"] == []


async def test_staging_marks_range_over_a_sparse_index_and_skip_legacy_flags(db):
    """The outbox sweeps by a numeric staging mark: a range on it must not match documents
    whose mark is the `true` of earlier versions (they are found by equality instead), and a
    document whose mark was removed drops out of the index."""
    await db.people.create_index([("mark", ASCENDING)], name="outbox_pending", sparse=True)
    base = 1_780_000_000_000_000_000  # nanoseconds, past int32 and float precision
    await db.people.insert_many([
        {"_id": "a", "mark": base + 1}, {"_id": "b", "mark": base + 2},
        {"_id": "c", "mark": True}, {"_id": "d"},
    ])
    found = [d["_id"] async for d in db.people.find({"mark": {"$gt": base}}).sort("mark", 1)]
    assert found == ["a", "b"]
    assert [d["_id"] async for d in db.people.find({"mark": {"$gt": base + 1, "$lte": base + 2}})] == ["b"]
    assert [d["_id"] async for d in db.people.find({"mark": True})] == ["c"]
    # Unstaging only when the mark is still the one read (a change staged since keeps it).
    result = await db.people.bulk_write([
        UpdateOne({"_id": "a", "mark": base + 1}, {"$unset": {"mark": ""}}),
        UpdateOne({"_id": "b", "mark": base + 1}, {"$unset": {"mark": ""}}),
    ], ordered=False)
    assert result.modified_count == 1
    assert [d["_id"] async for d in db.people.find({"mark": {"$gt": 0}})] == ["b"]


async def test_unique_multikey_index_refuses_an_id_already_in_another_document(db):
    """The consumer's inbox keeps one document per batch with the batch's event ids; a unique
    sparse multikey index makes two replicas recording the same event conflict, also inside
    a transaction."""
    await db.inbox_batches.create_index([("ids", ASCENDING)], name="event_ids", unique=True,
                                        sparse=True)
    await db.inbox_batches.insert_one({"_id": "b1", "ids": ["e1", "e2"]})
    await db.inbox_batches.insert_one({"_id": "legacy"})  # no ids: sparse, no conflict
    await db.inbox_batches.insert_one({"_id": "legacy2"})
    with pytest.raises(DuplicateKeyError):
        await db.inbox_batches.insert_one({"_id": "b2", "ids": ["e3", "e2"]})
    found = [d["_id"] async for d in db.inbox_batches.find({"ids": {"$in": ["e2", "e9"]}})]
    assert found == ["b1"]
    client = db.client
    async with client.start_session() as session:
        with pytest.raises((DuplicateKeyError, OperationFailure)):
            async with await session.start_transaction():
                await db.inbox_batches.insert_one({"_id": "b3", "ids": ["e1"]}, session=session)
    assert await db.inbox_batches.count_documents({}) == 3


async def test_a_fenced_counter_refuses_an_older_epoch(db):
    """The outbox log's sequence counter records the lease epoch of the last relay that used
    it; an upsert filtered on an older epoch must fail with a duplicate key, not create a
    second counter or move the first."""
    fence = lambda epoch: {"_id": "seq", "$or": [{"epoch": {"$lte": epoch}},  # noqa: E731
                                                 {"epoch": {"$exists": False}}]}
    update = lambda epoch: {"$inc": {"value": 5}, "$max": {"epoch": epoch}}  # noqa: E731
    first = await db.outbox_state.find_one_and_update(
        fence(2), update(2), upsert=True, return_document=ReturnDocument.AFTER)
    assert (first["value"], first["epoch"]) == (5, 2)
    with pytest.raises(DuplicateKeyError):
        await db.outbox_state.find_one_and_update(fence(1), update(1), upsert=True)
    after = await db.outbox_state.find_one({"_id": "seq"})
    assert (after["value"], after["epoch"]) == (5, 2)
