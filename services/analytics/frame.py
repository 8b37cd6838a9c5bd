"""The projection as numpy columns, built once per projection state and shared by reports.

A network summary asks the same questions of 15,000 mentorships and 20,000 people for the
network and for every chapter; as Python loops that is seconds, as masked column operations
milliseconds. The frame is rebuilt (tens of milliseconds) only when an event changed the
projection since the last report. Times are POSIX seconds; NaN means "not (yet) happened".
"""

from __future__ import annotations

import math
import numpy as np

from services.analytics.projection import Projection

NAN = math.nan


def _ts(t) -> float:  # type: ignore[no-untyped-def]
    return NAN if t is None else t.timestamp()


class Frame:
    """Columns of people, mentorships and goals, brought up to date row by row.

    The projection records which rows changed (`dirty_*`); `refresh` recomputes only those
    and appends new rows, so during live ingestion a report pays for the events since the
    last report, not for the whole history.
    """

    PEOPLE = ("joined_mentor", "joined_mentee", "left_mentor", "left_mentee", "capacity", "paused", "public")
    MENTORSHIPS = ("proposed", "started", "ended", "declined", "rematch", "cadence", "join",
                   "mentor", "mentee", "reason")

    def __init__(self) -> None:
        self.version = -1
        self.cols: dict[str, np.ndarray] = {
            name: np.zeros(0) for name in (*self.PEOPLE, *self.MENTORSHIPS, "goal_set", "goal_achieved", "goal_m")
        }
        self.reasons: list[str] = []
        self.attributes: list[dict[str, str]] = []  # per person code: opt-in identity attributes
        self._person_ids: list[str] = []
        self.code: dict[str, int] = {}
        self._reason_code: dict[str | None, int] = {None: -1}
        self.milestone_t = np.zeros(0)
        self.milestone_m = np.zeros(0, dtype=np.int64)

    # Columns under the names reports use.
    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("cols", {})
        if name in cols:
            return cols[name]
        raise AttributeError(name)

    @property
    def person_ids(self) -> list[str]:
        return self._person_ids

    def refresh(self, p: Projection) -> None:
        for person in p.person_list[len(self._person_ids):]:
            self._person_ids.append(person.person_id)
            self.code[person.person_id] = person.code
        self._rows(p.dirty_people, len(p.person_list), self.PEOPLE,
                   lambda i: self._person_row(p, p.person_list[i]))
        self.attributes.extend({} for _ in range(len(p.person_list) - len(self.attributes)))
        for i in p.dirty_people:
            person = p.person_list[i]
            self.attributes[i] = {} if person.erased else person.attributes[1]
        self._rows(p.dirty_mentorships, len(p.mentorship_list), self.MENTORSHIPS,
                   lambda i: self._mentorship_row(p, p.mentorship_list[i]))
        self._rows(p.dirty_goals, len(p.goal_list), ("goal_set", "goal_achieved", "goal_m"),
                   lambda i: self._goal_row(p, p.goal_list[i]))
        p.dirty_people.clear()
        p.dirty_mentorships.clear()
        p.dirty_goals.clear()
        if len(p.milestone_rows) != len(self.milestone_t):
            self.milestone_t = np.array([t for t, _ in p.milestone_rows], dtype=float)
            self.milestone_m = np.array([m for _, m in p.milestone_rows], dtype=np.int64)
        for name in ("mentor", "mentee", "goal_m", "reason"):
            self.cols[name] = self.cols[name].astype(np.int64, copy=False)
        for name in ("paused", "rematch", "public"):
            self.cols[name] = self.cols[name].astype(bool, copy=False)
        self.joined = {"mentor": self.cols["joined_mentor"], "mentee": self.cols["joined_mentee"]}
        self.left = {"mentor": self.cols["left_mentor"], "mentee": self.cols["left_mentee"]}
        self.version = p.version

    def _rows(self, dirty: set[int], size: int, names: tuple[str, ...], row) -> None:  # type: ignore[no-untyped-def]
        old = len(self.cols[names[0]])
        if size > old:
            for name in names:
                grown = np.zeros(size, dtype=float)
                grown[:old] = self.cols[name]
                self.cols[name] = grown
        for i in dirty:
            if i < size:
                for name, value in zip(names, row(i), strict=True):
                    self.cols[name][i] = value

    @staticmethod
    def _person_row(p: Projection, person) -> tuple[float, ...]:  # type: ignore[no-untyped-def]
        first = {role: at.timestamp() for role, at in person.registered.items()}
        for key in p.enrolments_by_person.get(person.person_id, ()):
            t = p.enrolments[key].timestamp()
            if t < first.get(key[2], math.inf):
                first[key[2]] = t
        left = {"mentor": NAN, "mentee": NAN}
        for w in p.withdrawals.get(person.person_id, ()):
            if w.program_id is not None:
                continue
            t = w.at.timestamp()
            for role in ("mentor", "mentee") if w.role is None else (w.role,):
                if role in first and t >= first[role] and not t >= left[role]:
                    left[role] = t
        return (first.get("mentor", NAN), first.get("mentee", NAN), left["mentor"], left["mentee"],
                person.capacity[1], person.paused[1], person.public_recognition[1] and not person.erased)

    def _mentorship_row(self, p: Projection, m) -> tuple[float, ...]:  # type: ignore[no-untyped-def]
        if m.end_reason not in self._reason_code:
            self._reason_code[m.end_reason] = len(self.reasons)
            self.reasons.append(m.end_reason)
        at = p.enrolments.get((m.mentee_id, m.program_id, "mentee"))
        if at is None:
            person = p.people.get(m.mentee_id)
            at = person.registered.get("mentee") if person else None
        return (
            _ts(m.proposed_at), _ts(m.started_at), _ts(m.ended_at), _ts(m.declined_at),
            m.is_rematch, m.cadence(p.programs.get(m.program_id)), _ts(at or m.proposed_at),
            p.people[m.mentor_id].code, p.people[m.mentee_id].code, self._reason_code[m.end_reason],
        )

    @staticmethod
    def _goal_row(p: Projection, g) -> tuple[float, ...]:  # type: ignore[no-untyped-def]
        return (_ts(g.set_at), _ts(g.achieved_at), p.mentorships[g.mentorship_id].index)


def frame_of(projection: Projection) -> Frame:
    """The projection's columns, up to date with every event applied so far."""
    frame = getattr(projection, "_frame", None)
    if frame is None:
        frame = projection._frame = Frame()  # type: ignore[attr-defined]
    if frame.version != projection.version:
        frame.refresh(projection)
    return frame
