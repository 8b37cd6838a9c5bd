"""The mentors of a program as a feature matrix, to score mentees against all of them with numpy
(pure code, no I/O).

Every factor of the score is linear in a one-hot description of the mentor: needs, specialty and
affinity by value; career stage, languages, meeting modes, time zone and institution by the
mentor's class (its rank, its set of languages, ...; a program has few distinct ones); training as
a column. So the scores of a block of mentees are one matrix product `E @ M.T` (mentee coefficients
times mentor features), and eligibility folds in as large negative coefficients (paused or full
mentors, a stage the program does not allow). Candidate generation runs this over blocks of mentees
and keeps the best arcs per row: the mentee x mentor matrix is never held whole.

`scores` (one mentee, for suggestions) computes the same floating-point operations in the same
order as `scoring.score_value`, so its scores are identical to the pairwise ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from services.matching.scoring import (
    _FACTORS,
    Mentee,
    Mentor,
    Program,
    effective_rule,
    institution_value,
    need_weights,
    shared_value,
    stage_allowed,
    stage_rank,
    stage_value,
    time_zone_value,
)

PENALTY = 1.0e4  # far below any score: marks an ineligible pair inside a block of scores


class _Classes:
    """Distinct values of one mentor attribute, a code per mentor, and per-mentee coefficient
    vectors over the classes (cached: many mentees share the same key)."""

    def __init__(self, values: list, value_of) -> None:
        self.values: list = []
        codes: dict = {}
        self.codes = np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)
        self.values = list(codes)
        self.value_of = value_of  # (mentee key, class value) -> fraction
        self._rows: dict = {}

    def __len__(self) -> int:
        return len(self.values)

    def row(self, key) -> np.ndarray:
        row = self._rows.get(key)
        if row is None:
            row = np.array([self.value_of(key, v) for v in self.values], dtype=np.float64)
            self._rows[key] = row
        return row


class MentorTable:
    def __init__(self, mentors: Sequence[Mentor], program: Program) -> None:
        self.mentors = list(mentors)
        self.program = program
        ptype = program.type
        n = len(self.mentors)
        self.index = {m.id: i for i, m in enumerate(self.mentors)}
        self.active = np.array(
            [
                m.capacity > 0 and not m.paused and (not program.id or program.id in m.program_ids)
                for m in self.mentors
            ],
            dtype=bool,
        )
        # Boundaries named on the mentor's side, looked up by the mentee they name.
        self.blocked_by: dict[str, list[int]] = {}
        for i, m in enumerate(self.mentors):
            for person in m.do_not_match:
                self.blocked_by.setdefault(person, []).append(i)
        self.help_cols = _vocabulary(m.help_offered for m in self.mentors)
        self.spec_cols = _vocabulary(m.specialties for m in self.mentors)
        self.aff_cols = _vocabulary(m.affinities for m in self.mentors)
        self.rank = _Classes(
            [stage_rank(m.career_stage) for m in self.mentors],
            lambda er, mr: stage_value(er, mr, ptype),
        )
        self.rank_ok = _Classes(
            [stage_rank(m.career_stage) for m in self.mentors],
            lambda er, mr: 1.0 if stage_allowed(er, mr, ptype) else 0.0,
        )
        self.lang = _Classes([m.languages for m in self.mentors], shared_value)
        self.mode = _Classes([m.meeting_modes for m in self.mentors], shared_value)
        self.tz = _Classes([m.utc_offset for m in self.mentors], time_zone_value)
        self.inst = _Classes(
            [m.institution_id for m in self.mentors],
            lambda key, inst: institution_value(key[0], inst, key[1]),
        )
        self.trained = np.array([1.0 if m.trained else 0.0 for m in self.mentors])
        # Feature matrix layout: help | spec | aff | rank | lang | mode | tz | inst | trained | inactive
        widths = [
            len(self.help_cols), len(self.spec_cols), len(self.aff_cols), len(self.rank),
            len(self.lang), len(self.mode), len(self.tz), len(self.inst), 1, 1,
        ]
        starts = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        (self._help, self._spec, self._aff, self._rank, self._lang, self._mode, self._tz,
         self._inst, self._trained, self._inactive) = (
            slice(starts[i], starts[i + 1]) for i in range(len(widths))
        )
        self.width = int(starts[-1])
        features = np.zeros((n, self.width), dtype=np.float64)
        rows = np.arange(n)
        for cols, sl, sets in (
            (self.help_cols, self._help, [m.help_offered for m in self.mentors]),
            (self.spec_cols, self._spec, [m.specialties for m in self.mentors]),
            (self.aff_cols, self._aff, [m.affinities for m in self.mentors]),
        ):
            for i, values in enumerate(sets):
                for v in values:
                    features[i, sl.start + cols[v]] = 1.0
        for classes, sl in (
            (self.rank, self._rank), (self.lang, self._lang), (self.mode, self._mode),
            (self.tz, self._tz), (self.inst, self._inst),
        ):
            features[rows, sl.start + classes.codes] = 1.0
        features[:, self._trained.start] = self.trained
        features[:, self._inactive.start] = ~self.active
        self.features = features
        self.features32_t = np.ascontiguousarray(features.T, dtype=np.float32)  # for E @ M.T
        # help_bits[c] is 1 where the mentor offers help category c
        self.help_bits = features[:, self._help].T.copy()
        weights = program.weights.as_dict()
        self.weights = weights
        self.scale = 100.0 / sum(weights.values())
        self._sparse: dict = {}  # (needs, specialties, affinities) -> coefficient entries
        self._ranks: dict[str, int | None] = {}

    # --- one mentee: suggestions ----------------------------------------------------------------

    def blocked(self, mentee: Mentee, forbidden: Iterable[str] = ()) -> list[int]:
        """Mentor indices this mentee may never be matched with: itself, the pairs `forbidden`
        names (`forbidden_by_mentee`), and do-not-match boundaries named by either side."""
        out = [i for i in self.blocked_by.get(mentee.id, ())]
        for mentor_id in (mentee.id, *forbidden, *mentee.do_not_match):
            i = self.index.get(mentor_id)
            if i is not None:
                out.append(i)
        return out

    def eligible(self, mentee: Mentee, forbidden: Iterable[str] = ()) -> np.ndarray:
        """Boolean column: the mentors `ineligibility` would accept for this mentee, given the
        ids of the mentors its constraints forbid (`forbidden_by_mentee`)."""
        program = self.program
        if program.id and mentee.program_id != program.id:
            return np.zeros(len(self.mentors), dtype=bool)
        er = stage_rank(mentee.career_stage)
        ok = self.active & (self.rank_ok.row(er)[self.rank_ok.codes] > 0)
        ok[self.blocked(mentee, forbidden)] = False
        return ok

    def scores(self, mentee: Mentee) -> np.ndarray:
        """Float column: `score_value(mentee, mentor, program)` for every mentor, bit for bit."""
        n = len(self.mentors)
        program = self.program
        needs = mentee.needs
        need_f: np.ndarray | float = 0.0
        for need, w in zip(needs, need_weights(len(needs))):
            c = self.help_cols.get(need)
            if c is not None:
                need_f = need_f + w * self.help_bits[c]
        fractions = {
            "needs": need_f + np.zeros(n),
            "specialty": self._share(mentee.specialties, self.spec_cols, self._spec),
            "career_stage": self.rank.row(stage_rank(mentee.career_stage))[self.rank.codes],
            "institution": self.inst.row((mentee.institution_id, effective_rule(mentee, program)))[
                self.inst.codes
            ],
            "language": self.lang.row(mentee.languages)[self.lang.codes],
            "meeting_mode": self.mode.row(mentee.meeting_modes)[self.mode.codes],
            "time_zone": self.tz.row(mentee.utc_offset)[self.tz.codes],
            "affinity": self._share(mentee.affinity_preferences, self.aff_cols, self._aff),
            "training": self.trained,
        }
        total = np.zeros(n)
        norm = 0.0
        for name in _FACTORS:
            w = self.weights[name]
            total = total + w * fractions[name]
            norm += w
        return 100.0 * total / norm

    def _share(self, wanted: frozenset[str], cols: dict[str, int], sl: slice) -> np.ndarray:
        n = len(self.mentors)
        if not wanted:
            return np.zeros(n)
        count = np.zeros(n)
        for v in wanted:
            c = cols.get(v)
            if c is not None:
                count = count + self.features[:, sl.start + c]
        return count / len(wanted)

    # --- blocks of mentees: the batch matcher's path --------------------------------------------

    def coefficients(self, mentees: Sequence[Mentee], penalise: bool = False) -> np.ndarray:
        """(len(mentees) x features) coefficients, so that `coefficients @ features.T` are the
        scores; with `penalise`, ineligible pairs (inactive mentor, stage not allowed) score
        below zero (blocked pairs and program membership are the caller's)."""
        program = self.program
        w = self.weights
        coef = np.zeros((len(mentees), self.width), dtype=np.float64)
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        rank_keys, lang_keys, mode_keys, tz_keys, inst_keys = [], [], [], [], []
        sparse = self._sparse
        ranks = self._ranks
        either = program.institution_rule == "either"
        for r, e in enumerate(mentees):
            # needs, specialties and affinities: a few columns each, cached per distinct value
            key = (e.needs, e.specialties, e.affinity_preferences)
            entry = sparse.get(key)
            if entry is None:
                entry = sparse[key] = self._sparse_entry(e)
            rows.extend([r] * len(entry[0]))
            cols.extend(entry[0])
            vals.extend(entry[1])
            stage = e.career_stage
            rank = ranks[stage] if stage in ranks else ranks.setdefault(stage, stage_rank(stage))
            rank_keys.append(rank)
            lang_keys.append(e.languages)
            mode_keys.append(e.meeting_modes)
            tz_keys.append(e.utc_offset)
            rule = (e.institution_preference or "either") if either else program.institution_rule
            inst_keys.append((e.institution_id, rule))
        if rows:
            np.add.at(coef, (np.array(rows), np.array(cols)), np.array(vals))
        for classes, sl, keys, weight in (
            (self.rank, self._rank, rank_keys, w["career_stage"]),
            (self.lang, self._lang, lang_keys, w["language"]),
            (self.mode, self._mode, mode_keys, w["meeting_mode"]),
            (self.tz, self._tz, tz_keys, w["time_zone"]),
            (self.inst, self._inst, inst_keys, w["institution"]),
        ):
            coef[:, sl] = weight * _stack(classes, keys)
        coef[:, self._trained.start] = w["training"]
        coef *= self.scale
        if penalise:
            allowed = _stack(self.rank_ok, rank_keys)
            coef[:, self._rank] -= PENALTY * (1.0 - allowed)
            coef[:, self._inactive.start] = -PENALTY
        return coef

    def _sparse_entry(self, e: Mentee) -> tuple[list[int], list[float]]:
        w = self.weights
        cols: list[int] = []
        vals: list[float] = []
        for need, nw in zip(e.needs, need_weights(len(e.needs))):
            c = self.help_cols.get(need)
            if c is not None:
                cols.append(self._help.start + c)
                vals.append(w["needs"] * nw)
        for values, table, sl, weight in (
            (e.specialties, self.spec_cols, self._spec, w["specialty"]),
            (e.affinity_preferences, self.aff_cols, self._aff, w["affinity"]),
        ):
            for v in values:
                c = table.get(v)
                if c is not None:
                    cols.append(sl.start + c)
                    vals.append(weight / len(values))
        return cols, vals

    def score_block(self, mentees: Sequence[Mentee]) -> np.ndarray:
        """(len(mentees) x mentors) scores: `score_value` up to floating-point rounding."""
        return self.coefficients(mentees) @ self.features.T

    def eligible_block(
        self, mentees: Sequence[Mentee], forbidden: dict[str, set[str]]
    ) -> np.ndarray:
        """(len(mentees) x mentors) booleans: `ineligibility(...) is None`."""
        ok = np.zeros((len(mentees), len(self.mentors)), dtype=bool)
        for r, e in enumerate(mentees):
            ok[r] = self.eligible(e, forbidden.get(e.id, ()))
        return ok


def _vocabulary(sets: Iterable[frozenset[str]]) -> dict[str, int]:
    cols: dict[str, int] = {}
    for values in sets:
        for v in sorted(values):
            cols.setdefault(v, len(cols))
    return cols


def _stack(classes: _Classes, keys: list) -> np.ndarray:
    """The coefficient rows of `keys`, one per mentee, by fancy indexing of the distinct rows."""
    distinct: dict = {}
    codes = np.array([distinct.setdefault(k, len(distinct)) for k in keys], dtype=np.int64)
    if not distinct:
        return np.zeros((0, len(classes)))
    table = np.stack([classes.row(k) for k in distinct])
    return table[codes]
