"""Compatibility of a mentor and a mentee: hard constraints, a tunable weighted score, and the
explanation a coordinator reads (pure code, no I/O).

A score is 0–100: each factor gives a fraction in [0, 1], weighted by the program's `Weights`
and normalised by the sum of the weights. `score_value` is the fast path the batch matcher calls
for every candidate pair; `explain` computes the same number factor by factor, in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence
from typing import Literal

ProgramType = Literal["near-peer", "faculty"]
InstitutionRule = Literal["same", "cross", "either"]

# Ordinal seniority of the default career stages (services.profiles.domain.CAREER_STAGES):
# M1..M4 = 1..4, PGY-1..PGY-8 = 5..12, fellow 13, faculty and practising physicians above.
_STAGE_RANK: dict[str, int] = {f"M{n}": n for n in range(1, 5)}
_STAGE_RANK.update({f"PGY-{n}": 4 + n for n in range(1, 9)})
_STAGE_RANK.update(
    {
        "fellow": 13,
        "practising-physician": 14,
        "faculty-instructor": 14,
        "faculty-assistant-professor": 15,
        "faculty-associate-professor": 16,
        "faculty-professor": 17,
    }
)


def stage_rank(stage: str) -> int | None:
    return _STAGE_RANK.get(stage)


@dataclass(frozen=True)
class Mentor:
    id: str
    institution_id: str
    career_stage: str
    capacity: int
    help_offered: frozenset[str] = frozenset()
    specialties: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset({"en"})
    meeting_modes: frozenset[str] = frozenset({"video"})
    utc_offset: float = 0.0
    affinities: frozenset[str] = frozenset()  # opt-in groups the mentor identifies with
    trained: bool = False
    paused: bool = False
    program_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Mentee:
    id: str
    institution_id: str
    career_stage: str
    needs: tuple[str, ...] = ()  # help categories, most important first
    mentors_wanted: int = 1  # >1: one mentor per need, for the first `mentors_wanted` needs
    specialties: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset({"en"})
    meeting_modes: frozenset[str] = frozenset({"video"})
    utc_offset: float = 0.0
    affinity_preferences: frozenset[str] = frozenset()  # opt-in: wants a mentor sharing these
    program_id: str = ""


@dataclass(frozen=True)
class Weights:
    needs: float = 5.0
    specialty: float = 3.0
    career_stage: float = 2.0
    institution: float = 1.0
    language: float = 2.0
    meeting_mode: float = 1.0
    time_zone: float = 1.0
    affinity: float = 1.0
    training: float = 0.5

    def __post_init__(self) -> None:
        values = self.as_dict().values()
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError("Weights must be non-negative with a positive sum")

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in _FACTORS}


_FACTORS = (
    "needs",
    "specialty",
    "career_stage",
    "institution",
    "language",
    "meeting_mode",
    "time_zone",
    "affinity",
    "training",
)


@dataclass(frozen=True)
class Program:
    id: str = ""
    type: ProgramType = "near-peer"
    institution_rule: InstitutionRule = "either"
    weights: Weights = field(default_factory=Weights)


@dataclass(frozen=True)
class Constraints:
    """Pairs that must never be proposed, as (mentee id, mentor id)."""

    boundaries: frozenset[tuple[str, str]] = frozenset()  # supervisor / evaluator relations
    ended: frozenset[tuple[str, str]] = frozenset()
    declined: frozenset[tuple[str, str]] = frozenset()

    def forbids(self, mentee_id: str, mentor_id: str) -> str | None:
        pair = (mentee_id, mentor_id)
        if pair in self.boundaries:
            return "the mentor supervises or evaluates the mentee"
        if pair in self.ended:
            return "this pair already had a mentorship that ended"
        if pair in self.declined:
            return "this pair was proposed before and declined"
        return None


NO_CONSTRAINTS = Constraints()


def forbidden_by_mentee(constraints: Constraints) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pairs in (constraints.boundaries, constraints.ended, constraints.declined):
        for mentee_id, mentor_id in pairs:
            out.setdefault(mentee_id, set()).add(mentor_id)
    return out


def ineligibility(
    mentee: Mentee, mentor: Mentor, program: Program, constraints: Constraints = NO_CONSTRAINTS
) -> str | None:
    """Why this pair may not be matched, or None when it may."""
    if mentor.id == mentee.id:
        return "a person cannot mentor themselves"
    if mentor.capacity <= 0:
        return "the mentor has no capacity"
    if mentor.paused:
        return "the mentor has paused mentoring"
    if program.id and (mentee.program_id != program.id or program.id not in mentor.program_ids):
        return "not both in the program"
    reason = constraints.forbids(mentee.id, mentor.id)
    if reason:
        return reason
    mentor_rank, mentee_rank = stage_rank(mentor.career_stage), stage_rank(mentee.career_stage)
    if mentor_rank is not None and mentee_rank is not None and mentor_rank <= mentee_rank:
        return "the mentor is not further along in training than the mentee"
    return None


def _need_weights(n: int) -> list[float]:
    """Priority weights n, n-1, ..., 1 normalised to sum 1: the first need counts most."""
    total = n * (n + 1) / 2
    return [(n - i) / total for i in range(n)]


_NEED_WEIGHTS = {n: _need_weights(n) for n in range(0, 33)}


def _tz_overlap_hours(a: float, b: float) -> float:
    """Shared hours of two 08:00–20:00 local working days."""
    diff = abs(a - b) % 24
    diff = min(diff, 24 - diff)
    return max(0.0, 12.0 - diff)


def _stage_fraction(mentee: Mentee, mentor: Mentor, program_type: ProgramType) -> float:
    mr, er = stage_rank(mentor.career_stage), stage_rank(mentee.career_stage)
    if mr is None or er is None:
        return 0.5
    gap = mr - er
    if gap <= 0:
        return 0.0
    if program_type == "faculty":
        return 1.0
    if gap <= 2:
        return 1.0
    return 0.5 if gap <= 4 else 0.0


def _institution_fraction(mentee: Mentee, mentor: Mentor, rule: InstitutionRule) -> float:
    if rule == "either":
        return 1.0
    same = mentee.institution_id == mentor.institution_id
    return 1.0 if same == (rule == "same") else 0.0


def factor_fractions(mentee: Mentee, mentor: Mentor, program: Program) -> dict[str, float]:
    needs = mentee.needs
    nw = _NEED_WEIGHTS.get(len(needs)) or _need_weights(len(needs))
    offered = mentor.help_offered
    need_f = sum(w for need, w in zip(needs, nw) if need in offered) if needs else 0.0
    spec = mentee.specialties
    spec_f = len(spec & mentor.specialties) / len(spec) if spec else 0.0
    pref = mentee.affinity_preferences
    aff_f = len(pref & mentor.affinities) / len(pref) if pref else 0.0
    return {
        "needs": need_f,
        "specialty": spec_f,
        "career_stage": _stage_fraction(mentee, mentor, program.type),
        "institution": _institution_fraction(mentee, mentor, program.institution_rule),
        "language": 1.0 if mentee.languages & mentor.languages else 0.0,
        "meeting_mode": 1.0 if mentee.meeting_modes & mentor.meeting_modes else 0.0,
        "time_zone": _tz_overlap_hours(mentee.utc_offset, mentor.utc_offset) / 12.0,
        "affinity": aff_f,
        "training": 1.0 if mentor.trained else 0.0,
    }


def score_value(mentee: Mentee, mentor: Mentor, program: Program) -> float:
    """The 0–100 compatibility of an eligible pair (no explanation: the matcher's hot path)."""
    weights = program.weights
    fractions = factor_fractions(mentee, mentor, program)
    total = 0.0
    norm = 0.0
    for name, value in fractions.items():
        w = getattr(weights, name)
        total += w * value
        norm += w
    return 100.0 * total / norm


@dataclass(frozen=True)
class Contribution:
    factor: str
    points: float  # share of the 0–100 score this factor gave
    max_points: float
    text: str


@dataclass(frozen=True)
class Explanation:
    mentee_id: str
    mentor_id: str
    eligible: bool
    score: float
    contributions: tuple[Contribution, ...] = ()
    reason: str | None = None  # why the pair is ineligible

    def lines(self) -> list[str]:
        if not self.eligible:
            return [f"Not eligible: {self.reason}."]
        return [
            f"{c.factor.replace('_', ' ')}: {c.points:.1f} of {c.max_points:.1f} — {c.text}"
            for c in self.contributions
        ]

    def summary(self) -> str:
        if not self.eligible:
            return f"Not eligible: {self.reason}."
        top = sorted(self.contributions, key=lambda c: -c.points)[:3]
        parts = "; ".join(c.text for c in top if c.points > 0)
        return f"Score {self.score:.1f}/100. {parts}."


def _fmt(items: frozenset[str] | set[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(items)) if items else "none"


def _texts(mentee: Mentee, mentor: Mentor, program: Program, f: dict[str, float]) -> dict[str, str]:
    covered = [n for n in mentee.needs if n in mentor.help_offered]
    missing = [n for n in mentee.needs if n not in mentor.help_offered]
    if not mentee.needs:
        needs = "the mentee listed no needs"
    elif not covered:
        needs = f"offers none of the mentee's needs ({', '.join(mentee.needs)})"
    else:
        ranks = ", ".join(f"{n} (priority {mentee.needs.index(n) + 1})" for n in covered)
        needs = f"offers help with {ranks}"
        if missing:
            needs += f"; not with {', '.join(missing)}"
    shared_spec = mentee.specialties & mentor.specialties
    specialty = (
        f"shares specialty interest in {_fmt(shared_spec)}"
        if shared_spec
        else f"no shared specialty (mentee: {_fmt(mentee.specialties)})"
    )
    mr, er = stage_rank(mentor.career_stage), stage_rank(mentee.career_stage)
    if mr is None or er is None:
        stage = f"career stages {mentor.career_stage} / {mentee.career_stage} not comparable"
    elif program.type == "faculty":
        stage = f"{mentor.career_stage} is senior to {mentee.career_stage} (faculty program)"
    else:
        gap = mr - er
        suited = "suits" if gap <= 2 else "is wider than ideal for"
        stage = (
            f"{mentor.career_stage} is {gap} stage{'s' if gap != 1 else ''} ahead of "
            f"{mentee.career_stage}, which {suited} a near-peer program"
        )
    same = mentee.institution_id == mentor.institution_id
    where = "same institution" if same else "different institutions"
    if program.institution_rule == "either":
        institution = f"{where}; the program accepts either"
    else:
        ok = "as" if f["institution"] else "but"
        institution = f"{where}, {ok} the program asks for {program.institution_rule}-institution pairs"
    shared_lang = mentee.languages & mentor.languages
    language = f"both speak {_fmt(shared_lang)}" if shared_lang else "no common language"
    shared_modes = mentee.meeting_modes & mentor.meeting_modes
    mode = f"both can meet by {_fmt(shared_modes)}" if shared_modes else "no common meeting mode"
    hours = _tz_overlap_hours(mentee.utc_offset, mentor.utc_offset)
    tz = f"{hours:g} working hours overlap between their time zones"
    if mentee.affinity_preferences:
        shared_aff = mentee.affinity_preferences & mentor.affinities
        affinity = (
            f"shares the mentee's chosen affinity {_fmt(shared_aff)}"
            if shared_aff
            else f"does not share the mentee's chosen affinity ({_fmt(mentee.affinity_preferences)})"
        )
    else:
        affinity = "the mentee chose no affinity preference"
    training = "has completed mentor training" if mentor.trained else "has not completed mentor training"
    return {
        "needs": needs,
        "specialty": specialty,
        "career_stage": stage,
        "institution": institution,
        "language": language,
        "meeting_mode": mode,
        "time_zone": tz,
        "affinity": affinity,
        "training": training,
    }


def explain(
    mentee: Mentee, mentor: Mentor, program: Program, constraints: Constraints = NO_CONSTRAINTS
) -> Explanation:
    """The score of a pair with every factor's contribution in words, or why it is ineligible."""
    reason = ineligibility(mentee, mentor, program, constraints)
    if reason:
        return Explanation(mentee.id, mentor.id, False, 0.0, (), reason)
    weights = program.weights.as_dict()
    norm = sum(weights.values())
    fractions = factor_fractions(mentee, mentor, program)
    texts = _texts(mentee, mentor, program, fractions)
    contributions = tuple(
        Contribution(
            factor=name,
            points=100.0 * weights[name] * fractions[name] / norm,
            max_points=100.0 * weights[name] / norm,
            text=texts[name],
        )
        for name in _FACTORS
        if weights[name] > 0
    )
    return Explanation(
        mentee.id, mentor.id, True, score_value(mentee, mentor, program), contributions, None
    )


class MentorTable:
    """The mentors of a program as columns, to score one mentee against all of them at once
    (numpy, one row at a time: never a mentee x mentor matrix). Computes the same floating-point
    operations in the same order as `score_value`, so the scores are identical."""

    def __init__(self, mentors: Sequence[Mentor], program: Program) -> None:
        import numpy as np

        self.np = np
        self.mentors = list(mentors)
        self.program = program
        self._bits: dict[str, dict[str, int]] = {}
        n = len(self.mentors)
        self.active = np.array(
            [
                m.capacity > 0 and not m.paused and (not program.id or program.id in m.program_ids)
                for m in self.mentors
            ],
            dtype=bool,
        )
        self.index = {m.id: i for i, m in enumerate(self.mentors)}
        self.help = self._masks("help", [m.help_offered for m in self.mentors])
        self.spec = self._masks("spec", [m.specialties for m in self.mentors])
        self.lang = self._masks("lang", [m.languages for m in self.mentors])
        self.mode = self._masks("mode", [m.meeting_modes for m in self.mentors])
        self.aff = self._masks("aff", [m.affinities for m in self.mentors])
        ranks = [stage_rank(m.career_stage) for m in self.mentors]
        self.rank = np.array([-1 if r is None else r for r in ranks], dtype=np.int64)
        self.offset = np.array([m.utc_offset for m in self.mentors], dtype=np.float64)
        self.trained = np.array([1.0 if m.trained else 0.0 for m in self.mentors])
        inst: dict[str, int] = {}
        self.inst_codes = inst
        self.inst = np.array(
            [inst.setdefault(m.institution_id, len(inst)) for m in self.mentors], dtype=np.int64
        )
        assert len(self.active) == n

    def _masks(self, kind: str, sets: list[frozenset[str]]):
        """One bit per value; a column of Python-int masks as an object array when a vocabulary
        is wider than 62 values (still vectorised, just slower)."""
        np = self.np
        bits = self._bits.setdefault(kind, {})
        for values in sets:
            for v in sorted(values):
                bits.setdefault(v, len(bits))
        dtype = np.int64 if len(bits) <= 62 else object
        return np.array([sum(1 << bits[v] for v in values) for values in sets], dtype=dtype)

    def _has(self, kind: str, column, value: str):
        bit = self._bits[kind].get(value)
        if bit is None:
            return self.np.zeros(len(column), dtype=bool)
        return (column >> bit) & 1 == 1

    def _mask_of(self, kind: str, values: frozenset[str]) -> int:
        bits = self._bits[kind]
        return sum(1 << bits[v] for v in values if v in bits)

    def eligible(self, mentee: Mentee, forbidden: Iterable[str] = ()):
        """Boolean column: the mentors `ineligibility` would accept for this mentee, given the
        ids of the mentors its constraints forbid (`forbidden_by_mentee`)."""
        np = self.np
        program = self.program
        ok = self.active.copy()
        if program.id and mentee.program_id != program.id:
            ok[:] = False
            return ok
        er = stage_rank(mentee.career_stage)
        if er is not None:
            ok &= (self.rank < 0) | (self.rank > er)
        for mentor_id in (mentee.id, *forbidden):
            i = self.index.get(mentor_id)
            if i is not None:
                ok[i] = False
        return np.asarray(ok)

    def scores(self, mentee: Mentee):
        """Float column: `score_value(mentee, mentor, program)` for every mentor."""
        np = self.np
        program = self.program
        n = len(self.mentors)
        needs = mentee.needs
        need_f = np.zeros(n)
        if needs:
            nw = _NEED_WEIGHTS.get(len(needs)) or _need_weights(len(needs))
            need_f = 0.0
            for need, w in zip(needs, nw):
                need_f = need_f + w * self._has("help", self.help, need)
            need_f = np.asarray(need_f, dtype=np.float64) + np.zeros(n)
        spec = mentee.specialties
        if spec:
            count = np.zeros(n)
            for s in spec:
                count = count + self._has("spec", self.spec, s)
            spec_f = count / len(spec)
        else:
            spec_f = np.zeros(n)
        pref = mentee.affinity_preferences
        if pref:
            count = np.zeros(n)
            for a in pref:
                count = count + self._has("aff", self.aff, a)
            aff_f = count / len(pref)
        else:
            aff_f = np.zeros(n)
        er = stage_rank(mentee.career_stage)
        if er is None:
            stage_f = np.full(n, 0.5)
        else:
            gap = self.rank - er
            if program.type == "faculty":
                stage_f = np.where(gap > 0, 1.0, 0.0)
            else:
                stage_f = np.where(gap <= 0, 0.0, np.where(gap <= 2, 1.0, np.where(gap <= 4, 0.5, 0.0)))
            stage_f = np.where(self.rank < 0, 0.5, stage_f)
        if program.institution_rule == "either":
            inst_f = np.ones(n)
        else:
            same = self.inst == self.inst_codes.get(mentee.institution_id, -1)
            inst_f = np.where(same == (program.institution_rule == "same"), 1.0, 0.0)
        lang_mask = self._mask_of("lang", mentee.languages)
        lang_f = np.where((self.lang & lang_mask) != 0, 1.0, 0.0)
        mode_mask = self._mask_of("mode", mentee.meeting_modes)
        mode_f = np.where((self.mode & mode_mask) != 0, 1.0, 0.0)
        diff = np.abs(mentee.utc_offset - self.offset) % 24
        diff = np.minimum(diff, 24 - diff)
        tz_f = np.maximum(0.0, 12.0 - diff) / 12.0
        fractions = {
            "needs": need_f,
            "specialty": spec_f,
            "career_stage": stage_f,
            "institution": inst_f,
            "language": lang_f,
            "meeting_mode": mode_f,
            "time_zone": tz_f,
            "affinity": aff_f,
            "training": self.trained,
        }
        weights = program.weights
        total = np.zeros(n)
        norm = 0.0
        for name in _FACTORS:
            w = getattr(weights, name)
            total = total + w * fractions[name]
            norm += w
        return 100.0 * total / norm

    # --- blocks of mentees: the batch matcher's path ------------------------------------------

    def _onehot(self, kind: str, column) -> object:
        """Mentors x values 0/1 matrix of a mask column."""
        np = self.np
        width = len(self._bits[kind])
        if width == 0:
            return np.zeros((len(self.mentors), 1))
        if column.dtype == object:
            return np.array(
                [[(int(v) >> b) & 1 for b in range(width)] for v in column], dtype=np.float64
            )
        return ((column[:, None] >> np.arange(width)) & 1).astype(np.float64)

    def _prepare_block(self) -> None:
        if getattr(self, "_block_ready", False):
            return
        self._help_m = self._onehot("help", self.help)
        self._spec_m = self._onehot("spec", self.spec)
        self._aff_m = self._onehot("aff", self.aff)
        self._lang_m = self._onehot("lang", self.lang)
        self._mode_m = self._onehot("mode", self.mode)
        self._block_ready = True

    def _rows(self, kind: str, mentees: Sequence[Mentee], weights_of) -> object:
        np = self.np
        bits = self._bits[kind]
        out = np.zeros((len(mentees), max(1, len(bits))))
        for r, mentee in enumerate(mentees):
            for value, w in weights_of(mentee):
                b = bits.get(value)
                if b is not None:
                    out[r, b] += w
        return out

    def score_block(self, mentees: Sequence[Mentee]):
        """(len(mentees) x mentors) scores: `score_value` up to floating-point rounding (sums by
        matrix products), for a block of mentees at a time."""
        np = self.np
        self._prepare_block()
        program = self.program

        def need_weights(e: Mentee):
            nw = _NEED_WEIGHTS.get(len(e.needs)) or _need_weights(len(e.needs))
            return zip(e.needs, nw)

        def share(values: frozenset[str]):
            return [(v, 1.0 / len(values)) for v in values]

        need_f = self._rows("help", mentees, need_weights) @ self._help_m.T
        spec_f = self._rows("spec", mentees, lambda e: share(e.specialties)) @ self._spec_m.T
        aff_f = self._rows("aff", mentees, lambda e: share(e.affinity_preferences)) @ self._aff_m.T
        ones = lambda values: [(v, 1.0) for v in values]  # noqa: E731
        lang_f = (self._rows("lang", mentees, lambda e: ones(e.languages)) @ self._lang_m.T > 0)
        mode_f = (self._rows("mode", mentees, lambda e: ones(e.meeting_modes)) @ self._mode_m.T > 0)
        er = np.array([stage_rank(e.career_stage) or -1 for e in mentees], dtype=np.int64)
        gap = self.rank[None, :] - er[:, None]
        if program.type == "faculty":
            stage_f = np.where(gap > 0, 1.0, 0.0)
        else:
            stage_f = np.where(gap <= 0, 0.0, np.where(gap <= 2, 1.0, np.where(gap <= 4, 0.5, 0.0)))
        stage_f = np.where((self.rank[None, :] < 0) | (er[:, None] < 0), 0.5, stage_f)
        if program.institution_rule == "either":
            inst_f = 1.0
        else:
            codes = np.array([self.inst_codes.get(e.institution_id, -1) for e in mentees])
            same = self.inst[None, :] == codes[:, None]
            inst_f = np.where(same == (program.institution_rule == "same"), 1.0, 0.0)
        offsets = np.array([e.utc_offset for e in mentees], dtype=np.float64)
        diff = np.abs(offsets[:, None] - self.offset[None, :]) % 24
        diff = np.minimum(diff, 24 - diff)
        tz_f = np.maximum(0.0, 12.0 - diff) / 12.0
        fractions = {
            "needs": need_f,
            "specialty": spec_f,
            "career_stage": stage_f,
            "institution": inst_f,
            "language": lang_f,
            "meeting_mode": mode_f,
            "time_zone": tz_f,
            "affinity": aff_f,
            "training": self.trained[None, :],
        }
        weights = program.weights
        total = np.zeros((len(mentees), len(self.mentors)))
        norm = 0.0
        for name in _FACTORS:
            w = getattr(weights, name)
            if w:
                total += w * fractions[name]
            norm += w
        total *= 100.0 / norm
        return total

    def eligible_block(self, mentees: Sequence[Mentee], forbidden: dict[str, set[str]]):
        """(len(mentees) x mentors) booleans: `ineligibility(...) is None`."""
        np = self.np
        program = self.program
        er = np.array([stage_rank(e.career_stage) or -1 for e in mentees], dtype=np.int64)
        ok = self.active[None, :] & (
            (self.rank[None, :] < 0) | (er[:, None] < 0) | (self.rank[None, :] > er[:, None])
        )
        for r, mentee in enumerate(mentees):
            if program.id and mentee.program_id != program.id:
                ok[r, :] = False
                continue
            for mentor_id in (mentee.id, *forbidden.get(mentee.id, ())):
                i = self.index.get(mentor_id)
                if i is not None:
                    ok[r, i] = False
        return ok
