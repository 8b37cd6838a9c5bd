"""Batch matching under an institution cap: at most `cap` mentees of one institution go to
mentors of another (pure code, no I/O).

The cap crosses the capacity structure, so the problem is no longer a flow. It is solved as
integer programs with HiGHS (`scipy.optimize.milp`), one objective level at a time: the most
slots filled; with fairness, then the most mentees covered among those; then the most points
among those. Each level's value is fixed as a constraint of the next. No wall-clock limit: the
branch-and-bound stops at a node count (`node_limit`), so the same input gives the same answer at
any machine load, and a level cut short says so (`proven` false).

Every level is proven over all eligible pairs, not only the arcs it was given, by the same kind
of certificate as the flow's (`pricing`): the level's linear relaxation is solved with column
generation until no pair outside its arcs has a negative reduced cost, which makes its value Z_LP
a bound over all pairs; any integer solution using an unseen pair a is then worth at least
Z_LP + reduced(a), so once the integer optimum Z_IP over the arcs is known, only the pairs with
Z_LP + reduced(a) <= Z_IP - 1 could do better (objectives are integers). Those are added and
the integer program solved again, until there are none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from services.matching.blocks import BlockScorer
from services.matching.candidates import Candidates, add_arcs
from services.matching.pricing import Duals, price
from services.matching.scoring import Mentee, Mentor

NODE_LIMIT = 200_000  # branch-and-bound nodes per integer program: a count, not a clock
MAX_ROUNDS = 60
TOLERANCE = 1e-7  # on reduced costs of the linear relaxations (floating point)


def breaks_cap(
    cands: Candidates,
    chosen: np.ndarray,
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    cap: int,
) -> bool:
    """Whether the chosen arcs send more than `cap` mentees of one institution to mentors of
    another."""
    counts: dict[tuple[str, str], int] = {}
    slot_mentee = cands.slot_mentee
    for s, m in zip(cands.arc_slot[chosen].tolist(), cands.arc_mentor[chosen].tolist()):
        a, b = mentees[int(slot_mentee[s])].institution_id, mentors[m].institution_id
        if a != b:
            counts[(a, b)] = counts.get((a, b), 0) + 1
    return any(v > cap for v in counts.values())


class _Model:
    """The integer program over the current arcs, rebuilt when arcs are added."""

    def __init__(self, scorer: BlockScorer, cands: Candidates, fair: bool, cap: int) -> None:
        self.cands, self.fair, self.cap = cands, fair, cap
        n_arcs = cands.arc_count
        slot = cands.arc_slot
        mentor = cands.arc_mentor
        mentee = cands.slot_mentee[slot]
        self.n_arcs = n_arcs
        self.n_slots = len(cands.slot_need)
        self.mentee_ids, self.mentee_pos = np.unique(cands.slot_mentee, return_inverse=True)
        n_mentees = len(self.mentee_ids)
        self.n_y = n_mentees if fair else 0
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row, col, value)
        b: list[np.ndarray] = []
        r = 0
        # slots: one mentor each
        rows.append((slot, np.arange(n_arcs), np.ones(n_arcs)))
        b.append(np.ones(self.n_slots))
        self.slot_row = (r, r + self.n_slots)
        r += self.n_slots
        # a mentee wanting several mentors: a mentor at most once
        counts = np.bincount(cands.slot_mentee, minlength=len(scorer.mentees))
        multi = np.flatnonzero(counts[mentee] > 1)
        if multi.size:
            keys, inverse, sizes = np.unique(
                mentee[multi] * max(1, scorer.n) + mentor[multi],
                return_inverse=True, return_counts=True,
            )
            several = sizes[inverse] > 1
            pair_ids, pair_row = np.unique(inverse[several], return_inverse=True)
            rows.append((r + pair_row, multi[several], np.ones(int(several.sum()))))
            b.append(np.ones(len(pair_ids)))
            r += len(pair_ids)
        # mentors: capacity
        n = scorer.n
        capacities = np.array([max(0, m.capacity) for m in scorer.mentors], dtype=np.float64)
        rows.append((r + mentor, np.arange(n_arcs), np.ones(n_arcs)))
        b.append(capacities)
        self.mentor_row = (r, r + n)
        r += n
        # the cap, per (mentee institution, mentor institution) with more arcs than the cap
        inst_codes: dict[str, int] = {}
        self.mentee_inst = np.array(
            [inst_codes.setdefault(e.institution_id, len(inst_codes)) for e in scorer.mentees],
            dtype=np.int64,
        )
        self.mentor_inst = np.array(
            [inst_codes.setdefault(m.institution_id, len(inst_codes)) for m in scorer.mentors],
            dtype=np.int64,
        )
        self.n_inst = max(1, len(inst_codes))
        a_inst, b_inst = self.mentee_inst[mentee], self.mentor_inst[mentor]
        cross = np.flatnonzero(a_inst != b_inst)
        pair = a_inst[cross] * self.n_inst + b_inst[cross]
        classes, class_of, class_size = np.unique(pair, return_inverse=True, return_counts=True)
        binding = class_size > cap
        kept_classes = classes[binding]
        class_row = np.full(len(classes), -1, dtype=np.int64)
        class_row[binding] = np.arange(int(binding.sum()))
        in_row = class_row[class_of] >= 0
        rows.append((r + class_row[class_of][in_row], cross[in_row], np.ones(int(in_row.sum()))))
        b.append(np.full(len(kept_classes), float(cap)))
        self.cross_classes = kept_classes
        self.cross_row = (r, r + len(kept_classes))
        r += len(kept_classes)
        # fairness: y_e <= the mentee's arcs
        if fair:
            rows.append((r + self.mentee_pos[slot], np.arange(n_arcs), -np.ones(n_arcs)))
            rows.append((r + np.arange(n_mentees), n_arcs + np.arange(n_mentees), np.ones(n_mentees)))
            b.append(np.zeros(n_mentees))
            self.cover_row = (r, r + n_mentees)
            r += n_mentees
        self.base_rows = r
        row_idx = np.concatenate([x[0] for x in rows]).astype(np.int64)
        col_idx = np.concatenate([x[1] for x in rows]).astype(np.int64)
        values = np.concatenate([x[2] for x in rows])
        self.A = sparse.csr_array(
            (values, (row_idx, col_idx)), shape=(r, n_arcs + self.n_y)
        )
        self.b = np.concatenate(b)

    def objective(self, level: str) -> np.ndarray:
        """Minimise the negated level value."""
        c = np.zeros(self.n_arcs + self.n_y)
        if level == "fill":
            c[: self.n_arcs] = -1.0
        elif level == "cover":
            c[self.n_arcs :] = -1.0
        else:
            c[: self.n_arcs] = -self.cands.arc_points
        return c

    def fixed_rows(self, fixed: dict[str, int]) -> tuple[sparse.csr_array, np.ndarray]:
        """The level values already fixed, as rows `-value(x) <= -fixed`."""
        extra, rhs = [], []
        for level, value in fixed.items():
            extra.append(self.objective(level)[None, :])
            rhs.append(-float(value))
        if not extra:
            return self.A, self.b
        return (
            sparse.vstack([self.A, sparse.csr_array(np.vstack(extra))]).tocsr(),
            np.concatenate([self.b, rhs]),
        )

    def duals(self, level: str, fixed: dict[str, int], marginals: np.ndarray) -> Duals:
        """The reduced cost of an unseen pair in this level's linear relaxation, from its
        row duals (`marginals`, <= 0 for these <= rows): objective coefficient minus the
        column's rows times their duals."""
        y = marginals
        const = {"fill": -1.0, "cover": 0.0, "points": 0.0}[level]
        alpha = 1.0 if level == "points" else 0.0
        for k, lv in enumerate(fixed):
            if lv == "fill":  # the row -sum(x) <= -F: the column's coefficient is -1
                const += y[self.base_rows + k]
            elif lv == "points":
                alpha -= y[self.base_rows + k]  # coefficient -points
        slot_offset = -y[self.slot_row[0] : self.slot_row[1]].copy()
        if self.fair:
            cover = y[self.cover_row[0] : self.cover_row[1]]
            slot_offset += cover[self.mentee_pos]
        mentor_offset = -y[self.mentor_row[0] : self.mentor_row[1]]
        cross = np.zeros((self.n_inst, self.n_inst))
        lo, hi = self.cross_row
        cross.flat[self.cross_classes] = -y[lo:hi]
        return Duals(const, alpha, slot_offset, mentor_offset, cross, self.mentee_inst, self.mentor_inst)


