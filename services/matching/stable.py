"""Ranked-preference matching: mentee-proposing deferred acceptance with mentor capacities (the
residency-match algorithm, Gale–Shapley / Roth), and a check for blocking pairs (pure code).

A pair is acceptable only when each ranks the other. The result is stable and mentee-optimal:
no mentee does better in any stable matching.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


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
