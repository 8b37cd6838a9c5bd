"""Compatibility of a mentor and a mentee: hard constraints, a tunable weighted score, and the
explanation a coordinator reads (pure code, no I/O).

A score is 0–100: each factor gives a fraction in [0, 1], weighted by the program's `Weights`
and normalised by the sum of the weights. `score_value` is the fast path the batch matcher calls
for every candidate pair; `explain` computes the same number factor by factor, in words.

What the solver optimises and every output shows is the score in integer tenths (`to_points`),
computed once by one rule: candidates, proposals, explanations and summaries all carry the same
integer, so a proposal never reads 93.7 while its summary says 93.8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

# The profiles service's program types: "near-peer" wants a mentor one or two stages ahead,
# "peer" accepts the same stage, every other type (faculty, research, career...) any senior.
ProgramType = str
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


MAX_POINTS = 1000  # a 0–100 score in tenths
# Half-tenths round up. The tolerance absorbs the last-bit differences between the pairwise sum
# here and the vectorised one of the batch matcher (exact halves such as 68.75 come out of one as
# 68.74999999999999), so both give the same integer.
HALF_UP = 0.5 + 1e-6


def to_points(score: float) -> int:
    """A 0–100 score as the integer number of tenths everything uses (0..MAX_POINTS)."""
    return min(MAX_POINTS, max(0, math.floor(score * 10 + HALF_UP)))


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
    utc_offset: float | None = 0.0  # hours east of UTC; None: time zone unknown
    affinities: frozenset[str] = frozenset()  # opt-in groups the mentor identifies with
    trained: bool = False
    paused: bool = False
    program_ids: frozenset[str] = frozenset()
    do_not_match: frozenset[str] = frozenset()  # people this mentor supervises or evaluates


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
    utc_offset: float | None = 0.0  # hours east of UTC; None: time zone unknown
    affinity_preferences: frozenset[str] = frozenset()  # opt-in: wants a mentor sharing these
    program_id: str = ""
    # Which needs get a mentor of their own when `mentors_wanted` > 1 (default: the first ones).
    mentor_needs: tuple[str, ...] = ()
    institution_preference: Literal["same", "cross"] | None = None  # when the program allows either
    do_not_match: frozenset[str] = frozenset()  # people the mentee (as a mentor) supervises

    def slot_needs(self) -> list[str | None]:
        """One entry per wanted mentor: the need it is for (None: any need, for a mentee who
        wants a single mentor or wants more mentors than it named needs)."""
        wanted = max(1, self.mentors_wanted)
        if wanted == 1:
            return [None]
        named: list[str | None] = list((self.mentor_needs or self.needs)[:wanted])
        return named + [None] * (wanted - len(named))


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
    excluded: frozenset[tuple[str, str]] = frozenset()  # taken out by a coordinator, or active

    def forbids(self, mentee_id: str, mentor_id: str) -> str | None:
        pair = (mentee_id, mentor_id)
        if pair in self.boundaries:
            return "the mentor supervises or evaluates the mentee"
        if pair in self.ended:
            return "this pair already had a mentorship that ended"
        if pair in self.declined:
            return "this pair was proposed before and declined"
        if pair in self.excluded:
            return "this pair is excluded from matching"
        return None


NO_CONSTRAINTS = Constraints()


def forbidden_by_mentee(constraints: Constraints) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pairs in (
        constraints.boundaries, constraints.ended, constraints.declined, constraints.excluded
    ):
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
    if mentee.id in mentor.do_not_match or mentor.id in mentee.do_not_match:
        return "one of them supervises or evaluates the other (a do-not-match boundary)"
    reason = constraints.forbids(mentee.id, mentor.id)
    if reason:
        return reason
    if not stage_allowed(stage_rank(mentee.career_stage), stage_rank(mentor.career_stage), program.type):
        if program.type == "peer":
            return "the mentor is earlier in training than the mentee"
        return "the mentor is not further along in training than the mentee"
    return None


def stage_allowed(mentee_rank: int | None, mentor_rank: int | None, program_type: str) -> bool:
    """A mentor must be further along than the mentee; a peer program accepts the same stage.
    An unknown stage (a network's own term) never excludes."""
    if mentee_rank is None or mentor_rank is None:
        return True
    return mentor_rank - mentee_rank >= (0 if program_type == "peer" else 1)


def _need_weights(n: int) -> list[float]:
    """Priority weights n, n-1, ..., 1 normalised to sum 1: the first need counts most."""
    total = n * (n + 1) / 2
    return [(n - i) / total for i in range(n)]


_NEED_WEIGHTS = {n: _need_weights(n) for n in range(0, 33)}


def need_weights(n: int) -> list[float]:
    return _NEED_WEIGHTS.get(n) or _need_weights(n)


def _tz_overlap_hours(a: float, b: float) -> float:
    """Shared hours of two 08:00–20:00 local working days."""
    diff = abs(a - b) % 24
    diff = min(diff, 24 - diff)
    return max(0.0, 12.0 - diff)


def time_zone_value(mentee_offset: float | None, mentor_offset: float | None) -> float:
    """Overlap of working days as a fraction; neutral (0.5) when a time zone is unknown."""
    if mentee_offset is None or mentor_offset is None:
        return 0.5
    return _tz_overlap_hours(mentee_offset, mentor_offset) / 12.0


def stage_value(mentee_rank: int | None, mentor_rank: int | None, program_type: str) -> float:
    """How well the career-stage gap suits the program: near-peer wants one or two stages
    ahead (three or four half counts), peer the same stage or one ahead, every other type (faculty,
    research, career...) any senior. Neutral (0.5) when a stage is not on the known ladder."""
    if mentee_rank is None or mentor_rank is None:
        return 0.5
    gap = mentor_rank - mentee_rank
    if program_type == "peer":
        return 1.0 if 0 <= gap <= 1 else (0.5 if gap == 2 else 0.0)
    if gap <= 0:
        return 0.0
    if program_type != "near-peer":
        return 1.0
    if gap <= 2:
        return 1.0
    return 0.5 if gap <= 4 else 0.0


def effective_rule(mentee: Mentee, program: Program) -> InstitutionRule:
    """The program's institution rule; when it accepts either, the mentee's own preference."""
    if program.institution_rule != "either":
        return program.institution_rule
    return mentee.institution_preference or "either"


def institution_value(mentee_institution: str, mentor_institution: str, rule: str) -> float:
    if rule == "either":
        return 1.0
    same = mentee_institution == mentor_institution
    return 1.0 if same == (rule == "same") else 0.0


def shared_value(wanted: frozenset[str], offered: frozenset[str]) -> float:
    """Language or meeting mode: full when the mentee states no preference, neutral when the
    mentor states nothing, else whether they have one in common."""
    if not wanted:
        return 1.0
    if not offered:
        return 0.5
    return 1.0 if wanted & offered else 0.0


def factor_fractions(mentee: Mentee, mentor: Mentor, program: Program) -> dict[str, float]:
    needs = mentee.needs
    nw = need_weights(len(needs))
    offered = mentor.help_offered
    need_f = sum(w for need, w in zip(needs, nw) if need in offered) if needs else 0.0
    spec = mentee.specialties
    spec_f = len(spec & mentor.specialties) / len(spec) if spec else 0.0
    pref = mentee.affinity_preferences
    aff_f = len(pref & mentor.affinities) / len(pref) if pref else 0.0
    return {
        "needs": need_f,
        "specialty": spec_f,
        "career_stage": stage_value(
            stage_rank(mentee.career_stage), stage_rank(mentor.career_stage), program.type
        ),
        "institution": institution_value(
            mentee.institution_id, mentor.institution_id, effective_rule(mentee, program)
        ),
        "language": shared_value(mentee.languages, mentor.languages),
        "meeting_mode": shared_value(mentee.meeting_modes, mentor.meeting_modes),
        "time_zone": time_zone_value(mentee.utc_offset, mentor.utc_offset),
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


def score_points(mentee: Mentee, mentor: Mentor, program: Program) -> int:
    """The pair's score in integer tenths (`to_points` of `score_value`)."""
    return to_points(score_value(mentee, mentor, program))


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
    points: int  # the score in tenths (`to_points`): the one number shown everywhere
    contributions: tuple[Contribution, ...] = ()
    reason: str | None = None  # why the pair is ineligible

    @property
    def score(self) -> float:
        """The score shown: `points` / 10, so it reads the same in every output."""
        return self.points / 10

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


def _shared_text(wanted: frozenset[str], offered: frozenset[str], verb: str, what: str) -> str:
    if not wanted:
        return f"the mentee has no {what} preference"
    if not offered:
        return f"the mentor stated no {what}, so it counts half"
    common = wanted & offered
    return f"both {verb}: {_fmt(common)}" if common else f"no common {what} ({_fmt(wanted)} wanted)"


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
        if mentee.specialties
        else "the mentee named no specialty interest"
    )
    mr, er = stage_rank(mentor.career_stage), stage_rank(mentee.career_stage)
    if mr is None or er is None:
        stage = f"career stages {mentor.career_stage} / {mentee.career_stage} not comparable"
    elif program.type not in ("near-peer", "peer"):
        stage = f"{mentor.career_stage} is senior to {mentee.career_stage} ({program.type} program)"
    else:
        gap = mr - er
        ideal = gap <= 2 if program.type == "near-peer" else gap <= 1
        suited = "suits" if ideal else "is wider than ideal for"
        ahead = (
            f"is {gap} stage{'s' if gap != 1 else ''} ahead of" if gap else "is at the same stage as"
        )
        stage = (
            f"{mentor.career_stage} {ahead} {mentee.career_stage}, which {suited} "
            f"a {program.type} program"
        )
    same = mentee.institution_id == mentor.institution_id
    where = "same institution" if same else "different institutions"
    rule = effective_rule(mentee, program)
    if rule == "either":
        institution = f"{where}; the program accepts either"
    else:
        ok = "as" if f["institution"] else "but"
        wish = f"a mentor from {'the same' if rule == 'same' else 'another'} institution"
        who = "the program asks for" if program.institution_rule != "either" else "the mentee prefers"
        institution = f"{where}, {ok} {who} {wish}"
    language = _shared_text(mentee.languages, mentor.languages, "speak", "language")
    mode = _shared_text(mentee.meeting_modes, mentor.meeting_modes, "can meet", "meeting mode")
    if mentee.utc_offset is None or mentor.utc_offset is None:
        tz = "a time zone is unknown, so overlap counts half"
    else:
        hours = _tz_overlap_hours(mentee.utc_offset, mentor.utc_offset)
        tz = f"{hours:g} working hours overlap between their time zones"
    # Identity attributes are never shown: the words say that one is shared, not which.
    if mentee.affinity_preferences:
        shared = len(mentee.affinity_preferences & mentor.affinities)
        wanted = len(mentee.affinity_preferences)
        affinity = (
            f"shares {shared} of the {wanted} affinities the mentee opted to match on"
            if shared
            else "shares none of the affinities the mentee opted to match on"
        )
    else:
        affinity = "the mentee did not opt in to affinity matching"
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
        return Explanation(mentee.id, mentor.id, False, 0, (), reason)
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
        mentee.id, mentor.id, True, score_points(mentee, mentor, program), contributions, None
    )