def within_cap(
    cands: Candidates, chosen: np.ndarray, scorer: BlockScorer, cap: int
) -> np.ndarray:
    """The chosen arcs that fit the cap, best first: a feasible start for the first level."""
    kept = []
    used: dict[tuple[str, str], int] = {}
    for k in chosen[np.argsort(-cands.arc_points[chosen], kind="stable")].tolist():
        a = scorer.mentees[int(cands.slot_mentee[cands.arc_slot[k]])].institution_id
        b = scorer.mentors[int(cands.arc_mentor[k])].institution_id
        if a != b:
            if used.get((a, b), 0) >= cap:
                continue
            used[(a, b)] = used.get((a, b), 0) + 1
        kept.append(k)
    return np.asarray(sorted(kept), dtype=np.int64)


def solve(
    scorer: BlockScorer,
    cands: Candidates,
    fair: bool,
    cap: int,
    start: np.ndarray,
    node_limit: int = NODE_LIMIT,
) -> tuple[Candidates, np.ndarray, dict[str, Any]]:
    """(the arcs, the chosen ones, how the proof went) of the capped optimum, by levels.
    `start`: indices of arcs meeting the cap (the uncapped optimum cut down to it), the answer
    should a first integer program find nothing within its node limit."""
    levels = ["fill", "cover", "points"] if fair else ["fill", "points"]
    fixed: dict[str, int] = {}
    proof: dict[str, Any] = {"levels": {}, "pairs_added": 0, "pairs_scored": 0, "proven": True,
                             "node_limit": node_limit}
    x = np.zeros(cands.arc_count)
    x[start] = 1.0
    for level in levels:
        incumbent = _keys(cands, scorer.n)[x > 0.5]  # meets every level fixed so far
        cands, x, value, proven, info = _level(
            scorer, cands, fair, cap, level, fixed, node_limit, np.sort(incumbent)
        )
        fixed[level] = value
        proof["levels"][level] = {"value": value, "proven": proven, **info}
        proof["pairs_added"] += info["pairs_added"]
        proof["pairs_scored"] += info["pairs_scored"]
        proof["proven"] = proof["proven"] and proven
    return cands, np.flatnonzero(x[: cands.arc_count] > 0.5), proof


