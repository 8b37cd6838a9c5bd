"""The filters that consumers and background loops run once per event or per poll carry no
top-level operator, so the embedded store serves them from an index.

SecantusDB answers any filter with a top-level `$or` (or `$and`) by scanning the whole
collection, even beside an `_id` equality: 232 ms an update on a 20,000-document collection
against 1.0 ms for the same guard written field by field. The projections' version guards were
written that way, so applying one ProfileUpdated scanned every person of the view, and catching
up on a 3,000-row roster import took 313 s (80 s once the guards rode the `_id` index). Its
`explain` cannot show the difference (it reports COLLSCAN for `{_id: x, v: {$lt: n}}` too, which
runs as a point lookup: 0.7 ms at 20,000 documents), so the rule is checked on the filters
themselves: each is the one the code sends, captured with a command listener where the code
sends it itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo import monitoring

from services.matching.access import mentorship_scope
from services.matching.domain import newer_profile, not_older_profile
from services.matching.lifecycle import Step
from services.matching.store import MENTORSHIPS, POOL, MentorshipStore, PoolStore
from services.notifications import deliveries, scheduler, store as feed_store, view
from services.profiles import session_store as identity_sessions
from services.web import sessions as web_sessions
from shared.auth import Grant, GrantRole, Principal
from shared.db import create_client
from shared.filters import at_most, below
from shared.messaging.writes import Update


class _Filters(monitoring.CommandListener):
    """The filters of the reads and writes a client sends."""

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        self.commands.append(event.command_name)
        if event.command_name == "find":
            self.filters.append(dict(command.get("filter") or {}))
        elif event.command_name.lower() == "findandmodify":
            self.filters.append(dict(command.get("query") or {}))
        elif event.command_name in ("update", "delete"):
            self.filters += [dict(s.get("q") or {}) for s in command.get(event.command_name + "s", [])]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def db(infra):
    sent = _Filters()
    client = create_client(infra.mongodb_uri, event_listeners=[sent])
    name = f"plans_{uuid.uuid4().hex[:12]}"
    database = client[name]
    database.sent = sent  # type: ignore[attr-defined]
    yield database
    await client.drop_database(name)
    await client.close()


def _assert_served_by_an_index(query: dict[str, Any]) -> None:
    operators = [key for key in query if key.startswith("$")]
    assert not operators, f"{query} has top-level {operators}: the embedded store scans for it"


async def test_the_version_guards_of_projection_updates_ride_the_id_index(db):
    await db["pool"].insert_many([{"_id": f"p{n}", "profile_version": 1} for n in range(20)])
    person = SimpleNamespace(person_id="p7", network_id="n1", version=3, display_name="Ada", mentor=None, mentee=None)
    guards = [newer_profile("p7", 3), not_older_profile("p7", 3),
              *[op.filter for op in view.profile_updated(person) if isinstance(op, Update)]]
    for guard in guards:
        _assert_served_by_an_index(guard)
        assert await db["pool"].count_documents(guard) == 1  # and it still finds the person


async def test_below_and_at_most_match_what_the_guards_mean(db):
    """Absent or lower applies; equal applies only for `at_most`; higher never does."""
    await db["facts"].insert_many([{"_id": "absent"}, {"_id": "v1", "v": 1},
                                   {"_id": "v2", "v": 2}, {"_id": "v3", "v": 3}])
    assert {d["_id"] async for d in db["facts"].find(below("v", 2))} == {"absent", "v1"}
    assert {d["_id"] async for d in db["facts"].find(at_most("v", 2))} == {"absent", "v1", "v2"}


async def test_the_job_claim_and_the_next_feed_page_ride_an_index(db):
    await scheduler.create_indexes(db)
    await feed_store.create_indexes(db)
    now = datetime.now(UTC)
    await db[scheduler.JOBS].insert_many([
        {"_id": f"j{n}", "status": "pending", "due_at": now + timedelta(hours=n)} for n in range(20)
    ])
    await db[feed_store.NOTIFICATIONS].insert_many([
        {"_id": f"n{n:02d}", "person_id": f"p{n % 3}", "read": False,
         "created_at": now - timedelta(minutes=n // 2)} for n in range(30)
    ])
    db.sent.filters.clear()
    claimed = await scheduler.JobStore(db).claim(now + timedelta(minutes=1), timedelta(seconds=60))
    assert claimed is not None and claimed["_id"] == "j0"
    feed = feed_store.FeedStore(db)
    first = await feed.page("p0", limit=3)
    last = first[-1]
    rest = await feed.page("p0", limit=20, before=(last["created_at"], last["_id"]))
    every = [d["_id"] async for d in db[feed_store.NOTIFICATIONS].find({"person_id": "p0"})
             .sort(feed_store.ORDER)]
    assert [d["_id"] for d in first + rest] == every  # the pages continue without gap or repeat
    assert len(db.sent.filters) >= 3
    for query in db.sent.filters:
        _assert_served_by_an_index(query)


async def test_a_participants_mentorship_read_is_a_point_lookup_that_still_keeps_others_out(db):
    """A participant's reach is an `$or` (mentor or mentee, their programs, institutions): in
    the filter it made the embedded store scan every mentorship for each request of a pair
    (274 ms a read while a 300-person demo played). The read is by id, the reach checked on
    the document; staged events stay in the store."""
    await db[MENTORSHIPS].insert_many([
        {"_id": f"m{n}", "network_id": "n1", "program_id": "p1", "mentor_id": f"r{n}",
         "mentee_id": f"e{n}", "mentor_institution_id": "i1", "mentee_institution_id": "i2",
         "program_institution_id": "i1", "status": "active",
         "_pending_events": [{"id": f"ev{n}"}], "_outbox_pending": n + 1}
        for n in range(20)])
    store = MentorshipStore(db)
    mentee = Principal(subject="e7", network_id="n1", person_id="e7")
    coordinator = Principal(subject="c", network_id="n1", person_id="c", grants=(
        Grant(role=GrantRole.INSTITUTION_COORDINATOR, institution_id="i2"),))
    db.sent.filters.clear()
    found = await store.get("n1", "m7", mentorship_scope(mentee, "n1"))
    assert found is not None and found["mentee_id"] == "e7"
    assert "_pending_events" not in found and "_outbox_pending" not in found
    assert await store.get("n1", "m8", mentorship_scope(mentee, "n1")) is None  # not their pair
    assert await store.get("n2", "m7", mentorship_scope(mentee, "n1")) is None  # another network
    assert await store.get("n1", "m8", mentorship_scope(coordinator, "n1")) is not None
    outsider = Principal(subject="x", network_id="n1", person_id="x")
    assert await store.get("n1", "m7", mentorship_scope(outsider, "n1")) is None
    assert db.sent.filters
    for sent in db.sent.filters:
        _assert_served_by_an_index(sent)


async def test_the_pool_listing_reads_one_network_by_its_index(db):
    await db[POOL].insert_many([
        {"_id": "a", "network_id": "n1", "role": "mentor"},
        {"_id": "b", "network_id": "n1", "role": "mentee", "mentor_programs": ["p1"]},
        {"_id": "c", "network_id": "n1", "role": "mentee"},
        {"_id": "d", "network_id": "n2", "role": "mentor"},
        {"_id": "e", "network_id": "n1", "mentor_programs": ["p1"]},  # no profile yet
    ])
    db.sent.filters.clear()
    assert [p["_id"] for p in await PoolStore(db).list("n1", "mentor")] == ["a", "b"]
    assert [p["_id"] for p in await PoolStore(db).list("n1", "mentee")] == ["b", "c"]
    for sent in db.sent.filters:
        _assert_served_by_an_index(sent)


async def test_the_sender_lease_is_renewed_and_taken_by_id(db):
    """The delivery sender's lease shares its collection with every sent batch's record; an
    `$or` in its guard scanned them all at each renewal."""
    await db[deliveries.SENDER_STATE].insert_many(
        [{"_id": f"batch-{n}", "kind": "settled"} for n in range(20)])
    now = datetime.now(UTC)
    first, second = deliveries.DeliveryStore(db), deliveries.DeliveryStore(db)
    db.sent.filters.clear()
    assert await first.hold_lease(now, timedelta(minutes=1))
    assert await first.hold_lease(now, timedelta(minutes=1))  # renewed
    assert not await second.hold_lease(now, timedelta(minutes=1))  # held by a live instance
    assert await second.hold_lease(now + timedelta(minutes=2), timedelta(minutes=1))  # expired
    assert not await first.hold_lease(now + timedelta(minutes=2), timedelta(minutes=1))
    assert db.sent.filters
    for sent in db.sent.filters:
        _assert_served_by_an_index(sent)


async def test_writes_that_answer_the_written_document_update_and_read_by_id(db):
    """SecantusDB writes a findAndModify with `{_id, $and: [filter]}`, a scan of the whole
    collection: 3.7 ms at 300 mentorships, 19.7 ms at 3,000 (an update by id: 0.6-1.6 ms), so
    a six-month demo slowed as its network grew. Recording a pair's step, renewing the sender
    lease, claiming a job, loading a web session and spending a refresh token or a sign-in link
    are an update and a read by id."""
    now = datetime.now(UTC)
    await db[MENTORSHIPS].insert_many([
        {"_id": f"m{n}", "network_id": "n1", "status": "active", "meetings": []} for n in range(20)])
    await db[scheduler.JOBS].insert_many([
        {"_id": f"j{n}", "status": "pending", "due_at": now + timedelta(hours=n)} for n in range(5)])
    sessions = web_sessions.SessionStore(db, timedelta(minutes=30))
    cookie, session = await sessions.create(
        {"person_id": "p1", "network_id": "n1", "access_token": "a", "refresh_token": "r"})
    db.sent.commands.clear()
    db.sent.filters.clear()

    step = Step({"cadence_days": 14}, [], push={"meetings": {"n": 1}}, expect={"status": "active"})
    written = await MentorshipStore(db).apply({"_id": "m3"}, step)
    assert written is not None and written["meetings"] == [{"n": 1}] and written["cadence_days"] == 14
    stale = Step({}, [], expect={"status": "proposed"})  # computed from a state it no longer has
    assert await MentorshipStore(db).apply({"_id": "m3"}, stale) is None
    assert await deliveries.DeliveryStore(db).hold_lease(now, timedelta(minutes=1))
    job = await scheduler.JobStore(db).claim(now + timedelta(minutes=1), timedelta(minutes=1))
    assert job is not None and job["_id"] == "j0" and job["status"] == "running"
    assert await scheduler.JobStore(db).claim(now + timedelta(minutes=1), timedelta(minutes=1)) is None
    loaded = await sessions.load(cookie)
    assert loaded is not None and loaded.key == session.key
    assert await sessions.load("no-such-cookie") is None
    assert await sessions.take_refresh_lease(loaded)
    assert not await sessions.take_refresh_lease(loaded)  # the first holds it

    sign_in = identity_sessions.SessionStore(db)  # profiles: refresh tokens, links, limits
    opened, refresh = await sign_in.open("n1", "p1", "link", now, timedelta(hours=8))
    rotated = await sign_in.rotate(refresh, now)
    assert rotated is not None and rotated[0]["_id"] == opened["_id"]
    with pytest.raises(identity_sessions.Reused):  # a spent refresh token, shown again
        await sign_in.rotate(refresh, now)
    await sign_in.add_link("link-token", "n1", "p1", now, now + timedelta(minutes=15), [])
    assert (await sign_in.use_link("link-token", now))["person_id"] == "p1"
    assert await sign_in.use_link("link-token", now) is None  # once
    assert [(await sign_in.count("ip", now, timedelta(minutes=15)))[0] for _ in range(3)] == [1, 2, 3]

    assert "findAndModify" not in db.sent.commands
    for sent in db.sent.filters:
        _assert_served_by_an_index(sent)
