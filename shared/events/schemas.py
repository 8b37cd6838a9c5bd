"""Payload models of every event, by the service that publishes it.

Names are past tense: they state what happened. Each model's docstring becomes the event's
description in docs/asyncapi.yaml. A new field with a default is a compatible change; a
removed or retyped field needs a new schema version.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.events.registry import event_type
from shared.events.topics import MATCHING_TOPIC, NOTIFICATIONS_TOPIC, PROFILES_TOPIC


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _PersonRegistered(_Payload):
    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    program_id: str | None = None
    display_name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    career_stage: str = Field(min_length=1)
    specialty_interests: list[str] = Field(default_factory=list)
    registered_at: datetime


@event_type("MenteeRegistered", topic=PROFILES_TOPIC, aggregate="person")
class MenteeRegistered(_PersonRegistered):
    """A person registered as a mentee (in a program when `program_id` is set)."""


@event_type("MentorRegistered", topic=PROFILES_TOPIC, aggregate="person")
class MentorRegistered(_PersonRegistered):
    """A person registered as a mentor, offering `capacity` places for mentees."""

    capacity: int = Field(default=1, ge=0)


@event_type("InstitutionCreated", topic=PROFILES_TOPIC, aggregate="institution")
class InstitutionCreated(_Payload):
    """An institution or chapter (`kind`) joined a network; the subject is its id."""

    institution_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    created_at: datetime


class _ProgramState(_Payload):
    """The whole program after the change, so consumers keep a view from events alone."""

    program_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str | None = None  # None: a network-wide program
    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    cohort_start: date
    cohort_end: date
    enrolment_opens: date
    enrolment_closes: date
    cross_institution: bool
    max_mentors_per_mentee: int = Field(ge=1)
    cadence_days: int = Field(ge=1)
    requires_approval: bool
    version: int = Field(ge=1)
    # Added after version 1 of the schema, with defaults, so older events still validate.
    auto_accept: bool = False  # proposals become mentorships without asking either side
    reassessment_days: int = Field(default=90, ge=1)  # check-in / feedback rhythm
    ranked_preferences: bool = False  # the program collects ranked lists from both sides
    coordinator_emails: list[str] = Field(default_factory=list)  # who receives digests


@event_type("ProgramCreated", topic=PROFILES_TOPIC, aggregate="program")
class ProgramCreated(_ProgramState):
    """A program was created (network-wide when `institution_id` is null) at `version` 1."""

    created_at: datetime


@event_type("ProgramUpdated", topic=PROFILES_TOPIC, aggregate="program")
class ProgramUpdated(_ProgramState):
    """A program was edited: its full state at the new `version`, and which fields `changed`."""

    changed: list[str] = Field(default_factory=list)
    updated_at: datetime


class _MentorProfileState(_Payload):
    specialty: str | None = None
    subspecialty: str | None = None
    help_offered: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    meeting_modes: list[str] = Field(default_factory=list)
    time_zone: str | None = None
    capacity: int = Field(default=1, ge=0)
    paused: bool = False
    training_completed: bool = False
    do_not_match: list[str] = Field(default_factory=list)
    # Added for analytics (issue 6): the mentor agrees to be named in public recognition.
    public_recognition: bool = False


class _Goal(_Payload):
    text: str
    category: str
    target_date: date | None = None


class _MenteeProfileState(_Payload):
    specialty_interests: list[str] = Field(default_factory=list)
    goals: list[_Goal] = Field(default_factory=list)
    needs: list[str] = Field(default_factory=list)
    prefer_same_institution: bool | None = None
    preferred_mode: str | None = None
    preferred_language: str | None = None
    mentors_wanted: int = Field(default=1, ge=1)
    mentors_for_needs: list[str] = Field(default_factory=list)


@event_type("ProfileUpdated", topic=PROFILES_TOPIC, aggregate="person")
class ProfileUpdated(_Payload):
    """A person's profile changed: its whole state at `version` (mentor and mentee parts, null
    when the person is not one), and which parts `changed`. Opt-in identity attributes are
    never part of it; an edit of those alone publishes nothing."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    career_stage: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list)
    mentor: _MentorProfileState | None = None
    mentee: _MenteeProfileState | None = None
    changed: list[str] = Field(default_factory=list)
    version: int = Field(ge=1)
    updated_at: datetime


