"""The life of a mentorship (pure: no I/O): proposed -> accepted or declined by each side ->
active -> ended, and what is recorded on the way (agreement, meetings, goals, milestones,
feedback).

Each step returns the fields to set and the events that announce it; the store writes both
in one conditional document update (transactional outbox), the condition being the state the
step was computed from, so two concurrent steps can never both apply. Rules raise
`LifecycleError` with the HTTP status and a message meant for a person.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.events import CloudEvent, new_event
from shared.events.schemas import (
    AgreementRecorded,
    FeedbackSubmitted,
    GoalProgressUpdated,
    GoalSet,
    MatchAccepted,
    MatchDeclined,
    MatchProposed,
    MeetingLogged,
    MeetingScheduled,
    MentorshipEnded,
    MentorshipStarted,
    MilestoneAchieved,
)

SOURCE = "/matching"
SIDES = ("mentor", "mentee")
OPEN = ("proposed", "active")
END_REASONS = ("completed", "no_fit", "withdrawn", "left_institution", "erased")
CLOCK_SKEW = timedelta(seconds=5)


class LifecycleError(Exception):
    """A step that cannot happen: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now() -> datetime:
    """Millisecond precision, as BSON stores it, so a response equals a later read."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _ms(t: datetime) -> datetime:
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


# Milestones have their own prefix: they were `ms-`, the mentorship ids' own, so a milestone id
# read like a mentorship's. Ids recorded before keep their old prefix (nothing looks them up).
MILESTONE_PREFIX = "mil"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def when(
    at: datetime | None, previous: datetime | None, current: datetime, what: str, field: str = "at"
) -> datetime:
    """The time a step happened: `at` when backfilling history, else now. Never in the future
    and never before the step it follows. `field` names the input in the message."""
    if at is None:
        return max(current, _ms(previous)) if previous else current
    at = _ms(at)
    if at > current + CLOCK_SKEW:
        raise LifecycleError(422, f"`{field}` ({at.isoformat()}) is in the future; {what} must have happened already.")
    if previous is not None and at < _ms(previous):
        raise LifecycleError(
            422,
            f"`{field}` ({at.isoformat()}) is before the previous step of this mentorship "
            f"({_ms(previous).isoformat()}); {what} cannot come first.",
        )
    return at


def ref(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every mentorship event carries, so consumers can file it by scope."""
    return {
        "mentorship_id": doc["_id"],
        "network_id": doc["network_id"],
        "program_id": doc["program_id"],
        "mentor_id": doc["mentor_id"],
        "mentee_id": doc["mentee_id"],
        "mentor_institution_id": doc["mentor_institution_id"],
        "mentee_institution_id": doc["mentee_institution_id"],
    }


def event(payload: BaseModel, doc: Mapping[str, Any], at: datetime) -> CloudEvent:
    return new_event(payload, subject=doc["_id"], tenant_id=doc["network_id"], source=SOURCE, at=at)


@dataclass(frozen=True)
class Step:
    """Fields to `$set` (and to `$push` / `$unset`), the events, and the state the step
    requires."""

    set: dict[str, Any]
    events: list[CloudEvent]
    push: dict[str, Any] | None = None
    expect: dict[str, Any] | None = None  # extra filter: the state it was computed from
    unset: tuple[str, ...] = ()

    def update(self) -> dict[str, Any]:
        update: dict[str, Any] = {"$set": self.set}
        if self.push:
            update["$push"] = self.push
        if self.unset:
            update["$unset"] = dict.fromkeys(self.unset, "")
        return update


def open_pair(mentee_id: str, mentor_id: str) -> str:
    """The key a unique (sparse) index holds while a pair's mentorship is open, so two
    concurrent proposals of one pair cannot both be created; closing removes it."""
    return f"{mentee_id}|{mentor_id}"


CLOSES = ("open_pair",)


def proposal(
    *,
    mentorship_id: str,
    network_id: str,
    program: Mapping[str, Any],
    mentor: Mapping[str, Any],
    mentee: Mapping[str, Any],
    score: float,
    explanation: list[str],
    need: str | None,
    run_id: str | None,
    is_rematch: bool,
    at: datetime,
) -> tuple[dict[str, Any], list[CloudEvent]]:
    """A new mentorship in status "proposed", and its MatchProposed."""
    doc: dict[str, Any] = {
        "_id": mentorship_id,
        "network_id": network_id,
        "program_id": program["_id"],
        "program_institution_id": program.get("institution_id"),
        "mentor_id": mentor["_id"],
        "mentee_id": mentee["_id"],
        "mentor_institution_id": mentor.get("institution_id", ""),
        "mentee_institution_id": mentee.get("institution_id", ""),
        "status": "proposed",
        "open_pair": open_pair(mentee["_id"], mentor["_id"]),
        "accepted_by": {"mentor": False, "mentee": False},
        "proposed_at": at,
        "started_at": None,
        "ended_at": None,
        "end_reason": None,
        "score": round(score, 1),
        "explanation": list(explanation),
        "need": need,
        "run_id": run_id,
        "is_rematch": is_rematch,
        "auto_accept": bool(program.get("auto_accept")),
        "cadence_days": int(program.get("cadence_days") or 30),
        "reassessment_days": int(program.get("reassessment_days") or 90),
        "agreement": None,
        "meetings": [],
        "goals": [],
        "milestones": [],
        "feedback": [],
        "last_step_at": at,
    }
    payload = MatchProposed(
        **ref(doc),
        run_id=run_id,
        need=need,
        score=doc["score"],
        explanation=doc["explanation"],
        auto_accept=doc["auto_accept"],
        is_rematch=is_rematch,
        proposed_at=at,
    )
    return doc, [event(payload, doc, at)]


