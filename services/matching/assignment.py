"""Batch matching of a program: exact and lexicographic (as many mentee-needs filled as possible,
then the largest total score), subject to mentor capacities (pure code, no I/O).

The network, one unit of flow per wanted mentor:

    source -> mentee (k slots) -> need node (1) -> [pair node (1)] -> mentor (capacity) -> sink

A mentee who wants one mentor has a single slot that may take any candidate; a mentee who wants
k > 1 mentors has a node per slot (`Mentee.slot_needs`: the needs it named for its mentors, else
its first k needs), whose candidates are mentors offering that need, and a pair node per (mentee,
mentor) so that a mentor is used at most once per mentee. An assignment arc costs
`MAX_POINTS - points` (points = score in tenths, 0..1000). The plain batch is solved by OR-Tools'
max-flow-with-min-cost: the most slots filled, then the least cost, i.e. the largest total
score. With `fair=True` unfilled arcs are added, a mentee's last unfilled slot costing more than
everything else together, so no mentee gets a second mentor while an eligible mentee without any
could have had one.

Candidates (`generate_candidates`) are the best `top_k` eligible mentors per slot, found by
scoring blocks of mentees against all mentors with one matrix product each (`table.MentorTable`):
no mentee x mentor matrix is ever held. `top_k=None` keeps every eligible pair and the result is
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

from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Explanation,
    Mentee,
    Mentor,
    Program,
    explain,
    forbidden_by_mentee,
    stage_rank,
)
from services.matching.table import PENALTY, MentorTable

MAX_POINTS = 1000  # a 0–100 score in tenths
BLOCK_CELLS = 4_000_000  # mentee x mentor scores computed at once by candidate generation
_UNKNOWN = 1 << 30  # sorts a mentor whose career stage is not on the ladder last


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
    """Eligible (slot, mentor) arcs as flat arrays: slot s owns arcs `start[s]:start[s+1]`, best
    first (points descending, then mentor index)."""

    slot_mentee: np.ndarray  # mentee index per slot
    slot_need: list[str | None]
    start: np.ndarray  # arc offsets per slot, len(slots) + 1
    arc_mentor: np.ndarray
    arc_points: np.ndarray
    seconds: float = 0.0

    @property
    def arc_count(self) -> int:
        return int(len(self.arc_mentor))

    @property
    def arc_slot(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.slot_need)), np.diff(self.start))

    @property
    def slots(self) -> list[Slot]:
        return [Slot(int(e), need) for e, need in zip(self.slot_mentee.tolist(), self.slot_need)]

    @property
    def arcs(self) -> list[list[tuple[int, int]]]:
        """Per slot, (mentor index, points) best first (the plain form, for small solvers)."""
        mentors, pts, start = self.arc_mentor.tolist(), self.arc_points.tolist(), self.start.tolist()
        return [
            list(zip(mentors[start[s] : start[s + 1]], pts[start[s] : start[s + 1]]))
            for s in range(len(self.slot_need))
        ]


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
    mentor_side: int = 20,
) -> Candidates:
    """Eligible (slot, mentor) arcs with points, best first: the best `top_k` mentors of each
    slot (every eligible mentor when `top_k` is None), and each mentor's best `mentor_side`
    mentees, so that no mentor's places go unused just because it is nobody's top choice
    (without them, 20,000 x 5,000 at top_k=30 left 132 fillable slots empty).

    Mentees are scored in blocks against the mentors by one matrix product each
    (`MentorTable.coefficients`, float32), ineligible pairs pushed below zero; a slot for a named
    need only sees mentors offering that need. Mentors are ordered by career stage and mentees
    grouped by theirs, so a block only scores the mentors far enough along to be eligible (a
    window of columns). The best `top_k` per slot are picked (`_best`), then their points are
    recomputed in float64 so they are those of `score_value`. Memory stays O(BLOCK_CELLS + arcs):
    never a mentee x mentor matrix.
    """
    started = time.perf_counter()
    n = len(mentors)
    # Mentors by career stage, unknown stages last (they are eligible to everyone).
    rank_key = [stage_rank(m.career_stage) for m in mentors]
    keys = [_UNKNOWN if r is None else r for r in rank_key]
    perm = np.array(sorted(range(n), key=keys.__getitem__), dtype=np.int64)
    ordered = [mentors[i] for i in perm.tolist()]
    sorted_keys = np.array([keys[i] for i in perm.tolist()], dtype=np.int64)
    min_gap = 0 if program.type == "peer" else 1
    table = MentorTable(ordered, program)
    forbidden = forbidden_by_mentee(constraints)
    members = [e for e, m in enumerate(mentees) if not program.id or m.program_id == program.id]
    first_col = {}
    for e in members:
        er = stage_rank(mentees[e].career_stage)
        if er not in first_col:
            first_col[er] = 0 if er is None else int(np.searchsorted(sorted_keys, er + min_gap))
    members.sort(key=lambda e: first_col[stage_rank(mentees[e].career_stage)])
    slot_mentee: list[int] = []
    slot_need: list[str | None] = []
    arc_slot: list[np.ndarray] = []
    arc_mentor: list[np.ndarray] = []
    arc_points: list[np.ndarray] = []
    need_penalty = ((table.help_bits - 1.0) * PENALTY).astype(np.float32)  # 0 where offered
    block = max(1, BLOCK_CELLS // max(1, n))
    side = _MentorSide(n, mentor_side if top_k is not None else 0)
    slot_cols: list[int] = []
    # Every member's coefficients, for the exact points of the mentors' picks at the end.
    coef_all = np.zeros((len(mentees), table.width)) if side.keep else None
    for b in range(0, len(members), block):
        rows = members[b : b + block]
        group = [mentees[e] for e in rows]
        slot_row: list[int] = []
        slot_col: list[int] = []
        for r, e in enumerate(group):
            for need in e.slot_needs():
                slot_row.append(r)
                slot_mentee.append(rows[r])
                slot_need.append(need)
                slot_col.append(-1 if need is None else table.help_cols.get(need, -2))
        slot_cols.extend(slot_col)
        lo = min(first_col[stage_rank(e.career_stage)] for e in group)
        width = n - lo
        if width == 0:
            continue
        coef = table.coefficients(group, penalise=True)
        if coef_all is not None:
            coef_all[rows] = coef
        # rows x mentors[lo:], changed in place below
        scores = coef.astype(np.float32) @ table.features32_t[:, lo:]
        for r, e in enumerate(group):
            ids = [i - lo for i in table.blocked(e, forbidden.get(e.id, ())) if i >= lo]
            if ids:
                scores[r, ids] = -PENALTY
        side.offer(scores, lo, rows)
        srow = np.asarray(slot_row, dtype=np.int64)
        scol = np.asarray(slot_col, dtype=np.int64)
        k = width if top_k is None else min(top_k, width)
        slot_parts: list[np.ndarray] = []
        mentor_parts: list[np.ndarray] = []
        anywhere = np.flatnonzero(scol == -1)  # slots open to any need: the mentee's own row
        if anywhere.size:
            j_idx, m_idx = _best(scores, k)
            row_start = np.searchsorted(j_idx, np.arange(len(group)))
            row_count = np.bincount(j_idx, minlength=len(group))
            cnt = row_count[srow[anywhere]]
            within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            slot_parts.append(np.repeat(anywhere, cnt))
            mentor_parts.append(m_idx[np.repeat(row_start[srow[anywhere]], cnt) + within])
        named = np.flatnonzero(scol != -1)  # a slot for one named need: mentors offering it
        if named.size:
            need_scores = scores[srow[named]]
            known = scol[named] >= 0
            need_scores[known] += need_penalty[scol[named][known], lo:]
            need_scores[~known] = -PENALTY  # a need no mentor offers
            j_idx, m_idx = _best(need_scores, k)
            slot_parts.append(named[j_idx])
            mentor_parts.append(m_idx)
        slot_local = np.concatenate(slot_parts) if slot_parts else np.zeros(0, dtype=np.int64)
        m_idx = (np.concatenate(mentor_parts) if mentor_parts else np.zeros(0, dtype=np.int64)) + lo
        exact = np.einsum("ij,ij->i", coef[srow[slot_local]], table.features[m_idx])
        arc_slot.append(slot_local + (len(slot_mentee) - len(slot_row)))
        arc_mentor.append(m_idx)
        arc_points.append(np.clip(np.rint(exact * 10), 0, MAX_POINTS).astype(np.int64))
    slots_of = np.asarray(slot_mentee, dtype=np.int64)
    extra = side.arcs(slots_of, np.asarray(slot_cols, dtype=np.int64), table, coef_all,
                      arc_slot, arc_mentor)
    if extra is not None:
        for part, values in zip((arc_slot, arc_mentor, arc_points), extra):
            part.append(values)
    empty = np.zeros(0, dtype=np.int64)
    return _in_mentee_order(
        slots_of,
        slot_need,
        np.concatenate(arc_slot) if arc_slot else empty,
        perm[np.concatenate(arc_mentor)] if arc_mentor else empty,  # the caller's indices
        np.concatenate(arc_points) if arc_points else empty,
        started,
    )


class _MentorSide:
    """Each mentor's best `keep` mentees over all blocks, kept in a small buffer: a block only
    contributes the cells above the mentor's current `keep`-th best (one comparison pass)."""

    def __init__(self, n: int, keep: int) -> None:
        self.keep = keep
        self.threshold = np.full(n, -1.0, dtype=np.float32)  # eligible pairs score >= 0
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.mentees: list[np.ndarray] = []
        self.pending = 0

    def offer(self, scores: np.ndarray, lo: int, rows: list[int]) -> None:
        if not self.keep:
            return
        if not self.cols and scores.shape[0] > self.keep:
            # The first block sets the thresholds: its best `keep` per mentor, by partial sort.
            top = np.argpartition(-scores, self.keep - 1, axis=0)[: self.keep]
            vals = np.take_along_axis(scores, top, axis=0)
            ok = vals > -1.0
            c = np.broadcast_to(np.arange(scores.shape[1]), top.shape)[ok]
            self.cols.append(c + lo)
            self.vals.append(vals[ok])
            self.mentees.append(np.asarray(rows, dtype=np.int64)[top[ok]])
            self._compact()
            return
        flat = np.flatnonzero(scores > self.threshold[None, lo:])
        if not flat.size:
            return
        r, c = np.divmod(flat, scores.shape[1])
        self.cols.append(c + lo)
        self.vals.append(scores.ravel()[flat])
        self.mentees.append(np.asarray(rows, dtype=np.int64)[r])
        self.pending += flat.size
        if self.pending > 4 * len(self.threshold) * self.keep + 1_000_000:
            self._compact()

    def _compact(self) -> None:
        cols, vals, mentees = (np.concatenate(x) for x in (self.cols, self.vals, self.mentees))
        # one float64 key: mentor first, then best score; a stable sort keeps ties in the order
        # they came (block order), so the result is deterministic
        order = np.argsort(cols * 256.0 - vals, kind="stable")
        cols, vals, mentees = cols[order], vals[order], mentees[order]
        n = len(self.threshold)
        first = np.searchsorted(cols, np.arange(n))
        keep = np.arange(len(cols)) - first[cols] < self.keep
        cols, vals, mentees = cols[keep], vals[keep], mentees[keep]
        full = np.bincount(cols, minlength=n) >= self.keep
        last = np.searchsorted(cols, np.arange(n)) + self.keep - 1
        self.threshold[full] = vals[last[full]]
        self.cols, self.vals, self.mentees = [cols], [vals], [mentees]
        self.pending = len(cols)

    def arcs(self, slots_of, slot_cols, table, coef_all, arc_slot, arc_mentor):
        """(slot, mentor, points) arcs of the kept pairs that the slots did not already have:
        to every slot of the mentee open to any need or to a need the mentor offers."""
        if not self.keep or not self.cols:
            return None
        self._compact()
        pair_mentee, pair_mentor = self.mentees[0], self.cols[0]
        if not len(pair_mentee) or not len(slots_of):
            return None
        # A mentee's slots are consecutive: its first slot and how many.
        first = np.zeros(len(coef_all), dtype=np.int64)
        first[slots_of[::-1]] = np.arange(len(slots_of))[::-1]
        count = np.bincount(slots_of, minlength=len(coef_all))
        cnt = count[pair_mentee]
        within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        slot = np.repeat(first[pair_mentee], cnt) + within
        mentor = np.repeat(pair_mentor, cnt)
        col = slot_cols[slot]
        offers = table.help_bits[np.maximum(col, 0), mentor] > 0 if len(table.help_bits) else False
        ok = (col == -1) | ((col >= 0) & offers)
        slot, mentor = slot[ok], mentor[ok]
        n = len(self.threshold)
        key = slot * n + mentor
        if arc_slot:
            have = np.sort(np.concatenate(arc_slot) * n + np.concatenate(arc_mentor))
            pos = np.minimum(np.searchsorted(have, key), len(have) - 1)
            new = have[pos] != key if len(have) else np.ones(len(key), dtype=bool)
            slot, mentor = slot[new], mentor[new]
        if not slot.size:
            return None
        exact = np.einsum("ij,ij->i", coef_all[slots_of[slot]], table.features[mentor])
        return slot, mentor, np.clip(np.rint(exact * 10), 0, MAX_POINTS).astype(np.int64)