@event_type("MentorCapacityChanged", topic=PROFILES_TOPIC, aggregate="person")
class MentorCapacityChanged(_Payload):
    """A mentor now takes `capacity` mentees at once (`previous_capacity` null when the person
    just became a mentor through a profile edit)."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    capacity: int = Field(ge=0)
    previous_capacity: int | None = None
    version: int = Field(ge=1)
    changed_at: datetime


@event_type("MentorPaused", topic=PROFILES_TOPIC, aggregate="person")
class MentorPaused(_Payload):
    """A mentor paused matching (`paused` true) or resumed it (`paused` false)."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    paused: bool
    version: int = Field(ge=1)
    changed_at: datetime


@event_type("IdentityAttributesChanged", topic=PROFILES_TOPIC, aggregate="person")
class IdentityAttributesChanged(_Payload):
    """A person's opt-in identity attributes changed (empty `attributes` when withdrawn).

    Consumers may use them only as the person allows: matching only when `use_for_matching`
    (affinity), analytics only in aggregate with small cells suppressed; never shown to other
    participants. They travel apart from `ProfileUpdated` so a consumer that has no business
    with them can ignore one event type."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    attributes: dict[str, str] = Field(default_factory=dict)
    use_for_matching: bool = False
    version: int = Field(ge=1)
    changed_at: datetime


@event_type("EnrolmentRequested", topic=PROFILES_TOPIC, aggregate="person")
class EnrolmentRequested(_Payload):
    """A person asked to join a program that requires approval; a coordinator must decide."""

    enrolment_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    program_id: str = Field(min_length=1)
    role: str = Field(pattern="^(mentor|mentee)$")
    requested_at: datetime


@event_type("EnrolmentDeclined", topic=PROFILES_TOPIC, aggregate="person")
class EnrolmentDeclined(_Payload):
    """A coordinator declined a request to join a program, with the reason given."""

    enrolment_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    program_id: str = Field(min_length=1)
    role: str = Field(pattern="^(mentor|mentee)$")
    reason: str = ""
    declined_at: datetime


@event_type("PersonEnrolled", topic=PROFILES_TOPIC, aggregate="person")
class PersonEnrolled(_Payload):
    """A person takes part in a program as mentor or mentee (directly, by import, or once a
    coordinator approved the request). One person may be enrolled in several programs, in
    different roles."""

    enrolment_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    program_id: str = Field(min_length=1)
    role: str = Field(pattern="^(mentor|mentee)$")
    enrolled_at: datetime


@event_type("ParticipantWithdrawn", topic=PROFILES_TOPIC, aggregate="person")
class ParticipantWithdrawn(_Payload):
    """A person left a program (or every program when `program_id` is null) in the role given
    (both roles when `role` is null). Their open mentorships there must close."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    program_id: str | None = None
    role: str | None = Field(default=None, pattern="^(mentor|mentee)$")
    reason: str = ""
    withdrawn_at: datetime