def started(doc: Mapping[str, Any], at: datetime) -> tuple[dict[str, Any], CloudEvent]:
    fields = {"status": "active", "started_at": at, "last_step_at": at}
    payload = MentorshipStarted(
        **ref(doc), cadence_days=doc["cadence_days"], proposed_at=doc["proposed_at"], started_at=at
    )
    return fields, event(payload, doc, at)


def auto_start(doc: dict[str, Any], events: list[CloudEvent]) -> None:
    """A program that auto-accepts: both sides count as accepted and the mentorship starts
    at once (the caller has reserved the mentor's place)."""
    at = doc["proposed_at"]
    doc["accepted_by"] = {"mentor": True, "mentee": True}
    for side in SIDES:
        events.append(event(MatchAccepted(**ref(doc), side=side, by=None, accepted_at=at), doc, at))
    fields, start = started(doc, at)
    doc.update(fields)
    events.append(start)


def side_of(doc: Mapping[str, Any], person_id: str | None, coordinator: bool, side: str | None) -> str:
    """Which side the caller acts for: their own; a coordinator names it."""
    if person_id == doc["mentor_id"]:
        own = "mentor"
    elif person_id == doc["mentee_id"]:
        own = "mentee"
    else:
        own = None
    if own is not None and (side is None or side == own):
        return own
    if coordinator:
        if side not in SIDES:
            raise LifecycleError(422, "As a coordinator, say which side you act for: `side` mentor or mentee.")
        return side
    raise LifecycleError(403, "Only the mentor or the mentee of this mentorship can do that for themselves.")


def _require(doc: Mapping[str, Any], statuses: tuple[str, ...], what: str) -> None:
    if doc["status"] not in statuses:
        raise LifecycleError(409, f"This mentorship is {doc['status']}; {what} needs it {' or '.join(statuses)}.")


def accept(doc: Mapping[str, Any], side: str, by: str | None, at: datetime | None, current: datetime) -> tuple[Step, bool]:
    """One side accepts; the bool says the mentorship starts (both sides have accepted), for
    which the caller must first reserve a place of the mentor."""
    _require(doc, ("proposed",), "accepting")
    if doc["accepted_by"][side]:
        raise LifecycleError(409, f"The {side} has already accepted this proposal.")
    t = when(at, doc["last_step_at"], current, "an acceptance")
    accepted = event(MatchAccepted(**ref(doc), side=side, by=by, accepted_at=t), doc, t)
    fields: dict[str, Any] = {f"accepted_by.{side}": True, "last_step_at": t}
    other = "mentee" if side == "mentor" else "mentor"
    expect = {"status": "proposed", f"accepted_by.{side}": False, f"accepted_by.{other}": doc["accepted_by"][other]}
    if not doc["accepted_by"][other]:
        return Step(fields, [accepted], expect=expect), False
    start_fields, start = started(doc, t)
    return Step({**fields, **start_fields}, [accepted, start], expect=expect), True


def decline(doc: Mapping[str, Any], side: str, by: str | None, reason: str, at: datetime | None, current: datetime) -> Step:
    _require(doc, ("proposed",), "declining")
    t = when(at, doc["last_step_at"], current, "a decline")
    payload = MatchDeclined(**ref(doc), side=side, by=by, reason=reason, declined_at=t)
    fields = {"status": "declined", "declined_by": side, "decline_reason": reason, "ended_at": t, "last_step_at": t}
    return Step(fields, [event(payload, doc, t)], expect={"status": "proposed"}, unset=CLOSES)


def agreement(doc: Mapping[str, Any], cadence_days: int, channel: str, goals: list[str], at: datetime | None, current: datetime) -> Step:
    _require(doc, ("active",), "an agreement")
    t = when(at, doc["started_at"], current, "an agreement")
    version = (doc.get("agreement") or {}).get("version", 0) + 1
    record = {"cadence_days": cadence_days, "channel": channel, "goals": goals, "version": version, "agreed_at": t}
    payload = AgreementRecorded(**ref(doc), cadence_days=cadence_days, channel=channel, goals=goals, version=version, agreed_at=t)
    return Step({"agreement": record, "cadence_days": cadence_days}, [event(payload, doc, t)], expect={"status": "active"})


