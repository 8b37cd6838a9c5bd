"""The profiles service's hot queries ride indexes: their plans, as the document store's own
`explain` reports them, hold no collection scan. On SecantusDB always, and on a real MongoDB
when `CONTRACT_MONGODB_URI` names one (as in the document-store contract suite)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from services.profiles.app import create_indexes
from services.profiles.store import PEOPLE, page_query
from shared.db import create_client

REAL_MONGODB_URI = os.environ.get("CONTRACT_MONGODB_URI", "")


@pytest.fixture(params=[
    "secantus",
    pytest.param("mongodb", marks=pytest.mark.skipif(not REAL_MONGODB_URI,
                                                     reason="CONTRACT_MONGODB_URI is not set")),
])
async def db(request, infra):
    uri = infra.mongodb_uri if request.param == "secantus" else REAL_MONGODB_URI
    client = create_client(uri)
    name = f"plans_{uuid.uuid4().hex[:12]}"
    database = client[name]
    await create_indexes(database)
    await database[PEOPLE].insert_many([
        {"_id": f"{n:04d}-{uuid.uuid4()}", "network_id": f"net-{n % 2}",
         "institution_id": f"inst-{n % 3}", "program_ids": [f"prog-{n % 4}"],
         "email": f"p{n}@example.org", "roles": ["mentee"], "specialties": ["surgery"]}
        for n in range(60)
    ])
    yield database
    await client.drop_database(name)
    await client.close()


def _stages(plan: Any) -> list[str]:
    """Every stage name in a plan tree (mongod's and SecantusDB's explain shapes)."""
    if isinstance(plan, dict):
        own = [plan["stage"]] if isinstance(plan.get("stage"), str) else []
        return own + [s for value in plan.values() for s in _stages(value)]
    if isinstance(plan, list):
        return [s for value in plan for s in _stages(value)]
    return []


async def _plan(db, query: dict[str, Any], sort: dict[str, int] | None = None) -> list[str]:
    command: dict[str, Any] = {"find": PEOPLE, "filter": query}
    if sort:
        command |= {"sort": sort, "limit": 20}
    explained = await db.command("explain", command, verbosity="queryPlanner")
    return _stages(explained["queryPlanner"]["winningPlan"])


HOT = {
    "one profile by id (GET /people/{id}, the caller's own record)":
        ({"_id": "0007-x"}, None),
    "a person by email (registration, roster import)":
        ({"network_id": "net-1", "email": "p7@example.org"}, None),
    "a large roster's pass over its network":
        ({"network_id": "net-1"}, None),
    "first page of a network (network admins)":
        (page_query("net-1", {}), {"_id": 1}),
    "next page of a network":
        (page_query("net-1", {}, after="0031"), {"_id": 1}),
    "a page of an institution (institution coordinators)":
        (page_query("net-1", {"$or": [{"institution_id": "inst-2"}]}, after="0010"), {"_id": 1}),
    "a page of a program":
        (page_query("net-1", {}, program_id="prog-3", after="0010"), {"_id": 1}),
    "the people of an import batch, by id (its events published yet?)":
        ({"_id": {"$in": ["0001-x", "0002-x"]}}, None),
}


@pytest.mark.parametrize("name", list(HOT))
async def test_hot_queries_ride_an_index(db, name):
    query, sort = HOT[name]
    stages = await _plan(db, query, sort)
    assert "COLLSCAN" not in stages, f"{name}: {query} is planned as {stages}"
    assert {"IXSCAN", "IDHACK", "EXPRESS_IXSCAN", "EXPRESS_IDHACK"} & set(stages), stages


async def test_a_page_drops_erased_tombstones_and_still_continues(db):
    """Tombstones are dropped after reading, so a page may be short; the cursor goes on."""
    from services.profiles.store import PeopleStore

    store = PeopleStore(db)
    ids = sorted([d["_id"] async for d in db[PEOPLE].find({"network_id": "net-0"})])
    await db[PEOPLE].update_many({"_id": {"$in": ids[:3]}}, {"$set": {"erased": True}})
    first, after = await store.people("net-0", {}, limit=5, after=None)
    assert [p["_id"] for p in first] == ids[3:5] and after == ids[4]
    rest, after = await store.people("net-0", {}, limit=100, after=after)
    assert [p["_id"] for p in rest] == ids[5:] and after is None
