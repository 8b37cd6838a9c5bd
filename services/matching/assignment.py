"""Batch matching of a program: exact and lexicographic (as many mentee-needs filled as possible,
then the largest total score), subject to mentor capacities (pure code, no I/O).

The network, one unit of flow per wanted mentor:

    source -> mentee (k slots) -> need node (1) -> [pair node (1)] -> mentor (capacity) -> sink

A mentee who wants one mentor has a single slot that may take any candidate; a mentee who wants
k > 1 mentors has a node per slot (`Mentee.slot_needs`: the needs it named for its mentors, else
its first k needs), whose candidates are mentors offering that need, and a pair node per (mentee,
mentor) so that a mentor is used at most once per mentee. An assignment arc costs
`MAX_POINTS - points` (points = score in tenths, 0..1000). The batch is solved by OR-Tools'
max-flow-with-min-cost: the most slots filled, then the least cost, i.e. the largest total
score. With `fair=True` each mentee's first unit of flow earns a bonus worth more than any sum of
scores, so among the maximum flows the most mentees are covered: no mentee gets a second mentor
while an eligible mentee without any could have had one.

Candidates (`candidates.generate_candidates`) are the best `top_k` eligible mentors per slot and
each mentor's best mentees, found by scoring blocks of mentees with one matrix product each: no
mentee x mentor matrix is ever held. `top_k=None` keeps every eligible pair and the result is
then the exact optimum over all pairs (the unit tests check it against scipy's Hungarian
algorithm); with `top_k` it is the exact optimum over the candidate arcs.

A cap on how many mentees of one institution go to mentors of another crosses the capacity
structure (it is not a flow any more), so with `institution_cap` set the same model is solved as
an integer program with OR-Tools CP-SAT over the same candidate arcs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.matching.candidates import (  # noqa: F401  (re-exported for callers)
    MAX_POINTS,
    Candidates,
    Slot,
    generate_candidates,
    points,
)
from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Explanation,
    Mentee,
    Mentor,
    Program,
    explain,
)


@dataclass(frozen=True)
class Assignment:
    mentee_id: str
    mentor_id: str
    need: str | None
    score: float
    explanation: Explanation | None = None


@dataclass
class BatchResult:
    assignments: list[Assignment]
    unfilled: list[tuple[str, str | None]]  # (mentee id, need) of slots left without a mentor
    total_points: int
    solver: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        """False only when CP-SAT (institution cap) ran out of time before proving optimality."""
        return "not proven" not in self.solver

    @property
    def total_score(self) -> float:
        return self.total_points / 10

    @property
    def mentees_matched(self) -> int:
        return len({a.mentee_id for a in self.assignments})


def _penalties(slot_count: int) -> tuple[int, int]:
    """Cost of an unfilled slot, and of a mentee's last unfilled slot under fairness."""
    unfilled = MAX_POINTS * (slot_count + 1) + 1
    last = unfilled * (slot_count + 2) + 1
    if last * (slot_count + 1) >= 2**62:
        raise ValueError("Instance too large for the fair objective's integer costs")
    return unfilled, last


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
        assignments.append(Assignment(mentee.id, mentor.id, cands.slot_need[s], p / 10, expl))
        filled.add(s)
    unfilled = [
        (mentees[e].id, need)
        for s, (e, need) in enumerate(zip(slot_mentee, cands.slot_need))
        if s not in filled
    ]
    total = sum(p for _, _, p in chosen)
    return BatchResult(assignments, unfilled, total, solver, timings)


