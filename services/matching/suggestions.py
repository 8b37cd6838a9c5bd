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
    forbidden_by_mentee,
    ineligibility,
    score_points,
)
from services.matching.table import MentorTable


def suggest(
    mentee: Mentee,
    mentors: Sequence[Mentor],
    program: Program = Program(),
    constraints: Constraints = NO_CONSTRAINTS,
    k: int = 10,
    table: MentorTable | None = None,
) -> list[Explanation]:
    """Eligible mentors by descending score in integer points, the number shown (ties by mentor
    id), at most k, explained.

    `table` (a `MentorTable` of the same mentors and program, built once) scores every mentor in
    one vectorised pass, for browsing large programs."""
    if k <= 0:
        return []
    if table is not None:
        import numpy as np

        from services.matching.blocks import points_array

        ok = table.eligible(mentee, forbidden_by_mentee(constraints).get(mentee.id, ()))
        idx = np.flatnonzero(ok)
        pts = points_array(table.scores(mentee)[idx])
        if len(idx) > k:
            cut = np.partition(pts, len(pts) - k)[len(pts) - k]
            idx = idx[pts >= cut]  # ties at the cut are settled by id below
        chosen = [table.mentors[i] for i in idx.tolist()]
    else:
        chosen = [m for m in mentors if ineligibility(mentee, m, program, constraints) is None]
    scored = ((score_points(mentee, m, program), m) for m in chosen)
    best = heapq.nsmallest(k, scored, key=lambda sm: (-sm[0], sm[1].id))
    return [explain(mentee, m, program, constraints) for _, m in best]
