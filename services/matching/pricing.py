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
pairs within a point of negative are then recomputed exactly (float64, integer points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.matching.blocks import ELIGIBLE_FLOOR, BlockScorer
from services.matching.candidates import Candidates, expand, slot_ranges

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
) -> Priced:
    """The eligible pairs not among `cands` whose reduced cost is below `below - tolerance`, at
    most `per_slot` per slot (the most negative). Empty: `cands` hold the optimum."""
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
    for rows, lo in scorer.blocks():
        srow, slots = expand(first_slot[rows], slot_count[rows])
        open_ = cands.slot_bound[slots] >= 0
        if not open_.any():
            continue
        srow, slots = srow[open_], slots[open_]
        mentee = rows[srow]
        a = duals.const + duals.slot_offset[slots]
        # the least reduced cost any unseen mentor could give: its points at the bound
        floor = a - duals.alpha * cands.slot_bound[slots]
        if cross is not None:
            floor = floor + cross_min[duals.mentee_institution[mentee]]
        cut = limit - floor.min()  # a mentor's offset must be below this to matter
        cols = np.flatnonzero(offset_by_col < cut)
        cols = cols[cols >= lo]
        if not cols.size:
            continue
        scores = scorer.scores(rows, cols)
        vals = scores[srow]
        scol = cands.slot_col[slots]
        named = scol != -1
        if named.any():
            known = named & (scol >= 0)
            vals[known] += scorer.need_penalty[scol[known]][:, cols]
            vals[named & (scol < 0)] = -1e4
        base = a[:, None] + offset_by_col[cols][None, :]
        if cross is not None:
            base = base + cross[duals.mentee_institution[mentee]][:, inst_by_col[cols]]
        # within a point of negative, by the float32 score (exact points are recomputed below)
        maybe = (vals > ELIGIBLE_FLOOR) & (base - duals.alpha * (10.0 * vals + 1.0) < limit)
        maybe &= (floor[:, None] < limit)
        scored += int(vals.shape[0] * vals.shape[1])
        i, j = np.nonzero(maybe)
        if not i.size:
            continue
        slot, col = slots[i], cols[j]
        mentor = scorer.perm[col]
        key = slot * n + mentor
        pos = np.minimum(np.searchsorted(seen, key), max(0, len(seen) - 1))
        new = seen[pos] != key if len(seen) else np.ones(len(key), dtype=bool)
        i, j, slot, col, mentor = i[new], j[new], slot[new], col[new], mentor[new]
        if not i.size:
            continue
        pts = scorer.exact_points(mentee[i], col)
        reduced = base[i, j] - duals.alpha * pts
        neg = reduced < limit
        found.append((slot[neg], mentor[neg], pts[neg], reduced[neg], vals[i, j][neg]))
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
