"""Roster import jobs on a real SecantusDB: back-pressure from the outbox relay, the count of
events published, and a job whose process died."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.profiles import import_jobs, roster
from services.profiles.importing import RosterImport, Written
from services.profiles.people import Vocabularies
from services.profiles.store import PEOPLE, PeopleStore
from shared.auth import Principal, Role
from shared.messaging.outbox import CURSOR_ID, PENDING_FLAG, STATE, stage_insert
from tests.support import eventually, mentee_registered_event

NETWORK = "n-jobs"
ADMIN = Principal(subject="admin-1", role=Role.NETWORK_ADMIN, network_id=NETWORK)
CSV = "\n".join([
    "email,first_name,last_name,institution_id,role,career_stage",
    "a@example.org,Ann,A,inst-a,mentee,M2",
    "b@example.org,Bob,B,inst-a,mentor,fellow",
    "c@example.org,Cy,C,inst-a,mentee,M3",
])


class IdleRelay:
    """The relay's wake-up call, with no relay behind it: the tests move the log by hand."""

    def wake(self) -> None:
        pass


async def _log(db, appended: int, published: int) -> None:
    await db[STATE].update_one({"_id": "seq"}, {"$set": {"value": appended}}, upsert=True)
    await db[STATE].update_one({"_id": CURSOR_ID}, {"$set": {"seq": published}}, upsert=True)


async def _swept(db, upto: int) -> None:
    """What the relay records after its late pass appended every write staged up to `upto`."""
    await db[STATE].update_one({"_id": f"staging:{PEOPLE}"}, {"$set": {"late": upto}}, upsert=True)


def _import(import_id: str) -> RosterImport:
    records, lines = roster.read(CSV)
    return RosterImport(
        network_id=NETWORK, principal=ADMIN, records=records, lines=lines,
        vocab=Vocabularies({}), now=datetime.now(UTC), import_id=import_id,
        scope_error=lambda row, institutions, programs: None,
    )


async def _no_programs(ids):
    return {}


async def test_backlog_counts_documents_the_sweep_has_not_reached_and_unpublished_log_entries(db):
    """Documents carry their staging mark (as `stage_insert` writes them); those staged after
    the sweep's recorded position are behind, those before it are in the log already. (The
    count once looked for a flag of `True`, which no document has carried since staging
    became a mark: the import's pace then never saw a sweep that fell behind.)"""
    assert await import_jobs.outbox_backlog(db) == 0
    staged = [stage_insert({"_id": f"p{n}"}, [mentee_registered_event(f"p{n}", network_id=NETWORK)])
              for n in range(5)]
    await db[PEOPLE].insert_many(staged + [{"_id": "never-staged"}])
    await _log(db, appended=10, published=4)
    assert await import_jobs.outbox_backlog(db) == 5 + 6
    await db[STATE].update_one({"_id": f"staging:{PEOPLE}"},
                               {"$set": {"hot": staged[1][PENDING_FLAG]}}, upsert=True)
    assert await import_jobs.outbox_backlog(db) == 3 + 6


