"""Ranked-preference match: mentee-proposing deferred acceptance with capacities, checked for
stability and against the independent implementation of the PyPI package `matching`."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from matching.games import HospitalResident

from services.matching.stable import blocking_pairs, deferred_acceptance, is_valid, stable_match


def test_textbook_instance_is_mentee_optimal():
    mentees = {"a": ["X", "Y"], "b": ["X", "Y"], "c": ["Y", "X"]}
    mentors = {"X": ["b", "a", "c"], "Y": ["a", "c", "b"]}
    caps = {"X": 1, "Y": 2}
    match = deferred_acceptance(mentees, mentors, caps)
    assert match == {"a": "Y", "b": "X", "c": "Y"}
    assert blocking_pairs(match, mentees, mentors, caps) == []


def test_edge_cases_no_mentors_capacity_zero_and_unacceptable_pairs():
    assert deferred_acceptance({"a": ["X"]}, {}, {}) == {"a": None}
    assert deferred_acceptance({}, {"X": ["a"]}, {"X": 1}) == {}
    assert deferred_acceptance({"a": ["X"]}, {"X": ["a"]}, {"X": 0}) == {"a": None}
    # X does not rank a: not acceptable, even with room
    assert deferred_acceptance({"a": ["X"]}, {"X": ["b"]}, {"X": 1}) == {"a": None}


def test_more_mentees_than_capacity_keeps_the_mentor_favourites():
    mentees = {e: ["X"] for e in "abcd"}
    match = deferred_acceptance(mentees, {"X": ["d", "b", "a", "c"]}, {"X": 2})
    assert match == {"a": None, "b": "X", "c": None, "d": "X"}


def test_blocking_pairs_are_found():
    mentees = {"a": ["X", "Y"], "b": ["Y", "X"]}
    mentors = {"X": ["a", "b"], "Y": ["b", "a"]}
    caps = {"X": 1, "Y": 1}
    assert blocking_pairs({"a": "Y", "b": "X"}, mentees, mentors, caps) == [
        ("a", "X"),
        ("b", "Y"),
    ]
    assert blocking_pairs({"a": None, "b": "Y"}, mentees, mentors, caps) == [("a", "X")]
    assert not is_valid({"a": "Y", "b": "Y"}, mentees, mentors, caps)


def random_lists(seed, n_mentees, n_mentors, max_cap, p):
    rnd = random.Random(seed)
    mentees = [f"e{i}" for i in range(n_mentees)]
    mentors = [f"m{j}" for j in range(n_mentors)]
    acceptable = {(e, m) for e in mentees for m in mentors if rnd.random() < p}
    mentee_prefs = {e: rnd.sample([m for m in mentors if (e, m) in acceptable], k=sum((e, m) in acceptable for m in mentors)) for e in mentees}
    mentor_prefs = {m: rnd.sample([e for e in mentees if (e, m) in acceptable], k=sum((e, m) in acceptable for e in mentees)) for m in mentors}
    caps = {m: rnd.randint(1, max_cap) for m in mentors}
    return mentee_prefs, mentor_prefs, caps


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n_mentees=st.integers(1, 15),
    n_mentors=st.integers(1, 6),
    max_cap=st.integers(1, 4),
    p=st.floats(0.2, 1.0),
)
def test_stable_and_equal_to_the_matching_package(seed, n_mentees, n_mentors, max_cap, p):
    mentee_prefs, mentor_prefs, caps = random_lists(seed, n_mentees, n_mentors, max_cap, p)
    match = deferred_acceptance(mentee_prefs, mentor_prefs, caps)
    assert is_valid(match, mentee_prefs, mentor_prefs, caps)
    assert blocking_pairs(match, mentee_prefs, mentor_prefs, caps) == []

    # The package wants every player to rank someone; it is given only those who do.
    residents = {e: prefs for e, prefs in mentee_prefs.items() if prefs}
    hospitals = {m: prefs for m, prefs in mentor_prefs.items() if prefs}
    expected = dict.fromkeys(mentee_prefs)
    if residents:
        game = HospitalResident.create_from_dictionaries(
            residents, hospitals, {m: caps[m] for m in hospitals}
        )
        for hospital, matched in game.solve(optimal="resident").items():
            for resident in matched:
                expected[resident.name] = hospital.name
    assert match == expected


def test_residency_match_size_runs():
    rnd = random.Random(1)
    mentors = [f"p{j}" for j in range(300)]
    mentee_prefs = {f"a{i}": rnd.sample(mentors, 12) for i in range(2000)}
    ranked_by: dict[str, list[str]] = {m: [] for m in mentors}
    for e, prefs in mentee_prefs.items():
        for m in prefs:
            ranked_by[m].append(e)
    mentor_prefs = {m: rnd.sample(es, len(es)) for m, es in ranked_by.items()}
    caps = {m: rnd.randint(3, 10) for m in mentors}
    match = deferred_acceptance(mentee_prefs, mentor_prefs, caps)
    assert blocking_pairs(match, mentee_prefs, mentor_prefs, caps) == []


def test_stable_match_strikes_forbidden_pairs_and_explains_the_rest():
    from services.matching.scoring import Constraints, Mentee, Mentor, Program

    mentees = [Mentee("a", "i", "M1"), Mentee("b", "i", "M1"), Mentee("c", "i", "M1")]
    mentors = [
        Mentor("X", "i", "M3", 1, do_not_match=frozenset({"a"})),  # X evaluates a
        Mentor("Y", "i", "M3", 1),
        Mentor("Z", "i", "M3", 1, paused=True),
    ]
    mentee_prefs = {"a": ["X", "Y"], "b": ["X", "Y", "Z"], "c": ["Y", "X"]}
    mentor_prefs = {"X": ["a", "c", "b"], "Y": ["a", "b", "c"], "Z": ["b"]}
    constraints = Constraints(declined=frozenset({("c", "X")}))
    result = stable_match(mentees, mentors, mentee_prefs, mentor_prefs, Program(), constraints)
    assert result.match == {"a": ["Y"], "b": ["X"], "c": [None]}
    assert result.stable and result.blocking == []
    assert {(e, m) for e, m, _ in result.removed} == {("a", "X"), ("b", "Z"), ("c", "X")}
    assert all(a.explanation.eligible and a.explanation.lines() for a in result.assignments)
    # Without the constraints a would take X: the boundary really changed the result.
    free = deferred_acceptance(mentee_prefs, mentor_prefs, {"X": 1, "Y": 1, "Z": 1})
    assert free["a"] == "X"
