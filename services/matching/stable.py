"""Ranked-preference matching: mentee-proposing deferred acceptance with mentor capacities (the
residency-match algorithm, Gale–Shapley / Roth), and a check for blocking pairs (pure code).

A pair is acceptable only when each ranks the other. With one mentor per mentee the result is
stable and mentee-optimal: no mentee and mentor would both rather be together, and no mentee
does better in any stable matching.

A mentee who wants several mentors (one per need, `Mentee.slot_needs`) is matched in rounds, one
wanted mentor per round: round r runs deferred acceptance over every mentee's r-th slot (its
ranked list cut to the mentors offering that slot's need, minus the mentors it already has) and
the places left after the earlier rounds. What holds is **round-wise stability**: within each
round no mentee and mentor offering that round's need, with a place left after the earlier
rounds, would both rather be matched to each other than to their match of the round, and the
round's match is mentee-optimal among such matchings. Earlier rounds come first: nobody's second
mentor ever takes a place someone needs for their first, and a mentor never drops a mentee of an
earlier round for one of a later round. It is not pairwise stability of the whole many-to-many
matching (a mentor may prefer a second-round mentee to a first-round one it keeps), which would
let second mentors displace first ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

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


def _ranks(mentor_prefs: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    return {m: dict(zip(prefs, range(len(prefs)))) for m, prefs in mentor_prefs.items()}


class _Indexed:
    """Both sides' lists as integer arrays: every entry of a mentee's list carries the rank its
    mentor gives the mentee (-1: the mentor does not rank it), found once by a sorted join
    rather than a dictionary lookup per proposal."""

    def __init__(
        self,
        mentee_names: Sequence[str],
        mentor_prefs: Mapping[str, Sequence[str]],
        capacities: Mapping[str, int],
    ) -> None:
        self.mentee_names = list(mentee_names)
        mentee_index = {e: i for i, e in enumerate(self.mentee_names)}
        names = list(dict.fromkeys([*capacities, *mentor_prefs]))
        self.mentor_index = {m: j for j, m in enumerate(names)}
        self.mentor_names = names
        self.capacity = [max(0, int(capacities.get(m, 0))) for m in names]
        n_e = self._n_e = max(1, len(self.mentee_names))
        count = np.array([len(p) for p in mentor_prefs.values()], dtype=np.int64)
        flat = list(chain.from_iterable(mentor_prefs.values()))
        mentee = np.fromiter(
            map(mentee_index.get, flat, repeat(-1, len(flat))), dtype=np.int64, count=len(flat)
        )
        mentor = np.repeat(
            np.array([self.mentor_index[m] for m in mentor_prefs], dtype=np.int64), count
        )
        rank = np.arange(len(flat)) - np.repeat(np.cumsum(count) - count, count)
        known = mentee >= 0
        keys = mentor[known] * n_e + mentee[known]
        order = np.argsort(keys, kind="stable")
        self._keys, self._ranks = keys[order], rank[known][order]

    def lists(self, lists: Sequence[Sequence[str]]) -> tuple[list[int], list[int], list[int]]:
        """(offsets, mentor per entry, rank per entry) of one ranked list per mentee."""
        count = [len(x) for x in lists]
        flat = list(chain.from_iterable(lists))
        mentor = np.fromiter(
            map(self.mentor_index.get, flat, repeat(-1, len(flat))), dtype=np.int64, count=len(flat)
        )
        owner = np.repeat(np.arange(len(lists), dtype=np.int64), count)
        rank = np.full(len(mentor), -1, dtype=np.int64)
        known = mentor >= 0
        if len(self._keys) and known.any():
            key = mentor[known] * self._n_e + owner[known]
            pos = np.minimum(np.searchsorted(self._keys, key), len(self._keys) - 1)
            hit = self._keys[pos] == key
            rank[np.flatnonzero(known)[hit]] = self._ranks[pos[hit]]
        offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        return offsets.tolist(), mentor.tolist(), rank.tolist()


def _propose(
    offsets: list[int], mentor_at: list[int], rank_at: list[int], room: list[int]
) -> list[int]:
    """One run of deferred acceptance over integer lists (mentee i's entries are
    `offsets[i]:offsets[i+1]`); `room` (places per mentor) is left as it ends up. Returns each
    mentee's mentor, -1 for none. A mentor that does not rank the mentee, or has no place, is
    skipped where it is met."""
    n_e = len(offsets) - 1
    held: list[list[tuple[int, int]] | None] = [None] * len(room)  # max-heaps of (-rank, mentee)
    nxt = offsets[:-1]
    match = [-1] * n_e
    free = list(range(n_e - 1, -1, -1))
    push, replace = heapq.heappush, heapq.heapreplace
    while free:
        e = free.pop()
        i, end = nxt[e], offsets[e + 1]
        while i < end:
            j = mentor_at[i]
            r = rank_at[i]
            i += 1
            if r < 0:
                continue
            places = room[j]
            if places <= 0:
                continue
            heap = held[j]
            if heap is None:
                heap = held[j] = []
            if len(heap) < places:
                push(heap, (-r, e))
                match[e] = j
                break
            if r < -heap[0][0]:
                _, rejected = replace(heap, (-r, e))
                match[e] = j
                match[rejected] = -1
                free.append(rejected)
                break
        nxt[e] = i
    for j, heap in enumerate(held):
        if heap:
            room[j] -= len(heap)
    return match


def deferred_acceptance(
    mentee_prefs: Mapping[str, Sequence[str]],
    mentor_prefs: Mapping[str, Sequence[str]],
    capacities: Mapping[str, int],
) -> dict[str, str | None]:
    """Each mentee's mentor (or None). Mentees propose down their lists; a full mentor keeps the
    `capacity` mentees it ranks best and releases the worst."""
    got, _ = deferred_acceptance_by_rounds(
        {e: [prefs] for e, prefs in mentee_prefs.items()}, mentor_prefs, capacities
    )
    return {e: mentors[0] for e, mentors in got.items()}


def deferred_acceptance_by_rounds(
    mentee_lists: Mapping[str, Sequence[Sequence[str]]],
    mentor_prefs: Mapping[str, Sequence[str]],
    capacities: Mapping[str, int],
) -> tuple[dict[str, list[str | None]], list[dict[str, int]]]:
    """Several mentors per mentee: `mentee_lists[e][r]` is the ranked list of e's r-th wanted
    mentor. Round r matches every mentee's r-th slot by deferred acceptance, over the places
    left by the earlier rounds and without the mentors the mentee already has. Returns each
    mentee's mentor per slot (None: unmatched), and the places each round started with (for
    `blocking_pairs_by_rounds`)."""
    names = list(mentee_lists)
    index = _Indexed(names, mentor_prefs, capacities)
    room = list(index.capacity)
    mentors: dict[str, list[str | None]] = {e: [] for e in names}
    rooms: list[dict[str, int]] = []
    rounds = max((len(v) for v in mentee_lists.values()), default=0)
    mentor_names = index.mentor_names
    for r in range(rounds):
        taking = [e for e in names if r < len(mentee_lists[e])]
        lists = []
        for e in taking:
            mine = [m for m in mentors[e] if m is not None]
            ranked = mentee_lists[e][r]
            lists.append([m for m in ranked if m not in mine] if mine else ranked)
        sub = index if len(taking) == len(names) else _Indexed(taking, mentor_prefs, capacities)
        rooms.append(dict(zip(mentor_names, room)))
        for e, j in zip(taking, _propose(*sub.lists(lists), room)):
            mentors[e].append(mentor_names[j] if j >= 0 else None)
    return mentors, rooms


def blocking_pairs(
    match: Mapping[str, str | None],
    mentee_prefs: Mapping[str, Sequence[str]],
    mentor_prefs: Mapping[str, Sequence[str]],
    capacities: Mapping[str, int],
) -> list[tuple[str, str]]:
    """Mutually acceptable (mentee, mentor) pairs that would both rather be together: the mentee
    is unmatched or prefers the mentor to its own, and the mentor has room or prefers the mentee to
    one it holds. Empty means the matching is stable."""
    rank = _ranks(mentor_prefs)
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


def blocking_pairs_by_rounds(
    mentors: Mapping[str, Sequence[str | None]],
    mentee_lists: Mapping[str, Sequence[Sequence[str]]],
    mentor_prefs: Mapping[str, Sequence[str]],
    rooms: Sequence[Mapping[str, int]],
) -> list[tuple[int, str, str]]:
    """(round, mentee, mentor) blocking pairs of any round, given the places it started with and
    the mentors each mentee had from earlier rounds. Empty means round-wise stable."""
    out = []
    for r, room in enumerate(rooms):
        lists, match = {}, {}
        for e, slots in mentee_lists.items():
            if r >= len(slots):
                continue
            earlier = {m for m in mentors[e][:r] if m is not None}
            lists[e] = [m for m in slots[r] if m not in earlier]
            match[e] = mentors[e][r]
        out += [(r, e, m) for e, m in blocking_pairs(match, lists, mentor_prefs, room)]
    return out


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
    """A ranked-preference match: each mentee's mentor per wanted mentor (None: not matched;
    one entry for a mentee wanting one), the pairs the hard constraints removed from the lists,
    and the round-wise stability check of the result."""

    match: dict[str, list[str | None]]
    assignments: list[Assignment]
    removed: list[tuple[str, str, str]]  # (mentee, mentor, why) dropped before matching
    blocking: list[tuple[int, str, str]]  # (round, mentee, mentor)

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
    the pairs they forbid from both sides' lists; capacities are the mentors' free places. A
    mentee wanting several mentors gets one per round, each for one of its needs (a mentor
    offering it; any mentor for a slot without a named need). Every pair comes with its score
    and explanation, and the result is checked for blocking pairs round by round."""
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

    e_prefs = {
        e: [m for m in dict.fromkeys(prefs) if allowed(e, m)]
        for e, prefs in mentee_prefs.items()
        if e in by_mentee
    }
    acceptable = {(e, m) for e, prefs in e_prefs.items() for m in prefs}
    m_prefs = {m: [e for e in prefs if (e, m) in acceptable] for m, prefs in mentor_prefs.items()}
    capacities = {m.id: max(0, m.capacity) for m in mentors}
    slot_needs = {e: by_mentee[e].slot_needs() for e in e_prefs}
    lists = {
        e: [
            prefs if need is None else [m for m in prefs if need in by_mentor[m].help_offered]
            for need in slot_needs[e]
        ]
        for e, prefs in e_prefs.items()
    }
    match, rooms = deferred_acceptance_by_rounds(lists, m_prefs, capacities)
    assignments = []
    for mentee_id, got in match.items():
        for r, mentor_id in enumerate(got):
            if mentor_id is None:
                continue
            x = explain(by_mentee[mentee_id], by_mentor[mentor_id], program, constraints)
            need = slot_needs[mentee_id][r]
            assignments.append(Assignment(mentee_id, mentor_id, need, x.points, x))
    blocking = blocking_pairs_by_rounds(match, lists, m_prefs, rooms)
    return StableResult(match, assignments, removed, blocking)
