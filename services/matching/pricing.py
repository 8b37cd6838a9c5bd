"""Pricing: every eligible pair the solver has not seen, checked against the duals of its
optimum (pure code, no I/O). This is the column-generation certificate: when no pair outside the
candidate arcs has a negative reduced cost, the optimum over the arcs is the optimum over all
pairs; otherwise the pairs found are added and the problem solved again.

A pair's reduced cost is linear in its points:

    reduced(s, m) = const - alpha * points(s, m) + slot_offset[s] + mentor_offset[m]
                    + cross[institution of the mentee, institution of the mentor]

(the flow: const = MAX_POINTS, alpha = 1, the offsets its potentials; the linear programs of the
institution cap: their duals). Pairs are scored in blocks by one float32 matrix product each
(`blocks`), and most of the work is skipped by bounds: a slot that kept every eligible mentor has
nothing unseen; otherwise its unseen mentors score at most `slot_bound` points, so only mentors
whose offset is low enough to make a negative reduced cost possible are scored at all. The few
pairs the float32 scores cannot rule out are then recomputed exactly (float64, integer points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.matching.blocks import ELIGIBLE_FLOOR, POINTS_SLACK, BlockScorer
from services.matching.candidates import Candidates, expand, slot_ranges
from services.matching.scoring import MAX_POINTS

PER_SLOT = 10  # pairs added per slot and round: the most negative ones (ties by the seed's draw)


@dataclass
class Duals:
    """The reduced cost of every pair, as data (see the module docstring)."""

    const: float
    alpha: float
    slot_offset: np.ndarray  # per slot
    mentor_offset: np.ndarray  # per mentor, caller's index
    cross: np.ndarray | None = None  # (institutions x institutions), 0 on the diagonal
    mentee_institution: np.ndarray | None = None  # institution code per mentee
    mentor_institution: np.ndarray | None = None  # institution code per mentor


@dataclass
class Priced:
    slot: np.ndarray
    mentor: np.ndarray
    points: np.ndarray
    reduced: np.ndarray
    pairs_scored: int  # pairs the bounds could not rule out, scored by the matrix products

    def __len__(self) -> int:
        return len(self.slot)


def price(
    scorer: BlockScorer,
    cands: Candidates,
    duals: Duals,
    below: float = 0.0,
    per_slot: int | None = PER_SLOT,
    tolerance: float = 0.0,
    ahead: float = 0.0,
) -> Priced:
    """The eligible pairs not among `cands` whose reduced cost is below `below - tolerance`, at
    most `per_slot` per slot (the most negative). Empty: `cands` hold the optimum. With
    `ahead`, a slot that has such a pair also brings its pairs up to `ahead` above the limit
    (those the next solve would otherwise reveal one round later)."""
    n = scorer.n
    empty = np.zeros(0, dtype=np.int64)
    found: list[tuple[np.ndarray, ...]] = []
    scored = 0
    if not len(cands.slot_need) or not n:
        return Priced(empty, empty, empty, np.zeros(0), 0)
    seen = np.sort(cands.arc_slot * n + cands.arc_mentor)
    first_slot, slot_count = slot_ranges(cands.slot_mentee, len(scorer.mentees))
    offset_by_col = duals.mentor_offset[scorer.perm]
    cross = duals.cross
    if cross is not None:
        inst_by_col = duals.mentor_institution[scorer.perm]
        cross_min = cross.min(axis=1)  # per mentee institution
    limit = below - tolerance
    by_offset = np.argsort(offset_by_col, kind="stable")  # table columns, lowest offset first
    sorted_offset = offset_by_col[by_offset]
    # a mentor's own bound: its unseen mentees score at most `mentor_bound` points, so it can
    # only matter to a slot whose offset leaves room below `mentor_floor`
    mentor_bound = cands.mentor_bound
    if mentor_bound is None:
        mentor_bound = np.full(n, MAX_POINTS, dtype=np.int64)
    bound_by_col = mentor_bound[scorer.perm]
    mentor_floor = np.where(
        bound_by_col >= 0, offset_by_col - duals.alpha * bound_by_col, np.inf
    )
    for rows, lo in scorer.blocks():
        srow, slots = expand(first_slot[rows], slot_count[rows])
        open_ = cands.slot_bound[slots] >= 0
        if not open_.any():
            continue
        srow, slots = srow[open_], slots[open_]
        a = duals.const + duals.slot_offset[slots]
        # the least reduced cost an unseen mentor could give a slot: its points at the bound;
        # only mentors whose offset is below `limit - floor` can make it negative: a prefix of
        # the mentors sorted by offset, of length `need`
        floor = a - duals.alpha * cands.slot_bound[slots]
        if cross is not None:
            floor = floor + cross_min[duals.mentee_institution[rows[srow]]]
        need = np.searchsorted(sorted_offset, limit - floor, side="left")
        room = limit - a  # what a mentor's floor must stay below for the slot
        if cross is not None:
            room = room - cross_min[duals.mentee_institution[rows[srow]]]
        # slots in groups of similar need, each scored against its longest prefix only
        order = np.argsort(-need, kind="stable")
        order = order[need[order] > 0]
        g = 0
        while g < len(order):
            top = need[order[g]]
            end_ = g + int(np.searchsorted(-need[order[g:]], -(top // 2), side="right"))
            group = order[g:end_]
            g = end_
            prefix = by_offset[:top]
            cols = prefix[(prefix >= lo) & (mentor_floor[prefix] < room[group].max())]
            if not cols.size:
                continue
            found_, n_scored = _score_group(
                scorer, cands, duals, rows, srow[group], slots[group], a[group], cols,
                seen, limit, ahead, inst_by_col if cross is not None else None,
            )
            scored += n_scored
            if found_ is not None:
                found.append(found_)
    if not found:
        return Priced(empty, empty, empty, np.zeros(0), scored)
    slot, mentor, pts, reduced, tie = (np.concatenate(x) for x in zip(*found))
    if per_slot is not None:
        order = np.lexsort((-tie, reduced, slot))
        slot, mentor, pts, reduced = slot[order], mentor[order], pts[order], reduced[order]
        first = np.searchsorted(slot, slot)
        keep = np.arange(len(slot)) - first < per_slot
        slot, mentor, pts, reduced = slot[keep], mentor[keep], pts[keep], reduced[keep]
    return Priced(slot, mentor, pts, reduced, scored)


def _score_group(scorer, cands, duals, rows, srow, slots, a, cols, seen, limit, ahead, inst_by_col):
    """The pairs of these slots and table columns with a reduced cost below `limit` (and of
    the slots that have one, those below `limit + ahead`): (slot, mentor, points, reduced cost,
    float32 score) or None, and the cells scored."""
    n = scorer.n
    local, inverse = np.unique(srow, return_inverse=True)
    mentee_rows = rows[local]
    vals = scorer.scores(mentee_rows, cols)[inverse]
    mentee = mentee_rows[inverse]
    scol = cands.slot_col[slots]
    named = scol != -1
    if named.any():
        known = named & (scol >= 0)
        vals[known] += scorer.need_penalty[scol[known]][:, cols]
        vals[named & (scol < 0)] = -1e4
    offset = duals.mentor_offset[scorer.perm[cols]]
    # potentials carry the big-M of the flow on both sides (about +-1e7 at 20,000 x 5,000);
    # shifted by one whole number they stay small, and integer sums stay exact
    shift = float(np.round(offset.min())) if len(offset) else 0.0
    if inst_by_col is None and duals.alpha == 1.0 and _fits32(a + shift, offset - shift):
        i, j = _maybe_sparse(vals, a + shift, offset - shift, limit, ahead)
        base_ij = a[i] + offset[j]
    else:
        i, j, base_ij = _maybe_dense(duals, mentee, vals, a, offset, cols, limit, ahead, inst_by_col)
    if not i.size:
        return None, vals.size
    slot, col = slots[i], cols[j]
    mentor = scorer.perm[col]
    key = slot * n + mentor
    pos = np.minimum(np.searchsorted(seen, key), max(0, len(seen) - 1))
    new = seen[pos] != key if len(seen) else np.ones(len(key), dtype=bool)
    i, j, slot, col, mentor = i[new], j[new], slot[new], col[new], mentor[new]
    base_ij = base_ij[new]
    if not i.size:
        return None, vals.size
    pts = scorer.exact_points(mentee[i], col)
    reduced = base_ij - duals.alpha * pts
    neg = reduced < limit
    if ahead > 0:  # the near pairs of the slots with a negative one
        with_negative = np.unique(slot[neg])
        neg = (reduced < limit + ahead) & np.isin(slot, with_negative)
    return (slot[neg], mentor[neg], pts[neg], reduced[neg], vals[i, j][neg]), vals.size


# Float32 holds every integer up to 2**24 exactly and rounds the sums below by at most 2**-3 when
# the terms stay under 2**20; FILTER_MARGIN points more than covers that.
_FITS32 = float(2**20)
FILTER_MARGIN = 1.0


def _fits32(a: np.ndarray, offset: np.ndarray) -> bool:
    """Whether a cell's `a + offset` can be compared in float32 (see `_maybe_sparse`)."""
    return bool(
        len(a) and len(offset) and np.abs(a).max() < _FITS32 and np.abs(offset).max() < _FITS32
    )


