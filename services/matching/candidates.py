"""Candidate arcs for the batch matcher: for every slot (a wanted mentor of a mentee) the mentors
the solver starts from, with their points (pure code, no I/O).

The shortlist is where the solve starts, not where it ends: after each solve `pricing` checks
every other eligible pair against the solution's dual potentials and adds those that could
improve it, until none can (the optimality certificate). The shortlist only has to be good enough
for that to take few rounds: each slot's best `top_k` mentors, and each mentor's best
`mentor_side` mentees (so that mentors nobody ranks near the top still bring their places). Near
ties are ranked differently for different mentees (`ties`), so people with identical profiles do
not all list the same few mentors. `top_k=None` keeps every eligible pair.

Each slot also records a bound on the points of the eligible mentors it did not keep (`-1` when
it kept them all): pricing skips every pair that bound proves cannot improve the solution.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.matching.blocks import ELIGIBLE_FLOOR, BlockScorer, upper_points
from services.matching.scoring import (  # noqa: F401  (re-exported for callers)
    MAX_POINTS,
    NO_CONSTRAINTS,
    Constraints,
    Mentee,
    Mentor,
    Program,
    to_points,
)
from services.matching.table import PENALTY

points = to_points  # the integer the solver optimises: the score in tenths


@dataclass(frozen=True)
class Slot:
    """One wanted mentor of a mentee: `need` is None for a mentee who wants a single mentor."""

    mentee_index: int
    need: str | None


@dataclass
class Candidates:
    """Eligible (slot, mentor) arcs as flat arrays: slot s owns arcs `start[s]:start[s+1]`, the
    shortlist's best first (points descending, then mentor index), any added by pricing after.
    For a mentee wanting several mentors, a mentor on one of its slots is on every slot of it
    whose need the mentor offers."""

    slot_mentee: np.ndarray  # mentee index per slot (slots in mentee order)
    slot_need: list[str | None]
    slot_col: np.ndarray  # the need's help column in the mentor table; -1: any need, -2: unknown
    start: np.ndarray  # arc offsets per slot, len(slots) + 1
    arc_mentor: np.ndarray
    arc_points: np.ndarray
    slot_bound: np.ndarray  # most points of an eligible mentor not on the slot's arcs; -1: none
    # per mentor (caller's index): most points of an eligible mentee not on its arcs; -1: none
    mentor_bound: np.ndarray | None = None
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


def make_slots(scorer: BlockScorer) -> tuple[np.ndarray, list[str | None], np.ndarray]:
    """(mentee, need, need column) of every slot of the program's mentees, in mentee order."""
    members = np.sort(scorer.members)
    slot_mentee: list[int] = []
    slot_need: list[str | None] = []
    slot_col: list[int] = []
    help_cols = scorer.table.help_cols
    for e in members.tolist():
        for need in scorer.mentees[e].slot_needs():
            slot_mentee.append(e)
            slot_need.append(need)
            slot_col.append(-1 if need is None else help_cols.get(need, -2))
    return (
        np.asarray(slot_mentee, dtype=np.int64),
        slot_need,
        np.asarray(slot_col, dtype=np.int64),
    )


def slot_ranges(slot_mentee: np.ndarray, n_mentees: int) -> tuple[np.ndarray, np.ndarray]:
    """Per mentee, its first slot and how many it has (slots of a mentee are consecutive)."""
    count = np.bincount(slot_mentee, minlength=n_mentees).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    return first, count