# The integer program first sees the arcs the relaxation uses, and for points those within
# NEAR of its reduced costs (for fill and cover most arcs have reduced cost 0: the support alone).
NEAR = 2.0


def _level(scorer, cands, fair, cap, level, fixed, node_limit, incumbent):
    """One level: (arcs, chosen x, the level's value, proven, how it went). `incumbent`: the
    keys of the previous level's arcs, a solution meeting every value fixed so far.

    The relaxation over all pairs gives a bound Z_LP and reduced costs; the integer program is
    solved over the arcs near the relaxation; then every arc left out, known or unseen, that
    could still beat it (Z_LP + reduced(a) <= Z_IP - 1, one dual solution for all) is let in
    and the integer program solved again, until none is left."""
    info = {"pairs_added": 0, "pairs_scored": 0, "lp_rounds": 0, "ip_rounds": 0, "nodes": 0}
    let_in = incumbent  # keys of arcs the integer program must see
    for _ in range(MAX_ROUNDS):
        model, lp, duals = _relaxation(scorer, cands, fair, cap, level, fixed, info)
        cands = model.cands
        keys = _keys(cands, scorer.n)
        fallback = _member(keys, incumbent)
        if lp is None:  # the relaxation did not settle: the best over the arcs, unproven
            x, z, _ = _ip(model, level, fixed, node_limit, info,
                          np.ones(model.n_arcs, dtype=bool), fallback)
            return cands, x, -int(round(z)), False, info
        bound = lp.fun
        x_lp = lp.x[: model.n_arcs]
        if np.all(np.abs(x_lp - np.round(x_lp)) < 1e-6):
            # an integral vertex of the relaxation over all pairs: the integer optimum itself
            return cands, np.round(x_lp), -int(round(bound)), True, info
        reduced = lp.lower.marginals[: model.n_arcs]
        allowed = (x_lp > 1e-9) | _member(keys, let_in)
        if level == "points":
            allowed |= reduced <= NEAR
        while True:
            x, z, optimal = _ip(model, level, fixed, node_limit, info, allowed, fallback)
            info["ip_rounds"] += 1
            if not optimal:
                return cands, x, -int(round(z)), False, info
            gap = z - 1 - bound + 1e-6
            left_out = ~allowed & (reduced < gap)
            if not left_out.any():
                break
            allowed |= left_out
        priced = price(scorer, cands, duals, below=gap, per_slot=None)
        info["pairs_scored"] += priced.pairs_scored
        if not len(priced):
            return cands, x, -int(round(z)), True, info
        info["pairs_added"] += len(priced)
        old = np.sort(keys)
        cands = _grow(cands, scorer, priced)
        grown = _keys(cands, scorer.n)
        let_in = np.sort(np.concatenate([keys[allowed], grown[~_member(grown, old)]]))
    return cands, x, -int(round(z)), False, info


