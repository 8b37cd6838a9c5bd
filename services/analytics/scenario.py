"""Build valid event payloads of a network's life, with the timestamps a scenario needs.

Used by the tests (hand-computed scenarios, events published to Kafka), by the benchmark (a
year of a 20,000-person network) and by the rebuild test. Every method returns the payload
and records it, in call order, in `events`; `cloud_events()` wraps them as profiles and
matching would publish them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.events import CloudEvent, new_event
from shared.events import schemas as ev


ID_FIELDS = (
    "person_id", "institution_id", "program_id", "mentorship_id", "mentor_id", "mentee_id",
    "mentor_institution_id", "mentee_institution_id", "meeting_id", "goal_id", "milestone_id",
    "feedback_id", "enrolment_id",
)


def at(day: int, hour: int = 12, base: date = date(2026, 1, 5)) -> datetime:
    """Day `day` of a scenario (day 0 is Monday 5 January 2026), at noon UTC by default."""
    return datetime(base.year, base.month, base.day, hour, tzinfo=UTC) + timedelta(days=day)


class Scenario:
    def __init__(self, network_id: str = "n1") -> None:
        self.network_id = network_id
        self.events: list[tuple[str, BaseModel]] = []
        self.institution_of: dict[str, str] = {}
        self.program_of: dict[str, str] = {}
        self.pairs: dict[str, dict[str, str]] = {}
        self._n = 0

    def _add(self, payload: BaseModel) -> BaseModel:
        self.events.append((type(payload).__name__, payload))
        return payload

    def _id(self, prefix: str) -> str:
        """Ids unique across networks, as the real services' UUIDs are."""
        self._n += 1
        return f"{self.network_id}-{prefix}{self._n}"

    # --- organisation and people ---------------------------------------------------------

    def institution(self, institution_id: str, name: str | None = None) -> None:
        self._add(ev.InstitutionCreated(
            institution_id=institution_id, network_id=self.network_id, name=name or institution_id,
            kind="chapter", created_at=at(-30),
        ))

    def program(self, program_id: str, institution_id: str | None = None, cadence: int = 14,
                version: int = 1, name: str | None = None) -> None:
        cls = ev.ProgramCreated if version == 1 else ev.ProgramUpdated
        extra: dict[str, Any] = {"created_at": at(-30)} if version == 1 else {"updated_at": at(-29)}
        self._add(cls(
            program_id=program_id, network_id=self.network_id, institution_id=institution_id,
            name=name or program_id, type="one-to-one", cohort_start=at(0).date(),
            cohort_end=at(365).date(), enrolment_opens=at(-30).date(),
            enrolment_closes=at(300).date(), cross_institution=True, max_mentors_per_mentee=2,
            cadence_days=cadence, requires_approval=False, version=version, **extra,
        ))

    def person(self, role: str, person_id: str, institution_id: str, day: float,
               program_id: str | None = None, capacity: int = 2, name: str | None = None) -> None:
        self.institution_of[person_id] = institution_id
        fields: dict[str, Any] = dict(
            person_id=person_id, network_id=self.network_id, institution_id=institution_id,
            display_name=name or f"Person {person_id}", email=f"{person_id}@example.org",
            career_stage="M3" if role == "mentee" else "attending",
            registered_at=at(0) + timedelta(days=day),
        )
        if role == "mentor":
            self._add(ev.MentorRegistered(**fields, capacity=capacity))
        else:
            self._add(ev.MenteeRegistered(**fields))
        if program_id:
            self.enrol(person_id, program_id, role, day)

    def enrol(self, person_id: str, program_id: str, role: str, day: float) -> None:
        self._add(ev.PersonEnrolled(
            enrolment_id=self._id("e"), person_id=person_id, network_id=self.network_id,
            institution_id=self.institution_of[person_id], program_id=program_id, role=role,
            enrolled_at=at(0) + timedelta(days=day),
        ))

    def withdraw(self, person_id: str, day: float, program_id: str | None = None,
                 role: str | None = None) -> None:
        self._add(ev.ParticipantWithdrawn(
            person_id=person_id, network_id=self.network_id,
            institution_id=self.institution_of[person_id], program_id=program_id, role=role,
            withdrawn_at=at(0) + timedelta(days=day),
        ))

    def attributes(self, person_id: str, version: int = 1, **attributes: str) -> None:
        self._add(ev.IdentityAttributesChanged(
            person_id=person_id, network_id=self.network_id,
            institution_id=self.institution_of[person_id], attributes=attributes,
            version=version, changed_at=at(1),
        ))

    def profile(self, person_id: str, version: int, capacity: int = 2, paused: bool = False,
                public: bool = False, name: str | None = None) -> None:
        self._add(ev.ProfileUpdated(
            person_id=person_id, network_id=self.network_id,
            institution_id=self.institution_of[person_id],
            display_name=name or f"Person {person_id}", career_stage="attending",
            roles=["mentor"], mentor={"capacity": capacity, "paused": paused,
                                      "public_recognition": public},
            version=version, updated_at=at(1),
        ))

    def erase(self, person_id: str, day: float) -> None:
        self._add(ev.PersonErased(
            person_id=person_id, network_id=self.network_id,
            institution_id=self.institution_of[person_id], erased_at=at(0) + timedelta(days=day),
        ))

    # --- mentorships ---------------------------------------------------------------------

    def _ref(self, mentorship_id: str) -> dict[str, str]:
        return self.pairs[mentorship_id]

    def propose(self, mentorship_id: str, program_id: str, mentor_id: str, mentee_id: str,
                day: float, rematch: bool = False) -> None:
        self.pairs[mentorship_id] = dict(
            mentorship_id=mentorship_id, network_id=self.network_id, program_id=program_id,
            mentor_id=mentor_id, mentee_id=mentee_id,
            mentor_institution_id=self.institution_of[mentor_id],
            mentee_institution_id=self.institution_of[mentee_id],
        )
        self._add(ev.MatchProposed(**self._ref(mentorship_id), score=0.8, is_rematch=rematch,
                                   proposed_at=at(0) + timedelta(days=day)))

    def accept(self, mentorship_id: str, side: str, day: float) -> None:
        self._add(ev.MatchAccepted(**self._ref(mentorship_id), side=side,
                                   accepted_at=at(0) + timedelta(days=day)))

    def decline(self, mentorship_id: str, day: float, side: str = "mentor") -> None:
        self._add(ev.MatchDeclined(**self._ref(mentorship_id), side=side, reason="busy",
                                   declined_at=at(0) + timedelta(days=day)))

    def start(self, mentorship_id: str, day: float, cadence: int = 14,
              proposed_day: float | None = None) -> None:
        self._add(ev.MentorshipStarted(
            **self._ref(mentorship_id), cadence_days=cadence,
            proposed_at=None if proposed_day is None else at(0) + timedelta(days=proposed_day),
            started_at=at(0) + timedelta(days=day),
        ))

    def agree(self, mentorship_id: str, cadence: int, version: int = 1) -> None:
        self._add(ev.AgreementRecorded(**self._ref(mentorship_id), cadence_days=cadence,
                                       channel="video", goals=["g"], version=version,
                                       agreed_at=at(1)))

    def meet(self, mentorship_id: str, day: float, minutes: int = 60) -> str:
        meeting_id = self._id("mt")
        self._add(ev.MeetingLogged(
            **self._ref(mentorship_id), meeting_id=meeting_id,
            held_at=at(0) + timedelta(days=day), duration_minutes=minutes, mode="video",
            topics=["career"], logged_at=at(0) + timedelta(days=day),
        ))
        return meeting_id

    def goal(self, mentorship_id: str, day: float, achieved_day: float | None = None) -> str:
        goal_id = self._id("g")
        self._add(ev.GoalSet(**self._ref(mentorship_id), goal_id=goal_id, text="Publish a case",
                             category="research", set_at=at(0) + timedelta(days=day)))
        if achieved_day is not None:
            self._add(ev.GoalProgressUpdated(
                **self._ref(mentorship_id), goal_id=goal_id, progress=100, achieved=True,
                updated_at=at(0) + timedelta(days=achieved_day),
            ))
        return goal_id

    def milestone(self, mentorship_id: str, day: float) -> None:
        self._add(ev.MilestoneAchieved(**self._ref(mentorship_id), milestone_id=self._id("ms"),
                                       title="Abstract accepted",
                                       achieved_at=at(0) + timedelta(days=day)))

    def feedback(self, mentorship_id: str, side: str, satisfaction: int, day: float,
                 recommend: int | None = None, working: bool = True) -> None:
        self._add(ev.FeedbackSubmitted(
            **self._ref(mentorship_id), feedback_id=self._id("f"), side=side,
            satisfaction=satisfaction, working=working, recommend=recommend,
            submitted_at=at(0) + timedelta(days=day),
        ))

    def end(self, mentorship_id: str, day: float, reason: str = "completed",
            rematch: bool = False) -> None:
        self._add(ev.MentorshipEnded(**self._ref(mentorship_id), reason=reason, rematch=rematch,
                                     ended_at=at(0) + timedelta(days=day)))

    # --- delivery ------------------------------------------------------------------------

    def suffixed(self, suffix: str) -> Scenario:
        """The same story with every id suffixed, so several copies share one database."""
        copy = Scenario(self.network_id)
        for name, payload in self.events:
            update = {
                f: getattr(payload, f) + suffix for f in ID_FIELDS
                if isinstance(getattr(payload, f, None), str)
            }
            copy.events.append((name, payload.model_copy(update=update)))
        return copy

    def cloud_events(self) -> list[CloudEvent]:
        out = []
        for _, payload in self.events:
            subject = (
                getattr(payload, "mentorship_id", None) or getattr(payload, "person_id", None)
                or getattr(payload, "program_id", None) or getattr(payload, "institution_id")
            )
            out.append(new_event(payload, subject=subject, tenant_id=self.network_id,
                                 source="/tests/analytics"))
        return out


