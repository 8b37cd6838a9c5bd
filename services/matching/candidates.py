"""Candidate arcs for the batch matcher: for every slot (a wanted mentor of a mentee) the mentors
worth offering to the solver, with their points (pure code, no I/O).

No mentee x mentor matrix is ever held: mentees are scored in blocks against a window of mentors
by one matrix product each (`table.MentorTable`), and only the best arcs of each block are kept:
the best `top_k` mentors per slot, and each mentor's best `mentor_side` mentees (so that mentors
nobody ranks near the top still bring their places). `top_k=None` keeps every eligible pair.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Mentee,
    Mentor,
    Program,
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
    by_stage: dict[str, int] = {}  # career stage -> first eligible column
    for e in members:
        stage = mentees[e].career_stage
        if stage not in by_stage:
            er = stage_rank(stage)
            by_stage[stage] = 0 if er is None else int(np.searchsorted(sorted_keys, er + min_gap))
    first_col = {e: by_stage[mentees[e].career_stage] for e in members}
    members.sort(key=first_col.__getitem__)
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
        lo = min(first_col[e] for e in rows)
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
