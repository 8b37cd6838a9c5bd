"""Ranked-preference match: mentee-proposing deferred acceptance with capacities, checked for
stability and against the independent implementation of the PyPI package `matching`."""

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from matching.games import HospitalResident

from services.matching.stable import (
    blocking_pairs,
    blocking_pairs_by_rounds,
    deferred_acceptance,
    deferred_acceptance_by_rounds,
    is_valid,
    stable_match,
)


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


# --- several mentors per mentee: one stable round per wanted mentor ----------------------------


def package_match(mentee_prefs, mentor_prefs, caps):
    """The PyPI `matching` package's resident-optimal match (an independent implementation)."""
    residents = {e: prefs for e, prefs in mentee_prefs.items() if prefs}
    hospitals = {m: [e for e in prefs if m in residents.get(e, ())] for m, prefs in mentor_prefs.items()}
    hospitals = {m: prefs for m, prefs in hospitals.items() if prefs and caps.get(m, 0) > 0}
    residents = {e: [m for m in prefs if m in hospitals] for e, prefs in residents.items()}
    residents = {e: prefs for e, prefs in residents.items() if prefs}
    out = dict.fromkeys(mentee_prefs)
    if residents:
        game = HospitalResident.create_from_dictionaries(
            residents, {m: [e for e in p if e in residents] for m, p in hospitals.items()},
            {m: caps[m] for m in hospitals},
        )
        for hospital, matched in game.solve(optimal="resident").items():
            for resident in matched:
                out[resident.name] = hospital.name
    return out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n_mentees=st.integers(1, 12),
    n_mentors=st.integers(1, 6),
    max_cap=st.integers(1, 4),
    p=st.floats(0.3, 1.0),
)
def test_each_round_is_the_stable_match_of_its_lists_and_the_places_left(seed, n_mentees, n_mentors, max_cap, p):
    mentee_prefs, mentor_prefs, caps = random_lists(seed, n_mentees, n_mentors, max_cap, p)
    rnd = random.Random(seed)
    # each mentee wants one or two mentors; the second list is its own list reshuffled
    lists = {e: [prefs] + ([rnd.sample(prefs, len(prefs))] if rnd.random() < 0.6 else [])
             for e, prefs in mentee_prefs.items()}
    got, rooms = deferred_acceptance_by_rounds(lists, mentor_prefs, caps)
    assert rooms[0] == caps
    assert {e: ms[0] for e, ms in got.items()} == deferred_acceptance(mentee_prefs, mentor_prefs, caps)
    assert blocking_pairs_by_rounds(got, lists, mentor_prefs, rooms) == []
    load = Counter(m for ms in got.values() for m in ms if m)
    assert all(load[m] <= caps[m] for m in load)
    for e, ms in got.items():
        mine = [m for m in ms if m]
        assert len(mine) == len(set(mine)) and len(ms) == len(lists[e])  # distinct, one per slot
    if len(rooms) > 1:  # the second round against the independent package, on what was left
        second = {e: [m for m in ls[1] if m != got[e][0]] for e, ls in lists.items() if len(ls) > 1}
        expected = package_match(second, mentor_prefs, rooms[1])
        assert {e: got[e][1] for e in second} == expected


def test_a_second_mentor_never_takes_a_place_someone_needs_for_a_first():
    # X has one place. a wants two mentors, ranks X first; b wants one and is ranked above a by
    # X. Round one gives X to b; a's second round cannot take it back.
    lists = {"a": [["X", "Y"], ["X", "Y"]], "b": [["X"]]}
    got, _ = deferred_acceptance_by_rounds(lists, {"X": ["b", "a"], "Y": ["a"]}, {"X": 1, "Y": 1})
    assert got == {"a": ["Y", None], "b": ["X"]}
    # and a first-round mentee is never dropped for a second-round one X prefers
    got, _ = deferred_acceptance_by_rounds(
        {"a": [["Y"], ["X"]], "b": [["X"]]}, {"X": ["a", "b"], "Y": ["a"]}, {"X": 1, "Y": 1})
    assert got == {"a": ["Y", None], "b": ["X"]}


def test_stable_match_gives_one_mentor_per_need():
    from services.matching.scoring import Mentee, Mentor, Program

    mentees = [
        Mentee("a", "i", "M1", needs=("research", "wellbeing"), mentors_wanted=2),
        Mentee("b", "i", "M1", needs=("research",)),
    ]
    mentors = [
        Mentor("R", "i", "M3", 1, help_offered=frozenset({"research"})),
        Mentor("W", "i", "M3", 1, help_offered=frozenset({"wellbeing"})),
        Mentor("B", "i", "M3", 2, help_offered=frozenset({"research", "wellbeing"})),
    ]
    mentee_prefs = {"a": ["B", "R", "W"], "b": ["R", "B"]}
    mentor_prefs = {"R": ["a", "b"], "W": ["a"], "B": ["a", "b"]}
    result = stable_match(mentees, mentors, mentee_prefs, mentor_prefs, Program())
    assert result.match == {"a": ["B", "W"], "b": ["R"]} and result.stable
    assert {(x.mentee_id, x.need, x.mentor_id) for x in result.assignments} == {
        ("a", "research", "B"), ("a", "wellbeing", "W"), ("b", None, "R")}
    assert all(x.points == x.explanation.points for x in result.assignments)