def hand_computed(network_id: str = "n1") -> Scenario:
    """The scenario of tests/unit/test_analytics_measures.py, whose numbers were worked out
    by hand there (read its docstring before changing anything here)."""
    s = Scenario(network_id)
    s.institution("A", "Alpha Medical School")
    s.institution("B", "Beta Chapter")
    s.program("P1", "A", cadence=14, name="Research mentoring")
    s.person("mentor", "M1", "A", 0, "P1", capacity=2, name="Dr One")
    s.person("mentor", "M2", "B", 0, "P1", capacity=1, name="Dr Two")
    s.person("mentor", "M3", "A", 2, "P1", capacity=3)
    s.profile("M3", version=1, capacity=3, paused=True)
    s.profile("M1", version=1, capacity=2, public=True, name="Dr One")
    for pid, inst, day in (("E1", "A", 0), ("E2", "A", 1), ("E3", "B", 2), ("E4", "A", 3), ("E5", "B", 10)):
        s.person("mentee", pid, inst, day, "P1", name=f"Student {pid}")
    s.withdraw("E5", 20, program_id="P1", role="mentee")
    s.propose("X1", "P1", "M1", "E1", 2)
    s.accept("X1", "mentee", 3)
    s.start("X1", 4, cadence=14, proposed_day=2)
    s.meet("X1", 5, 60)
    s.meet("X1", 12, 90)
    s.propose("X2", "P1", "M1", "E2", 3)
    s.start("X2", 8, cadence=14)
    s.agree("X2", cadence=7)
    s.meet("X2", 9, 30)
    s.propose("X3", "P1", "M2", "E3", 4)
    s.start("X3", 6, cadence=7)
    s.propose("X4", "P1", "M3", "E4", 5)
    s.decline("X4", 6)
    s.propose("X5", "P1", "M2", "E4", 7)
    s.start("X5", 10, cadence=10)
    s.meet("X5", 11, 60)
    s.end("X5", 20, reason="no_fit", rematch=True)
    s.propose("X6", "P1", "M1", "E4", 22, rematch=True)
    s.goal("X1", 5, achieved_day=20)
    s.goal("X2", 9)
    s.milestone("X1", 21)
    s.feedback("X1", "mentee", 5, 15, recommend=10)
    s.feedback("X1", "mentor", 4, 15, recommend=9)
    s.feedback("X5", "mentee", 2, 19, recommend=3, working=False)
    s.feedback("X2", "mentee", 5, 10)
    s.feedback("X2", "mentee", 4, 11)
    return s
