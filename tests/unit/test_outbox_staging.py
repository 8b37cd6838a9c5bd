"""Staging events inside the changed document: one write carries the change and its events."""

from tests.support import mentee_registered_event
from shared.messaging.outbox import (
    PENDING_FIELD,
    PENDING_FLAG,
    stage_insert,
    stage_update,
    strip_outbox_fields,
)


def test_stage_insert_adds_the_events_and_the_flag():
    event = mentee_registered_event()
    document = stage_insert({"_id": "p1", "name": "x"}, [event])
    assert document[PENDING_FLAG] is True
    assert [e["id"] for e in document[PENDING_FIELD]] == [event.id]
    assert document["name"] == "x"


def test_stage_update_keeps_existing_set_and_push_operators():
    first, second = mentee_registered_event(), mentee_registered_event()
    update = stage_update(
        {"$set": {"name": "y"}, "$push": {"history": "renamed"}}, [first, second]
    )
    assert update["$set"] == {"name": "y", PENDING_FLAG: True}
    assert update["$push"]["history"] == "renamed"
    assert [e["id"] for e in update["$push"][PENDING_FIELD]["$each"]] == [first.id, second.id]


def test_no_events_leaves_the_write_untouched_and_reads_hide_bookkeeping():
    assert stage_insert({"_id": 1}, []) == {"_id": 1}
    assert stage_update({"$set": {"a": 1}}, []) == {"$set": {"a": 1}}
    stored = {"_id": 1, "a": 1, PENDING_FIELD: [], PENDING_FLAG: True}
    assert strip_outbox_fields(stored) == {"_id": 1, "a": 1}
