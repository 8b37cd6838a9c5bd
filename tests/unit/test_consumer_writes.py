"""A consumer batch's writes, combined: fewer statements, and only where the result is the
same (what the store makes of them is checked in tests/integration/test_consumer_writes.py)."""

from __future__ import annotations

from pymongo import DeleteOne, UpdateOne

from shared.messaging.writes import Ensure, Update, Writes, merged

LIVE = {"erased": {"$ne": True}}


def _registration(writes: Writes, person: str) -> None:
    """What matching's pool receives for a person's registration, enrolment and identity."""
    writes.add("pool", Ensure(person, {"network_id": "n1"}))
    writes.add("pool", Update({"_id": person, **LIVE},
                              {"$set": {"role": "mentor", "network_id": "n1"},
                               "$addToSet": {"mentor_programs": "p1"}}))
    writes.add("pool", Ensure(person, {"network_id": "n1"}))
    writes.add("pool", Update({"_id": person, **LIVE},
                              {"$set": {"network_id": "n1", "institution_id": "i1"},
                               "$addToSet": {"mentor_programs": "p2"}}))
    writes.add("pool", Ensure(person, {"network_id": "n1"}))
    writes.add("pool", Update({"_id": person, **LIVE, "identity_version": {"$not": {"$gte": 2}}},
                              {"$set": {"identity_version": 2}}))


def test_a_persons_registration_enrolment_and_identity_take_three_statements_not_six():
    writes = Writes()
    _registration(writes, "p1")
    _registration(writes, "p2")
    operations = writes.take()["pool"]
    assert len(operations) == 6 and writes.left_out == 6
    ensure, update, identity = (op._doc for op in operations[:3])  # noqa: SLF001
    assert ensure == {"$setOnInsert": {"network_id": "n1"}}
    assert update == {"$set": {"role": "mentor", "network_id": "n1", "institution_id": "i1"},
                      "$addToSet": {"mentor_programs": {"$each": ["p1", "p2"]}}}
    assert identity == {"$set": {"identity_version": 2}}


def test_the_same_value_added_twice_is_added_once_and_equal_values_of_other_types_are_kept():
    first = Update({"_id": "a"}, {"$addToSet": {"tags": "x"}})
    second = Update({"_id": "a"}, {"$addToSet": {"tags": {"$each": ["x", 1, True]}}})
    assert merged(first, second) == {"$addToSet": {"tags": {"$each": ["x", 1, True]}}}


def test_updates_are_not_merged_where_the_second_might_match_other_documents_or_paths_clash():
    guard = {"_id": "a", "v": {"$lt": 3}}
    refused = [
        (Update(guard, {"$set": {"v": 3}}), Update(guard, {"$set": {"w": 1}})),  # filter field set
        (Update(guard, {"$set": {"v.x": 3}}), Update(guard, {"$set": {"w": 1}})),  # inside it
        (Update({"_id": "a"}, {"$set": {"w": 1}}), Update({"_id": "b"}, {"$set": {"w": 1}})),
        (Update({"_id": "a"}, {"$unset": {"w": ""}}), Update({"_id": "a"}, {"$set": {"w": 1}})),
        (Update({"_id": "a"}, {"$set": {"w": {"x": 1}}}), Update({"_id": "a"}, {"$set": {"w.y": 2}})),
        (Update({"_id": "a"}, {"$set": {"w": [1]}}), Update({"_id": "a"}, {"$addToSet": {"w": 2}})),
        (Update({"$or": [{"_id": "a"}]}, {"$set": {"w": 1}}), Update({"$or": [{"_id": "a"}]}, {"$set": {"x": 1}})),
    ]
    for first, second in refused:
        assert merged(first, second) is None, (first, second)
    assert merged(Update({"_id": "a"}, {"$set": {"w": 1}}),
                  Update({"_id": "a"}, {"$set": {"w": 2, "x": 3}})) == {"$set": {"w": 2, "x": 3}}


def test_a_delete_between_two_ensures_keeps_the_second_and_other_writes_end_a_merge():
    writes = Writes()
    writes.add("people", Ensure("a"))
    writes.add("people", DeleteOne({"_id": "a"}))
    writes.add("people", Ensure("a"))
    writes.add("people", Update({"_id": "a"}, {"$set": {"x": 1}}))
    writes.add("people", UpdateOne({"_id": "a"}, {"$inc": {"n": 1}}))
    writes.add("people", Update({"_id": "a"}, {"$set": {"y": 1}}))
    writes.add("other", Ensure("a"))  # another collection: its own document
    taken = writes.take()
    assert [type(op).__name__ for op in taken["people"]] == [
        "UpdateOne", "DeleteOne", "UpdateOne", "UpdateOne", "UpdateOne", "UpdateOne"]
    assert len(taken["other"]) == 1 and writes.left_out == 0


def test_documents_ensured_before_a_flush_are_still_known_after_it():
    writes = Writes()
    writes.add("people", Ensure("a"))
    assert len(writes.take()["people"]) == 1
    writes.add("people", Ensure("a"))
    writes.add("people", Update({"_id": "a"}, {"$set": {"x": 1}}))
    assert len(writes.take()["people"]) == 1


def test_notifications_registration_and_enrolment_merge_across_the_profile_update_between():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from services.notifications import view

    now = datetime(2026, 12, 5, tzinfo=UTC)
    person = SimpleNamespace(person_id="p1", network_id="n1", institution_id="i1",
                             display_name="Ada", email="ada@example.org", registered_at=now,
                             program_id="prog-1", version=2, mentor=None, mentee=None,
                             role="mentee")
    writes = Writes()
    for write in (*view.registered(person, "mentee"), *view.profile_updated(person),
                  *view.enrolled(person)):
        writes.add(view.PEOPLE, write)
    ensure, data, profile = (op._doc for op in writes.take()[view.PEOPLE])  # noqa: SLF001
    assert ensure == {"$setOnInsert": {"network_id": "n1"}}
    assert data["$addToSet"] == {"roles": {"$each": ["mentee"]}, "programs": {"$each": ["prog-1"]}}
    assert profile == {"$set": {"display_name": "Ada", "profile_version": 2}}