@event_type("PersonErased", topic=PROFILES_TOPIC, aggregate="person")
class PersonErased(_Payload):
    """A person's personal data was erased at their request. Every service removes what it
    holds about them (names, emails, notes, free text) and keeps only anonymous counts; no
    message is ever sent to them again."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    institution_id: str = Field(min_length=1)
    erased_at: datetime


# --- profiles: networks, staff grants and sign-in ----------------------------------------


@event_type("NetworkCreated", topic=PROFILES_TOPIC, aggregate="network")
class NetworkCreated(_Payload):
    """A platform operator created a network (a multi-institution network or an association);
    its first network admin is announced by a `GrantAdded` of the same network."""

    network_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    created_at: datetime


class _GrantRef(_Payload):
    grant_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    role: str = Field(pattern="^(network_admin|institution_coordinator|program_coordinator)$")
    institution_id: str | None = None  # institution coordinators: the institution
    program_id: str | None = None  # program coordinators: the program
    by_person_id: str | None = None  # who granted or revoked (null: the platform operator)


@event_type("GrantAdded", topic=PROFILES_TOPIC, aggregate="person")
class GrantAdded(_GrantRef):
    """A person was given a staff role: network admin of the network, coordinator of one
    institution, or coordinator of one program. Services authorize from the token, which
    carries the person's current grants; this event keeps their own views (coordinator lists,
    audit, reports) in step. `email` and `display_name` are the holder's, so a service can
    write to a coordinator who takes part in no program (and is in no registration event)."""

    granted_at: datetime
    email: str | None = None
    display_name: str | None = None


@event_type("GrantRevoked", topic=PROFILES_TOPIC, aggregate="person")
class GrantRevoked(_GrantRef):
    """A staff role was taken back. Tokens already issued keep it until they expire (minutes);
    the next refresh no longer carries it."""

    revoked_at: datetime


@event_type("SignInLinkRequested", topic=PROFILES_TOPIC, aggregate="person")
class SignInLinkRequested(_Payload):
    """A person of the network asked for an email sign-in link. Notifications sends it at once
    as the mandatory message kind `sign_in_link`. The link is single-use and expires at
    `expires_at` (15 minutes); requests for unknown emails produce no event at all. `email`
    is where to send it (staff who take part in no program are in no registration event)."""

    person_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    email: str = Field(min_length=3)
    display_name: str | None = None
    link_url: str = Field(min_length=1)
    expires_at: datetime
    requested_at: datetime


# --- matching: proposals and the life of a mentorship -------------------------------------
# Every mentorship event carries the pair, the program and both institutions, so a consumer
# can file it under the right scope even when it arrives before the events that preceded it.


class _MentorshipRef(_Payload):
    mentorship_id: str = Field(min_length=1)  # the proposal's id, kept when it becomes active
    network_id: str = Field(min_length=1)
    program_id: str = Field(min_length=1)
    mentor_id: str = Field(min_length=1)
    mentee_id: str = Field(min_length=1)
    mentor_institution_id: str = Field(min_length=1)
    mentee_institution_id: str = Field(min_length=1)


@event_type("MatchingRunPublished", topic=MATCHING_TOPIC, aggregate="matching-run")
class MatchingRunPublished(_Payload):
    """A coordinator published a reviewed matching run; one `MatchProposed` per pair follows."""

    run_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    program_id: str = Field(min_length=1)
    algorithm: str = Field(min_length=1)  # "min-cost-flow" | "deferred-acceptance" | "manual"
    proposals: int = Field(ge=0)
    mentees_eligible: int = Field(ge=0)
    mentees_matched: int = Field(ge=0)
    total_score: float = 0.0
    published_by: str = Field(min_length=1)
    published_at: datetime


@event_type("MatchProposed", topic=MATCHING_TOPIC, aggregate="mentorship")
class MatchProposed(_MentorshipRef):
    """A mentor and a mentee were proposed to each other, with the score and its explanation
    in words (`need` is the mentee's need this mentor is for, when the mentee asked for a
    mentor per need). `auto_accept` means the program starts it without asking."""

    run_id: str | None = None  # null for a suggestion the mentee picked or a hand match
    need: str | None = None
    score: float = 0.0
    explanation: list[str] = Field(default_factory=list)
    auto_accept: bool = False
    is_rematch: bool = False
    proposed_at: datetime


@event_type("MatchAccepted", topic=MATCHING_TOPIC, aggregate="mentorship")
class MatchAccepted(_MentorshipRef):
    """One side (`side`: mentor or mentee) accepted a proposal (`by` null when automatic)."""

    side: str = Field(pattern="^(mentor|mentee)$")
    by: str | None = None
    accepted_at: datetime


@event_type("MatchDeclined", topic=MATCHING_TOPIC, aggregate="mentorship")
class MatchDeclined(_MentorshipRef):
    """One side declined a proposal (or it lapsed: `side` "system"); the pair is never
    proposed again."""

    side: str = Field(pattern="^(mentor|mentee|system)$")
    by: str | None = None
    reason: str = ""
    declined_at: datetime


@event_type("MentorshipStarted", topic=MATCHING_TOPIC, aggregate="mentorship")
class MentorshipStarted(_MentorshipRef):
    """Both sides accepted (or the program auto-accepts): the mentorship is active and takes
    one of the mentor's places. `proposed_at` lets time-to-match be computed from this alone."""

    cadence_days: int = Field(ge=1)
    proposed_at: datetime | None = None
    started_at: datetime


