"""Roster imports as background jobs: started by `POST /imports`, followed with `GET /imports/{id}`.

A job document (collection `import_jobs`) holds an import's progress: rows done, people
created, updated and unchanged, every invalid row with its line and reason, events staged and
events published. The job runs in the process that accepted it (an asyncio task next to the
requests, see `importing`); it saves its progress after every batch and at least every
`HEARTBEAT_SECONDS` while it waits, so a job whose process died is reported `interrupted`
(importing the same file again finishes it: an import is idempotent).

Back-pressure: before each batch the job waits while the outbox relay is behind by more than
`BACKLOG_LIMIT` (documents staged past its sweep plus log entries not yet published), so a
large roster advances at the pace the platform publishes it.

Events published: a batch's events are published once the relay has appended them to the
log (all below the log's sequence counter read then) and its published cursor has passed that
counter. Appended is known from the relay's sweep position for people created (each carries
its staging mark, and the relay's late pass has read every write staged up to its mark), or
else once none of the batch's people still has events staged. The first is one point read; the
second read every person of the batch again at each check (127 ms a check for a batch of
created people on the embedded store, most of the database time of a 3,000-row import).
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.profiles.importing import Hooks, Outcome, RosterImport, Written
from services.profiles.store import PEOPLE, PeopleStore
from shared.logging import get_logger
from shared.messaging.outbox import CURSOR_ID, PENDING_FLAG, STATE, OutboxRelay
from shared.messaging.outbox_staging import recorded_marks

log = get_logger(__name__)

JOBS = "import_jobs"
HEARTBEAT_SECONDS = 2.0
STALE_AFTER = timedelta(seconds=60)
BACKLOG_LIMIT = 1_500
PACE_POLL_SECONDS = 0.1
PUBLISHED_POLL_SECONDS = 0.5
FOLLOW_PUBLICATION_FOR = timedelta(hours=1)

_running: set[asyncio.Task[None]] = set()  # keeps the tasks referenced while they run


async def create_indexes(db: AsyncDatabase) -> None:
    await db[JOBS].create_index([("network_id", ASCENDING), ("_id", ASCENDING)])


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def _log_positions(db: AsyncDatabase) -> tuple[int, int]:
    """The outbox log's sequence counter (appended so far) and the relay's published cursor."""
    counter = await db[STATE].find_one({"_id": "seq"})
    cursor = await db[STATE].find_one({"_id": CURSOR_ID})
    return int((counter or {}).get("value", 0)), int((cursor or {}).get("seq", 0))


async def _swept_upto(db: AsyncDatabase) -> int:
    """The staging mark up to which the relay has appended the people's staged events (its
    late pass, which reads again what committed late; recorded every half second)."""
    return (await recorded_marks(db, PEOPLE)).late


async def outbox_backlog(db: AsyncDatabase, collections: tuple[str, ...] = (PEOPLE,)) -> int:
    """How far the relay is behind: documents whose staged events its sweep has not appended
    to the log yet (staged after the sweep's recorded position) plus log entries it has not
    published yet.

    Read from the outbox's own collections; the relay will offer this signal itself, and
    this function is the one place to swap for it. Counting stops at `BACKLOG_LIMIT + 1`
    documents. The sweep records its position every half second, so a document swept since
    may still count, for that long.
    """
    staged = 0
    for name in collections:
        swept = (await recorded_marks(db, name)).hot
        staged += await db[name].count_documents(
            {PENDING_FLAG: {"$gt": swept}}, limit=BACKLOG_LIMIT + 1)
    appended, published = await _log_positions(db)
    return staged + max(0, appended - published)


class PublicationWatch:
    """Counts a job's events the relay has published, batch by batch (see the module doc)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._people = db[PEOPLE]
        self._db = db
        self._pending: deque[tuple[Written, int | None]] = deque()
        self.published = 0
        self.staged = 0

    def add(self, written: Written) -> None:
        self.staged += written.events
        self._pending.append((written, None))

    @property
    def done(self) -> bool:
        return not self._pending

    async def check(self) -> int:
        while self._pending:
            written, swept_below = self._pending[0]
            appended, published = await _log_positions(self._db)
            if swept_below is None:
                if written.staged_upto is not None:
                    if await _swept_upto(self._db) < written.staged_upto:
                        break
                # By id alone (point lookups on both stores), the flag checked here.
                elif [doc async for doc in self._people.find(
                        {"_id": {"$in": written.person_ids}}, {PENDING_FLAG: 1})
                      if doc.get(PENDING_FLAG)]:
                    break
                swept_below = appended
                self._pending[0] = (written, swept_below)
            if published < swept_below:
                break
            self._pending.popleft()
            self.published += written.events
        return self.published


class ImportJobs:
    """The job documents."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._jobs = db[JOBS]

    async def create(self, job: dict[str, Any]) -> None:
        await self._jobs.insert_one(job)

    async def save(self, job_id: str, fields: dict[str, Any],
                   invalid: list[dict[str, Any]] | None = None) -> None:
        update: dict[str, Any] = {"$set": {**fields, "heartbeat_at": _now()}}
        if invalid:
            update["$push"] = {"invalid": {"$each": invalid}}
        await self._jobs.update_one({"_id": job_id}, update)

    async def find(self, network_id: str, job_id: str) -> dict[str, Any] | None:
        job = await self._jobs.find_one({"_id": job_id, "network_id": network_id})
        if job is not None and job["status"] == "running" and (
            _now() - job["heartbeat_at"] > STALE_AFTER
        ):
            job["status"] = "interrupted"  # its process stopped; importing again finishes it
        return job


def new_job(roster_import: RosterImport, correlation_id: str | None) -> dict[str, Any]:
    now = _now()
    principal = roster_import.principal
    return {
        "_id": roster_import.import_id, "network_id": roster_import.network_id,
        "status": "running", "dry_run": False, "rows": len(roster_import.records),
        "rows_done": 0, "created": 0, "updated": 0, "unchanged": 0, "invalid": [],
        "events_staged": 0, "events_published": 0,
        "started_by": principal.subject, "started_by_role": principal.role_label,
        "correlation_id": correlation_id, "effective_at": roster_import.now,
        "started_at": now, "heartbeat_at": now, "finished_at": None, "error": None,
    }


def _counters(outcome: Outcome) -> dict[str, int]:
    return {"rows_done": outcome.rows_done, "created": outcome.created,
            "updated": outcome.updated, "unchanged": outcome.unchanged,
            "events_staged": outcome.events_staged}


def _invalid(errors: list[Any]) -> list[dict[str, Any]]:
    return [{"line": e.line, "email": e.email, "reason": e.reason} for e in errors]


def start(
    db: AsyncDatabase, relay: OutboxRelay, roster_import: RosterImport, people: PeopleStore,
    institutions: set[str], load_programs: Any,
) -> None:
    """Run the job in the background (the job document exists already)."""
    task = asyncio.create_task(
        _run(db, relay, roster_import, people, institutions, load_programs),
        name=f"import-{roster_import.import_id}",
    )
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _run(
    db: AsyncDatabase, relay: OutboxRelay, roster_import: RosterImport, people: PeopleStore,
    institutions: set[str], load_programs: Any,
) -> None:
    jobs = ImportJobs(db)
    job_id = roster_import.import_id
    watch = PublicationWatch(db)
    saved = {"invalid": 0, "at": 0.0}
    loop = asyncio.get_running_loop()

    async def progress(outcome: Outcome) -> None:
        new = outcome.invalid[saved["invalid"]:]
        saved["invalid"], saved["at"] = len(outcome.invalid), loop.time()
        await jobs.save(job_id, {**_counters(outcome), "events_published": await watch.check()},
                        _invalid(new))

    async def pace() -> None:
        relay.wake()
        while await outbox_backlog(db) > BACKLOG_LIMIT:
            if loop.time() - saved["at"] > HEARTBEAT_SECONDS:
                saved["at"] = loop.time()
                await jobs.save(job_id, {"events_published": await watch.check()})
            await asyncio.sleep(PACE_POLL_SECONDS)

    try:
        outcome = await roster_import.run(
            people, institutions, load_programs, db, dry_run=False,
            hooks=Hooks(pace=pace, progress=progress, written=watch.add))
        relay.wake()
        await progress(outcome)
        await jobs.save(job_id, {"status": "done", "finished_at": _now()})
    except Exception as exc:
        log.exception("import.failed", import_id=job_id)
        try:
            await jobs.save(job_id, {"status": "failed", "finished_at": _now(),
                                     "error": f"The import stopped: {exc!r}. Rows reported "
                                              "done were written; import the file again to "
                                              "finish it."})
        except Exception:  # the store is away: the job will read as interrupted
            log.warning("import.failure_not_saved", import_id=job_id)
        return
    await _follow_publication(jobs, job_id, watch)


async def _follow_publication(jobs: ImportJobs, job_id: str, watch: PublicationWatch) -> None:
    """Keep `events_published` current until the relay has published all the job's events."""
    give_up = _now() + FOLLOW_PUBLICATION_FOR
    last = watch.published
    while not watch.done and _now() < give_up:
        await asyncio.sleep(PUBLISHED_POLL_SECONDS)
        try:
            published = await watch.check()
            if published != last:
                last = published
                await jobs.save(job_id, {"events_published": published})
        except Exception as exc:  # the store is away for a moment: try again
            log.warning("import.publication_check_failed", import_id=job_id, error=repr(exc))