def _in_mentee_order(
    slot_mentee: np.ndarray,
    slot_need: list[str | None],
    arc_slot: np.ndarray,
    arc_mentor: np.ndarray,
    arc_points: np.ndarray,
    started: float,
) -> Candidates:
    """Slots back in the caller's mentee order (blocks went by career stage), each slot's arcs
    best first (points descending, then mentor index)."""
    order = np.argsort(slot_mentee, kind="stable")
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    slot = new_id[arc_slot] if len(arc_slot) else arc_slot
    arcs = np.lexsort((arc_mentor, -arc_points, slot))
    count = np.bincount(slot, minlength=len(order)) if len(order) else np.zeros(0, dtype=np.int64)
    return Candidates(
        slot_mentee=slot_mentee[order],
        slot_need=[slot_need[i] for i in order.tolist()],
        start=np.concatenate([[0], np.cumsum(count)]).astype(np.int64),
        arc_mentor=arc_mentor[arcs],
        arc_points=arc_points[arcs],
        seconds=time.perf_counter() - started,
    )


def _best(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the k best eligible entries of each row (ties: lowest column first).

    A full partial sort of every row costs ~12 ns a cell; instead each row's threshold is the
    k-th best of a sample of its columns (never above the row's own k-th best, so nothing that
    belongs is lost), one comparison pass keeps the few entries at or above it, and only those
    are sorted."""
    rows, n = scores.shape
    eligible_floor = np.float32(-1.0)  # eligible pairs score 0..100, ineligible far below
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if k >= n:
        j_idx, m_idx = np.nonzero(scores > eligible_floor)
        return j_idx, m_idx
    sample = min(n, max(8 * k, 2048))
    stride = n // sample
    sub = scores[:, : stride * sample : stride] if stride > 1 else scores
    width = sub.shape[1]
    threshold = np.partition(sub, width - k, axis=1)[:, width - k]
    threshold = np.maximum(threshold, eligible_floor + np.float32(1e-3))
    flat = np.flatnonzero(scores >= threshold[:, None])  # 1-D: twice as fast as 2-D nonzero
    j_idx, m_idx = np.divmod(flat, n)
    values = scores.ravel()[flat]
    order = np.lexsort((m_idx, -values, j_idx))
    j_idx, m_idx = j_idx[order], m_idx[order]
    first = np.searchsorted(j_idx, np.arange(rows))
    keep = np.arange(len(j_idx)) - first[j_idx] < k
    return j_idx[keep], m_idx[keep]


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
    """Build the network with numpy (one arc array per kind) and solve it with OR-Tools."""
    from ortools.graph.python import min_cost_flow

    n_slots = len(cands.slot_need)
    if n_slots == 0:
        return []
    unfilled_cost, last_cost = _penalties(n_slots)
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
    parts = [
        (tail_assign, head_assign, np.ones(len(arc_m)), MAX_POINTS - arc_p),  # assignments first
        (np.zeros(n_mentees), mentee_nodes, k_per, np.zeros(n_mentees)),
    ]
    if fair:
        several = k_per > 1
        parts.append(
            (mentee_nodes[several], np.ones(several.sum()), k_per[several] - 1,
             np.full(several.sum(), unfilled_cost))
        )
        parts.append((mentee_nodes, np.ones(n_mentees), np.ones(n_mentees), np.full(n_mentees, last_cost)))
    # Without fairness there are no unfilled arcs: the solver's max-flow-with-min-cost mode is
    # the lexicographic objective itself (most slots filled, then the best score), and costs stay
    # in 0..MAX_POINTS, which keeps cost scaling short.
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
    status = flow.solve() if fair else flow.solve_max_flow_with_min_cost()
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
