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
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Literal

import numpy as np

from services.analytics.frame import frame_of
from services.analytics.projection import Mentorship, Projection, Withdrawal, institution_key

MIN_CELL = 5
DAY = timedelta(days=1)
MONTH_DAYS = 30
RECOGNITION_MIN_RATINGS = 3
RECOGNITION_MIN_MEAN = 4.5
RECOGNITION_LISTED = 20  # in the summary; the mentor list has every row
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


def share(part: int, whole: int) -> float | None:
    """A percentage with one decimal, or None when there is nothing to divide."""
    return round(100 * part / whole, 1) if whole else None


def days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


def nps(scores: list[int] | np.ndarray) -> dict[str, Any]:
    scores = np.asarray(scores)
    promoters = int((scores >= 9).sum())
    detractors = int((scores <= 6).sum())
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


WEEK = 7 * 86400
SECONDS_PER_DAY = 86400.0


def _median(values: np.ndarray) -> float | None:
    return round(float(np.median(values)), 1) if len(values) else None


def _p90(values: np.ndarray) -> float | None:
    if not len(values):
        return None
    return round(float(np.sort(values)[math.ceil(0.9 * len(values)) - 1]), 1)


def _members(p: Projection, key: tuple[str, str]) -> np.ndarray:
    """Codes of the people of a network or institution."""
    return _as_array(p, "people", p.codes_by.get(key, []))


