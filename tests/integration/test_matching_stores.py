"""Matching's stores on the real document store (SecantusDB): a large run kept in chunks and
edited by edition, and a mentor's places taken by racing reservations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.matching.store import LOAD, LoadStore, RunStore


def _proposals(n: int, prefix: str = "e") -> list[dict]:
    return [{"mentee_id": f"{prefix}{i}", "mentor_id": f"m{i % 7}", "need": None, "score": 50.0,
             "explanation": ["needs: 20.0 of 30.0 — offers help with research (priority 1)"] * 9}
            for i in range(n)]


async def test_a_run_larger_than_a_chunk_reads_back_whole_and_edits_replace_it(db):
    store = RunStore(db)
    store.CHUNK = 100
    run = {"_id": "run-1", "program_id": "p", "status": "draft", "proposals": _proposals(250)}
    await store.add(run)
    read = await store.get("p", "run-1")
    assert read["proposals"] == run["proposals"]
    assert await db["run_proposals"].count_documents({"run_id": "run-1"}) == 3

    assert await store.replace_draft(read, _proposals(120, "f"), {"mentees_matched": 120})
    edited = await store.get("p", "run-1")
    assert [p["mentee_id"] for p in edited["proposals"]] == [f"f{i}" for i in range(120)]
    assert edited["edition"] != read["edition"] and edited["mentees_matched"] == 120
    assert await db["run_proposals"].count_documents({"run_id": "run-1"}) == 2  # old chunks gone

    # An edit based on the first edition lost to the one above: refused, nothing mixed in.
    assert not await store.replace_draft(read, _proposals(5, "g"), {"mentees_matched": 5})
    assert (await store.get("p", "run-1"))["proposals"] == edited["proposals"]
    assert await db["run_proposals"].count_documents({"run_id": "run-1"}) == 2
    publishing = await store.start_publishing("run-1")
    assert publishing["status"] == "publishing" and len(publishing["proposals"]) == 120
    assert not await store.replace_draft(edited, [], {})


async def test_racing_reservations_never_take_more_places_than_the_capacity(db):
    loads = LoadStore(db)
    taken = await asyncio.gather(*(loads.reserve("mentor", f"ms-{i}", 3) for i in range(12)))
    assert sum(taken) == 3
    load = await db[LOAD].find_one({"_id": "mentor"})
    assert load["active"] == 3 and len(load["holds"]) == 3
    assert await loads.reserve("mentor", load["holds"][0]["id"], 3)  # a retry of a holder
    await loads.release("mentor", load["holds"][0]["id"])
    await loads.release("mentor", load["holds"][0]["id"])  # twice counts once
    assert (await db[LOAD].find_one({"_id": "mentor"}))["active"] == 2


async def test_a_place_held_by_a_request_that_died_is_given_back(db):
    loads = LoadStore(db)
    assert await loads.reserve("mentor", "ms-dead", 1)
    assert not await loads.reserve("mentor", "ms-next", 1)  # the hold is fresh: it may still finish
    old = datetime.now(UTC) - timedelta(seconds=LoadStore.STALE_SECONDS + 1)
    await db[LOAD].update_one({"_id": "mentor"}, {"$set": {"holds.0.at": old}})
    assert await loads.reserve("mentor", "ms-next", 1)  # ms-dead never became active
    assert [h["id"] for h in (await db[LOAD].find_one({"_id": "mentor"}))["holds"]] == ["ms-next"]


async def test_a_start_takes_both_places_or_neither(db):
    from services.matching.store import MENTEE_LOAD, Places

    places = Places(db)
    first = {"_id": "ms-1", "mentor_id": "m1", "mentee_id": "e", "program_id": "p"}
    second = {"_id": "ms-2", "mentor_id": "m2", "mentee_id": "e", "program_id": "p"}
    assert await places.take(first, capacity=1, mentee_limit=1) is None
    assert await places.take(second, capacity=1, mentee_limit=1) == "mentee"
    assert (await db[LOAD].find_one({"_id": "m2"}))["active"] == 0  # the mentor's place given back
    await places.give_back(first)
    assert (await db[MENTEE_LOAD].find_one({"_id": "e|p"}))["active"] == 0
    assert await places.take(second, capacity=1, mentee_limit=1) is None
