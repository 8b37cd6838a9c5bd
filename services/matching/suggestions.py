"""Self-match browsing: the best k mentors for one mentee, each with its explanation (pure code)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Explanation,
    Mentee,
    Mentor,
    Program,
    explain,
    ineligibility,
    score_value,
)


def suggest(
    mentee: Mentee,
    mentors: Sequence[Mentor],
    program: Program = Program(),
    constraints: Constraints = NO_CONSTRAINTS,
    k: int = 10,
) -> list[Explanation]:
    """Eligible mentors by descending score (ties by mentor id), at most k, explained."""
    if k <= 0:
        return []
    scored = (
        (score_value(mentee, m, program), m)
        for m in mentors
        if ineligibility(mentee, m, program, constraints) is None
    )
    best = heapq.nsmallest(k, scored, key=lambda sm: (-sm[0], sm[1].id))
    return [explain(mentee, m, program, constraints) for _, m in best]
