"""Scheduled work (reminders, nudges, check-ins, digests), stored in MongoDB, never in memory.

A job is a document with a due time. Handlers create or "poke" jobs with the same write that
applies their event; the scheduler claims a due job atomically (status and a claim deadline),
runs it at the clock's `now`, and completes it or sets its next due time. Two instances never
run the same job at once; a job whose runner died is claimed again after its deadline, and
since every message a job creates has a key derived from the job and the moment it stands
for, a rerun creates nothing twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications.clock import CLOCK, Clock
from services.notifications.config import DeliverySettings
from shared.db import update_and_read
from shared.logging import get_logger

log = get_logger(__name__)

JOBS = "jobs"
CLAIM_TRIES = 5  # due jobs looked at per claim: the earliest may be taken by another runner


async def create_indexes(db: AsyncDatabase) -> None:
    await db[JOBS].create_index([("status", ASCENDING), ("due_at", ASCENDING)])
    await db[JOBS].create_index([("mentorship_id", ASCENDING)], sparse=True)


def poke(job_id: str, kind: str, due_at: datetime, **data: Any) -> UpdateOne:
    """Create the job or ask for it to run at `due_at` (its runner decides what is due)."""
    return UpdateOne(
        {"_id": job_id},
        {"$set": {"kind": kind, "status": "pending", "due_at": due_at, **data},
         "$inc": {"pokes": 1}},
        upsert=True,
    )


def cancel(query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return query, {"$set": {"status": "cancelled"}}


@dataclass(frozen=True)
class Next:
    """What a runner wants next: run again at `at`, or be done (at None)."""

    at: datetime | None = None


Runner = Callable[[AsyncDatabase, dict[str, Any], datetime, DeliverySettings], Awaitable[Next]]


class JobStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._jobs = db[JOBS]
        self._owner = f"{os.getpid()}:{os.urandom(4).hex()}"

    async def claim(self, now: datetime, claim_for: timedelta) -> dict[str, Any] | None:
        """The earliest job left by a dead runner (its claim expired), else the earliest due.

        Two queries, each on the (status, due_at) index, rather than one `$or`: the embedded
        store scans the whole collection for a filter with a top-level `$or`, once a poll. The
        job found is then claimed by id with the query as its guard (a findAndModify is a scan
        there too, see `shared.db.update_and_read`); one another runner took first is skipped.
        """
        claimed = {"$set": {"status": "running", "claimed_until": now + claim_for,
                            "owner": self._owner}}
        for query in ({"status": "running", "claimed_until": {"$lt": now}},
                      {"status": "pending", "due_at": {"$lte": now}}):
            due = self._jobs.find(query, {"_id": 1}).sort("due_at", ASCENDING).limit(CLAIM_TRIES)
            for found in [doc async for doc in due]:
                job = await update_and_read(self._jobs, {"_id": found["_id"], **query}, claimed)
                if job is not None:
                    return job
        return None

    async def complete(self, job: dict[str, Any], next_run: Next, now: datetime) -> None:
        """Record the run unless the job was poked meanwhile (then it stays due as poked)."""
        done = {"status": "pending", "due_at": next_run.at} if next_run.at else {"status": "done"}
        result = await self._jobs.update_one(
            {"_id": job["_id"], "owner": self._owner, "pokes": job.get("pokes", 0)},
            {"$set": {**done, "last_run_at": now}, "$unset": {"claimed_until": "", "owner": ""}},
        )
        if result.modified_count == 0:
            await self._jobs.update_one(
                {"_id": job["_id"], "owner": self._owner, "status": "running"},
                {"$set": {"status": "pending"}, "$unset": {"claimed_until": "", "owner": ""}},
            )

    async def release(self, job: dict[str, Any], retry_at: datetime) -> None:
        await self._jobs.update_one(
            {"_id": job["_id"], "owner": self._owner, "status": "running"},
            {"$set": {"status": "pending", "due_at": retry_at},
             "$unset": {"claimed_until": "", "owner": ""}},
        )


class Scheduler:
    """Runs due jobs at the clock's time until stopped."""

    def __init__(self, db: AsyncDatabase, settings: DeliverySettings,
                 runners: dict[str, Runner], clock: Clock = CLOCK) -> None:
        self.db, self.settings, self.runners, self.clock = db, settings, runners, clock
        self.store = JobStore(db)
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        while not self._stopping:
            try:
                if not await self.run_due():
                    await asyncio.sleep(self.settings.scheduler_poll_ms / 1000)
            except Exception as exc:
                log.warning("scheduler.error", error=repr(exc))
                await asyncio.sleep(1.0)

    async def run_due(self, limit: int = 100) -> int:
        """Run the jobs due at the clock's now (tests call this directly); returns how many."""
        ran = 0
        while ran < limit:
            now = self.clock.now()
            job = await self.store.claim(now, timedelta(seconds=self.settings.job_claim_seconds))
            if job is None:
                break
            ran += 1
            runner = self.runners.get(job["kind"])
            if runner is None:
                log.warning("scheduler.unknown_job", job_id=job["_id"], kind=job["kind"])
                await self.store.complete(job, Next(None), now)
                continue
            try:
                next_run = await runner(self.db, job, now, self.settings)
            except Exception as exc:
                log.warning("scheduler.job_failed", job_id=job["_id"], error=repr(exc))
                await self.store.release(job, now + timedelta(minutes=1))
                continue
            await self.store.complete(job, next_run, now)
        return ran