def schedule(doc: Mapping[str, Any], by: str | None, body: Mapping[str, Any], current: datetime) -> tuple[Step, dict[str, Any]]:
    _require(doc, ("active",), "scheduling a meeting")
    current = when(body.get("at"), doc["started_at"], current, "scheduling the meeting")
    meeting = {
        "meeting_id": new_id("meet"),
        "starts_at": _ms(body["starts_at"]),
        "duration_minutes": body["duration_minutes"],
        "mode": body["mode"],
        "location": body.get("location") or "",
        "agenda": body.get("agenda") or "",
        "scheduled_by": by,
        "scheduled_at": current,
        "status": "scheduled",
    }
    payload = MeetingScheduled(**ref(doc), **{k: v for k, v in meeting.items() if k not in ("status", "at")})
    return Step({}, [event(payload, doc, current)], push={"meetings": meeting}, expect={"status": "active"}), meeting


def log_meeting(doc: Mapping[str, Any], by: str | None, body: Mapping[str, Any], current: datetime) -> tuple[Step, dict[str, Any]]:
    """A meeting that took place: a scheduled one (by `meeting_id`) or one logged afterwards."""
    _require(doc, ("active",), "logging a meeting")
    held = when(body["held_at"], doc["started_at"], current, "the meeting", "held_at")
    record = {
        "held_at": held,
        "duration_minutes": body["duration_minutes"],
        "mode": body["mode"],
        "topics": list(body.get("topics") or []),
        "private_notes": body.get("private_notes") or "",
        "logged_by": by,
        "logged_at": current,
        "status": "held",
    }
    meeting_id = body.get("meeting_id")
    if meeting_id:
        index = next((i for i, m in enumerate(doc["meetings"]) if m["meeting_id"] == meeting_id), None)
        if index is None:
            raise LifecycleError(404, f"This mentorship has no meeting {meeting_id}.")
        if doc["meetings"][index]["status"] == "held":
            raise LifecycleError(409, "That meeting is already logged.")
        fields = {f"meetings.{index}.{k}": v for k, v in record.items()}
        meeting = {**doc["meetings"][index], **record}
        step_push = None
        expect = {"status": "active", f"meetings.{index}.meeting_id": meeting_id, f"meetings.{index}.status": "scheduled"}
    else:
        meeting = {"meeting_id": new_id("meet"), "starts_at": held, "location": "", "agenda": "",
                   "scheduled_by": None, "scheduled_at": None, **record}
        fields, step_push, expect = {}, {"meetings": meeting}, {"status": "active"}
    payload = MeetingLogged(
        **ref(doc), meeting_id=meeting["meeting_id"], held_at=held, duration_minutes=record["duration_minutes"],
        mode=record["mode"], topics=record["topics"], logged_by=by, logged_at=current,
    )
    return Step(fields, [event(payload, doc, current)], push=step_push, expect=expect), meeting


def set_goal(doc: Mapping[str, Any], body: Mapping[str, Any], at: datetime | None, current: datetime) -> tuple[Step, dict[str, Any]]:
    _require(doc, ("active",), "setting a goal")
    t = when(at, doc["started_at"], current, "setting the goal")
    goal = {"goal_id": new_id("goal"), "text": body["text"], "category": body["category"],
            "target_date": body.get("target_date"), "progress": 0, "achieved": False, "set_at": t, "updates": []}
    payload = GoalSet(**ref(doc), goal_id=goal["goal_id"], text=goal["text"], category=goal["category"],
                      target_date=goal["target_date"], set_at=t)
    stored = {**goal, "target_date": goal["target_date"].isoformat() if goal["target_date"] else None}
    return Step({}, [event(payload, doc, t)], push={"goals": stored}, expect={"status": "active"}), stored


def _goal_index(doc: Mapping[str, Any], goal_id: str) -> int:
    index = next((i for i, g in enumerate(doc["goals"]) if g["goal_id"] == goal_id), None)
    if index is None:
        raise LifecycleError(404, f"This mentorship has no goal {goal_id}.")
    return index