def _as_array(p: Projection, kind: str, values: list[int]) -> np.ndarray:
    """An index list as an array, cached until the list changes (they only grow, except when
    a person moves institution, which `moves` counts)."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    cache = p.__dict__.setdefault("_index_arrays", {})
    key = (kind, id(values))
    hit = cache.get(key)
    if hit is None or hit[0] != (len(values), p.moves):
        hit = cache[key] = ((len(values), p.moves), np.asarray(values, dtype=np.int64))
    return hit[1]


def _in(t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (t >= lo) & (t < hi)  # NaN (never happened) is in no period


class Report:
    """Every measure of one scope and period; parts are computed once, on first use.

    Works on the projection's columns (`services.analytics.frame`) masked by scope, so the
    network and each of its chapters cost a few vector operations each.
    """

    def __init__(self, projection: Projection, scope: Scope, period: Period) -> None:
        self.p = projection
        self.scope = scope
        self.period = period
        self.as_of = period.end
        self.t0, self.t1 = period.start.timestamp(), period.end.timestamp()
        self.f = frame_of(projection)

    # --- who and what is in scope --------------------------------------------------------

    @cached_property
    def _key(self) -> tuple[str, str]:
        if self.scope.kind == "network":
            return ("network", self.scope.network_id)
        if self.scope.kind == "institution":
            return institution_key(self.scope.network_id, self.scope.id or "")
        return ("program", self.scope.id or "")

    @cached_property
    def mentorships(self) -> list[Mentorship]:
        key = self._key
        everything = self.p.mentorship_list
        return [
            everything[i] for i in self.p.mentorships_by.get(key, ())
            if everything[i].network_id == self.scope.network_id
        ]

    @cached_property
    def mask(self) -> np.ndarray:
        key = self._key
        mask = np.zeros(len(self.p.mentorship_list), dtype=bool)
        mask[_as_array(self.p, "mentorships", self.p.mentorships_by.get(key, []))] = True
        return mask

    def _participants(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Participants in the role as of the end of the period: (person codes, joined)."""
        f = self.f
        if self.scope.kind == "program":
            enrolled = self.p.enrolments_by_program.get(self.scope.id or "", {})
            pairs = [(f.code[pid], at.timestamp()) for (pid, r), at in enrolled.items() if r == role]
            codes = np.array([c for c, _ in pairs], dtype=np.int64)
            joined = np.array([t for _, t in pairs], dtype=float)
            keep = joined < self.t1
            for i, (c, t) in enumerate(pairs):
                for w in self.p.withdrawals.get(f.person_ids[c], ()):
                    if _covers(w, self.scope.id, role) and t <= w.at.timestamp() < self.t1:
                        keep[i] = False
            return codes[keep], joined[keep]
        key = self._key
        codes = _members(self.p, key)
        joined = f.joined[role][codes]
        keep = (joined < self.t1) & ~(f.left[role][codes] < self.t1)
        return codes[keep], joined[keep]

    @cached_property
    def mentees(self) -> tuple[np.ndarray, np.ndarray]:
        return self._participants("mentee")

    @cached_property
    def mentors(self) -> tuple[np.ndarray, np.ndarray]:
        return self._participants("mentor")

    @cached_property
    def open(self) -> np.ndarray:
        """Mentorships of the scope open at the end of the period."""
        return self.mask & (self.f.started < self.t1) & ~(self.f.ended < self.t1)

    @cached_property
    def matched(self) -> np.ndarray:
        """Per person code: has an open mentorship (as mentee) in scope."""
        matched = np.zeros(len(self.f.person_ids), dtype=bool)
        matched[self.f.mentee[self.open]] = True
        return matched

    def name(self, person_id: str) -> str | None:
        person = self.p.people.get(person_id)
        return None if person is None or person.erased else person.name

    def cadence(self, m: Mentorship) -> int:
        return m.cadence(self.p.programs.get(m.program_id))

    # --- the big families as columns -----------------------------------------------------

    @cached_property
    def _per_mentorship(self) -> dict[str, np.ndarray]:
        """Per mentorship, for this period whatever the scope: meetings, minutes, last meeting,
        mentee ratings (count, sum) up to the end. Shared by the network and its chapters."""
        cache = self.p.__dict__.setdefault("_period_cache", {})
        key = (self.p.version, self.t0, self.t1)
        hit = cache.get(key)
        if hit is None:
            n = len(self.p.mentorship_list)
            cols = self.p.meeting_cols.arrays()
            t, owner = cols["t"], cols["m"]
            inside = _in(t, self.t0, self.t1)
            before = t < self.t1
            last = np.full(n, -np.inf)
            np.maximum.at(last, owner[before], t[before])
            fb = self.p.feedback_cols.arrays()
            rated = (fb["t"] < self.t1) & (fb["mentor_side"] == 0)
            hit = {
                "meetings": np.bincount(owner[inside], minlength=n),
                "minutes": np.bincount(owner[inside], weights=cols["minutes"][inside], minlength=n),
                "last": last,
                "rating_n": np.bincount(fb["m"][rated], minlength=n),
                "rating_sum": np.bincount(fb["m"][rated], weights=fb["satisfaction"][rated], minlength=n),
            }
            if len(cache) >= 8:
                cache.clear()
            cache[key] = hit
        return hit

    def _rows_in_scope(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rows of a column family (meetings, check-ins) in scope and in the period."""
        owner = cols["m"]
        if not len(owner):
            return {name: values[:0] for name, values in cols.items()}
        keep = self.mask[owner] & _in(cols["t"], self.t0, self.t1)
        return {name: values[keep] for name, values in cols.items()}

    @cached_property
    def _meeting_rows(self) -> dict[str, np.ndarray]:
        return self._rows_in_scope(self.p.meeting_cols.arrays())

    @cached_property
    def _feedback_rows(self) -> dict[str, np.ndarray]:
        return self._rows_in_scope(self.p.feedback_cols.arrays())

    # --- enrolment -----------------------------------------------------------------------

    def enrolment(self) -> dict[str, Any]:
        f = self.f
        mentor_codes, mentor_joined = self.mentors
        mentee_codes, mentee_joined = self.mentees
        capacity = int(np.where(f.paused[mentor_codes], 0, f.capacity[mentor_codes]).sum())
        used = int(self.open.sum())
        n_mentors, n_mentees = len(mentor_codes), len(mentee_codes)
        return {
            "mentors": n_mentors,
            "mentees": n_mentees,
            "mentors_joined_in_period": int(_in(mentor_joined, self.t0, self.t1).sum()),
            "mentees_joined_in_period": int(_in(mentee_joined, self.t0, self.t1).sum()),
            "mentees_per_mentor": round(n_mentees / n_mentors, 2) if n_mentors else None,
            "capacity_offered": capacity,
            "capacity_used": used,
            "capacity_used_pct": share(used, capacity),
        }

    # --- matching ------------------------------------------------------------------------

    def time_to_match(self) -> np.ndarray:
        f = self.f
        chosen = self.mask & _in(f.started, self.t0, self.t1) & ~f.rematch & ~np.isnan(f.join)
        return np.maximum(0.0, (f.started[chosen] - f.join[chosen]) / SECONDS_PER_DAY)

    def waiting(self) -> tuple[np.ndarray, np.ndarray]:
        """Eligible mentees without an open mentorship: (person codes, days waiting)."""
        f = self.f
        ended = self.mask & (f.ended < self.t1)
        last_end = np.full(len(f.person_ids), -np.inf)
        np.maximum.at(last_end, f.mentee[ended], f.ended[ended])
        codes, joined = self.mentees
        waiting = ~self.matched[codes]
        since = np.maximum(joined[waiting], last_end[codes[waiting]])
        return codes[waiting], (self.t1 - since) / SECONDS_PER_DAY

    def matching(self) -> dict[str, Any]:
        f = self.f
        codes, _ = self.mentees
        eligible = len(codes)
        matched = int(self.matched[codes].sum())
        ttm = self.time_to_match()
        waiting_codes, waiting_days = self.waiting()
        proposed = self.mask & _in(f.proposed, self.t0, self.t1)
        accepted = int((proposed & (f.started < self.t1)).sum())
        declined = int((proposed & (f.declined < self.t1)).sum())
        n_proposed = int(proposed.sum())
        if len(waiting_days) > 10:  # the ten longest, ties at the tenth all considered
            top = waiting_days >= np.partition(waiting_days, -10)[-10]
        else:
            top = np.ones(len(waiting_days), dtype=bool)
        order = sorted(
            zip(waiting_days[top].tolist(), (f.person_ids[c] for c in waiting_codes[top].tolist()), strict=True),
            key=lambda x: (-x[0], x[1]),
        )[:10]
        return {
            "mentees_eligible": eligible,
            "mentees_matched": matched,
            "match_rate_pct": share(matched, eligible),
            "mentees_waiting": len(waiting_codes),
            "waiting_days_median": _median(waiting_days),
            "waiting_days_max": round(float(waiting_days.max()), 1) if len(waiting_days) else None,
            "longest_waiting": [
                {"mentee_id": pid, "name": self.name(pid), "days": round(d, 1)} for d, pid in order
            ],
            "time_to_match_n": len(ttm),
            "time_to_match_days_median": _median(ttm),
            "time_to_match_days_p90": _p90(ttm),
            "proposals": n_proposed,
            "proposals_accepted": accepted,
            "proposals_declined": declined,
            "proposals_pending": n_proposed - accepted - declined,
            "rematches": int((proposed & f.rematch).sum()),
        }

    # --- engagement ----------------------------------------------------------------------

    @cached_property
    def _status(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of open mentorships that are stalled and that never met."""
        f = self.f
        last = self._per_mentorship["last"]
        limit = 2 * f.cadence * SECONDS_PER_DAY
        met = last > -np.inf
        stalled = self.open & met & (self.t1 - last > limit)
        never = self.open & ~met & (self.t1 - f.started > limit)
        return stalled, never

    def engagement(self) -> dict[str, Any]:
        f = self.f
        per = self._per_mentorship
        meetings = int(per["meetings"][self.mask].sum())
        minutes = float(per["minutes"][self.mask].sum())
        started = self.mask & ~np.isnan(f.started)
        lo = np.maximum(self.t0, f.started[started])
        hi = np.minimum(self.t1, np.where(np.isnan(f.ended[started]), self.t1, f.ended[started]))
        open_days = np.maximum(0.0, hi - lo) / SECONDS_PER_DAY
        total_days = float(open_days.sum())
        expected = float((open_days / f.cadence[started]).sum())
        stalled, never = self._status
        n_open = int(self.open.sum())
        n_stalled, n_never = int(stalled.sum()), int(never.sum())
        n_active = n_open - n_stalled - n_never
        return {
            "mentorships_open": n_open,
            "active": n_active,
            "stalled": n_stalled,
            "never_met": n_never,
            "active_pct": share(n_active, n_open),
            "stalled_pct": share(n_stalled, n_open),
            "never_met_pct": share(n_never, n_open),
            "meetings": meetings,
            "hours": round(minutes / 60, 1),
            "mentorship_months": round(total_days / MONTH_DAYS, 2),
            "meetings_per_mentorship_month": round(meetings * MONTH_DAYS / total_days, 2)
            if total_days else None,
            "expected_meetings": round(expected, 1),
            "cadence_adherence_pct": round(100 * meetings / expected, 1) if expected else None,
        }

    def stalled(self) -> list[dict[str, Any]]:
        stalled, never = self._status
        last = self._per_mentorship["last"]
        rows = []
        for i in np.flatnonzero(stalled | never).tolist():
            m = self.p.mentorship_list[i]
            met = bool(last[i] > -np.inf)
            since = last[i] if met else self.f.started[i]
            rows.append({
                "mentorship_id": m.mentorship_id,
                "program_id": m.program_id,
                "program_name": program.name if (program := self.p.programs.get(m.program_id)) else None,
                "status": "stalled" if met else "never_met",
                "mentor_id": m.mentor_id,
                "mentor_name": self.name(m.mentor_id),
                "mentee_id": m.mentee_id,
                "mentee_name": self.name(m.mentee_id),
                "started_at": m.started_at.isoformat() if m.started_at else None,
                "last_meeting_at": datetime.fromtimestamp(last[i], UTC).isoformat() if met else None,
                "days_without_meeting": round((self.t1 - since) / SECONDS_PER_DAY, 1),
                "cadence_days": self.cadence(m),
            })
        return sorted(rows, key=lambda r: (-r["days_without_meeting"], r["mentorship_id"]))

    # --- progress and outcomes -----------------------------------------------------------

    def outcomes(self) -> dict[str, Any]:
        f, fb = self.f, self._feedback_rows
        sides = {}
        for side, flag in (("mentee", 0), ("mentor", 1)):
            mine = fb["mentor_side"] == flag
            sat = fb["satisfaction"][mine]
            dist = np.bincount(sat.astype(np.int64), minlength=6)
            rec = fb["recommend"][mine]
            sides[side] = {
                "responses": int(len(sat)),
                "mean": round(float(sat.mean()), 2) if len(sat) else None,
                "distribution": {str(k): int(dist[k]) for k in range(1, 6)},
                "working_pct": share(int(fb["working"][mine].sum()), int(len(sat))),
                "nps": nps(rec[rec >= 0]),
            }
        goal_scope = self.mask[f.goal_m] if len(f.goal_m) else np.zeros(0, dtype=bool)
        milestone_scope = self.mask[f.milestone_m] if len(f.milestone_m) else np.zeros(0, dtype=bool)
        ended = self.mask & _in(f.ended, self.t0, self.t1)
        counts = np.bincount(f.reason[ended], minlength=len(f.reasons)) if ended.any() else []
        reasons = {f.reasons[i]: int(c) for i, c in enumerate(counts) if c}
        n_ended = int(ended.sum())
        completed = reasons.get("completed", 0)
        recommend = fb["recommend"]
        return {
            "goals_set": int((goal_scope & _in(f.goal_set, self.t0, self.t1)).sum()),
            "goals_achieved": int((goal_scope & _in(f.goal_achieved, self.t0, self.t1)).sum()),
            "milestones": int((milestone_scope & _in(f.milestone_t, self.t0, self.t1)).sum()),
            "satisfaction": sides,
            "nps": nps(recommend[recommend >= 0]),
            "ended": n_ended,
            "completed": completed,
            "ended_early": n_ended - completed,
            "completion_pct": share(completed, n_ended),
            "end_reasons": dict(sorted(reasons.items())),
        }

    # --- mentors -------------------------------------------------------------------------

    @cached_property
    def _mentor_stats(self) -> dict[str, np.ndarray]:
        """Per mentor code: load, meetings in the period, mentee ratings (count, sum)."""
        f, n = self.f, len(self.f.person_ids)
        mentor = f.mentor[self.mask]
        stats = {
            "load": np.bincount(f.mentor[self.open], minlength=n),
            "meetings": np.bincount(mentor, weights=self._per_mentorship["meetings"][self.mask], minlength=n),
            "ratings": np.bincount(mentor, weights=self._per_mentorship["rating_n"][self.mask], minlength=n),
            "rating_sum": np.bincount(mentor, weights=self._per_mentorship["rating_sum"][self.mask], minlength=n),
        }
        members = np.zeros(n, dtype=bool)
        members[self.mentors[0]] = True
        members |= stats["load"] > 0
        stats["codes"] = np.flatnonzero(members)
        return stats

    def _rows(self, codes: list[int]) -> list[dict[str, Any]]:
        s, people, ids = self._mentor_stats, self.p.people, self.f.person_ids
        columns = zip(
            codes, s["load"][codes].tolist(), s["meetings"][codes].tolist(),
            s["ratings"][codes].tolist(), s["rating_sum"][codes].tolist(), strict=True,
        )
        rows = []
        for code, load, meetings, ratings, total in columns:
            mentor_id = ids[code]
            person = people.get(mentor_id)
            known = person is not None and not person.erased
            n = int(ratings)
            rows.append({
                "mentor_id": mentor_id,
                "name": person.name if known else None,  # type: ignore[union-attr]
                "institution_id": person.institution_id if person else None,
                "capacity": person.capacity[1] if person else None,
                "mentees": int(load),
                "meetings": int(meetings),
                "ratings": n,
                "rating_mean": round(total / n, 2) if n else None,
                "public": bool(known and person.public_recognition[1]),  # type: ignore[union-attr]
            })
        return rows

    def mentor_rows(self) -> list[dict[str, Any]]:
        return sorted(self._rows(self._mentor_stats["codes"].tolist()), key=lambda r: r["mentor_id"])

    def mentor_load(self) -> dict[str, Any]:
        s = self._mentor_stats
        codes = s["codes"]
        load = s["load"][codes]
        dist = np.bincount(np.minimum(load, 3), minlength=4) if len(codes) else np.zeros(4, dtype=int)
        recognised = self._recognised(public_only=False)
        return {
            "mentors": int(len(codes)),
            "mentees_per_mentor_mean": round(float(load.mean()), 2) if len(codes) else None,
            "meetings_per_mentor_mean": round(float(s["meetings"][codes].mean()), 2) if len(codes) else None,
            "load_distribution": {"0": int(dist[0]), "1": int(dist[1]), "2": int(dist[2]), "3+": int(dist[3])},
            "recognised_count": len(recognised),
            "recognised": self._rows(recognised[:RECOGNITION_LISTED]),
        }

    def _recognised(self, public_only: bool) -> list[int]:
        """Codes of mentors whose mentees rate them highly, best first (mean, count, id)."""
        s, f = self._mentor_stats, self.f
        n = s["ratings"]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.round(s["rating_sum"] / n, 2)
        chosen = (n >= RECOGNITION_MIN_RATINGS) & (means >= RECOGNITION_MIN_MEAN)
        if public_only:
            chosen &= f.public
        codes = np.flatnonzero(chosen).tolist()
        keys = zip((-means[codes]).tolist(), (-n[codes]).tolist(), (f.person_ids[c] for c in codes), codes, strict=True)
        return [code for *_, code in sorted(keys)]

    def recognition(self, public_only: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
        """Mentors whose mentees rate them highly (enough ratings, a high mean), best first."""
        return self._rows(self._recognised(public_only)[:limit])

    # --- equity --------------------------------------------------------------------------

    def equity(self) -> list[dict[str, Any]]:
        """Match rate, time to match and satisfaction per value of each identity attribute."""
        f, n = self.f, len(self.f.person_ids)
        first = self.mask & (f.started < self.t1) & ~f.rematch & ~np.isnan(f.join)
        rows = np.flatnonzero(first)
        order = rows[np.lexsort((f.started[rows], f.mentee[rows]))]
        _, at = np.unique(f.mentee[order], return_index=True)
        firsts = order[at]  # each mentee's first mentorship in scope
        ttm = np.full(n, np.nan)
        ttm[f.mentee[firsts]] = np.maximum(0.0, (f.started[firsts] - f.join[firsts]) / SECONDS_PER_DAY)
        mentee = f.mentee[self.mask]
        rating_n = np.bincount(mentee, weights=self._per_mentorship["rating_n"][self.mask], minlength=n)
        rating_sum = np.bincount(mentee, weights=self._per_mentorship["rating_sum"][self.mask], minlength=n)
        codes = self.mentees[0].tolist()
        attributes = {c: f.attributes[c] for c in codes}
        keys = sorted({k for attrs in attributes.values() for k in attrs})
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for c, attrs in attributes.items():
            for k in keys:
                groups[(k, attrs.get(k, NOT_STATED))].append(c)
        cells = []
        for (attribute, value), people in sorted(groups.items()):
            cell: dict[str, Any] = {"attribute": attribute, "value": value}
            if len(people) < MIN_CELL:
                cells.append({**cell, "suppressed": True, "mentees": None, "match_rate_pct": None,
                              "time_to_match_days_median": None, "satisfaction_mean": None})
                continue
            group = np.array(people, dtype=np.int64)
            times = ttm[group]
            times = times[~np.isnan(times)]
            raters = group[rating_n[group] > 0]
            cells.append({
                **cell,
                "suppressed": False,
                "mentees": len(people),
                "match_rate_pct": share(int(self.matched[group].sum()), len(people)),
                "time_to_match_days_median": _median(times) if len(times) >= MIN_CELL else None,
                "satisfaction_mean": round(float(rating_sum[raters].sum() / rating_n[raters].sum()), 2)
                if len(raters) >= MIN_CELL else None,
            })
        return cells

    # --- weekly series -------------------------------------------------------------------

    def weeks(self) -> list[datetime]:
        starts, t = [], self.period.start
        while t < self.period.end:
            starts.append(t)
            t += timedelta(days=7)
        return starts

    def series(self) -> list[dict[str, Any]]:
        f = self.f
        starts = self.weeks()
        n = len(starts)
        ends = np.array([min(self.t0 + (i + 1) * WEEK, self.t1) for i in range(n)])

        def per_week(t: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            inside = _in(t, self.t0, self.t1)
            week = ((t[inside] - self.t0) // WEEK).astype(np.int64)
            return np.bincount(week, weights=None if weights is None else weights[inside], minlength=n)

        sel = self.mask
        counts = {
            "mentees_joined": per_week(self.mentees[1]),
            "mentors_joined": per_week(self.mentors[1]),
            "proposals": per_week(f.proposed[sel]),
            "started": per_week(f.started[sel]),
            "ended": per_week(f.ended[sel]),
        }
        started = f.started[sel]
        ended = f.ended[sel]
        has_start = ~np.isnan(started)
        first = np.searchsorted(ends, started[has_start], side="right")
        last = np.where(np.isnan(ended[has_start]), n, np.searchsorted(ends, ended[has_start], side="right"))
        delta = np.zeros(n + 1, dtype=np.int64)
        keep = first < last
        np.add.at(delta, first[keep], 1)
        np.add.at(delta, last[keep], -1)
        open_at_end = np.cumsum(delta)[:n]
        meet = self._meeting_rows
        meetings = per_week(meet["t"])
        minutes = per_week(meet["t"], meet["minutes"])
        fb = self._feedback_rows
        ratings_n = per_week(fb["t"])
        ratings_sum = per_week(fb["t"], fb["satisfaction"])
        return [
            {
                "week_start": start.date().isoformat(),
                **{name: int(values[i]) for name, values in counts.items()},
                "meetings": int(meetings[i]),
                "hours": round(float(minutes[i]) / 60, 1),
                "open_mentorships": int(open_at_end[i]),
                "satisfaction_mean": round(float(ratings_sum[i]) / int(ratings_n[i]), 2)
                if ratings_n[i] else None,
            }
            for i, start in enumerate(starts)
        ]

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
    prefix = f"{network_id}/"
    found = {
        key[1][len(prefix):] for key, members in projection.people_by.items()
        if key[0] == "institution" and members and key[1].startswith(prefix)
    }
    found |= {
        key[1][len(prefix):] for key, indexes in projection.mentorships_by.items()
        if key[0] == "institution" and indexes and key[1].startswith(prefix)
    }
    return sorted(i for i in found if i)
