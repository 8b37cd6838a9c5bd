"""Matching persistence: the candidate pool and programs (from events), matching settings,
ranked preferences, runs, mentorships, and each mentor's load.

Mentorships and runs stage their events in the same document write (transactional outbox).
A mentor's places are guarded by one small document per mentor (`mentor_load`): a place is
taken with a single conditional update (`active < capacity`), which the store executes
atomically, so two acceptances racing for a last place can never both get it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.matching.lifecycle import Step
from shared.db import update_and_read
from shared.events import CloudEvent
from shared.filters import admits
from shared.messaging.outbox import WITHOUT_OUTBOX, stage_insert, stage_update, strip_outbox_fields

POOL = "pool"
PROGRAMS = "programs"
PREFERENCES = "preferences"
RUNS = "runs"
RUN_PROPOSALS = "run_proposals"
MENTORSHIPS = "mentorships"
LOAD = "mentor_load"
MENTEE_LOAD = "mentee_load"  # per mentee and program: the program's max_mentors_per_mentee
OUTBOX_COLLECTIONS: tuple[str, ...] = (MENTORSHIPS, RUNS)

# What list endpoints never return: the bulky history (read one mentorship for it).
SUMMARY = {"meetings": 0, "goals": 0, "milestones": 0, "feedback": 0, "_pending_events": 0}


async def create_indexes(db: AsyncDatabase) -> None:
    await db[POOL].create_index([("network_id", ASCENDING), ("role", ASCENDING)])
    await db[POOL].create_index([("mentor_programs", ASCENDING)])
    await db[POOL].create_index([("mentee_programs", ASCENDING)])
    await db[MENTORSHIPS].create_index([("network_id", ASCENDING), ("program_id", ASCENDING)])
    await db[MENTORSHIPS].create_index([("mentor_id", ASCENDING), ("status", ASCENDING)])
    await db[MENTORSHIPS].create_index([("mentee_id", ASCENDING), ("status", ASCENDING)])
    await db[MENTORSHIPS].create_index("open_pair", unique=True, sparse=True, name="one_open_per_pair")
    await db[RUNS].create_index([("program_id", ASCENDING), ("created_at", DESCENDING)])
    await db[RUN_PROPOSALS].create_index([("run_id", ASCENDING), ("edition", ASCENDING), ("index", ASCENDING)])


class PoolStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._pool = db[POOL]

    async def list(self, network_id: str, role: str) -> list[dict[str, Any]]:
        """The network's people in this role or enrolled in a program as one. The role test is
        made here: an `$or` in the filter would make the embedded store scan every network's
        pool (228 ms a listing while a 300-person demo played)."""
        cursor = self._pool.find({"network_id": network_id}).sort("_id", ASCENDING)
        return [doc async for doc in cursor
                if "role" in doc and (doc["role"] == role or doc.get(f"{role}_programs"))]

    async def get(self, network_id: str, person_id: str) -> dict[str, Any] | None:
        return await self._pool.find_one({"_id": person_id, "network_id": network_id})

    async def members(self, network_id: str, program_id: str, role: str) -> list[dict[str, Any]]:
        """People enrolled in the program in this role (not erased)."""
        query = {"network_id": network_id, f"{role}_programs": program_id, "erased": {"$ne": True},
                 "institution_id": {"$exists": True}}
        return [doc async for doc in self._pool.find(query).sort("_id", ASCENDING)]


class ProgramStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._programs = db[PROGRAMS]

    async def get(self, network_id: str, program_id: str) -> dict[str, Any] | None:
        return await self._programs.find_one(
            {"_id": program_id, "network_id": network_id, "name": {"$exists": True}}
        )

    async def set_settings(self, program_id: str, settings: dict[str, Any]) -> None:
        await self._programs.update_one({"_id": program_id}, {"$set": {"matching_settings": settings}})


class PreferenceStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._prefs = db[PREFERENCES]

    async def put(self, program_id: str, person_id: str, role: str, ranked: list[str]) -> None:
        await self._prefs.update_one(
            {"_id": f"{program_id}:{person_id}"},
            {"$set": {"program_id": program_id, "person_id": person_id, "role": role, "ranked": ranked}},
            upsert=True,
        )

    async def of_program(self, program_id: str) -> list[dict[str, Any]]:
        return [doc async for doc in self._prefs.find({"program_id": program_id})]


class RunStore:
    """A run is a header document plus its proposals in chunks of `CHUNK` (a run of tens of
    thousands of explained proposals would pass a document's 16 MB limit). Each write of the
    proposals gets a fresh `edition` id on its chunks; an edit writes its chunks first, then
    points the draft at them with a conditional update (on the edition it was based on), then
    drops the chunks of other editions, so a reader never sees a mix and an edit that lost a
    race removes only its own chunks."""

    CHUNK = 1000

    def __init__(self, db: AsyncDatabase) -> None:
        self._runs = db[RUNS]
        self._chunks = db[RUN_PROPOSALS]

    async def _write_chunks(self, run_id: str, proposals: list[dict[str, Any]]) -> str:
        edition = uuid.uuid4().hex
        chunks = [
            {"_id": f"{run_id}/{edition}/{i}", "run_id": run_id, "edition": edition, "index": i,
             "proposals": proposals[start : start + self.CHUNK]}
            for i, start in enumerate(range(0, len(proposals), self.CHUNK))
        ]
        if chunks:
            await self._chunks.insert_many(chunks)
        return edition

    async def add(self, run: dict[str, Any]) -> None:
        header = {k: v for k, v in run.items() if k != "proposals"}
        edition = await self._write_chunks(run["_id"], run["proposals"])
        await self._runs.insert_one({**header, "edition": edition})

    async def _proposals(self, run_id: str, edition: str | None) -> list[dict[str, Any]]:
        cursor = self._chunks.find({"run_id": run_id, "edition": edition}).sort("index", ASCENDING)
        return [p async for chunk in cursor for p in chunk["proposals"]]

    async def _whole(self, header: dict[str, Any] | None) -> dict[str, Any] | None:
        header = strip_outbox_fields(header)
        if header is None:
            return None
        return {**header, "proposals": await self._proposals(header["_id"], header.get("edition"))}

    async def get(self, program_id: str, run_id: str) -> dict[str, Any] | None:
        return await self._whole(await self._runs.find_one({"_id": run_id, "program_id": program_id}))

    async def list(self, program_id: str) -> list[dict[str, Any]]:
        cursor = self._runs.find({"program_id": program_id}, {"inputs": 0, "mentorship_ids": 0})
        return [strip_outbox_fields(d) async for d in cursor.sort("created_at", DESCENDING)]  # type: ignore[misc]

    async def replace_draft(self, run: dict[str, Any], proposals: list[dict[str, Any]], fields: dict[str, Any]) -> bool:
        """Replace a draft's proposals, unless it was published or edited since `run` was read."""
        edition = await self._write_chunks(run["_id"], proposals)
        result = await self._runs.update_one(
            {"_id": run["_id"], "status": "draft", "edition": run.get("edition")},
            {"$set": {**fields, "edition": edition}},
        )
        if result.matched_count == 1:
            await self._chunks.delete_many({"run_id": run["_id"], "edition": {"$ne": edition}})
            return True
        await self._chunks.delete_many({"run_id": run["_id"], "edition": edition})
        return False

    async def start_publishing(self, run_id: str) -> dict[str, Any] | None:
        """Draft -> publishing, once; a run already publishing (a publish that was cut short)
        is returned so it can be finished."""
        return await self._whole(
            await self._runs.find_one_and_update(
                {"_id": run_id, "status": {"$in": ["draft", "publishing"]}},
                {"$set": {"status": "publishing"}},
                return_document=ReturnDocument.AFTER,
            )
        )

    async def published(self, run_id: str, fields: dict[str, Any], events: list[CloudEvent]) -> None:
        await self._runs.update_one(
            {"_id": run_id, "status": "publishing"}, stage_update({"$set": {**fields, "status": "published"}}, events)
        )


class MentorshipStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._m = db[MENTORSHIPS]

    async def insert(self, docs_and_events: Iterable[tuple[dict[str, Any], list[CloudEvent]]]) -> set[str]:
        """Insert new mentorships with their events. Ones already there (a publish resumed
        after a crash) are left as they are; the ids returned are those refused because the
        pair already has an open mentorship (a concurrent proposal of the same pair)."""
        documents = [stage_insert(doc, events) for doc, events in docs_and_events]
        if not documents:
            return set()
        try:
            await self._m.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return {documents[e["index"]]["_id"] for e in errors if "open_pair" in str(e.get("keyPattern") or e.get("errmsg"))}
        return set()

    async def get(self, network_id: str, mentorship_id: str, scope: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The mentorship, when the caller's `scope` reaches it: a point lookup by id, the
        scope checked on the document found. A participant's scope is an `$or` (mentor or
        mentee, programs, institutions), which in the filter made the embedded store scan
        every mentorship for each of their requests (274 ms a read in a 300-person demo)."""
        doc = await self._m.find_one({"_id": mentorship_id}, WITHOUT_OUTBOX)
        if doc is None or doc.get("network_id") != network_id or not admits(doc, scope or {}):
            return None
        return doc

    async def list(self, network_id: str, scope: dict[str, Any], filters: dict[str, Any], after: str | None, limit: int) -> list[dict[str, Any]]:
        # The page's `_id` bound stays at the top level, where the store uses it, unless the
        # scope already speaks of `_id`; a scope (an `$or` for all but network admins) goes
        # under `$and`, beside `filters`' own `$or`.
        query: dict[str, Any] = {"network_id": network_id, **filters}
        clauses = [scope] if scope else []
        if after and "_id" in scope:
            clauses.append({"_id": {"$gt": after}})
        elif after:
            query["_id"] = {"$gt": after}
        if clauses:
            query["$and"] = clauses
        cursor = self._m.find(query, SUMMARY).sort("_id", ASCENDING).limit(limit)
        return [strip_outbox_fields(d) async for d in cursor]  # type: ignore[misc]

    async def of_network(self, network_id: str) -> list[dict[str, Any]]:
        projection = {"mentor_id": 1, "mentee_id": 1, "status": 1, "program_id": 1, "rematch": 1, "ended_at": 1}
        return [d async for d in self._m.find({"network_id": network_id}, projection)]

    async def apply(self, doc: dict[str, Any], step: Step) -> dict[str, Any] | None:
        """Write a step only if the mentorship is still in the state it was computed from;
        None when someone else changed it meanwhile."""
        query = {"_id": doc["_id"], **(step.expect or {})}
        return await update_and_read(self._m, query, stage_update(step.update(), step.events),
                                     WITHOUT_OUTBOX)


class LoadStore:
    """Active mentorships per mentor (or per mentee and program, with `MENTEE_LOAD`), with the
    ids holding the places (so a retried reservation or release counts once) and when each
    was taken."""

    STALE_SECONDS = 30.0

    def __init__(self, db: AsyncDatabase, collection: str = LOAD) -> None:
        self._load = db[collection]
        self._mentorships = db[MENTORSHIPS]

    async def reserve(self, mentor_id: str, mentorship_id: str, capacity: int) -> bool:
        try:
            await self._load.update_one(
                {"_id": mentor_id}, {"$setOnInsert": {"active": 0, "holds": []}}, upsert=True
            )
        except DuplicateKeyError:  # created concurrently: it exists now
            pass
        if await self._take(mentor_id, mentorship_id, capacity):
            return True
        if await self._load.count_documents({"_id": mentor_id, "holds.id": mentorship_id}) == 1:
            return True  # this mentorship holds the place already (a retried request)
        if await self._drop_stale(mentor_id):
            return await self._take(mentor_id, mentorship_id, capacity)
        return False

    async def _take(self, mentor_id: str, mentorship_id: str, capacity: int) -> bool:
        """The atomic step: one conditional update, so of two racing requests for the last
        place exactly one matches `active < capacity`."""
        result = await self._load.update_one(
            {"_id": mentor_id, "active": {"$lt": capacity}, "holds.id": {"$ne": mentorship_id}},
            {"$inc": {"active": 1}, "$push": {"holds": {"id": mentorship_id, "at": datetime.now(UTC)}}},
        )
        return result.modified_count == 1

    async def _drop_stale(self, mentor_id: str) -> bool:
        """Give back places held for a while by mentorships that are not active: a request
        that reserved and then died before writing the mentorship."""
        load = await self._load.find_one({"_id": mentor_id}) or {}
        cutoff = datetime.now(UTC) - timedelta(seconds=self.STALE_SECONDS)
        old = [h["id"] for h in load.get("holds", []) if h["at"] < cutoff]
        if not old:
            return False
        live = {d["_id"] async for d in self._mentorships.find({"_id": {"$in": old}, "status": "active"}, {"_id": 1})}
        stale = [i for i in old if i not in live]
        for mentorship_id in stale:
            await self.release(mentor_id, mentorship_id)
        return bool(stale)

    async def release(self, mentor_id: str, mentorship_id: str) -> None:
        await self._load.update_one(release_filter(mentor_id, mentorship_id), release_update(mentorship_id))


def release_filter(mentor_id: str, mentorship_id: str) -> dict[str, Any]:
    return {"_id": mentor_id, "holds.id": mentorship_id}


def release_update(mentorship_id: str) -> dict[str, Any]:
    """Give a place back, only if this mentorship held it (so it counts once)."""
    return {"$inc": {"active": -1}, "$pull": {"holds": {"id": mentorship_id}}}


def mentee_key(doc: dict[str, Any]) -> str:
    return f"{doc['mentee_id']}|{doc['program_id']}"


class Places:
    """Both places a starting mentorship takes: one of the mentor's (capacity) and one of the
    mentee's in the program (max_mentors_per_mentee), each with its atomic conditional update;
    the first is given back when the second cannot be had."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._mentors = LoadStore(db)
        self._mentees = LoadStore(db, MENTEE_LOAD)

    async def take(self, doc: dict[str, Any], capacity: int, mentee_limit: int) -> str | None:
        """None when both places are taken, else whose place is missing: "mentor" / "mentee"."""
        if not await self._mentors.reserve(doc["mentor_id"], doc["_id"], capacity):
            return "mentor"
        if not await self._mentees.reserve(mentee_key(doc), doc["_id"], mentee_limit):
            await self._mentors.release(doc["mentor_id"], doc["_id"])
            return "mentee"
        return None

    async def give_back(self, doc: dict[str, Any]) -> None:
        await self._mentors.release(doc["mentor_id"], doc["_id"])
        await self._mentees.release(mentee_key(doc), doc["_id"])


def give_back_ops(doc: dict[str, Any]) -> list[tuple[str, UpdateOne]]:
    """The same release as `Places.give_back`, as operations of a consumer's unit of work."""
    return [
        (LOAD, UpdateOne(release_filter(doc["mentor_id"], doc["_id"]), release_update(doc["_id"]))),
        (MENTEE_LOAD, UpdateOne(release_filter(mentee_key(doc), doc["_id"]), release_update(doc["_id"]))),
    ]
