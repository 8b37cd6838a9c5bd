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
        self._n += 1
        return f"{prefix}{self._n}"

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
