"""Batch matching of a program, proven optimal over every eligible pair (pure code, no I/O).

The objective is lexicographic: as many mentee-needs filled as possible; with `fair`, then as
many mentees with at least one mentor as possible; then the largest total of integer points
(`scoring.to_points`). Hard constraints: mentor capacities, one mentor per need, never the same
mentor twice for one mentee, every eligibility rule, and optionally a cap on how many mentees of
one institution go to mentors of another.

It starts from a shortlist (`candidates`: each slot's best mentors and each mentor's best
mentees), solves it (`flow`, a min-cost flow), then prices every other eligible pair with the
solution's dual potentials (`pricing`); pairs that could improve the optimum are added and the
flow solved again, until none is left. That is the column-generation certificate: a result says
`proven_optimal` only when it holds. With an institution cap the problem is not a flow any more;
the flow's certified optimum answers when it already respects the cap, and otherwise the levels
are solved in turn as integer programs (`capped`), with the same kind of certificate.

Ties between equally good answers are drawn from `seed` and people's ids (`ties`), never from
their position in the input; a run records its seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.matching import flow, ties
from services.matching.blocks import BlockScorer
from services.matching.candidates import (  # noqa: F401  (re-exported for callers)
    MAX_POINTS,
    Candidates,
    Slot,
    add_arcs,
    generate_candidates,
    points,
    shortlist,
)
from services.matching.pricing import Duals, price
from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Explanation,
    Mentee,
    Mentor,
    Program,
    explain,
)

MAX_ROUNDS = 60  # solves of the flow before the run gives up proving (never reached in tests)


@dataclass(frozen=True)
class Assignment:
    mentee_id: str
    mentor_id: str
    need: str | None
    points: int  # the score in tenths, as `scoring.to_points` gives it
    explanation: Explanation | None = None

    @property
    def score(self) -> float:
        return self.points / 10


@dataclass
class BatchResult:
    assignments: list[Assignment]
    unfilled: list[tuple[str, str | None]]  # (mentee id, need) of slots left without a mentor
    total_points: int
    solver: str
    timings: dict[str, float] = field(default_factory=dict)
    proven_optimal: bool = False  # optimal over every eligible pair, by certificate
    seed: int = 0  # the tie-breaking draw
    certificate: dict[str, Any] = field(default_factory=dict)  # how the proof went, for the run

    @property
    def total_score(self) -> float:
        return self.total_points / 10

    @property
    def mentees_matched(self) -> int:
        return len({a.mentee_id for a in self.assignments})


def batch_match(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    program: Program = Program(),
    constraints: Constraints = NO_CONSTRAINTS,
    *,
    top_k: int | None = 30,
    mentor_side: int = 20,
    fair: bool = False,
    institution_cap: int | None = None,
    with_explanations: bool = True,
    seed: int = 0,
    node_limit: int | None = None,
) -> BatchResult:
    """The optimal assignment (see the module docstring). `top_k` and `mentor_side` size the
    shortlist the solve starts from, not the answer; `node_limit` bounds the branch-and-bound
    of the capped program (a count, so the answer does not depend on machine load)."""
    scorer = BlockScorer(mentees, mentors, program, constraints, seed)
    cands = shortlist(scorer, top_k, mentor_side)
    started = time.perf_counter()
    cands, chosen, proof = certified_flow(scorer, cands, fair)
    solver = "min-cost-flow"
    if institution_cap is not None:
        from services.matching import capped

        if not capped.breaks_cap(cands, chosen, mentees, mentors, institution_cap):
            solver = "min-cost-flow (the institution cap does not bind)"
        else:
            kwargs = {} if node_limit is None else {"node_limit": node_limit}
            start = capped.within_cap(cands, chosen, scorer, institution_cap)
            cands, chosen, proof = capped.solve(
                scorer, cands, fair, institution_cap, start, **kwargs
            )
            solver = "integer program by levels (HiGHS)"
    timings = {"candidates": cands.seconds, "solve": time.perf_counter() - started}
    picked = [
        (int(s), int(m), int(p))
        for s, m, p in zip(
            cands.arc_slot[chosen].tolist(),
            cands.arc_mentor[chosen].tolist(),
            cands.arc_points[chosen].tolist(),
        )
    ]
    result = _result(
        mentees, mentors, program, constraints, cands, picked, solver, timings, with_explanations
    )
    result.proven_optimal = bool(proof["proven"])
    result.seed = seed
    result.certificate = proof
    return result


# The first network: each slot's best FIRST_PER_SLOT arcs of the shortlist and each mentor's best
# FIRST_PER_MENTOR. The rest of the shortlist stays known (its arcs are priced for nothing after
# each solve) and keeps the slots' bounds tight for pricing; the first solve, the costliest one,
# then runs on about a third of the arcs (20,000 x 5,000: 255k instead of 683k).
FIRST_PER_SLOT = 10
FIRST_PER_MENTOR = 20
NEAR = 20  # points: after the first solve, the network keeps the arcs this close to the optimum
# Points: when some pair has a negative reduced cost, the pairs this close to it come in too, so
# that the next solve does not reveal them one round later.
AHEAD = 10


def certified_flow(
    scorer: BlockScorer, cands: Candidates, fair: bool
) -> tuple[Candidates, np.ndarray, dict[str, Any]]:
    """Solve, price every eligible pair, add what could improve, solve again, until nothing
    can: (the arcs, the indices of the chosen ones, how the proof went).

    The first network is the best of the shortlist (`_first_network`). After it only the arcs
    within `NEAR` points of
    reduced cost stay in the network (most of the others will never be used), and the network
    then only grows: known arcs with a negative reduced cost are added first (they cost nothing
    to price), and only when there are none is every other eligible pair priced in blocks."""
    capacities = np.array([max(0, m.capacity) for m in scorer.mentors], dtype=np.int64)
    mentee_rank = ties.rank(scorer.mentee_keys)
    mentor_rank = ties.rank(scorer.mentor_keys)
    proof: dict[str, Any] = {"rounds": 0, "pairs_added": 0, "pairs_scored": 0, "proven": False,
                             "network_arcs": []}
    active = _first_network(cands, FIRST_PER_SLOT, FIRST_PER_MENTOR, scorer.n)
    for round_ in range(MAX_ROUNDS):
        active = _whole_pairs(cands, active, scorer.n)
        solved_on = cands
        arcs = np.flatnonzero(active)
        proof["network_arcs"].append(int(arcs.size))
        solved = flow.solve(cands, arcs, capacities, mentee_rank, mentor_rank, fair)
        proof["rounds"] += 1
        reduced = (
            MAX_POINTS
            - cands.arc_points
            + solved.slot_potential[cands.arc_slot]
            - solved.mentor_potential[cands.arc_mentor]
        )
        if round_ == 0:  # what the first network alone gives, for the record
            proof["shortlist_filled"] = int(len(solved.chosen))
            proof["shortlist_points"] = int(cands.arc_points[solved.chosen].sum())
            active = reduced <= NEAR
            active[solved.chosen] = True
            active = _whole_pairs(cands, active, scorer.n)
        if (~active & (reduced < 0)).any():  # the known arcs first: pricing them costs nothing
            known = np.flatnonzero(~active & (reduced < AHEAD))
            proof["pairs_added"] += int(known.size)
            active[known] = True
            continue
        # Every known arc now has a non-negative reduced cost under the solve's potentials, so
        # they are already shortest-path distances over the network plus the known arcs outside
        # it: running shortest paths again with those arcs added would return them unchanged
        # (it did, at 20,000 x 5,000, for 0.14 CPU s of Bellman-Ford passes over every arc).
        duals = Duals(
            const=float(MAX_POINTS),
            alpha=1.0,
            slot_offset=solved.slot_potential,
            mentor_offset=-solved.mentor_potential,
        )
        priced = price(scorer, cands, duals, ahead=AHEAD)
        proof["pairs_scored"] += priced.pairs_scored
        if not len(priced):
            proof["proven"] = True
            return cands, solved.chosen, proof
        proof["pairs_added"] += len(priced)
        grown = add_arcs(cands, scorer, priced.slot, priced.mentor, priced.points)
        grown.seconds = cands.seconds
        active = _carry(cands, active, grown, scorer.n)
        cands = grown
    return solved_on, solved.chosen, proof  # the rounds ran out: the last optimum, unproven


def _first_network(cands: Candidates, per_slot: int, per_mentor: int, n: int) -> np.ndarray:
    """The arcs of the first solve: each slot's first `per_slot` arcs (a shortlist's arcs of a
    slot come best first) and each mentor's best `per_mentor` (points descending, then arc
    order, so the choice is deterministic)."""
    start = cands.start
    within = np.arange(cands.arc_count) - np.repeat(start[:-1], np.diff(start))
    active = within < per_slot
    if per_mentor > 0 and cands.arc_count:
        # np.lexsort((-points, mentor)) as one int64 sort: mentor | points reversed | arc index
        idx_bits = int(cands.arc_count - 1).bit_length()
        pts_bits = int(MAX_POINTS).bit_length()
        if int(max(1, n) - 1).bit_length() + pts_bits + idx_bits <= 63:
            key = (cands.arc_mentor << (pts_bits + idx_bits)) | (
                (MAX_POINTS - cands.arc_points) << idx_bits
            ) | np.arange(cands.arc_count)
            order = np.sort(key) & ((1 << idx_bits) - 1)
        else:
            order = np.lexsort((-cands.arc_points, cands.arc_mentor))
        by_mentor = cands.arc_mentor[order]
        rank = np.arange(len(order)) - np.searchsorted(by_mentor, by_mentor)
        active[order[rank < per_mentor]] = True
    return active


def _whole_pairs(cands: Candidates, active: np.ndarray, n: int) -> np.ndarray:
    """`active` with every arc of a (mentee, mentor) pair of a mentee wanting several mentors
    once one of them is active (the pair's node takes all of them or none)."""
    if not cands.arc_count:
        return active
    mentee = cands.slot_mentee[cands.arc_slot]
    counts = np.bincount(cands.slot_mentee)
    multi = counts[mentee] > 1
    if not multi.any():
        return active
    key = mentee * max(1, n) + cands.arc_mentor
    on = np.unique(key[active & multi])
    if not len(on):
        return active
    pos = np.minimum(np.searchsorted(on, key), len(on) - 1)
    return active | (multi & (on[pos] == key))


def _carry(old: Candidates, active: np.ndarray, new: Candidates, n: int) -> np.ndarray:
    """The active mask of `old` carried over to `new` (a superset of its arcs); arcs that are
    new in `new` are active."""
    old_keys = np.sort(old.arc_slot[active] * n + old.arc_mentor[active])
    all_old = np.sort(old.arc_slot * n + old.arc_mentor)
    keys = new.arc_slot * n + new.arc_mentor
    return _member(keys, old_keys) | ~_member(keys, all_old)


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _result(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    program: Program,
    constraints: Constraints,
    cands: Candidates,
    chosen: list[tuple[int, int, int]],  # (slot, mentor index, points)
    solver: str,
    timings: dict[str, float],
    with_explanations: bool,
) -> BatchResult:
    assignments = []
    filled = set()
    slot_mentee = cands.slot_mentee.tolist()
    for s, m, p in sorted(chosen):
        mentee, mentor = mentees[slot_mentee[s]], mentors[m]
        expl = explain(mentee, mentor, program, constraints) if with_explanations else None
        assignments.append(Assignment(mentee.id, mentor.id, cands.slot_need[s], p, expl))
        filled.add(s)
    unfilled = [
        (mentees[e].id, need)
        for s, (e, need) in enumerate(zip(slot_mentee, cands.slot_need))
        if s not in filled
    ]
    total = sum(p for _, _, p in chosen)
    return BatchResult(assignments, unfilled, total, solver, timings)


def greedy_match(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    program: Program = Program(),
    constraints: Constraints = NO_CONSTRAINTS,
    *,
    top_k: int | None = 30,
) -> BatchResult:
    """Best-first baseline (what vendor tools do): take the highest-scoring remaining pair."""
    cands = generate_candidates(mentees, mentors, program, constraints, top_k)
    started = time.perf_counter()
    arc_slot, arc_m, arc_p = cands.arc_slot, cands.arc_mentor, cands.arc_points
    order = np.lexsort((arc_m, arc_slot, -arc_p))
    slot_mentee = cands.slot_mentee.tolist()
    left = [m.capacity for m in mentors]
    filled: set[int] = set()
    used: set[tuple[int, int]] = set()
    chosen = []
    for s, m, p in zip(arc_slot[order].tolist(), arc_m[order].tolist(), arc_p[order].tolist()):
        e = slot_mentee[s]
        if s in filled or left[m] <= 0 or (e, m) in used:
            continue
        filled.add(s)
        used.add((e, m))
        left[m] -= 1
        chosen.append((s, m, p))
    timings = {"candidates": cands.seconds, "solve": time.perf_counter() - started}
    return _result(mentees, mentors, program, constraints, cands, chosen, "greedy", timings, False)
