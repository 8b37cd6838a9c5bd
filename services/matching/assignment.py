"""Batch matching of a program: exact and lexicographic (as many mentee-needs filled as possible,
then the largest total score), subject to mentor capacities (pure code, no I/O).

The network, one unit of flow per wanted mentor:

    source -> mentee (k slots) -> need node (1) -> [pair node (1)] -> mentor (capacity) -> sink
                     \\------------------ unfilled (penalty) --------------------------/

A mentee who wants one mentor has a single need node that may take any candidate; a mentee who
wants k > 1 mentors has a node for each of its first k needs, whose candidates are mentors offering
that need, and a pair node per (mentee, mentor) so that a mentor is used at most once per mentee.
An assignment arc costs `MAX_POINTS - points` (points = score in tenths, 0..1000); an unfilled slot
costs more than any sum of scores, so the solver fills as many slots as possible first. With
`fair=True` a mentee's last unfilled slot costs more than everything else together, so no mentee
gets a second mentor while an eligible mentee without any could have had one.

Candidates come from an index of mentors by help category, scored and cut to the best `top_k` per
need node, so no dense mentee x mentor matrix is built. `top_k=None` keeps every eligible pair and
the result is then the exact optimum over all pairs.

A cap on how many mentees of one institution go to mentors of another crosses the capacity
structure (it is not a flow any more), so with `institution_cap` set the same model is solved as
an integer program with OR-Tools CP-SAT over the same candidate arcs.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Explanation,
    Mentee,
    Mentor,
    MentorTable,
    Program,
    explain,
    forbidden_by_mentee,
)

MAX_POINTS = 1000  # a 0–100 score in tenths
BLOCK_CELLS = 400_000  # mentee x mentor scores computed at once by candidate generation


def points(score: float) -> int:
    """The integer the solver optimises: the score rounded to a tenth."""
    return int(round(score * 10))


@dataclass(frozen=True)
class Slot:
    """One wanted mentor of a mentee: `need` is None for a mentee who wants a single mentor."""

    mentee_index: int
    need: str | None


@dataclass
class Candidates:
    slots: list[Slot]
    # per slot: (mentor index, points), best first
    arcs: list[list[tuple[int, int]]]
    seconds: float = 0.0

    @property
    def arc_count(self) -> int:
        return sum(len(a) for a in self.arcs)


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
    def total_score(self) -> float:
        return self.total_points / 10

    @property
    def mentees_matched(self) -> int:
        return len({a.mentee_id for a in self.assignments})


def generate_candidates(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    program: Program,
    constraints: Constraints = NO_CONSTRAINTS,
    top_k: int | None = 30,
) -> Candidates:
    """Eligible (slot, mentor) arcs with points, best first, at most `top_k` per slot.

    With `top_k`, a mentee's pool is the mentors offering at least one of its needs (a bit index
    by help category); a mentee with no needs, or whose pool is smaller than `top_k`, takes every
    eligible mentor. Mentees are scored in blocks against all mentors with numpy
    (`MentorTable.score_block`), so memory stays O(BLOCK_CELLS + arcs).
    """
    import numpy as np

    started = time.perf_counter()
    table = MentorTable(mentors, program)
    forbidden = forbidden_by_mentee(constraints)
    slots: list[Slot] = []
    arcs: list[list[tuple[int, int]]] = []
    members = [e for e, m in enumerate(mentees) if not program.id or m.program_id == program.id]
    # Blocks of mentees x all mentors, about BLOCK_CELLS cells: never the whole matrix.
    block = max(1, BLOCK_CELLS // max(1, len(mentors)))
    for b in range(0, len(members), block):
        rows = members[b : b + block]
        group = [mentees[e] for e in rows]
        ok = table.eligible_block(group, forbidden)
        pts_block = np.rint(table.score_block(group) * 10).astype(np.int64)
        for r, e in enumerate(rows):
            mentee = group[r]
            pool = ok[r]
            if top_k is not None and mentee.needs:
                # The index on help categories: mentors offering at least one of the needs.
                offering = pool & ((table.help & table._mask_of("help", frozenset(mentee.needs))) != 0)
                if int(offering.sum()) >= top_k:
                    pool = offering
            idx = np.flatnonzero(pool)
            pts = pts_block[r, idx]
            wanted = max(1, mentee.mentors_wanted)
            slot_needs: list[str | None] = [None] if wanted == 1 else list(mentee.needs[:wanted])
            for need in slot_needs:
                if need is None:
                    s_idx, s_pts = idx, pts
                else:
                    offers = table._has("help", table.help[idx], need)
                    s_idx, s_pts = idx[offers], pts[offers]
                if top_k is not None and len(s_idx) > top_k:
                    keep = np.argpartition(-s_pts, top_k - 1)[:top_k]
                    # ties at the cut: keep the lowest mentor indices among equal points
                    threshold = s_pts[keep].min()
                    above = np.flatnonzero(s_pts > threshold)
                    at = np.flatnonzero(s_pts == threshold)[: top_k - len(above)]
                    keep = np.concatenate([above, at])
                    s_idx, s_pts = s_idx[keep], s_pts[keep]
                order = np.lexsort((s_idx, -s_pts))
                slots.append(Slot(e, need))
                arcs.append(list(zip(s_idx[order].tolist(), s_pts[order].tolist())))
    return Candidates(slots, arcs, time.perf_counter() - started)


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
    for s, m, p in sorted(chosen):
        slot = cands.slots[s]
        mentee, mentor = mentees[slot.mentee_index], mentors[m]
        expl = explain(mentee, mentor, program, constraints) if with_explanations else None
        assignments.append(Assignment(mentee.id, mentor.id, slot.need, p / 10, expl))
        filled.add(s)
    unfilled = [
        (mentees[slot.mentee_index].id, slot.need)
        for s, slot in enumerate(cands.slots)
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
        chosen = _solve_cp_sat(mentees, mentors, cands, fair, institution_cap, time_limit_s)
        solver = "cp-sat"
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
    from ortools.graph.python import min_cost_flow

    slots = cands.slots
    if not slots:
        return []
    unfilled_cost, last_cost = _penalties(len(slots))
    flow = min_cost_flow.SimpleMinCostFlow()
    source, sink = 0, 1
    next_node = 2
    mentor_node: dict[int, int] = {}
    tails: list[int] = []
    heads: list[int] = []
    caps: list[int] = []
    costs: list[int] = []

    def arc(t: int, h: int, cap: int, cost: int) -> int:
        tails.append(t)
        heads.append(h)
        caps.append(cap)
        costs.append(cost)
        return len(tails) - 1

    by_mentee: dict[int, list[int]] = defaultdict(list)
    for s, slot in enumerate(slots):
        by_mentee[slot.mentee_index].append(s)
    assignment_arcs: dict[int, tuple[int, int, int]] = {}  # arc -> (slot, mentor, points)
    for e, slot_ids in by_mentee.items():
        k = len(slot_ids)
        mentee_node = next_node
        next_node += 1
        arc(source, mentee_node, k, 0)
        if fair:
            if k > 1:
                arc(mentee_node, sink, k - 1, unfilled_cost)
            arc(mentee_node, sink, 1, last_cost)
        else:
            arc(mentee_node, sink, k, unfilled_cost)
        pair_node: dict[int, int] = {}
        for s in slot_ids:
            if k == 1:
                need_node = mentee_node
            else:
                need_node = next_node
                next_node += 1
                arc(mentee_node, need_node, 1, 0)
            for m, p in cands.arcs[s]:
                if m not in mentor_node:
                    mentor_node[m] = next_node
                    next_node += 1
                if k == 1:
                    target = mentor_node[m]
                else:
                    if m not in pair_node:
                        pair_node[m] = next_node
                        next_node += 1
                        arc(pair_node[m], mentor_node[m], 1, 0)
                    target = pair_node[m]
                a = arc(need_node, target, 1, MAX_POINTS - p)
                assignment_arcs[a] = (s, m, p)
    for m, node in mentor_node.items():
        arc(node, sink, mentors[m].capacity, 0)
    import numpy as np

    flow.add_arcs_with_capacity_and_unit_cost(
        np.asarray(tails, dtype=np.int32),
        np.asarray(heads, dtype=np.int32),
        np.asarray(caps, dtype=np.int64),
        np.asarray(costs, dtype=np.int64),
    )
    flow.set_node_supply(source, len(slots))
    flow.set_node_supply(sink, -len(slots))
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    ids = np.fromiter(assignment_arcs.keys(), dtype=np.int64, count=len(assignment_arcs))
    flows = flow.flows(ids) if len(ids) else []
    return [assignment_arcs[int(a)] for a, f in zip(ids, flows) if f > 0]


def _solve_cp_sat(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    cands: Candidates,
    fair: bool,
    institution_cap: int,
    time_limit_s: float,
) -> list[tuple[int, int, int]]:
    from ortools.sat.python import cp_model

    slots = cands.slots
    if not slots:
        return []
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
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT failed: {solver.status_name(status)}")
    if status != cp_model.OPTIMAL:
        raise RuntimeError("CP-SAT did not prove optimality within the time limit")
    return [(s, m, p) for v, s, m, p in x if solver.boolean_value(v)]


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
    order = sorted(
        ((p, s, m) for s, options in enumerate(cands.arcs) for m, p in options),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    left = {m: mentors[m].capacity for options in cands.arcs for m, _ in options}
    filled: set[int] = set()
    used: set[tuple[int, int]] = set()
    chosen = []
    for p, s, m in order:
        e = cands.slots[s].mentee_index
        if s in filled or left[m] <= 0 or (e, m) in used:
            continue
        filled.add(s)
        used.add((e, m))
        left[m] -= 1
        chosen.append((s, m, p))
    timings = {"candidates": cands.seconds, "solve": time.perf_counter() - started}
    return _result(mentees, mentors, program, constraints, cands, chosen, "greedy", timings, False)
