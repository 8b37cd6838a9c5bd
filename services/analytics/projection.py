"""The analytics projection: facts about people, programs and mentorships, kept in memory.

Why facts and not counters: events of different aggregates arrive in any order (a
`MeetingLogged` before its `MentorshipStarted`, a withdrawal before the enrolment it ends),
and a counter incremented on arrival cannot be un-incremented correctly later. Every event
here only *sets* facts keyed by natural ids (a meeting by its id, a field of a mentorship
that only one event type writes, a profile value guarded by its version), so applying the
same events in any order, any number of times, gives the same state. Measures are computed
from these facts at query time (`services.analytics.measures`), for any scope and period.

Pure: no I/O. The store persists the (sanitised) events; the live service replays them into
a `Projection` at start and applies each new event as it is consumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from pydantic import BaseModel

from shared.events import schemas as ev

DEFAULT_CADENCE_DAYS = 30




def institution_key(network_id: str, institution_id: str) -> tuple[str, str]:
    """Index key of an institution. Institution ids are chosen by each network and unique only
    within it (two networks may both have "chapter-west"), so the key carries the network."""
    return ("institution", f"{network_id}/{institution_id}")

@dataclass
class Program:
    program_id: str
    network_id: str
    institution_id: str | None = None
    name: str = ""
    cadence_days: int = DEFAULT_CADENCE_DAYS
    version: int = 0


@dataclass
class Person:
    person_id: str
    network_id: str
    institution_id: str
    name: str | None = None
    name_version: int = -1
    registered: dict[str, datetime] = field(default_factory=dict)  # role -> first registration
    capacity: tuple[int, int] = (-1, 0)  # (version, capacity); registration is version 0
    paused: tuple[int, bool] = (-1, False)
    public_recognition: tuple[int, bool] = (-1, False)
    attributes: tuple[int, dict[str, str]] = (-1, {})
    erased: bool = False
    code: int = -1  # position in the projection's columns


@dataclass
class Meeting:
    held_at: datetime
    minutes: int


@dataclass
class Feedback:
    mentorship_id: str
    side: str
    satisfaction: int
    recommend: int | None
    working: bool
    submitted_at: datetime


@dataclass
class Goal:
    mentorship_id: str
    set_at: datetime | None = None
    achieved_at: datetime | None = None
    index: int = -1


@dataclass
class Mentorship:
    """One proposal and, once both sides accept, one mentorship. Each field has one writer."""

    mentorship_id: str
    network_id: str
    program_id: str
    mentor_id: str
    mentee_id: str
    mentor_institution_id: str
    mentee_institution_id: str
    proposed_at: datetime | None = None
    is_rematch: bool = False
    declined_at: datetime | None = None
    declined_side: str | None = None
    started_at: datetime | None = None
    start_cadence: int | None = None
    agreement: tuple[int, int] | None = None  # (version, cadence_days)
    ended_at: datetime | None = None
    end_reason: str | None = None
    rematch_requested: bool = False
    meetings: dict[str, Meeting] = field(default_factory=dict)
    goals: dict[str, Goal] = field(default_factory=dict)
    milestones: dict[str, datetime] = field(default_factory=dict)
    index: int = -1  # position in the projection's columns

    def cadence(self, program: Program | None) -> int:
        """The agreed cadence, else the one at start, else the program's."""
        if self.agreement is not None:
            return self.agreement[1]
        if self.start_cadence is not None:
            return self.start_cadence
        return program.cadence_days if program else DEFAULT_CADENCE_DAYS

    def open_at(self, t: datetime) -> bool:
        return (
            self.started_at is not None
            and self.started_at < t
            and (self.ended_at is None or self.ended_at >= t)
        )


@dataclass(frozen=True)
class Withdrawal:
    program_id: str | None
    role: str | None
    at: datetime