def batch_match(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    program: Program = Program(),
    constraints: Constraints = NO_CONSTRAINTS,
    *,
    top_k: int | None = 30,
    fair: bool = False,
    institution_cap: int | None = None,
    with_explanations: bool = True,
    time_limit_s: float = 60.0,
) -> BatchResult:
    """The optimal assignment: most slots filled (with `fair`, most mentees with a mentor first),
    then the largest total score; each mentor at most `capacity` mentees and once per mentee."""
    cands = generate_candidates(mentees, mentors, program, constraints, top_k)
    started = time.perf_counter()
    if institution_cap is not None:
        # The optimum without the cap bounds the capped one: when it already respects the cap
        # it is the answer; else it starts CP-SAT, and reaching its value proves optimality.
        free = _solve_flow(mentees, mentors, cands, fair)
        start = _capped(mentees, mentors, cands, free, institution_cap)
        if len(start) == len(free):
            chosen, solver = free, "min-cost-flow (the institution cap does not bind)"
        else:
            chosen, optimal = _solve_cp_sat(
                mentees, mentors, cands, fair, institution_cap, time_limit_s, start
            )
            if _value(cands, chosen, fair) == _value(cands, free, fair):
                optimal = True
            solver = "cp-sat" if optimal else "cp-sat (best found in the time limit, not proven optimal)"
    else:
        chosen = _solve_flow(mentees, mentors, cands, fair)
        solver = "min-cost-flow"
    timings = {"candidates": cands.seconds, "solve": time.perf_counter() - started}
    return _result(
        mentees, mentors, program, constraints, cands, chosen, solver, timings, with_explanations
    )


def _solve_flow(
    mentees: Sequence[Mentee], mentors: Sequence[Mentor], cands: Candidates, fair: bool
) -> list[tuple[int, int, int]]:
    """Build the network with numpy (one arc array per kind) and solve it with OR-Tools."""
    from ortools.graph.python import min_cost_flow

    n_slots = len(cands.slot_need)
    if n_slots == 0:
        return []
    n = len(mentors)
    mentee_ids, slot_pos, k_per = np.unique(
        cands.slot_mentee, return_inverse=True, return_counts=True
    )
    n_mentees = len(mentee_ids)
    mentor_base, mentee_base = 2, 2 + n
    need_base = mentee_base + n_mentees
    multi_slot = k_per[slot_pos] > 1
    multi_ids = np.flatnonzero(multi_slot)
    need_node = np.full(n_slots, -1, dtype=np.int64)
    need_node[multi_ids] = need_base + np.arange(len(multi_ids))
    pair_base = need_base + len(multi_ids)
    arc_slot = cands.arc_slot
    arc_m = cands.arc_mentor
    arc_p = cands.arc_points
    multi_arc = multi_slot[arc_slot]
    pair_keys = slot_pos[arc_slot[multi_arc]] * max(1, n) + arc_m[multi_arc]
    pairs, pair_inv = np.unique(pair_keys, return_inverse=True)
    tail_assign = np.where(multi_arc, need_node[arc_slot], mentee_base + slot_pos[arc_slot])
    head_assign = mentor_base + arc_m
    head_assign[multi_arc] = pair_base + pair_inv
    mentee_nodes = mentee_base + np.arange(n_mentees)
    # Solved as max-flow-with-min-cost, which is the lexicographic objective itself: the most
    # slots filled, then the least cost (the best score); costs stay small, so cost scaling is
    # short. Fairness gives each mentee's first unit from the source a bonus worth more than any
    # sum of scores: among maximum flows, the most mentees covered. (Nothing is lost by filling
    # first: augmenting a flow never takes a mentee's only mentor away, so a maximum flow with
    # the most mentees covered exists.)
    parts = [(tail_assign, head_assign, np.ones(len(arc_m)), MAX_POINTS - arc_p)]  # first
    if fair:
        bonus = MAX_POINTS * (n_slots + 1) + 1
        parts.append((np.zeros(n_mentees), mentee_nodes, np.ones(n_mentees), np.full(n_mentees, -bonus)))
        several = k_per > 1
        parts.append(
            (np.zeros(several.sum()), mentee_nodes[several], k_per[several] - 1,
             np.zeros(several.sum()))
        )
    else:
        parts.append((np.zeros(n_mentees), mentee_nodes, k_per, np.zeros(n_mentees)))
    parts.append(
        (mentee_base + slot_pos[multi_ids], need_node[multi_ids], np.ones(len(multi_ids)),
         np.zeros(len(multi_ids)))
    )
    parts.append(
        (pair_base + np.arange(len(pairs)), mentor_base + pairs % max(1, n), np.ones(len(pairs)),
         np.zeros(len(pairs)))
    )
    capacity = np.array([max(0, m.capacity) for m in mentors], dtype=np.int64)
    parts.append((mentor_base + np.arange(n), np.ones(n), capacity, np.zeros(n)))
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(
        np.concatenate([p[0] for p in parts]).astype(np.int32),
        np.concatenate([p[1] for p in parts]).astype(np.int32),
        np.concatenate([p[2] for p in parts]).astype(np.int64),
        np.concatenate([p[3] for p in parts]).astype(np.int64),
    )
    flow.set_node_supply(0, n_slots)
    flow.set_node_supply(1, -n_slots)
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    if len(arc_m) == 0:
        return []
    used = np.flatnonzero(flow.flows(np.arange(len(arc_m))) > 0)
    return list(zip(arc_slot[used].tolist(), arc_m[used].tolist(), arc_p[used].tolist()))


