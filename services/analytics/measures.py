"""Measures of program health, computed from the projection's facts for a scope and a period.

Definitions (the README and the dashboard's help use the same words):

* A period is `[start, end)`; "as of" is `end` (the end of the last day asked for).
* Scope: a program (its mentorships and enrolments), an institution/chapter (its people, and
  the mentorships of its mentees, so chapters add up to the network without double counting),
  or a network.
* A participant counts from their first registration/enrolment in the role until a withdrawal
  that covers it (the program, or every program; the role, or both).
* A mentorship is *open* at t when it started before t and has not ended before t. Among open
  ones: *stalled* when the last meeting is more than twice the cadence ago, *never met* when
  there was no meeting and it started more than twice the cadence ago, otherwise *active*.
* Time to match: days from the mentee joining the program (else registering) to the start of
  their mentorship, for mentorships started in the period that are not rematches. Median, and
  p90 by nearest rank.
* Months are 30 days. Meetings per mentorship-month = meetings held in the period / the days
  the mentorships were open in it / 30; adherence = meetings / (open days / cadence).
* NPS = % promoters (9-10) - % detractors (0-6) of the answers that have a score.
* Equity cells with fewer than `MIN_CELL` people show no numbers at all.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, UTC
from functools import cached_property
from typing import Any, Literal

from services.analytics.projection import Mentorship, Person, Projection, Withdrawal

MIN_CELL = 5
DAY = timedelta(days=1)
MONTH_DAYS = 30
RECOGNITION_MIN_RATINGS = 3
RECOGNITION_MIN_MEAN = 4.5
NOT_STATED = "not stated"

ScopeKind = Literal["network", "institution", "program"]


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    network_id: str
    id: str | None = None  # the institution or program id


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive; the "as of" moment

    @classmethod
    def of_days(cls, first: date, last: date) -> Period:
        """The days `first`..`last` inclusive, in UTC."""
        return cls(
            datetime.combine(first, time(), UTC), datetime.combine(last + DAY, time(), UTC)
        )

    def __contains__(self, t: datetime | None) -> bool:
        return t is not None and self.start <= t < self.end


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile: the smallest value at or above 90% of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1)


def mean(values: list[float], digits: int = 2) -> float | None:
    return round(sum(values) / len(values), digits) if values else None


def share(part: int, whole: int) -> float | None:
    """A percentage with one decimal, or None when there is nothing to divide."""
    return round(100 * part / whole, 1) if whole else None


def days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


def nps(scores: list[int]) -> dict[str, Any]:
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    n = len(scores)
    return {
        "responses": n,
        "promoters": promoters,
        "passives": n - promoters - detractors,
        "detractors": detractors,
        "score": round(100 * (promoters - detractors) / n) if n else None,
    }


def _covers(w: Withdrawal, program_id: str | None, role: str) -> bool:
    return (w.program_id is None or w.program_id == program_id) and w.role in (None, role)


class Report:
    """Every measure of one scope and period; parts are computed once, on first use."""

    def __init__(self, projection: Projection, scope: Scope, period: Period) -> None:
        self.p = projection
        self.scope = scope
        self.period = period
        self.as_of = period.end

    # --- who and what is in scope --------------------------------------------------------

    def _person_in_scope(self, person: Person) -> bool:
        if person.network_id != self.scope.network_id:
            return False
        return self.scope.kind != "institution" or person.institution_id == self.scope.id

    def _mentorship_in_scope(self, m: Mentorship) -> bool:
        if m.network_id != self.scope.network_id:
            return False
        if self.scope.kind == "program":
            return m.program_id == self.scope.id
        if self.scope.kind == "institution":
            return m.mentee_institution_id == self.scope.id
        return True

    @cached_property
    def mentorships(self) -> list[Mentorship]:
        return [m for m in self.p.mentorships.values() if self._mentorship_in_scope(m)]

    def _participants(self, role: str) -> dict[str, datetime]:
        """Participants in the role as of the end of the period -> when they joined."""
        joined: dict[str, datetime] = {}
        if self.scope.kind == "program":
            for (person_id, program_id, r), at in self.p.enrolments.items():
                if program_id == self.scope.id and r == role and at < self.as_of:
                    joined[person_id] = at
        else:
            for person in self.p.people.values():
                at = person.registered.get(role)
                if at is not None and at < self.as_of and self._person_in_scope(person):
                    joined[person.person_id] = at
            for (person_id, _, r), at in self.p.enrolments.items():
                if r != role or at >= self.as_of:
                    continue
                person = self.p.people.get(person_id)
                if person is not None and self._person_in_scope(person):
                    joined[person_id] = min(at, joined.get(person_id, at))
        program = self.scope.id if self.scope.kind == "program" else None
        for person_id in list(joined):
            for w in self.p.withdrawals.get(person_id, ()):
                if (
                    (program is not None or w.program_id is None)
                    and _covers(w, program, role)
                    and joined[person_id] <= w.at < self.as_of
                ):
                    del joined[person_id]
                    break
        return joined

    @cached_property
    def mentees(self) -> dict[str, datetime]:
        return self._participants("mentee")

    @cached_property
    def mentors(self) -> dict[str, datetime]:
        return self._participants("mentor")

    @cached_property
    def open_mentorships(self) -> list[Mentorship]:
        return [m for m in self.mentorships if m.open_at(self.as_of)]

    def join_time(self, m: Mentorship) -> datetime | None:
        at = self.p.enrolments.get((m.mentee_id, m.program_id, "mentee"))
        if at is None:
            person = self.p.people.get(m.mentee_id)
            at = person.registered.get("mentee") if person else None
        return at or m.proposed_at

    def name(self, person_id: str) -> str | None:
        person = self.p.people.get(person_id)
        return None if person is None or person.erased else person.name

    def cadence(self, m: Mentorship) -> int:
        return m.cadence(self.p.programs.get(m.program_id))

    # --- enrolment -----------------------------------------------------------------------

    def enrolment(self) -> dict[str, Any]:
        capacity = 0
        for person_id in self.mentors:
            person = self.p.people.get(person_id)
            if person is not None and not person.paused[1]:
                capacity += person.capacity[1]
        used = len(self.open_mentorships)
        return {
            "mentors": len(self.mentors),
            "mentees": len(self.mentees),
            "mentors_joined_in_period": sum(1 for t in self.mentors.values() if t in self.period),
            "mentees_joined_in_period": sum(1 for t in self.mentees.values() if t in self.period),
            "mentees_per_mentor": round(len(self.mentees) / len(self.mentors), 2)
            if self.mentors else None,
            "capacity_offered": capacity,
            "capacity_used": used,
            "capacity_used_pct": share(used, capacity),
        }

    # --- matching ------------------------------------------------------------------------

    @cached_property
    def matched_mentees(self) -> set[str]:
        return {m.mentee_id for m in self.open_mentorships}

    def time_to_match(self) -> list[float]:
        values = []
        for m in self.mentorships:
            if m.started_at in self.period and not m.is_rematch:
                joined = self.join_time(m)
                if joined is not None:
                    values.append(max(0.0, days(m.started_at - joined)))  # type: ignore[operator]
        return values

    def waiting(self) -> dict[str, float]:
        """Eligible mentees without an open mentorship -> days they have been waiting."""
        last_end: dict[str, datetime] = {}
        for m in self.mentorships:
            if m.ended_at is not None and m.ended_at < self.as_of:
                last_end[m.mentee_id] = max(m.ended_at, last_end.get(m.mentee_id, m.ended_at))
        waiting = {}
        for person_id, joined in self.mentees.items():
            if person_id not in self.matched_mentees:
                since = max(joined, last_end.get(person_id, joined))
                waiting[person_id] = days(self.as_of - since)
        return waiting

    def matching(self) -> dict[str, Any]:
        eligible = len(self.mentees)
        matched = len(self.matched_mentees & self.mentees.keys())
        ttm = self.time_to_match()
        waiting = self.waiting()
        proposed = [m for m in self.mentorships if m.proposed_at in self.period]
        accepted = sum(1 for m in proposed if m.started_at is not None and m.started_at < self.as_of)
        declined = sum(1 for m in proposed if m.declined_at is not None and m.declined_at < self.as_of)
        longest = sorted(waiting.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return {
            "mentees_eligible": eligible,
            "mentees_matched": matched,
            "match_rate_pct": share(matched, eligible),
            "mentees_waiting": len(waiting),
            "waiting_days_median": median(list(waiting.values())),
            "waiting_days_max": round(max(waiting.values()), 1) if waiting else None,
            "longest_waiting": [
                {"mentee_id": pid, "name": self.name(pid), "days": round(d, 1)} for pid, d in longest
            ],
            "time_to_match_n": len(ttm),
            "time_to_match_days_median": median(ttm),
            "time_to_match_days_p90": p90(ttm),
            "proposals": len(proposed),
            "proposals_accepted": accepted,
            "proposals_declined": declined,
            "proposals_pending": len(proposed) - accepted - declined,
            "rematches": sum(1 for m in proposed if m.is_rematch),
        }

    # --- engagement ----------------------------------------------------------------------

    def status(self, m: Mentorship) -> tuple[str, datetime | None]:
        """active | stalled | never_met for an open mentorship, with its last meeting."""
        held = [x.held_at for x in m.meetings.values() if x.held_at < self.as_of]
        last = max(held) if held else None
        limit = timedelta(days=2 * self.cadence(m))
        if last is None:
            started = m.started_at or self.as_of
            return ("never_met" if self.as_of - started > limit else "active"), None
        return ("stalled" if self.as_of - last > limit else "active"), last

    def _open_days(self, m: Mentorship) -> float:
        if m.started_at is None:
            return 0.0
        lo = max(self.period.start, m.started_at)
        hi = min(self.period.end, m.ended_at or self.period.end)
        return max(0.0, days(hi - lo))

    def engagement(self) -> dict[str, Any]:
        meetings = minutes = 0
        open_days = expected = 0.0
        for m in self.mentorships:
            for x in m.meetings.values():
                if x.held_at in self.period:
                    meetings += 1
                    minutes += x.minutes
            d = self._open_days(m)
            open_days += d
            expected += d / self.cadence(m)
        counts = Counter(self.status(m)[0] for m in self.open_mentorships)
        n_open = len(self.open_mentorships)
        return {
            "mentorships_open": n_open,
            "active": counts["active"],
            "stalled": counts["stalled"],
            "never_met": counts["never_met"],
            "active_pct": share(counts["active"], n_open),
            "stalled_pct": share(counts["stalled"], n_open),
            "never_met_pct": share(counts["never_met"], n_open),
            "meetings": meetings,
            "hours": round(minutes / 60, 1),
            "mentorship_months": round(open_days / MONTH_DAYS, 2),
            "meetings_per_mentorship_month": round(meetings * MONTH_DAYS / open_days, 2)
            if open_days else None,
            "expected_meetings": round(expected, 1),
            "cadence_adherence_pct": share(meetings, expected) if expected else None,  # type: ignore[arg-type]
        }

    def stalled(self) -> list[dict[str, Any]]:
        rows = []
        for m in self.open_mentorships:
            status, last = self.status(m)
            if status == "active":
                continue
            since = last or m.started_at
            rows.append({
                "mentorship_id": m.mentorship_id,
                "program_id": m.program_id,
                "status": status,
                "mentor_id": m.mentor_id,
                "mentor_name": self.name(m.mentor_id),
                "mentee_id": m.mentee_id,
                "mentee_name": self.name(m.mentee_id),
                "started_at": m.started_at.isoformat() if m.started_at else None,
                "last_meeting_at": last.isoformat() if last else None,
                "days_without_meeting": round(days(self.as_of - since), 1) if since else None,
                "cadence_days": self.cadence(m),
            })
        return sorted(rows, key=lambda r: (-(r["days_without_meeting"] or 0), r["mentorship_id"]))

    # --- progress and outcomes -----------------------------------------------------------

    @cached_property
    def _scope_ids(self) -> set[str]:
        return {m.mentorship_id for m in self.mentorships}

    def outcomes(self) -> dict[str, Any]:
        ids = self._scope_ids
        goals = [g for g in self.p.goals.values() if g.mentorship_id in ids]
        feedback = [
            f for f in self.p.feedback.values() if f.mentorship_id in ids and f.submitted_at in self.period
        ]
        sides = {}
        for side in ("mentee", "mentor"):
            ratings = [f.satisfaction for f in feedback if f.side == side]
            dist = Counter(ratings)
            sides[side] = {
                "responses": len(ratings),
                "mean": mean(ratings),  # type: ignore[arg-type]
                "distribution": {str(k): dist[k] for k in range(1, 6)},
                "working_pct": share(sum(1 for f in feedback if f.side == side and f.working), len(ratings)),
                "nps": nps([f.recommend for f in feedback if f.side == side and f.recommend is not None]),
            }
        ended = [m for m in self.mentorships if m.ended_at in self.period]
        reasons = Counter(m.end_reason for m in ended)
        completed = reasons["completed"]
        return {
            "goals_set": sum(1 for g in goals if g.set_at in self.period),
            "goals_achieved": sum(1 for g in goals if g.achieved_at in self.period),
            "milestones": sum(
                1 for mid, at in self.p.milestones.values() if mid in ids and at in self.period
            ),
            "satisfaction": sides,
            "nps": nps([f.recommend for f in feedback if f.recommend is not None]),
            "ended": len(ended),
            "completed": completed,
            "ended_early": len(ended) - completed,
            "completion_pct": share(completed, len(ended)),
            "end_reasons": dict(sorted(reasons.items())),  # type: ignore[arg-type]
        }

    # --- mentors -------------------------------------------------------------------------

    def mentor_rows(self) -> list[dict[str, Any]]:
        ids = self._scope_ids
        load: Counter[str] = Counter(m.mentor_id for m in self.open_mentorships)
        meetings: Counter[str] = Counter()
        ratings: dict[str, list[int]] = defaultdict(list)
        by_id = {m.mentorship_id: m for m in self.mentorships}
        for m in self.mentorships:
            meetings[m.mentor_id] += sum(1 for x in m.meetings.values() if x.held_at in self.period)
        for f in self.p.feedback.values():
            if f.side == "mentee" and f.mentorship_id in ids and f.submitted_at < self.as_of:
                ratings[by_id[f.mentorship_id].mentor_id].append(f.satisfaction)
        rows = []
        for mentor_id in sorted(set(self.mentors) | set(load)):
            person = self.p.people.get(mentor_id)
            r = ratings.get(mentor_id, [])
            rows.append({
                "mentor_id": mentor_id,
                "name": self.name(mentor_id),
                "institution_id": person.institution_id if person else None,
                "capacity": person.capacity[1] if person else None,
                "mentees": load[mentor_id],
                "meetings": meetings[mentor_id],
                "ratings": len(r),
                "rating_mean": mean(r),  # type: ignore[arg-type]
                "public": bool(person and person.public_recognition[1] and not person.erased),
            })
        return rows

    def mentor_load(self) -> dict[str, Any]:
        rows = self.mentor_rows()
        dist = Counter(min(r["mentees"], 3) for r in rows)
        return {
            "mentors": len(rows),
            "mentees_per_mentor_mean": mean([r["mentees"] for r in rows]),
            "meetings_per_mentor_mean": mean([r["meetings"] for r in rows]),
            "load_distribution": {"0": dist[0], "1": dist[1], "2": dist[2], "3+": dist[3]},
            "recognised": self.recognition(rows),
        }

    def recognition(self, rows: list[dict[str, Any]] | None = None, public_only: bool = False) -> list[dict[str, Any]]:
        """Mentors whose mentees rate them highly (enough ratings, a high mean)."""
        rows = self.mentor_rows() if rows is None else rows
        chosen = [
            r for r in rows
            if r["ratings"] >= RECOGNITION_MIN_RATINGS and r["rating_mean"] >= RECOGNITION_MIN_MEAN
            and (r["public"] or not public_only)
        ]
        return sorted(chosen, key=lambda r: (-r["rating_mean"], -r["ratings"], r["mentor_id"]))

    # --- equity --------------------------------------------------------------------------

    def equity(self) -> list[dict[str, Any]]:
        """Match rate, time to match and satisfaction per value of each identity attribute."""
        first_start: dict[str, datetime] = {}
        join: dict[str, datetime] = {}
        for m in self.mentorships:
            if m.started_at is not None and m.started_at < self.as_of and not m.is_rematch:
                if m.mentee_id not in first_start or m.started_at < first_start[m.mentee_id]:
                    first_start[m.mentee_id] = m.started_at
                    joined = self.join_time(m)
                    if joined is not None:
                        join[m.mentee_id] = joined
        by_mentorship = {m.mentorship_id: m.mentee_id for m in self.mentorships}
        ratings: dict[str, list[int]] = defaultdict(list)
        for f in self.p.feedback.values():
            if f.side == "mentee" and f.mentorship_id in by_mentorship and f.submitted_at < self.as_of:
                ratings[by_mentorship[f.mentorship_id]].append(f.satisfaction)
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        keys = sorted({
            k for pid in self.mentees for k in self._attributes(pid)
        })
        for pid in self.mentees:
            attrs = self._attributes(pid)
            for k in keys:
                groups[(k, attrs.get(k, NOT_STATED))].append(pid)
        cells = []
        for (attribute, value), people in sorted(groups.items()):
            cell: dict[str, Any] = {"attribute": attribute, "value": value}
            if len(people) < MIN_CELL:
                cells.append({**cell, "suppressed": True, "mentees": None, "match_rate_pct": None,
                              "time_to_match_days_median": None, "satisfaction_mean": None})
                continue
            matched = sum(1 for pid in people if pid in self.matched_mentees)
            ttm = [max(0.0, days(first_start[pid] - join[pid])) for pid in people if pid in join]
            raters = [pid for pid in people if ratings.get(pid)]
            sat = [s for pid in raters for s in ratings[pid]]
            cells.append({
                **cell,
                "suppressed": False,
                "mentees": len(people),
                "match_rate_pct": share(matched, len(people)),
                "time_to_match_days_median": median(ttm) if len(ttm) >= MIN_CELL else None,
                "satisfaction_mean": mean(sat) if len(raters) >= MIN_CELL else None,  # type: ignore[arg-type]
            })
        return cells

    def _attributes(self, person_id: str) -> dict[str, str]:
        person = self.p.people.get(person_id)
        return person.attributes[1] if person and not person.erased else {}

    # --- weekly series -------------------------------------------------------------------

    def weeks(self) -> list[datetime]:
        starts, t = [], self.period.start
        while t < self.period.end:
            starts.append(t)
            t += timedelta(days=7)
        return starts

    def series(self) -> list[dict[str, Any]]:
        starts = self.weeks()
        ends = [min(s + timedelta(days=7), self.period.end) for s in starts]
        n = len(starts)
        rows: list[dict[str, Any]] = [
            {"week_start": s.date().isoformat(), "mentees_joined": 0, "mentors_joined": 0,
             "proposals": 0, "started": 0, "ended": 0, "meetings": 0, "minutes": 0,
             "ratings": []} for s in starts
        ]

        def week(t: datetime | None) -> int | None:
            if t is None or not (self.period.start <= t < self.period.end):
                return None
            return int(days(t - self.period.start) // 7)

        def bump(t: datetime | None, name: str, by: int = 1) -> None:
            w = week(t)
            if w is not None:
                rows[w][name] += by

        for t in self.mentees.values():
            bump(t, "mentees_joined")
        for t in self.mentors.values():
            bump(t, "mentors_joined")
        delta = [0] * (n + 1)
        for m in self.mentorships:
            bump(m.proposed_at, "proposals")
            bump(m.started_at, "started")
            bump(m.ended_at, "ended")
            for x in m.meetings.values():
                w = week(x.held_at)
                if w is not None:
                    rows[w]["meetings"] += 1
                    rows[w]["minutes"] += x.minutes
            if m.started_at is not None:
                first = bisect_right(ends, m.started_at)  # first week ending after the start
                last = n if m.ended_at is None else bisect_right(ends, m.ended_at)
                if first < last:
                    delta[first] += 1
                    delta[last] -= 1
        ids = self._scope_ids
        for f in self.p.feedback.values():
            w = week(f.submitted_at)
            if w is not None and f.mentorship_id in ids:
                rows[w]["ratings"].append(f.satisfaction)
        running = 0
        for i, row in enumerate(rows):
            running += delta[i]
            row["open_mentorships"] = running
            row["hours"] = round(row.pop("minutes") / 60, 1)
            row["satisfaction_mean"] = mean(row.pop("ratings"))
        return rows

    # --- roll-up -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "enrolment": self.enrolment(),
            "matching": self.matching(),
            "engagement": self.engagement(),
            "outcomes": self.outcomes(),
            "mentors": self.mentor_load(),
        }


def chapters(projection: Projection, network_id: str) -> list[str]:
    """Institutions of the network that have people or mentees in mentorships."""
    found = {p.institution_id for p in projection.people.values() if p.network_id == network_id}
    found |= {
        m.mentee_institution_id for m in projection.mentorships.values() if m.network_id == network_id
    }
    return sorted(i for i in found if i)