def _relaxation(scorer, cands, fair, cap, level, fixed, info):
    """The level's linear relaxation over all pairs by column generation: (model, its solution
    or None when it did not settle, the duals)."""
    for _ in range(MAX_ROUNDS):
        model = _Model(scorer, cands, fair, cap)
        A, b = model.fixed_rows(fixed)
        lp = linprog(model.objective(level), A_ub=A, b_ub=b, bounds=(0, 1), method="highs")
        if lp.status != 0:
            raise RuntimeError(f"the linear relaxation failed: {lp.message}")
        info["lp_rounds"] += 1
        duals = model.duals(level, fixed, lp.ineqlin.marginals)
        priced = price(scorer, cands, duals, below=0.0, tolerance=TOLERANCE)
        info["pairs_scored"] += priced.pairs_scored
        if not len(priced):
            return model, lp, duals
        info["pairs_added"] += len(priced)
        cands = _grow(cands, scorer, priced)
    return _Model(scorer, cands, fair, cap), None, None


def _keys(cands: Candidates, n: int) -> np.ndarray:
    return cands.arc_slot * max(1, n) + cands.arc_mentor


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _ip(model: _Model, level: str, fixed: dict[str, int], node_limit: int, info: dict,
        allowed: np.ndarray, fallback: np.ndarray):
    """The integer program with only the `allowed` arcs: (x, objective, proven optimal). When
    the node limit stops it before any solution, the `fallback` arcs (meeting every level fixed
    so far), unproven."""
    A, b = model.fixed_rows(fixed)
    c = model.objective(level)
    integrality = np.concatenate([np.ones(model.n_arcs), np.zeros(model.n_y)])
    upper = np.concatenate([allowed.astype(np.float64), np.ones(model.n_y)])
    res = milp(
        c,
        constraints=LinearConstraint(A, -np.inf, b),
        integrality=integrality,
        bounds=Bounds(0, upper),
        options={"node_limit": node_limit, "mip_rel_gap": 0.0, "presolve": True},
    )
    info["nodes"] += int(getattr(res, "mip_node_count", 0) or 0)
    if res.x is None:
        if res.status == 2:  # infeasible: the fixed levels say a solution exists
            raise RuntimeError(f"the integer program found no solution: {res.message}")
        x = fallback.astype(np.float64)
        y = np.zeros(model.n_y)
        if model.n_y:
            covered = np.bincount(model.mentee_pos[model.cands.arc_slot[x > 0.5]],
                                  minlength=model.n_y)
            y = (covered > 0).astype(np.float64)
        return x, float(c[: model.n_arcs] @ x + c[model.n_arcs :] @ y), False
    x = np.round(res.x[: model.n_arcs])
    objective = float(c[: model.n_arcs] @ x + c[model.n_arcs :] @ res.x[model.n_arcs :])
    return x, objective, res.status == 0


def _grow(cands: Candidates, scorer: BlockScorer, priced) -> Candidates:
    grown = add_arcs(cands, scorer, priced.slot, priced.mentor, priced.points)
    grown.seconds = cands.seconds
    return grown
