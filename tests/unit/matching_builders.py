"""Random small matching instances for the matching unit tests."""

from __future__ import annotations

import random

from services.matching.scoring import Constraints, Mentee, Mentor

HELP = ["research", "wellbeing", "careers", "skills"]
SPEC = ["surgery", "medicine", "paeds"]
MENTEE_STAGES = ["M1", "M2", "M3", "PGY-1", "unknown-stage"]
MENTOR_STAGES = ["M2", "M3", "M4", "PGY-2", "fellow", "faculty-professor", "unknown-stage"]


def _some(rnd: random.Random, values: list[str], lo: int = 0, hi: int = 2) -> frozenset[str]:
    return frozenset(rnd.sample(values, rnd.randint(lo, hi)))


def random_instance(
    seed: int, n_mentees: int, n_mentors: int, max_capacity: int = 2, max_wanted: int = 2
) -> tuple[list[Mentee], list[Mentor], Constraints]:
    rnd = random.Random(seed)
    institutions = ["a", "b", "c"]
    mentors = [
        Mentor(
            id=f"m{i}",
            institution_id=rnd.choice(institutions),
            career_stage=rnd.choice(MENTOR_STAGES),
            capacity=rnd.randint(0, max_capacity),
            help_offered=_some(rnd, HELP, 0, 3),
            specialties=_some(rnd, SPEC),
            languages=_some(rnd, ["en", "es"], 0, 2),
            meeting_modes=_some(rnd, ["video", "in-person"], 0, 2),
            utc_offset=rnd.choice([-5, 0, 1, 9.5, None]),
            affinities=_some(rnd, ["first-gen", "women"], 0, 1),
            trained=rnd.random() < 0.5,
            paused=rnd.random() < 0.1,
            do_not_match=frozenset(f"e{j}" for j in range(n_mentees) if rnd.random() < 0.05),
        )
        for i in range(n_mentors)
    ]
    mentees = [
        Mentee(
            id=f"e{i}",
            institution_id=rnd.choice(institutions),
            career_stage=rnd.choice(MENTEE_STAGES),
            needs=tuple(rnd.sample(HELP, rnd.randint(0, 3))),
            mentors_wanted=rnd.randint(1, max_wanted),
            specialties=_some(rnd, SPEC),
            languages=_some(rnd, ["en", "es"], 0, 1),
            meeting_modes=_some(rnd, ["video", "in-person"], 0, 2),
            utc_offset=rnd.choice([-5, 0, 1, 9.5, None]),
            affinity_preferences=_some(rnd, ["first-gen", "women"], 0, 1),
            mentor_needs=tuple(rnd.sample(HELP, rnd.randint(0, 2))),
            institution_preference=rnd.choice([None, None, "same", "cross"]),
            do_not_match=frozenset(f"m{j}" for j in range(n_mentors) if rnd.random() < 0.05),
        )
        for i in range(n_mentees)
    ]
    pairs = [(e.id, m.id) for e in mentees for m in mentors]
    forbidden = [p for p in pairs if rnd.random() < 0.15]
    third = len(forbidden) // 3
    constraints = Constraints(
        boundaries=frozenset(forbidden[:third]),
        ended=frozenset(forbidden[third : 2 * third]),
        declined=frozenset(forbidden[2 * third :]),
    )
    return mentees, mentors, constraints