def _lowest(base: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """The lowest reduced cost a cell of float32 score `vals` can have (alpha 1): the most
    integer points its score allows (exact points are recomputed by the caller)."""
    return base - np.floor(10.0 * vals + POINTS_SLACK)  # in float32, as `_maybe_dense` does


def _maybe_sparse(vals, a, offset, limit, ahead):
    """(i, j) of the eligible cells whose lowest reduced cost is below `limit` (and, in rows
    with one, below `limit + ahead`), with alpha 1 and no institution term: the same cells as
    `_maybe_dense`. Because floor(x) <= x, a cell can only qualify if
    10 * vals + POINTS_SLACK > a + offset - limit - ahead; that test runs over the block in
    float32 (FILTER_MARGIN points looser than needed, so float32 rounding can only let more
    cells through), and only the few cells it lets through get the exact test in float64."""
    rows_t = (a - (limit + ahead) - POINTS_SLACK - FILTER_MARGIN).astype(np.float32)
    t = vals * np.float32(10.0)
    t -= offset.astype(np.float32)[None, :]
    i, j = np.nonzero(t > rows_t[:, None])
    if not i.size:
        return i, j
    v = vals[i, j]
    least = _lowest(a[i] + offset[j], v)
    eligible = v > ELIGIBLE_FLOOR
    below = eligible & (least < limit)
    if ahead > 0:
        keep_rows = np.zeros(len(a), dtype=bool)
        keep_rows[i[below]] = True
        below = keep_rows[i] & eligible & (least < limit + ahead)
    return i[below], j[below]


def _maybe_dense(duals, mentee, vals, a, offset, cols, limit, ahead, inst_by_col):
    """(i, j, a + offset + cross) of the eligible cells whose lowest reduced cost is below
    `limit` (and, in rows with one, below `limit + ahead`), over the whole block."""
    base = a[:, None] + offset[None, :]
    if inst_by_col is not None:
        base = base + duals.cross[duals.mentee_institution[mentee]][:, inst_by_col[cols]]
    # could be negative by the float32 score: the most integer points it allows (exact points
    # are recomputed below)
    most = np.floor(10.0 * vals + POINTS_SLACK)
    least = base - duals.alpha * most  # the lowest reduced cost each cell can have
    eligible = vals > ELIGIBLE_FLOOR
    maybe = eligible & (least < limit)
    if ahead > 0:
        rows_ = np.flatnonzero(maybe.any(axis=1))
        maybe[rows_] = eligible[rows_] & (least[rows_] < limit + ahead)
    i, j = np.nonzero(maybe)
    return i, j, base[i, j]