async def test_an_import_waits_while_the_relay_is_behind_and_counts_what_it_published(
    db, monkeypatch
):
    monkeypatch.setattr(import_jobs, "HEARTBEAT_SECONDS", 0.2)
    await _log(db, appended=import_jobs.BACKLOG_LIMIT + 50, published=0)
    work = _import("import-waits")
    jobs = import_jobs.ImportJobs(db)
    job = import_jobs.new_job(work, "corr-1")
    await jobs.create(job)
    import_jobs.start(db, IdleRelay(), work, PeopleStore(db), {"inst-a"}, _no_programs)

    # It keeps its heartbeat while it waits, and writes nobody.
    first = job["heartbeat_at"]
    waiting = await eventually(lambda: jobs.find(NETWORK, work.import_id),
                               lambda j: j["heartbeat_at"] > first + timedelta(seconds=0.3),
                               timeout=30, what="the waiting job's heartbeat")
    assert waiting["status"] == "running" and waiting["created"] == 0
    assert await db[PEOPLE].count_documents({"network_id": NETWORK}) == 0

    await _log(db, appended=import_jobs.BACKLOG_LIMIT + 50,
               published=import_jobs.BACKLOG_LIMIT + 50)  # the relay caught up
    done = await eventually(lambda: jobs.find(NETWORK, work.import_id),
                            lambda j: j["status"] != "running", timeout=30, what="the import")
    assert (done["status"], done["created"], done["rows_done"]) == ("done", 3, 3)
    assert done["events_staged"] >= 3 and done["events_published"] == 0  # all still staged

    # The relay sweeps them (its late pass reaches their staging marks) and publishes them:
    # the job counts them as published.
    newest = max([d[PENDING_FLAG] async for d in db[PEOPLE].find({"network_id": NETWORK})])
    await _swept(db, newest - 1)
    await asyncio.sleep(1)
    assert (await jobs.find(NETWORK, work.import_id))["events_published"] == 0  # not all yet
    await _swept(db, newest)
    appended = import_jobs.BACKLOG_LIMIT + 50 + done["events_staged"]
    await _log(db, appended=appended, published=appended)
    published = await eventually(lambda: jobs.find(NETWORK, work.import_id),
                                 lambda j: j["events_published"] == done["events_staged"],
                                 timeout=30, what="events published to be counted")
    assert published["events_published"] == done["events_staged"]


async def test_events_count_as_published_once_swept_and_past_the_relay_cursor(db):
    await db[PEOPLE].insert_many([{"_id": f"w{n}", PENDING_FLAG: True} for n in range(2)])
    await _log(db, appended=40, published=40)
    watch = import_jobs.PublicationWatch(db)
    watch.add(Written(["w0", "w1"], events=5))
    assert await watch.check() == 0  # still staged, though the log is all published
    await db[PEOPLE].update_one({"_id": "w0"}, {"$unset": {PENDING_FLAG: ""}})
    assert await watch.check() == 0  # w1 still staged
    await db[PEOPLE].update_one({"_id": "w1"}, {"$unset": {PENDING_FLAG: ""}})
    await _log(db, appended=45, published=44)  # swept into the log, not all published
    assert await watch.check() == 0 and not watch.done
    await _log(db, appended=50, published=45)  # later events do not hold it back
    assert await watch.check() == 5 and watch.done


async def test_created_people_count_as_published_once_the_sweep_passed_their_marks(db):
    """People created by an import carry their staging marks: whether the relay appended them
    is read from its sweep position, not from every person of the batch again."""
    await db[PEOPLE].insert_many([{"_id": f"c{n}", PENDING_FLAG: 1_000 + n} for n in range(2)])
    await _log(db, appended=40, published=40)
    watch = import_jobs.PublicationWatch(db)
    watch.add(Written(["c0", "c1"], events=4, staged_upto=1_001))
    await _swept(db, 1_000)
    assert await watch.check() == 0  # c1 not swept yet, though the log is all published
    await _swept(db, 1_001)
    await _log(db, appended=44, published=43)  # swept into the log, not all published
    assert await watch.check() == 0 and not watch.done
    await _log(db, appended=60, published=44)
    assert await watch.check() == 4 and watch.done  # still staged: the cleaner comes later


async def test_a_running_job_whose_process_stopped_reads_as_interrupted(db):
    jobs = import_jobs.ImportJobs(db)
    job = import_jobs.new_job(_import("import-orphan"), None)
    job["heartbeat_at"] = job["started_at"] = datetime.now(UTC) - timedelta(minutes=5)
    await jobs.create(job)
    assert (await jobs.find(NETWORK, "import-orphan"))["status"] == "interrupted"
    assert await jobs.find("another-network", "import-orphan") is None
    await jobs.save("import-orphan", {"rows_done": 1})  # a heartbeat: it runs again
    assert (await jobs.find(NETWORK, "import-orphan"))["status"] == "running"
