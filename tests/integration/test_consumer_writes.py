"""Combined writes on the real document store: a batch's writes sent combined leave exactly
the documents that sending each write in turn leaves (hypothesis, SecantusDB)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymongo import DeleteOne, UpdateOne

from shared.messaging.writes import Ensure, Update, Writes

# Few ids, guards and fields, so that consecutive writes often meet on one document.
IDS = st.sampled_from(["a", "a", "b"])
VALUES = st.sampled_from([1, 1.0, True, 3, "x", None, [1], {"x": 1}])
FIELDS = st.sampled_from(["x", "sub.x", "sub", "tags", "erased", "v"])
GUARDS = st.sampled_from([{}, {"erased": {"$ne": True}}, {"erased": {"$exists": False}},
                          {"v": {"$not": {"$gte": 2}}}, {"sub.x": 1}])


@st.composite
def writes(draw):
    doc_id = draw(IDS)
    kind = draw(st.sampled_from(["ensure", "set", "set", "add", "mixed", "mixed", "delete", "other"]))
    if kind == "ensure":
        return Ensure(doc_id, {"n": draw(VALUES)})
    if kind == "delete":
        return DeleteOne({"_id": doc_id})
    if kind == "other":
        return UpdateOne({"_id": doc_id}, {"$inc": {"count": 1}})
    guard = {"_id": doc_id, **draw(GUARDS)}
    update: dict = {}
    if kind in ("set", "mixed"):
        update["$set"] = draw(st.dictionaries(FIELDS, VALUES, min_size=1, max_size=2))
    if kind in ("add", "mixed"):
        tags = draw(st.lists(VALUES, min_size=1, max_size=3))
        update["$addToSet"] = {"tags": {"$each": tags} if len(tags) > 1 else tags[0]}
    return Update(guard, update)


def _operation(write):
    return write.operation() if isinstance(write, Ensure | Update) else write


async def _documents(collection):
    return sorted([doc async for doc in collection.find({})], key=lambda d: d["_id"])


counter = itertools.count()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(writes(), min_size=2, max_size=10))
@example(batch=[Ensure("a"), Update({"_id": "a", "erased": {"$ne": True}}, {"$set": {"erased": True}}),
                Update({"_id": "a", "erased": {"$ne": True}}, {"$set": {"x": 1}})])
# An update between two with the same filter, which the second must not move across: it
# writes what the second writes, the second writes what it reads, it writes what they read.
@example(batch=[Update({"_id": "a"}, {"$set": {"x": 1}}),
                Update({"_id": "a", "v": {"$not": {"$gte": 2}}}, {"$set": {"x": 2}}),
                Update({"_id": "a"}, {"$set": {"x": 3}})])
@example(batch=[Ensure("a"), Update({"_id": "a"}, {"$set": {"x": 1}}),
                Update({"_id": "a", "erased": {"$ne": True}}, {"$set": {"y": 1}}),
                Update({"_id": "a"}, {"$set": {"erased": True}})])
@example(batch=[Ensure("a"), Update({"_id": "a", "v": {"$not": {"$gte": 2}}}, {"$set": {"x": 1}}),
                Update({"_id": "a"}, {"$set": {"v": 3}}),
                Update({"_id": "a", "v": {"$not": {"$gte": 2}}}, {"$set": {"w": 1}})])
@example(batch=[Update({"_id": "a"}, {"$set": {"tags": [1.0]}}),
                Update({"_id": "a"}, {"$addToSet": {"tags": 1}}),
                Update({"_id": "a"}, {"$addToSet": {"tags": {"$each": [True, 1, "1"]}}})])
async def test_combined_writes_leave_the_documents_that_one_write_at_a_time_leaves(db, batch):
    n = next(counter)
    one_by_one, combined = db[f"one_by_one_{n}"], db[f"combined_{n}"]
    failed_alone = failed_combined = None
    for write in batch:
        try:  # a write the store refuses (a $set into a number, say) is refused in both
            await one_by_one.bulk_write([_operation(write)])
        except Exception as exc:  # noqa: BLE001
            failed_alone = type(exc).__name__
            break
    buffered = Writes()
    for write in batch:
        buffered.add("c", write)
    try:
        await combined.bulk_write(buffered.take()["c"], ordered=True)
    except Exception as exc:  # noqa: BLE001
        failed_combined = type(exc).__name__
    if failed_alone is None:
        assert failed_combined is None
        assert await _documents(combined) == await _documents(one_by_one)
    await one_by_one.drop()
    await combined.drop()
