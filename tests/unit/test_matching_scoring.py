"""Compatibility score, hard constraints and explanations (pure matching domain)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.scoring import (
    Constraints,
    Mentee,
    Mentor,
    Program,
    Weights,
    explain,
    forbidden_by_mentee,
    ineligibility,
    score_value,
    to_points,
)
from services.matching.suggestions import suggest
from services.matching.table import MentorTable
from tests.unit.matching_builders import random_instance

MENTEE = Mentee(
    "e1",
    "inst-a",
    "M2",
    needs=("research", "wellbeing", "careers"),
    specialties=frozenset({"surgery"}),
    languages=frozenset({"en"}),
    meeting_modes=frozenset({"video"}),
    utc_offset=0,
    affinity_preferences=frozenset({"first-gen"}),
    program_id="p1",
)


def mentor(**overrides) -> Mentor:
    data = dict(
        id="m1",
        institution_id="inst-b",
        career_stage="M4",
        capacity=2,
        help_offered=frozenset({"research"}),
        specialties=frozenset({"surgery"}),
        languages=frozenset({"en", "es"}),
        meeting_modes=frozenset({"video", "phone"}),
        utc_offset=1,
        affinities=frozenset({"first-gen"}),
        trained=True,
        program_ids=frozenset({"p1"}),
    )
    return Mentor(**{**data, **overrides})


PROGRAM = Program(id="p1")


def test_explanation_adds_up_to_the_score_and_speaks_plainly():
    x = explain(MENTEE, mentor(), PROGRAM)
    assert x.eligible and 0 <= x.score <= 100
    # the factors add up to the exact score; the score shown is it in integer tenths
    assert x.points == to_points(sum(c.points for c in x.contributions))
    assert sum(c.points for c in x.contributions) == pytest.approx(x.score, abs=0.05)
    assert sum(c.max_points for c in x.contributions) == pytest.approx(100)
    by = {c.factor: c for c in x.contributions}
    assert set(by) == {
        "needs", "specialty", "career_stage", "institution", "language",
        "meeting_mode", "time_zone", "affinity", "training",
    }
    assert "research (priority 1)" in by["needs"].text
    assert "not with wellbeing, careers" in by["needs"].text
    assert "surgery" in by["specialty"].text
    assert "2 stages ahead" in by["career_stage"].text and "near-peer" in by["career_stage"].text
    assert "11 working hours" in by["time_zone"].text
    # identity attributes are never named: only that one the mentee opted into is shared
    assert "shares 1 of the 1 affinities" in by["affinity"].text
    assert "first-gen" not in " ".join(x.lines())
    assert "completed mentor training" in by["training"].text
    assert any(line.startswith("needs: ") for line in x.lines())
    assert x.summary().startswith(f"Score {x.score:.1f}/100.")


def test_needs_count_in_the_mentee_priority_order():
    first = score_value(MENTEE, mentor(help_offered=frozenset({"research"})), PROGRAM)
    last = score_value(MENTEE, mentor(help_offered=frozenset({"careers"})), PROGRAM)
    all_three = score_value(
        MENTEE, mentor(help_offered=frozenset({"research", "wellbeing", "careers"})), PROGRAM
    )
    assert all_three > first > last


@pytest.mark.parametrize(
    ("overrides", "constraints", "reason"),
    [
        ({"capacity": 0}, Constraints(), "no capacity"),
        ({"paused": True}, Constraints(), "paused"),
        ({"program_ids": frozenset({"p2"})}, Constraints(), "not both in the program"),
        ({}, Constraints(boundaries=frozenset({("e1", "m1")})), "supervises or evaluates"),
        ({}, Constraints(ended=frozenset({("e1", "m1")})), "ended"),
        ({}, Constraints(declined=frozenset({("e1", "m1")})), "declined"),
        ({"career_stage": "M1"}, Constraints(), "not further along"),
        ({"id": "e1"}, Constraints(), "themselves"),
    ],
)
def test_hard_constraints_make_a_pair_ineligible(overrides, constraints, reason):
    m = mentor(**overrides)
    assert reason in ineligibility(MENTEE, m, PROGRAM, constraints)
    x = explain(MENTEE, m, PROGRAM, constraints)
    assert not x.eligible and x.score == 0 and reason in x.lines()[0]


def test_career_stage_gap_suits_the_program_type():
    near = Program(id="p1", type="near-peer")
    faculty = Program(id="p1", type="faculty")
    one_ahead = mentor(career_stage="M3")
    far_ahead = mentor(career_stage="faculty-professor")
    assert score_value(MENTEE, one_ahead, near) > score_value(MENTEE, far_ahead, near)
    assert score_value(MENTEE, far_ahead, faculty) == score_value(MENTEE, one_ahead, faculty)
    assert "faculty program" in {c.factor: c for c in explain(MENTEE, far_ahead, faculty).contributions}["career_stage"].text


@pytest.mark.parametrize(("rule", "same_wins"), [("same", True), ("cross", False)])
def test_institution_rule(rule, same_wins):
    program = Program(id="p1", institution_rule=rule)
    same = score_value(MENTEE, mentor(institution_id="inst-a"), program)
    cross = score_value(MENTEE, mentor(institution_id="inst-b"), program)
    assert (same > cross) == same_wins
    either = Program(id="p1", institution_rule="either")
    assert score_value(MENTEE, mentor(institution_id="inst-a"), either) == score_value(
        MENTEE, mentor(institution_id="inst-b"), either
    )


def test_language_mode_time_zone_affinity_and_training_each_count():
    base = score_value(MENTEE, mentor(), PROGRAM)
    for worse in (
        mentor(languages=frozenset({"fr"})),
        mentor(meeting_modes=frozenset({"in-person"})),
        mentor(utc_offset=10),
        mentor(affinities=frozenset()),
        mentor(trained=False),
    ):
        assert score_value(MENTEE, worse, PROGRAM) < base


def test_a_program_tunes_the_weights():
    research = mentor(id="m1", help_offered=frozenset({"research"}), specialties=frozenset())
    surgeon = mentor(id="m2", help_offered=frozenset(), specialties=frozenset({"surgery"}))
    needs_first = Program(id="p1", weights=Weights(needs=10, specialty=1))
    specialty_first = Program(id="p1", weights=Weights(needs=1, specialty=10))
    assert score_value(MENTEE, research, needs_first) > score_value(MENTEE, surgeon, needs_first)
    assert score_value(MENTEE, surgeon, specialty_first) > score_value(MENTEE, research, specialty_first)
    only_training = Weights(**{f: 0 for f in Weights().as_dict()} | {"training": 1})
    x = explain(MENTEE, mentor(trained=True), Program(id="p1", weights=only_training))
    assert x.score == 100 and [c.factor for c in x.contributions] == ["training"]
    with pytest.raises(ValueError):
        Weights(needs=-1)
    with pytest.raises(ValueError):
        Weights(**{f: 0 for f in Weights().as_dict()})


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    kind=st.sampled_from(["near-peer", "peer", "faculty", "research"]),
    rule=st.sampled_from(["same", "cross", "either"]),
)
def test_vectorised_scores_equal_the_pair_scores(seed, kind, rule):
    mentees, mentors, constraints = random_instance(seed, 4, 6)
    program = Program(type=kind, institution_rule=rule)
    table = MentorTable(mentors, program)
    forbidden = forbidden_by_mentee(constraints)
    block = table.score_block(mentees)
    block_ok = table.eligible_block(mentees, forbidden)
    for r, e in enumerate(mentees):
        for i, m in enumerate(mentors):
            assert block[r, i] == pytest.approx(score_value(e, m, program), abs=1e-9)
            assert bool(block_ok[r, i]) == (ineligibility(e, m, program, constraints) is None)
        scores = table.scores(e)
        ok = table.eligible(e, forbidden.get(e.id, ()))
        for i, m in enumerate(mentors):
            assert scores[i] == score_value(e, m, program)
            assert bool(ok[i]) == (ineligibility(e, m, program, constraints) is None)


def test_suggestions_are_the_best_eligible_mentors_explained():
    mentors = [
        mentor(id="m-all", help_offered=frozenset({"research", "wellbeing", "careers"})),
        mentor(id="m-research"),
        mentor(id="m-none", help_offered=frozenset()),
        mentor(id="m-full", capacity=0, help_offered=frozenset({"research", "wellbeing"})),
        mentor(id="m-boundary", help_offered=frozenset({"research", "wellbeing"})),
    ]
    constraints = Constraints(boundaries=frozenset({("e1", "m-boundary")}))
    top = suggest(MENTEE, mentors, PROGRAM, constraints, k=2)
    assert [x.mentor_id for x in top] == ["m-all", "m-research"]
    assert all(x.eligible and x.contributions for x in top)
    assert [x.mentor_id for x in suggest(MENTEE, mentors, PROGRAM, constraints, k=10)] == [
        "m-all", "m-research", "m-none"
    ]
    assert suggest(MENTEE, mentors, PROGRAM, k=0) == []
    assert suggest(MENTEE, [], PROGRAM) == []


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.integers(1, 8))
def test_vectorised_suggestions_equal_the_pairwise_ones(seed, k):
    mentees, mentors, constraints = random_instance(seed, 3, 12)
    table = MentorTable(mentors, Program())
    for e in mentees:
        plain = suggest(e, mentors, Program(), constraints, k)
        fast = suggest(e, mentors, Program(), constraints, k, table=table)
        assert [x.mentor_id for x in fast] == [x.mentor_id for x in plain]


def test_suggestion_ties_break_by_mentor_id():
    twins = [mentor(id="m-b"), mentor(id="m-a"), mentor(id="m-c")]
    assert [x.mentor_id for x in suggest(MENTEE, twins, PROGRAM, k=2)] == ["m-a", "m-b"]
    table = MentorTable(twins, PROGRAM)
    assert [x.mentor_id for x in suggest(MENTEE, twins, PROGRAM, k=2, table=table)] == ["m-a", "m-b"]


def test_a_peer_program_accepts_the_same_stage_and_others_any_senior():
    same_stage = mentor(career_stage="M2")
    peer = Program(id="p1", type="peer")
    assert ineligibility(MENTEE, same_stage, peer) is None
    assert "not further along" in ineligibility(MENTEE, same_stage, PROGRAM)
    assert "earlier in training" in ineligibility(MENTEE, mentor(career_stage="M1"), peer)
    research = Program(id="p1", type="research")
    far = mentor(career_stage="faculty-professor")
    assert score_value(MENTEE, far, research) == score_value(MENTEE, mentor(career_stage="M3"), research)
    assert "research program" in {c.factor: c.text for c in explain(MENTEE, far, research).contributions}["career_stage"]


def test_unknown_or_unstated_preferences_count_neutral_not_against():
    by = lambda x: {c.factor: c for c in x.contributions}  # noqa: E731
    unknown_tz = mentor(utc_offset=None)
    x = by(explain(MENTEE, unknown_tz, PROGRAM))
    assert x["time_zone"].points == pytest.approx(x["time_zone"].max_points / 2)
    assert "unknown" in x["time_zone"].text
    no_pref = Mentee("e1", "inst-a", "M2", languages=frozenset(), meeting_modes=frozenset(), program_id="p1")
    x = by(explain(no_pref, mentor(languages=frozenset({"fr"})), PROGRAM))
    assert x["language"].points == x["language"].max_points and "no language preference" in x["language"].text
    silent = by(explain(MENTEE, mentor(languages=frozenset(), meeting_modes=frozenset()), PROGRAM))
    assert silent["language"].points == pytest.approx(silent["language"].max_points / 2)
    assert silent["meeting_mode"].points == pytest.approx(silent["meeting_mode"].max_points / 2)


def test_the_mentee_institution_preference_counts_when_the_program_accepts_either():
    from dataclasses import replace

    wants_same = replace(MENTEE, institution_preference="same")
    either = Program(id="p1", institution_rule="either")
    same, other = mentor(institution_id="inst-a"), mentor(institution_id="inst-b")
    assert score_value(wants_same, same, either) > score_value(wants_same, other, either)
    assert "the mentee prefers" in {c.factor: c.text for c in explain(wants_same, other, either).contributions}["institution"]
    # the program's own rule wins over the mentee's preference
    cross = Program(id="p1", institution_rule="cross")
    assert score_value(wants_same, other, cross) > score_value(wants_same, same, cross)


def test_boundaries_and_exclusions_in_words():
    from dataclasses import replace

    assert "supervises or evaluates" in ineligibility(MENTEE, mentor(do_not_match=frozenset({"e1"})), PROGRAM)
    assert "supervises or evaluates" in ineligibility(replace(MENTEE, do_not_match=frozenset({"m1"})), mentor(), PROGRAM)
    assert "excluded" in ineligibility(MENTEE, mentor(), PROGRAM, Constraints(excluded=frozenset({("e1", "m1")})))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    kind=st.sampled_from(["near-peer", "peer", "faculty"]),
    weights=st.lists(st.sampled_from([0, 0.5, 1, 2, 3, 5]), min_size=9, max_size=9),
)
def test_block_points_equal_the_pair_points(seed, kind, weights):
    # Candidates and pricing take points from float32 products (tie term removed, float64 where
    # the rounding is in doubt): the same integers as the explanation's.
    import numpy as np

    from services.matching.blocks import BlockScorer

    names = list(Weights().as_dict())
    w = Weights(**dict(zip(names, weights)) | {"needs": max(weights[0], 1)})
    mentees, mentors, constraints = random_instance(seed, 6, 8)
    program = Program(type=kind, weights=w)
    scorer = BlockScorer(mentees, mentors, program, constraints, seed)
    rows = np.arange(len(mentees))
    cols = np.arange(len(mentors))
    scores = scorer.scores(rows, cols)
    r, c = np.nonzero(scores > -1)
    fast = scorer.points_of(scores[r, c], rows[r], cols[c])
    exact = scorer.exact_points(rows[r], cols[c])
    pairwise = [to_points(score_value(mentees[i], scorer.table.mentors[j], program))
                for i, j in zip(r.tolist(), c.tolist())]
    assert fast.tolist() == exact.tolist() == pairwise
    for i, j in zip(r.tolist(), c.tolist()):
        x = explain(mentees[i], scorer.table.mentors[j], program, constraints)
        assert x.eligible and x.points == to_points(score_value(mentees[i], scorer.table.mentors[j], program))