def _solve_cp_sat(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    cands: Candidates,
    fair: bool,
    institution_cap: int,
    time_limit_s: float,
    start: set[tuple[int, int]] = frozenset(),
) -> tuple[list[tuple[int, int, int]], bool]:
    """The chosen arcs and whether CP-SAT proved them optimal: past `time_limit_s` it returns
    the best assignment found (always feasible; the run records that it is not proven)."""
    from ortools.sat.python import cp_model

    slots = cands.slots
    if not slots:
        return [], True
    model = cp_model.CpModel()
    x: list[tuple[cp_model.IntVar, int, int, int]] = []
    per_slot: dict[int, list] = defaultdict(list)
    per_pair: dict[tuple[int, int], list] = defaultdict(list)
    per_mentor: dict[int, list] = defaultdict(list)
    per_mentee: dict[int, list] = defaultdict(list)
    cross: dict[tuple[str, str], list] = defaultdict(list)
    for s, options in enumerate(cands.arcs):
        e = slots[s].mentee_index
        for m, p in options:
            v = model.new_bool_var(f"x{s}_{m}")
            x.append((v, s, m, p))
            per_slot[s].append(v)
            per_pair[(e, m)].append(v)
            per_mentor[m].append(v)
            per_mentee[e].append(v)
            a, b = mentees[e].institution_id, mentors[m].institution_id
            if a != b:
                cross[(a, b)].append(v)
    for group in (per_slot, per_pair):
        for vs in group.values():
            if len(vs) > 1:
                model.add_at_most_one(vs)
    for m, vs in per_mentor.items():
        if len(vs) > mentors[m].capacity:
            model.add(sum(vs) <= mentors[m].capacity)
    for vs in cross.values():
        if len(vs) > institution_cap:
            model.add(sum(vs) <= institution_cap)
    unfilled_cost, last_cost = _penalties(len(slots))
    # Maximise: filled slots weigh `unfilled_cost`, covered mentees `last_cost - unfilled_cost`.
    objective = [(unfilled_cost + p) * v for v, _, _, p in x]
    if fair:
        for e, vs in per_mentee.items():
            covered = model.new_bool_var(f"y{e}")
            model.add(covered <= sum(vs))
            objective.append((last_cost - unfilled_cost) * covered)
    model.maximize(sum(objective))
    for v, s, m, _ in x:  # a feasible start: the uncapped optimum with the excess dropped
        model.add_hint(v, (s, m) in start)
    solver = cp_model.CpSolver()
    solver.parameters.linearization_level = 2  # the LP of a flow with side caps is nearly tight
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT failed: {solver.status_name(status)}")
    chosen = [(s, m, p) for v, s, m, p in x if solver.boolean_value(v)]
    return chosen, status == cp_model.OPTIMAL


def _value(cands: Candidates, chosen: list[tuple[int, int, int]], fair: bool) -> tuple:
    """The lexicographic objective of an assignment: (mentees covered,) slots filled, points."""
    covered = len({int(cands.slot_mentee[s]) for s, _, _ in chosen})
    return ((covered,) if fair else ()) + (len(chosen), sum(p for _, _, p in chosen))


def _capped(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    cands: Candidates,
    chosen: list[tuple[int, int, int]],
    institution_cap: int,
) -> set[tuple[int, int]]:
    """The arcs of `chosen` that fit the cap, best first: a feasible start for CP-SAT."""
    used: dict[tuple[str, str], int] = defaultdict(int)
    keep = set()
    slot_mentee = cands.slot_mentee.tolist()
    for s, m, _ in sorted(chosen, key=lambda t: -t[2]):
        a, b = mentees[slot_mentee[s]].institution_id, mentors[m].institution_id
        if a != b:
            if used[(a, b)] >= institution_cap:
                continue
            used[(a, b)] += 1
        keep.add((s, m))
    return keep


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