def expand(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges `first[i] : first[i] + count[i]`: (owner i, value) of every element."""
    owner = np.repeat(np.arange(len(first)), count)
    within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return owner, np.repeat(first, count) + within


def generate_candidates(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    program: Program,
    constraints: Constraints = NO_CONSTRAINTS,
    top_k: int | None = 30,
    mentor_side: int = 20,
    seed: int = 0,
) -> Candidates:
    """The shortlist of a program (see `shortlist`)."""
    return shortlist(BlockScorer(mentees, mentors, program, constraints, seed), top_k, mentor_side)


def shortlist(scorer: BlockScorer, top_k: int | None = 30, mentor_side: int = 20) -> Candidates:
    """Eligible (slot, mentor) arcs with points: the best `top_k` mentors of each slot (every
    eligible mentor when `top_k` is None; a slot for a named need only sees mentors offering
    it), each mentor's best `mentor_side` mentees, and the bound of what each slot left out.
    Memory stays O(BLOCK_CELLS + arcs)."""
    started = time.perf_counter()
    n = scorer.n
    slot_mentee, slot_need, slot_col = make_slots(scorer)
    first_slot, slot_count = slot_ranges(slot_mentee, len(scorer.mentees))
    bound = np.full(len(slot_need), -1, dtype=np.int64)
    arc_slot: list[np.ndarray] = []
    arc_col: list[np.ndarray] = []
    arc_points: list[np.ndarray] = []
    side = _MentorSide(n, mentor_side if top_k is not None else 0)
    for rows, lo in scorer.blocks():
        width = n - lo
        if width == 0:
            continue
        scores = scorer.scores(rows, slice(lo, n))
        side.offer(scores, lo, rows)
        srow, slots = expand(first_slot[rows], slot_count[rows])
        scol = slot_col[slots]
        k = width if top_k is None else min(top_k, width)
        picked_slot: list[np.ndarray] = []
        picked_col: list[np.ndarray] = []
        anywhere = np.flatnonzero(scol == -1)  # slots open to any need: the mentee's own row
        if anywhere.size:
            j_idx, m_idx, kth = _best(scores, k)
            row_start = np.searchsorted(j_idx, np.arange(len(rows)))
            row_count = np.bincount(j_idx, minlength=len(rows))
            owner, pos = expand(row_start[srow[anywhere]], row_count[srow[anywhere]])
            picked_slot.append(anywhere[owner])
            picked_col.append(m_idx[pos])
            bound[slots[anywhere]] = _bounds(kth[srow[anywhere]])
        named = np.flatnonzero(scol != -1)  # a slot for one named need: mentors offering it
        if named.size:
            need_scores = scores[srow[named]]
            known = scol[named] >= 0
            need_scores[known] += scorer.need_penalty[scol[named][known], lo:]
            need_scores[~known] = -PENALTY  # a need no mentor offers
            j_idx, m_idx, kth = _best(need_scores, k)
            picked_slot.append(named[j_idx])
            picked_col.append(m_idx)
            bound[slots[named]] = _bounds(kth)
        local = np.concatenate(picked_slot)
        cols = np.concatenate(picked_col) + lo
        arc_slot.append(slots[local])
        arc_col.append(cols)
        values = scores[srow[local], cols - lo]
        arc_points.append(scorer.points_of(values, rows[srow[local]], cols))
    extra = side.arcs(scorer, slot_mentee, slot_col, first_slot, slot_count)
    if extra is not None:
        for part, values in zip((arc_slot, arc_col, arc_points), extra):
            part.append(values)
    empty = np.zeros(0, dtype=np.int64)
    cands = Candidates(
        slot_mentee=slot_mentee,
        slot_need=slot_need,
        slot_col=slot_col,
        start=np.zeros(len(slot_need) + 1, dtype=np.int64),
        arc_mentor=empty,
        arc_points=empty,
        slot_bound=bound,
        mentor_bound=side.bounds(scorer.perm) if top_k is not None else np.full(n, -1, np.int64),
    )
    cands = add_arcs(
        cands,
        scorer,
        np.concatenate(arc_slot) if arc_slot else empty,
        scorer.perm[np.concatenate(arc_col)] if arc_col else empty,  # the caller's indices
        np.concatenate(arc_points) if arc_points else empty,
    )
    cands.seconds = time.perf_counter() - started
    return cands


def _bounds(kth: np.ndarray) -> np.ndarray:
    """Slot bounds from each row's k-th kept float32 score (-inf: the row kept every eligible
    mentor, so nothing is left out)."""
    out = np.full(len(kth), -1, dtype=np.int64)
    finite = np.isfinite(kth)
    out[finite] = upper_points(kth[finite])
    return out


def add_arcs(
    cands: Candidates,
    scorer: BlockScorer,
    slot: np.ndarray,
    mentor: np.ndarray,
    pts: np.ndarray,
) -> Candidates:
    """`cands` with more (slot, mentor, points) arcs (the caller's mentor indices), not already
    there. A mentor added to one slot of a mentee wanting several is added to every slot of that
    mentee whose need it offers, so pricing only ever meets pairs the solver has not seen at
    all. The first arcs of a slot are sorted best first; arcs added later follow them."""
    first, count = slot_ranges(cands.slot_mentee, len(scorer.mentees))
    mentee = cands.slot_mentee[slot]
    multi = count[mentee] > 1
    if multi.any():
        e, m, p = mentee[multi], mentor[multi], pts[multi]
        _, first_of_pair = np.unique(e * max(1, scorer.n) + m, return_index=True)
        e, m, p = e[first_of_pair], m[first_of_pair], p[first_of_pair]
        owner, slots = expand(first[e], count[e])
        ok = scorer.offers(cands.slot_col[slots], scorer.column[m[owner]])
        slot = np.concatenate([slot, slots[ok]])
        mentor = np.concatenate([mentor, m[owner][ok]])
        pts = np.concatenate([pts, p[owner][ok]])
    # one integer key: slot, then points descending, then mentor (duplicates carry the same
    # points, so they end up adjacent)
    n = max(1, scorer.n)
    order = np.argsort((slot * (MAX_POINTS + 1) + (MAX_POINTS - pts)) * n + mentor)
    slot, mentor, pts = slot[order], mentor[order], pts[order]
    if len(slot):
        key = slot * n + mentor
        keep = np.ones(len(slot), dtype=bool)
        keep[1:] = key[1:] != key[:-1]
        slot, mentor, pts = slot[keep], mentor[keep], pts[keep]
    if cands.arc_count:
        # old arcs are grouped by slot already: a stable sort of the two runs merges them
        slot = np.concatenate([cands.arc_slot, slot])
        mentor = np.concatenate([cands.arc_mentor, mentor])
        pts = np.concatenate([cands.arc_points, pts])
        order = np.argsort(slot, kind="stable")
        slot, mentor, pts = slot[order], mentor[order], pts[order]
    n_slots = len(cands.slot_need)
    count_per_slot = np.bincount(slot, minlength=n_slots) if n_slots else np.zeros(0, np.int64)
    return replace(
        cands,
        start=np.concatenate([[0], np.cumsum(count_per_slot)]).astype(np.int64),
        arc_mentor=mentor.astype(np.int64),
        arc_points=pts.astype(np.int64),
    )


class _MentorSide:
    """Each mentor's best `keep` mentees over all blocks, kept in a small buffer: a block only
    contributes the cells above the mentor's current `keep`-th best (one comparison pass)."""

    def __init__(self, n: int, keep: int) -> None:
        self.keep = keep
        self.threshold = np.full(n, ELIGIBLE_FLOOR, dtype=np.float32)
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.mentees: list[np.ndarray] = []
        self.pending = 0

    def offer(self, scores: np.ndarray, lo: int, rows: np.ndarray) -> None:
        if not self.keep:
            return
        if not self.cols and scores.shape[0] > self.keep:
            # The first block sets the thresholds: its best `keep` per mentor, by partial sort.
            top = np.argpartition(-scores, self.keep - 1, axis=0)[: self.keep]
            vals = np.take_along_axis(scores, top, axis=0)
            ok = vals > ELIGIBLE_FLOOR
            c = np.broadcast_to(np.arange(scores.shape[1]), top.shape)[ok]
            self.cols.append(c + lo)
            self.vals.append(vals[ok])
            self.mentees.append(rows[top[ok]])
            self._compact()
            return
        flat = np.flatnonzero(scores > self.threshold[None, lo:])
        if not flat.size:
            return
        r, c = np.divmod(flat, scores.shape[1])
        self.cols.append(c + lo)
        self.vals.append(scores.ravel()[flat])
        self.mentees.append(rows[r])
        self.pending += flat.size
        if self.pending > 4 * len(self.threshold) * self.keep + 1_000_000:
            self._compact()

    def _compact(self) -> None:
        cols, vals, mentees = (np.concatenate(x) for x in (self.cols, self.vals, self.mentees))
        # one float64 key: mentor first, then best score; a stable sort keeps exact ties in the
        # order they came (blocks go by tie key), so the result is deterministic
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

    def bounds(self, perm: np.ndarray) -> np.ndarray:
        """Per mentor (caller's index), the most points of a mentee it did not keep: -1 when
        it kept every eligible mentee, MAX_POINTS when it kept none (no bound)."""
        n = len(self.threshold)
        out = np.full(n, MAX_POINTS, dtype=np.int64)
        if self.keep:
            if self.cols:
                self._compact()
                kept = np.bincount(self.cols[0], minlength=n)
            else:
                kept = np.zeros(n, dtype=np.int64)
            full = kept >= self.keep
            out = np.where(full, upper_points(self.threshold), -1)
        by_caller = np.empty(n, dtype=np.int64)
        by_caller[perm] = out
        return by_caller

    def arcs(self, scorer, slot_mentee, slot_col, first_slot, slot_count):
        """(slot, table column, points) of the kept pairs: to every slot of the mentee open to
        any need or to a need the mentor offers (duplicates are dropped by `add_arcs`)."""
        if not self.keep or not self.cols:
            return None
        self._compact()
        pair_mentee, pair_col = self.mentees[0], self.cols[0]
        if not len(pair_mentee) or not len(slot_mentee):
            return None
        pts = scorer.points_of(self.vals[0], pair_mentee, pair_col)
        owner, slot = expand(first_slot[pair_mentee], slot_count[pair_mentee])
        col = pair_col[owner]
        ok = scorer.offers(slot_col[slot], col)
        slot, col = slot[ok], col[ok]
        if not slot.size:
            return None
        return slot, col, pts[owner][ok]


def _best(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column) of the k best eligible entries of each row, row by row, best first; and per
    row the k-th kept score, or -inf where the row kept every eligible entry.

    A full partial sort of every row costs ~12 ns a cell; instead each row's threshold is the
    k-th best of a sample of its columns (never above the row's own k-th best, so nothing that
    belongs is lost), one comparison pass keeps the few entries at or above it, and only those
    are sorted."""
    rows, n = scores.shape
    none = np.full(rows, -np.inf, dtype=np.float32)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), none
    if k >= n:
        j_idx, m_idx = np.nonzero(scores > ELIGIBLE_FLOOR)
        return j_idx, m_idx, none
    sample = min(n, max(8 * k, 2048))
    stride = n // sample
    sub = scores[:, : stride * sample : stride] if stride > 1 else scores
    width = sub.shape[1]
    threshold = np.partition(sub, width - k, axis=1)[:, width - k]
    threshold = np.maximum(threshold, ELIGIBLE_FLOOR + np.float32(1e-3))
    flat = np.flatnonzero(scores >= threshold[:, None])  # 1-D: twice as fast as 2-D nonzero
    j_idx, m_idx = np.divmod(flat, n)
    values = scores.ravel()[flat]
    order = _row_order(j_idx, m_idx, values, rows, n)
    j_idx, m_idx, values = j_idx[order], m_idx[order], values[order]
    first = np.searchsorted(j_idx, np.arange(rows))
    within = np.arange(len(j_idx)) - first[j_idx]
    keep = within < k
    last = within == k - 1
    kth = none.copy()
    kth[j_idx[last]] = values[last]
    return j_idx[keep], m_idx[keep], kth


def _row_order(j_idx: np.ndarray, m_idx: np.ndarray, values: np.ndarray, rows: int, n: int):
    """The order of entries (row, column, float32 score) by row, then score descending, then
    column: `np.lexsort((-values, j_idx))` for entries in row-major order, but by one sort of
    an int64 key (row | the score's bits, order-preserving, reversed | column), 4-5 times
    faster; lexsort where the three do not fit in 63 bits."""
    col_bits = max(1, int(n - 1).bit_length())
    row_bits = max(1, int(rows - 1).bit_length())
    if row_bits + 32 + col_bits > 63:
        return np.lexsort((-values, j_idx))
    bits = values.astype(np.float32).view(np.int32).astype(np.int64)
    # IEEE floats order as sign-magnitude integers: negative ones count down (-0.0 is 0.0)
    ordered = np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    desc = (1 << 31) - 1 - ordered  # 0 .. 2**32 - 1, best first
    key = (j_idx.astype(np.int64) << (32 + col_bits)) | (desc << col_bits) | m_idx
    return np.argsort(key)
