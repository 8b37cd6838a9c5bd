"""Ranked-preference matching: mentee-proposing deferred acceptance with mentor capacities (the
residency-match algorithm, Gale–Shapley / Roth), and a check for blocking pairs (pure code).

A pair is acceptable only when each ranks the other. The result is stable and mentee-optimal:
no mentee does better in any stable matching.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.matching.assignment import Assignment
from services.matching.scoring import (
    NO_CONSTRAINTS,
    Constraints,
    Mentee,
    Mentor,
    Program,
    explain,
    ineligibility,
)


def deferred_acceptance(
    mentee_prefs: Mapping[str, Sequence[str]],
    mentor_prefs: Mapping[str, Sequence[str]],
    capacities: Mapping[str, int],
) -> dict[str, str | None]:
    """Each mentee's mentor (or None). Mentees propose down their lists; a full mentor keeps the
    `capacity` mentees it ranks best and releases the worst."""
    rank: dict[str, dict[str, int]] = {
        mentor: {mentee: r for r, mentee in enumerate(prefs)} for mentor, prefs in mentor_prefs.items()
    }
    # Only mutually acceptable pairs: drop mentors who do not rank the mentee, or have no room.
    lists = {
        mentee: [
            m
            for m in prefs
            if capacities.get(m, 0) > 0 and mentee in rank.get(m, ())
        ]
        for mentee, prefs in mentee_prefs.items()
    }
    held: dict[str, list[tuple[int, str]]] = {}  # mentor -> max-heap of (-rank, mentee)
    next_choice = dict.fromkeys(lists, 0)
    match: dict[str, str | None] = dict.fromkeys(mentee_prefs)
    free = list(reversed(list(lists)))
    while free:
        mentee = free.pop()
        prefs = lists[mentee]
        i = next_choice[mentee]
        while i < len(prefs):
            mentor = prefs[i]
            i += 1
            r = rank[mentor][mentee]
            heap = held.setdefault(mentor, [])
            if len(heap) < capacities[mentor]:
                heapq.heappush(heap, (-r, mentee))
                match[mentee] = mentor
                break
            worst_rank = -heap[0][0]
            if r < worst_rank:
                _, rejected = heapq.heapreplace(heap, (-r, mentee))
                match[mentee] = mentor
                match[rejected] = None
                free.append(rejected)
                break
        next_choice[mentee] = i
    return match


def blocking_pairs(
    match: Mapping[str, str | None],
    mentee_prefs: Mapping[str, Sequence[str]],
    mentor_prefs: Mapping[str, Sequence[str]],
    capacities: Mapping[str, int],
) -> list[tuple[str, str]]:
    """Mutually acceptable (mentee, mentor) pairs that would both rather be together: the mentee
    is unmatched or prefers the mentor to its own, and the mentor has room or prefers the mentee to
    one it holds. Empty means the matching is stable."""
    rank = {m: {e: r for r, e in enumerate(p)} for m, p in mentor_prefs.items()}
    holding: dict[str, list[str]] = {}
    for mentee, mentor in match.items():
        if mentor is not None:
            holding.setdefault(mentor, []).append(mentee)
    blocking = []
    for mentee, prefs in mentee_prefs.items():
        current = match.get(mentee)
        for mentor in prefs:
            if mentor == current:
                break  # everything after is worse for the mentee
            if mentee not in rank.get(mentor, {}) or capacities.get(mentor, 0) <= 0:
                continue
            held = holding.get(mentor, [])
            if len(held) < capacities[mentor] or any(
                rank[mentor][mentee] < rank[mentor][other] for other in held
            ):
                blocking.append((mentee, mentor))
    return blocking


def is_valid(
    match: Mapping[str, str | None],
    mentee_prefs: Mapping[str, Sequence[str]],
    mentor_prefs: Mapping[str, Sequence[str]],
    capacities: Mapping[str, int],
) -> bool:
    """Every pair is mutually acceptable and no mentor is over capacity."""
    load: dict[str, int] = {}
    for mentee, mentor in match.items():
        if mentor is None:
            continue
        if mentor not in mentee_prefs.get(mentee, ()) or mentee not in mentor_prefs.get(mentor, ()):
            return False
        load[mentor] = load.get(mentor, 0) + 1
    return all(n <= capacities.get(m, 0) for m, n in load.items())


@dataclass
class StableResult:
    """A ranked-preference match: each mentee's mentor (None when unmatched), the pairs the
    hard constraints removed from the lists, and the stability check of the result."""

    match: dict[str, str | None]
    assignments: list[Assignment]
    removed: list[tuple[str, str, str]]  # (mentee, mentor, why) dropped before matching
    blocking: list[tuple[str, str]]

    @property
    def stable(self) -> bool:
        return not self.blocking


def stable_match(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    mentee_prefs: Mapping[str, Sequence[str]],
    mentor_prefs: Mapping[str, Sequence[str]],
    program: Program = Program(),
    constraints: Constraints = NO_CONSTRAINTS,
) -> StableResult:
    """Deferred acceptance on the ranked lists of a program, after the hard constraints (capacity,
    pause, membership, boundaries, ended / declined / excluded pairs, career stage) have struck
    the pairs they forbid from both sides' lists; capacities are the mentors' free places. Every
    pair comes with its score and explanation, and the result is checked for blocking pairs."""
    by_mentee = {e.id: e for e in mentees}
    by_mentor = {m.id: m for m in mentors}
    removed: list[tuple[str, str, str]] = []

    def allowed(mentee_id: str, mentor_id: str) -> bool:
        e, m = by_mentee.get(mentee_id), by_mentor.get(mentor_id)
        if e is None or m is None:
            return False
        why = ineligibility(e, m, program, constraints)
        if why:
            removed.append((mentee_id, mentor_id, why))
        return why is None

    e_prefs = {e: [m for m in prefs if allowed(e, m)] for e, prefs in mentee_prefs.items()}
    acceptable = {(e, m) for e, prefs in e_prefs.items() for m in prefs}
    m_prefs = {m: [e for e in prefs if (e, m) in acceptable] for m, prefs in mentor_prefs.items()}
    capacities = {m.id: max(0, m.capacity) for m in mentors}
    match = deferred_acceptance(e_prefs, m_prefs, capacities)
    assignments = []
    for mentee_id, mentor_id in match.items():
        if mentor_id is not None:
            x = explain(by_mentee[mentee_id], by_mentor[mentor_id], program, constraints)
            assignments.append(Assignment(mentee_id, mentor_id, None, x.score, x))
    blocking = blocking_pairs(match, e_prefs, m_prefs, capacities)
    return StableResult(match, assignments, removed, blocking)
