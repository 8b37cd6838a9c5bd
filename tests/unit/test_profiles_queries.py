"""Query shaping (pure code): flat queries the store can plan on an index, and the matcher
that checks a caller's visibility on a document read by id: it must agree with the store on
every shape visibility builds, and admit nobody on a shape it does not know."""

from hypothesis import given
from hypothesis import strategies as st

from services.profiles.people_access import NOBODY
from services.profiles.queries import flatten
from shared.filters import admits


def test_clauses_merge_flat_selective_fields_first():
    query = flatten({"network_id": "n"}, {"erased": {"$ne": True}}, {},
                    {"$or": [{"institution_id": "a"}]}, {"roles": "mentor"},
                    {"specialties": "cardiology"})
    assert query == {"specialties": "cardiology", "institution_id": "a", "roles": "mentor",
                     "network_id": "n", "erased": {"$ne": True}}
    assert list(query)[0] == "specialties"


def test_colliding_fields_and_two_operators_stay_apart():
    query = flatten({"_id": "p1"}, {"_id": {"$gt": "p0"}}, {"$or": [{"a": 1}, {"b": 2}]},
                    {"$or": [{"c": 3}, {"d": 4}]})
    assert query == {"$and": [{"_id": "p1", "$or": [{"a": 1}, {"b": 2}]},
                              {"_id": {"$gt": "p0"}}, {"$or": [{"c": 3}, {"d": 4}]}]}
    assert flatten() == {} and flatten({}, {}) == {}


DOC = {"_id": "p1", "institution_id": "inst-a", "program_ids": ["x", "y"]}


def test_visibility_shapes():
    assert admits(DOC, {})
    assert not admits(DOC, NOBODY)
    assert admits(DOC, {"$or": [{"program_ids": {"$in": ["y"]}}, {"institution_id": "b"}]})
    assert not admits(DOC, {"$or": [{"program_ids": {"$in": ["z"]}}, {"institution_id": "b"}]})
    assert admits(DOC, {"institution_id": "inst-a", "program_ids": {"$in": ["x"]}})
    assert not admits(DOC, {"institution_id": "inst-a", "program_ids": {"$in": ["q"]}})
    assert admits(DOC, {"$or": [{"_id": "p1"}]}) and not admits(DOC, {"$or": [{"_id": "p2"}]})
    assert not admits({"_id": "p1"}, {"program_ids": {"$in": ["x"]}})


def test_unknown_shapes_admit_nobody():
    assert not admits(DOC, {"$nor": [{"_id": "p2"}]})
    assert not admits(DOC, {"_id": {"$ne": "p2"}})
    assert not admits(DOC, {"$or": [{"_id": {"$exists": True}}]})


ids = st.sampled_from(["p1", "p2"])
progs = st.lists(st.sampled_from(["x", "y", "z"]), max_size=3)
insts = st.sampled_from(["inst-a", "inst-b"])
clause = st.one_of(
    st.builds(lambda p: {"program_ids": {"$in": p}}, progs),
    st.builds(lambda i: {"institution_id": i}, insts),
    st.builds(lambda i, p: {"institution_id": i, "program_ids": {"$in": p}}, insts, progs),
    st.builds(lambda i: {"_id": i}, ids),
)


@given(st.lists(clause, max_size=4), ids, insts, progs)
def test_matcher_means_what_a_reading_of_the_clauses_says(reach, person, inst, programs):
    document = {"_id": person, "institution_id": inst, "program_ids": programs}

    def reading(c):
        return all(
            (set(document[k]) & set(v["$in"])) if k == "program_ids" else document[k] == v
            for k, v in c.items()
        )

    assert admits(document, {"$or": reach}) == any(reading(c) for c in reach)