class Columns:
    """Append-only columns, handed out as numpy arrays rebuilt only when rows were added."""

    def __init__(self, *names: str) -> None:
        self._lists: dict[str, list[float]] = {name: [] for name in names}
        self._arrays: dict[str, np.ndarray] = {}
        self._rows = -1

    def append(self, *values: float) -> None:
        for column, value in zip(self._lists.values(), values, strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(next(iter(self._lists.values())))

    def arrays(self) -> dict[str, np.ndarray]:
        if self._rows != len(self):
            self._arrays = {
                name: np.asarray(values, dtype=np.int64 if name == "m" else np.float64)
                for name, values in self._lists.items()
            }
            self._rows = len(self)
        return self._arrays


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


class Projection:
    """Facts from every event; `version` changes whenever a fact may have changed."""

    def __init__(self) -> None:
        self.programs: dict[str, Program] = {}
        self.institution_names: dict[tuple[str, str], str] = {}  # (network, institution)
        self.people: dict[str, Person] = {}
        # (person_id, program_id, role) -> earliest enrolment
        self.enrolments: dict[tuple[str, str, str], datetime] = {}
        self.withdrawals: dict[str, set[Withdrawal]] = {}
        self.mentorships: dict[str, Mentorship] = {}
        self.goals: dict[str, Goal] = {}
        self.milestones: dict[str, tuple[str, datetime]] = {}
        self.feedback: dict[str, Feedback] = {}
        self.erased: set[str] = set()
        self.version = 0
        # Indexes, so a report touches only its scope.
        self.mentorship_list: list[Mentorship] = []
        self.mentorships_by: dict[tuple[str, str], list[int]] = {}  # (kind, id) -> indexes
        self.people_by: dict[tuple[str, str], set[str]] = {}  # ("network"|"institution", id)
        self.codes_by: dict[tuple[str, str], list[int]] = {}  # the same, as person codes
        self.moves = 0  # people who changed institution (the code lists above changed in place)
        self.enrolments_by_program: dict[str, dict[tuple[str, str], datetime]] = {}
        self.enrolments_by_person: dict[str, set[tuple[str, str, str]]] = {}
        self.mentorships_of_mentee: dict[str, list[int]] = {}
        self.person_list: list[Person] = []
        self.goal_list: list[Goal] = []
        self.milestone_rows: list[tuple[float, int]] = []
        # What changed since the columns (services.analytics.frame) were last brought up to date.
        self.dirty_people: set[int] = set()
        self.dirty_mentorships: set[int] = set()
        self.dirty_goals: set[int] = set()
        # Columns of the two big event families (append-only, one row per meeting/check-in).
        self.meeting_cols = Columns("t", "minutes", "m")
        self.feedback_cols = Columns("t", "mentor_side", "satisfaction", "recommend", "working", "m")
        self._appliers = {
            "MenteeRegistered": self._registered,
            "MentorRegistered": self._registered,
            "InstitutionCreated": self._institution,
            "ProgramCreated": self._program,
            "ProgramUpdated": self._program,
            "ProfileUpdated": self._profile,
            "MentorCapacityChanged": self._capacity,
            "MentorPaused": self._paused,
            "IdentityAttributesChanged": self._attributes,
            "PersonEnrolled": self._enrolled,
            "ParticipantWithdrawn": self._withdrawn,
            "PersonErased": self._erased,
            "MatchProposed": self._proposed,
            "MatchAccepted": self._touch,
            "MatchDeclined": self._declined,
            "MentorshipStarted": self._started,
            "AgreementRecorded": self._agreement,
            "MeetingScheduled": self._touch,
            "MeetingLogged": self._meeting,
            "GoalSet": self._goal_set,
            "GoalProgressUpdated": self._goal_progress,
            "MilestoneAchieved": self._milestone,
            "FeedbackSubmitted": self._feedback,
            "MentorshipEnded": self._ended,
        }

    @property
    def event_types(self) -> list[str]:
        return sorted(self._appliers)

    def apply(self, event_type: str, payload: BaseModel) -> None:
        """Fold one event in; unknown types are ignored (they measure nothing)."""
        applier = self._appliers.get(event_type)
        if applier is not None:
            applier(payload)
            self.version += 1

    # --- people and programs -------------------------------------------------------------

    def person(self, person_id: str, network_id: str, institution_id: str) -> Person:
        person = self.people.get(person_id)
        if person is None:
            person = self.people[person_id] = Person(person_id, network_id, "", code=len(self.person_list))
            self.person_list.append(person)
            self.people_by.setdefault(("network", network_id), set()).add(person_id)
            self.codes_by.setdefault(("network", network_id), []).append(person.code)
        if institution_id and person.institution_id != institution_id:
            self._move(person, institution_id)
        self.dirty_people.add(person.code)
        for index in self.mentorships_of_mentee.get(person_id, ()):
            self.dirty_mentorships.add(index)  # its join time may have changed
        return person

    def _move(self, person: Person, institution_id: str) -> None:
        self.moves += 1
        if person.institution_id:
            old = institution_key(person.network_id, person.institution_id)
            self.people_by.get(old, set()).discard(person.person_id)
            self.codes_by[old].remove(person.code)
        person.institution_id = institution_id
        key = institution_key(person.network_id, institution_id)
        self.people_by.setdefault(key, set()).add(person.person_id)
        self.codes_by.setdefault(key, []).append(person.code)

    def _enrol(self, person_id: str, program_id: str, role: str, at: datetime) -> None:
        for index in self.mentorships_of_mentee.get(person_id, ()):
            self.dirty_mentorships.add(index)
        key = (person_id, program_id, role)
        self.enrolments[key] = _earliest(self.enrolments.get(key), at)
        self.enrolments_by_program.setdefault(program_id, {})[(person_id, role)] = self.enrolments[key]
        self.enrolments_by_person.setdefault(person_id, set()).add(key)

    def _name(self, person: Person, name: str, version: int) -> None:
        if not person.erased and version >= person.name_version:
            person.name, person.name_version = name, version

    def _registered(self, p: ev.MenteeRegistered | ev.MentorRegistered) -> None:
        role = "mentor" if isinstance(p, ev.MentorRegistered) else "mentee"
        person = self.person(p.person_id, p.network_id, p.institution_id)
        person.registered[role] = _earliest(person.registered.get(role), p.registered_at)
        self._name(person, p.display_name, 0)
        if isinstance(p, ev.MentorRegistered) and person.capacity[0] < 0:
            person.capacity = (0, p.capacity)
        if p.program_id:
            self._enrol(p.person_id, p.program_id, role, p.registered_at)

    def _institution(self, p: ev.InstitutionCreated) -> None:
        self.institution_names[(p.network_id, p.institution_id)] = p.name

    def _program(self, p: ev.ProgramCreated | ev.ProgramUpdated) -> None:
        current = self.programs.get(p.program_id)
        if current is None or p.version > current.version:
            self.dirty_mentorships.update(self.mentorships_by.get(("program", p.program_id), ()))
            self.programs[p.program_id] = Program(
                p.program_id, p.network_id, p.institution_id, p.name, p.cadence_days, p.version
            )

    def _profile(self, p: ev.ProfileUpdated) -> None:
        person = self.person(p.person_id, p.network_id, p.institution_id)
        self._name(person, p.display_name, p.version)
        if p.mentor is not None:
            if p.version > person.capacity[0]:
                person.capacity = (p.version, p.mentor.capacity)
            if p.version > person.paused[0]:
                person.paused = (p.version, p.mentor.paused)
            if p.version > person.public_recognition[0]:
                person.public_recognition = (p.version, p.mentor.public_recognition)

    def _capacity(self, p: ev.MentorCapacityChanged) -> None:
        person = self.person(p.person_id, p.network_id, "")
        if p.version > person.capacity[0]:
            person.capacity = (p.version, p.capacity)

    def _paused(self, p: ev.MentorPaused) -> None:
        person = self.person(p.person_id, p.network_id, "")
        if p.version > person.paused[0]:
            person.paused = (p.version, p.paused)

    def _attributes(self, p: ev.IdentityAttributesChanged) -> None:
        person = self.person(p.person_id, p.network_id, p.institution_id)
        if not person.erased and p.version > person.attributes[0]:
            person.attributes = (p.version, dict(p.attributes))

    def _enrolled(self, p: ev.PersonEnrolled) -> None:
        self.person(p.person_id, p.network_id, p.institution_id)
        self._enrol(p.person_id, p.program_id, p.role, p.enrolled_at)

    def _withdrawn(self, p: ev.ParticipantWithdrawn) -> None:
        self.person(p.person_id, p.network_id, p.institution_id)
        self.withdrawals.setdefault(p.person_id, set()).add(
            Withdrawal(p.program_id, p.role, p.withdrawn_at)
        )

    def _erased(self, p: ev.PersonErased) -> None:
        """Personal data goes (name, identity attributes, recognition); ids and counts stay."""
        person = self.person(p.person_id, p.network_id, p.institution_id)
        person.erased = True
        person.name = None
        person.attributes = (10**9, {})
        person.public_recognition = (10**9, False)
        self.erased.add(p.person_id)

    # --- mentorships ---------------------------------------------------------------------

    def mentorship(self, p: ev._MentorshipRef) -> Mentorship:
        m = self.mentorships.get(p.mentorship_id)
        if m is not None:
            self.dirty_mentorships.add(m.index)
        else:
            self.person(p.mentor_id, p.network_id, p.mentor_institution_id)
            self.person(p.mentee_id, p.network_id, p.mentee_institution_id)
            m = self.mentorships[p.mentorship_id] = Mentorship(
                p.mentorship_id, p.network_id, p.program_id, p.mentor_id, p.mentee_id,
                p.mentor_institution_id, p.mentee_institution_id,
                index=len(self.mentorship_list),
            )
            self.mentorship_list.append(m)
            self.mentorships_of_mentee.setdefault(p.mentee_id, []).append(m.index)
            self.dirty_mentorships.add(m.index)
            for key in (("network", p.network_id), ("program", p.program_id),
                        institution_key(p.network_id, p.mentee_institution_id)):
                self.mentorships_by.setdefault(key, []).append(m.index)
        return m

    def _touch(self, p: ev._MentorshipRef) -> None:
        self.mentorship(p)

    def _proposed(self, p: ev.MatchProposed) -> None:
        m = self.mentorship(p)
        m.proposed_at = _earliest(m.proposed_at, p.proposed_at)
        m.is_rematch = m.is_rematch or p.is_rematch

    def _declined(self, p: ev.MatchDeclined) -> None:
        m = self.mentorship(p)
        if m.declined_at is None or p.declined_at < m.declined_at:
            m.declined_at, m.declined_side = p.declined_at, p.side

    def _started(self, p: ev.MentorshipStarted) -> None:
        m = self.mentorship(p)
        m.started_at = _earliest(m.started_at, p.started_at)
        m.start_cadence = p.cadence_days
        if p.proposed_at is not None:
            m.proposed_at = _earliest(m.proposed_at, p.proposed_at)

    def _agreement(self, p: ev.AgreementRecorded) -> None:
        m = self.mentorship(p)
        if m.agreement is None or p.version > m.agreement[0]:
            m.agreement = (p.version, p.cadence_days)

    def _meeting(self, p: ev.MeetingLogged) -> None:
        m = self.mentorship(p)
        if p.meeting_id not in m.meetings:
            self.meeting_cols.append(p.held_at.timestamp(), p.duration_minutes, m.index)
        m.meetings[p.meeting_id] = Meeting(p.held_at, p.duration_minutes)

    def _goal(self, p: ev.GoalSet | ev.GoalProgressUpdated) -> Goal:
        m = self.mentorship(p)
        goal = self.goals.get(p.goal_id)
        if goal is None:
            goal = self.goals[p.goal_id] = m.goals[p.goal_id] = Goal(p.mentorship_id, index=len(self.goal_list))
            self.goal_list.append(goal)
        self.dirty_goals.add(goal.index)
        return goal

    def _goal_set(self, p: ev.GoalSet) -> None:
        goal = self._goal(p)
        goal.set_at = _earliest(goal.set_at, p.set_at)

    def _goal_progress(self, p: ev.GoalProgressUpdated) -> None:
        goal = self._goal(p)
        if p.achieved:
            goal.achieved_at = _earliest(goal.achieved_at, p.updated_at)

    def _milestone(self, p: ev.MilestoneAchieved) -> None:
        m = self.mentorship(p)
        if p.milestone_id not in self.milestones:
            self.milestone_rows.append((p.achieved_at.timestamp(), m.index))
        m.milestones[p.milestone_id] = p.achieved_at
        self.milestones[p.milestone_id] = (p.mentorship_id, p.achieved_at)

    def _feedback(self, p: ev.FeedbackSubmitted) -> None:
        m = self.mentorship(p)
        if p.feedback_id not in self.feedback:
            self.feedback_cols.append(
                p.submitted_at.timestamp(), p.side == "mentor", p.satisfaction,
                -1 if p.recommend is None else p.recommend, p.working, m.index,
            )
        self.feedback[p.feedback_id] = Feedback(
            p.mentorship_id, p.side, p.satisfaction, p.recommend, p.working, p.submitted_at
        )

    def _ended(self, p: ev.MentorshipEnded) -> None:
        m = self.mentorship(p)
        if m.ended_at is None or p.ended_at < m.ended_at:
            m.ended_at, m.end_reason = p.ended_at, p.reason
        m.rematch_requested = m.rematch_requested or p.rematch
        if p.started_at is not None:
            m.started_at = _earliest(m.started_at, p.started_at)