def progress(doc: Mapping[str, Any], goal_id: str, value: int, note: str, at: datetime | None, current: datetime) -> Step:
    _require(doc, ("active",), "updating a goal")
    index = _goal_index(doc, goal_id)
    goal = doc["goals"][index]
    updates = goal.get("updates") or []
    previous = updates[-1]["at"] if updates else goal["set_at"]
    t = when(at, previous, current, "the progress")
    achieved = value >= 100
    payload = GoalProgressUpdated(**ref(doc), goal_id=goal_id, progress=value, achieved=achieved, note=note, updated_at=t)
    fields = {f"goals.{index}.progress": value, f"goals.{index}.achieved": achieved}
    push = {f"goals.{index}.updates": {"progress": value, "note": note, "at": t}}
    return Step(fields, [event(payload, doc, t)], push=push, expect={"status": "active", f"goals.{index}.goal_id": goal_id})


def milestone(doc: Mapping[str, Any], title: str, goal_id: str | None, at: datetime | None, current: datetime) -> tuple[Step, dict[str, Any]]:
    _require(doc, ("active",), "recording a milestone")
    if goal_id is not None:
        _goal_index(doc, goal_id)
    t = when(at, doc["started_at"], current, "the milestone")
    record = {"milestone_id": new_id(MILESTONE_PREFIX), "goal_id": goal_id, "title": title, "achieved_at": t}
    payload = MilestoneAchieved(**ref(doc), **record)
    return Step({}, [event(payload, doc, t)], push={"milestones": record}, expect={"status": "active"}), record


def feedback(doc: Mapping[str, Any], side: str, body: Mapping[str, Any], at: datetime | None, current: datetime) -> tuple[Step, dict[str, Any]]:
    _require(doc, ("active", "ended"), "feedback")
    t = when(at, doc["started_at"], current, "the feedback")
    record = {"feedback_id": new_id("fb"), "side": side, "satisfaction": body["satisfaction"], "working": body["working"],
              "recommend": body.get("recommend"), "comment": body.get("comment") or "", "submitted_at": t}
    payload = FeedbackSubmitted(**ref(doc), **{k: v for k, v in record.items() if k != "comment"})
    return Step({}, [event(payload, doc, t)], push={"feedback": record}, expect={"status": {"$in": ["active", "ended"]}}), record


def end(doc: Mapping[str, Any], reason: str, rematch: bool, by: str | None, at: datetime | None, current: datetime) -> Step:
    """Close an active mentorship with a reason (a proposal is declined, not ended)."""
    if doc["status"] == "proposed":
        raise LifecycleError(409, "This mentorship has not started; decline the proposal instead of ending it.")
    _require(doc, ("active",), "ending")
    if reason not in END_REASONS:
        raise LifecycleError(422, f"`reason` must be one of {', '.join(END_REASONS)}.")
    t = when(at, doc["last_step_at"], current, "the end")
    payload = MentorshipEnded(**ref(doc), reason=reason, ended_by=by, rematch=rematch, started_at=doc.get("started_at"), ended_at=t)
    fields = {"status": "ended", "end_reason": reason, "rematch": rematch, "ended_at": t, "last_step_at": t}
    return Step(fields, [event(payload, doc, t)], expect={"status": "active"}, unset=CLOSES)


def close(doc: Mapping[str, Any], reason: str, rematch: bool, at: datetime, current: datetime) -> Step:
    """A person left (withdrawn, erased): an active mentorship ends with that reason; a proposal
    still waiting lapses (MatchDeclined, side "system"), so it can never start later."""
    if doc["status"] == "active":
        return end(doc, reason, rematch, None, at, current)
    _require(doc, ("proposed",), "closing")
    t = when(at, doc["last_step_at"], current, "the closure")
    payload = MatchDeclined(**ref(doc), side="system", by=None, reason=reason, declined_at=t)
    fields = {"status": "declined", "declined_by": "system", "decline_reason": reason, "ended_at": t, "last_step_at": t}
    return Step(fields, [event(payload, doc, t)], expect={"status": "proposed"}, unset=CLOSES)


def scrub(doc: Mapping[str, Any], person_id: str) -> dict[str, Any]:
    """Fields to overwrite when a person of the pair is erased: free text goes (notes,
    comments, agendas, goal texts, the explanation, which may name affinity attributes);
    dates, counts and scores stay for anonymous analytics."""
    fields: dict[str, Any] = {"explanation": [], "erased_parties": sorted({*doc.get("erased_parties", []), person_id})}
    for i, _ in enumerate(doc.get("meetings") or []):
        fields.update({f"meetings.{i}.private_notes": "", f"meetings.{i}.agenda": "", f"meetings.{i}.location": "",
                       f"meetings.{i}.topics": []})
    for i, _ in enumerate(doc.get("goals") or []):
        fields.update({f"goals.{i}.text": "(erased)", f"goals.{i}.updates": []})
    for i, _ in enumerate(doc.get("feedback") or []):
        fields[f"feedback.{i}.comment"] = ""
    for i, _ in enumerate(doc.get("milestones") or []):
        fields[f"milestones.{i}.title"] = "(erased)"
    if doc.get("agreement"):
        fields["agreement.goals"] = []
    return fields