@event_type("AgreementRecorded", topic=MATCHING_TOPIC, aggregate="mentorship")
class AgreementRecorded(_MentorshipRef):
    """The pair set their expectations: meeting cadence, channel, and goals in SMART form."""

    cadence_days: int = Field(ge=1)
    channel: str = Field(min_length=1)
    goals: list[str] = Field(default_factory=list)
    version: int = Field(default=1, ge=1)
    agreed_at: datetime


@event_type("MeetingScheduled", topic=MATCHING_TOPIC, aggregate="mentorship")
class MeetingScheduled(_MentorshipRef):
    """A meeting of the pair was scheduled (`location` is a place or a video link)."""

    meeting_id: str = Field(min_length=1)
    starts_at: datetime
    duration_minutes: int = Field(ge=1)
    mode: str = Field(min_length=1)
    location: str = ""
    agenda: str = ""
    scheduled_by: str | None = None
    scheduled_at: datetime


@event_type("MeetingLogged", topic=MATCHING_TOPIC, aggregate="mentorship")
class MeetingLogged(_MentorshipRef):
    """A meeting took place (`held_at`); private notes never leave the matching service."""

    meeting_id: str = Field(min_length=1)
    held_at: datetime
    duration_minutes: int = Field(ge=1)
    mode: str = Field(min_length=1)
    topics: list[str] = Field(default_factory=list)
    logged_by: str | None = None
    logged_at: datetime


@event_type("GoalSet", topic=MATCHING_TOPIC, aggregate="mentorship")
class GoalSet(_MentorshipRef):
    """The pair set a goal for the mentee."""

    goal_id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    category: str = Field(min_length=1)
    target_date: date | None = None
    set_at: datetime


@event_type("GoalProgressUpdated", topic=MATCHING_TOPIC, aggregate="mentorship")
class GoalProgressUpdated(_MentorshipRef):
    """Progress on a goal, in percent; `achieved` once it reaches its end."""

    goal_id: str = Field(min_length=1)
    progress: int = Field(ge=0, le=100)
    achieved: bool = False
    note: str = ""
    updated_at: datetime


@event_type("MilestoneAchieved", topic=MATCHING_TOPIC, aggregate="mentorship")
class MilestoneAchieved(_MentorshipRef):
    """The mentee reached a milestone (a paper submitted, a rotation secured, a match day)."""

    milestone_id: str = Field(min_length=1)
    goal_id: str | None = None
    title: str = Field(min_length=1)
    achieved_at: datetime


@event_type("FeedbackSubmitted", topic=MATCHING_TOPIC, aggregate="mentorship")
class FeedbackSubmitted(_MentorshipRef):
    """A periodic check-in from one side: satisfaction 1-5, whether it is working, and an
    optional 0-10 would-recommend score. Free text stays in the matching service."""

    feedback_id: str = Field(min_length=1)
    side: str = Field(pattern="^(mentor|mentee)$")
    satisfaction: int = Field(ge=1, le=5)
    working: bool
    recommend: int | None = Field(default=None, ge=0, le=10)
    submitted_at: datetime


@event_type("MentorshipEnded", topic=MATCHING_TOPIC, aggregate="mentorship")
class MentorshipEnded(_MentorshipRef):
    """A mentorship closed, with the reason: completed, no_fit, withdrawn, left_institution or
    erased. The mentor's place is free again; `rematch` says the mentee wants another mentor."""

    reason: str = Field(pattern="^(completed|no_fit|withdrawn|left_institution|erased)$")
    ended_by: str | None = None
    rematch: bool = False
    started_at: datetime | None = None
    ended_at: datetime


# --- notifications ----------------------------------------------------------------------


@event_type("MessageDelivered", topic=NOTIFICATIONS_TOPIC, aggregate="delivery")
class MessageDelivered(_Payload):
    """A message of `kind` reached a recipient over `channel` (email, in_app, webhook)."""

    delivery_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    recipient_id: str | None = None  # a person, or null for a webhook endpoint
    kind: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    mentorship_id: str | None = None
    program_id: str | None = None
    delivered_at: datetime


@event_type("MessageFailed", topic=NOTIFICATIONS_TOPIC, aggregate="delivery")
class MessageFailed(_Payload):
    """A message could not be delivered after its last try; admins see it and can retry."""

    delivery_id: str = Field(min_length=1)
    network_id: str = Field(min_length=1)
    recipient_id: str | None = None
    kind: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    reason: str = ""
    failed_at: datetime
