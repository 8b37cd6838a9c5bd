"""Every mentee scored against every mentor, block by block, one matrix product per block (pure
code, no I/O). Candidate generation (`candidates`) and the optimality certificate (`pricing`) both
walk all eligible pairs this way; the mentee x mentor matrix is never held whole.

Mentors are put in columns by career stage (unknown stages last: they are eligible to everyone),
then by their tie key; mentees are grouped by the first column their stage may use, so a block
only scores the mentors far enough along to be eligible (a window of columns). Products run in
float32 with a tie-breaking term (`ties.directions`, at most `TIE_SPREAD` of a score) added, so
equal scores rank differently for different mentees; exact points are recomputed in float64 from
the same coefficients, without the term, and equal `scoring.to_points` of the pairwise score.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from services.matching import ties
from services.matching.scoring import (
    HALF_UP,
    MAX_POINTS,
    Constraints,
    Mentee,
    Mentor,
    Program,
    forbidden_by_mentee,
    stage_rank,
)
from services.matching.table import PENALTY, MentorTable

BLOCK_CELLS = 4_000_000  # mentee x mentor scores computed at once
TIE_SPREAD = 0.004  # score units: the most the tie-breaking term moves a float32 score
FLOAT32_SLACK = 1e-3  # score units: more than float32 rounding can move one product (scores <= 100)
# How far above ten times a float32 score (tie term included) the exact integer points can be:
# the tie term twice and the float32 slack, in tenths, plus the rounding of `to_points`.
POINTS_SLACK = 10 * (2 * TIE_SPREAD + FLOAT32_SLACK) + HALF_UP
ELIGIBLE_FLOOR = np.float32(-1.0)  # eligible pairs score 0..100 (+- TIE_SPREAD), ineligible far below
_UNKNOWN = 1 << 30


def points_array(scores: np.ndarray) -> np.ndarray:
    """`scoring.to_points` of every float64 score."""
    return np.clip(np.floor(scores * 10 + HALF_UP), 0, MAX_POINTS).astype(np.int64)


def upper_points(scores32: np.ndarray) -> np.ndarray:
    """The most points a pair can have whose float32 score (tie term included) is at most
    `scores32`: the exact score is within TIE_SPREAD twice and the float32 slack of it."""
    return points_array(scores32.astype(np.float64) + 2 * TIE_SPREAD + FLOAT32_SLACK)


class BlockScorer:
    """The mentors of a program as a table, and the mentees in blocks against it."""

    def __init__(
        self,
        mentees: Sequence[Mentee],
        mentors: Sequence[Mentor],
        program: Program,
        constraints: Constraints,
        seed: int = 0,
    ) -> None:
        self.mentees, self.mentors, self.program = list(mentees), list(mentors), program
        n = self.n = len(self.mentors)
        self.mentor_keys = ties.keys([m.id for m in self.mentors], seed)
        self.mentee_keys = ties.keys([e.id for e in self.mentees], seed)
        stage = np.array(
            [_UNKNOWN if r is None else r for r in (stage_rank(m.career_stage) for m in self.mentors)],
            dtype=np.int64,
        )
        self.perm = np.lexsort((self.mentor_keys, stage)) if n else np.zeros(0, dtype=np.int64)
        self.column = np.empty(n, dtype=np.int64)  # caller's mentor index -> table column
        self.column[self.perm] = np.arange(n)
        table = self.table = MentorTable([self.mentors[i] for i in self.perm.tolist()], program)
        self.width = table.width
        tie_m = ties.directions(self.mentor_keys[self.perm]).astype(np.float32)
        self.features32_t = np.ascontiguousarray(np.vstack([table.features32_t, tie_m.T]))
        self.tie_e = (ties.directions(self.mentee_keys) * TIE_SPREAD).astype(np.float32)
        self.tie_m = np.ascontiguousarray(tie_m)  # per table column
        self.need_penalty = ((table.help_bits - 1.0) * PENALTY).astype(np.float32)
        self._blocked(constraints)
        sorted_stage = stage[self.perm]
        min_gap = 0 if program.type == "peer" else 1
        self.first_col = np.full(len(self.mentees), n, dtype=np.int64)
        by_stage: dict[str, int] = {}
        members = []
        for i, e in enumerate(self.mentees):
            if program.id and e.program_id != program.id:
                continue
            members.append(i)
            if e.career_stage not in by_stage:
                er = stage_rank(e.career_stage)
                by_stage[e.career_stage] = (
                    0 if er is None else int(np.searchsorted(sorted_stage, er + min_gap))
                )
            self.first_col[i] = by_stage[e.career_stage]
        rank = ties.rank(self.mentee_keys)
        members_arr = np.asarray(members, dtype=np.int64)
        self.members = members_arr[np.lexsort((rank[members_arr], self.first_col[members_arr]))]
        self.block = max(1, BLOCK_CELLS // max(1, n))
        self._coef = np.zeros((len(self.mentees), table.width))
        self._have = np.zeros(len(self.mentees), dtype=bool)

    def _blocked(self, constraints: Constraints) -> None:
        """Per mentee, the table columns of the mentors it may never have (CSR arrays)."""
        forbidden = forbidden_by_mentee(constraints)
        cols: list[int] = []
        count = np.zeros(len(self.mentees), dtype=np.int64)
        for i, e in enumerate(self.mentees):
            blocked = self.table.blocked(e, forbidden.get(e.id, ()))
            cols.extend(blocked)
            count[i] = len(blocked)
        self.blocked_start = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        self.blocked_cols = np.asarray(cols, dtype=np.int64)

    def blocks(self) -> Iterator[tuple[np.ndarray, int]]:
        """(mentee indices, first eligible table column) per block of at most BLOCK_CELLS."""
        for b in range(0, len(self.members), self.block):
            rows = self.members[b : b + self.block]
            yield rows, int(self.first_col[rows[0]])

    def coefficients(self, rows: np.ndarray) -> np.ndarray:
        """Float64 coefficients (ineligible mentors penalised) of these mentees, computed once."""
        missing = rows[~self._have[rows]]
        if missing.size:
            group = [self.mentees[i] for i in missing.tolist()]
            self._coef[missing] = self.table.coefficients(group, penalise=True)
            self._have[missing] = True
        return self._coef[rows]

    def scores(self, rows: np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
        """(rows x cols) float32 scores with the tie term; ineligible pairs below ELIGIBLE_FLOOR.
        `cols` are table columns: a window `slice(lo, n)` or an array of them."""
        coef = self.coefficients(rows)
        c32 = np.empty((len(rows), self.features32_t.shape[0]), dtype=np.float32)
        c32[:, : self.width] = coef
        c32[:, self.width :] = self.tie_e[rows]
        scores = c32 @ self.features32_t[:, cols]
        starts, ends = self.blocked_start[rows], self.blocked_start[rows + 1]
        count = ends - starts
        if count.any():
            local = np.repeat(np.arange(len(rows)), count)
            idx = np.repeat(starts - np.cumsum(count) + count, count) + np.arange(count.sum())
            blocked = self.blocked_cols[idx]
            if isinstance(cols, slice):
                pos = blocked - cols.start
                ok = (pos >= 0) & (pos < scores.shape[1])
            else:
                where = np.full(self.n, -1, dtype=np.int64)
                where[cols] = np.arange(len(cols))
                pos = where[blocked]
                ok = pos >= 0
            scores[local[ok], pos[ok]] = -PENALTY
        return scores

    def exact_points(self, mentee_idx: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Points of (mentee, table column) pairs in float64 (mentees already scored)."""
        exact = np.einsum("ij,ij->i", self._coef[mentee_idx], self.table.features[cols])
        return points_array(exact)

    def points_of(
        self, scores32: np.ndarray, mentee_idx: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """Points of pairs whose float32 scores (tie term included) are known: the tie term is
        taken out, and where the float32 error could move the rounding (within 0.02 of a tenth's
        boundary) the points are recomputed in float64. The same integers as `exact_points`."""
        tie = np.einsum("ij,ij->i", self.tie_e[mentee_idx], self.tie_m[cols], dtype=np.float64)
        tenths = (scores32.astype(np.float64) - tie) * 10 + HALF_UP
        pts = np.floor(tenths)
        unsure = np.abs(tenths - np.rint(tenths)) < 0.02
        out = np.clip(pts, 0, MAX_POINTS).astype(np.int64)
        if unsure.any():
            out[unsure] = self.exact_points(mentee_idx[unsure], cols[unsure])
        return out

    def offers(self, need_cols: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Whether each table column's mentor offers the slot's need (-1: any need; -2: a need
        nobody offers)."""
        if not len(self.table.help_bits):
            return need_cols == -1
        return (need_cols == -1) | (
            (need_cols >= 0) & (self.table.help_bits[np.maximum(need_cols, 0), cols] > 0)
        )
