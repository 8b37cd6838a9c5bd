"""Staging events inside the changed document: one write carries the change, its events and
the staging mark the relay sweeps by."""

from shared.messaging.outbox import (
    PENDING_FIELD,
    PENDING_FLAG,
    stage_insert,
    stage_update,
    strip_outbox_fields,
)
from shared.messaging.outbox_log import STAGED_KEY, published_value
from shared.messaging.outbox_publish import LogBacklog
from shared.messaging.outbox_staging import RecentIds, staging_mark
from tests.support import mentee_registered_event


def test_stage_insert_adds_the_events_and_the_mark():
    event = mentee_registered_event()
    document = stage_insert({"_id": "p1", "name": "x"}, [event])
    mark = document[PENDING_FLAG]
    assert isinstance(mark, int) and mark > 1_700_000_000 * 10**9  # nanoseconds, wall clock
    assert [e["id"] for e in document[PENDING_FIELD]] == [event.id]
    assert document[PENDING_FIELD][0][STAGED_KEY] == mark
    assert document["name"] == "x"


def test_stage_update_keeps_existing_set_and_push_operators():
    first, second = mentee_registered_event(), mentee_registered_event()
    update = stage_update(
        {"$set": {"name": "y"}, "$push": {"history": "renamed"}}, [first, second]
    )
    assert update["$set"]["name"] == "y" and isinstance(update["$set"][PENDING_FLAG], int)
    assert update["$push"]["history"] == "renamed"
    assert [e["id"] for e in update["$push"][PENDING_FIELD]["$each"]] == [first.id, second.id]


def test_marks_only_increase_within_a_process():
    marks = [staging_mark() for _ in range(1000)]
    assert marks == sorted(marks) and len(set(marks)) == 1000


def test_no_events_leaves_the_write_untouched_and_reads_hide_bookkeeping():
    assert stage_insert({"_id": 1}, []) == {"_id": 1}
    assert stage_update({"$set": {"a": 1}}, []) == {"$set": {"a": 1}}
    stored = {"_id": 1, "a": 1, PENDING_FIELD: [], PENDING_FLAG: 5}
    assert strip_outbox_fields(stored) == {"_id": 1, "a": 1}


def test_the_published_value_is_the_event_without_the_staging_bookkeeping():
    event = mentee_registered_event()
    staged = stage_insert({"_id": "p1"}, [event])[PENDING_FIELD][0]
    assert published_value(staged) == published_value(event.model_dump(mode="json"))
    assert STAGED_KEY.encode() not in published_value(staged)


def test_recent_ids_forget_the_oldest_and_remember_how_far_they_forgot():
    recent = RecentIds(capacity=2)
    recent.add("a", 10)
    recent.add("b", 20)
    recent.add("c", 30)
    assert "a" not in recent and "b" in recent and "c" in recent
    assert recent.forgotten_up_to == 10


def test_the_log_backlog_counts_unpublished_events_and_never_goes_negative():
    backlog = LogBacklog()
    backlog.reset(0, 0)
    backlog.add(1, 500, 100)
    backlog.add(2, 20, 200)
    assert backlog.count == 520 and backlog.oldest_ns == 100
    backlog.published_through(0, 300)  # 300 events of document 1 went out
    assert backlog.count == 220
    backlog.published_through(1, 0)
    assert backlog.count == 20 and backlog.oldest_ns == 200
    backlog.add(1, 500, 100)  # read again by a late scan: already published, not counted
    assert backlog.count == 20
    backlog.published_through(7, 0)  # past a gap
    assert backlog.count == 0 and backlog.oldest_ns is None
