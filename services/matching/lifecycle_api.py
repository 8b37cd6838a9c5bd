"""HTTP API of the life of a mentorship (MATCHING-API.md): read, accept / decline by each
side, agreement, meetings, goals, milestones, feedback, end and rematch.

Every step is one conditional write of the mentorship document with its events (outbox);
a step computed from a state someone else changed meanwhile is a 409 to retry. Starting a
mentorship first reserves one of the mentor's places with an atomic conditional update of
the mentor's load document (`active < capacity`), so concurrent acceptances never exceed the
capacity; the reservation is given back if the mentorship changed meanwhile.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.matching import access, lifecycle
from services.matching.lifecycle import LifecycleError, Step
from services.matching.store import MentorshipStore, Places, PoolStore, ProgramStore
from shared.auth import CurrentPrincipal, Principal
from shared.pagination import after_id, id_cursor
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}/mentorships", tags=["mentorships"])

Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcceptIn(_In):
    at: datetime | None = None
    side: Literal["mentor", "mentee"] | None = None


class DeclineIn(AcceptIn):
    reason: Text = ""


class AgreementIn(_In):
    cadence_days: int = Field(ge=1, le=366)
    channel: Short
    goals: list[Text] = Field(default_factory=list, max_length=20)
    at: datetime | None = None


class MeetingIn(_In):
    starts_at: datetime
    duration_minutes: int = Field(ge=1, le=24 * 60)
    mode: Short
    location: Text | None = None
    agenda: Text | None = None
    at: datetime | None = Field(default=None, description="When it was scheduled (backfilling history)")


class MeetingLogIn(_In):
    meeting_id: str | None = None
    held_at: datetime
    duration_minutes: int = Field(ge=1, le=24 * 60)
    mode: Short
    topics: list[Short] = Field(default_factory=list, max_length=30)
    private_notes: Annotated[str, Field(max_length=10_000)] | None = None


class GoalIn(_In):
    text: Text = Field(min_length=1)
    category: Short
    target_date: date | None = None
    at: datetime | None = None


class ProgressIn(_In):
    progress: int = Field(ge=0, le=100)
    note: Text = ""
    at: datetime | None = None


class MilestoneIn(_In):
    title: Short
    goal_id: str | None = None
    at: datetime | None = None


class FeedbackIn(_In):
    satisfaction: int = Field(ge=1, le=5)
    working: bool
    recommend: int | None = Field(default=None, ge=0, le=10)
    comment: Text | None = None
    at: datetime | None = None


class EndIn(_In):
    reason: Literal["completed", "no_fit", "withdrawn", "left_institution"]
    rematch: bool = False
    at: datetime | None = None


PUBLIC = ("program_id", "mentor_id", "mentee_id", "mentor_institution_id", "mentee_institution_id", "status",
          "accepted_by", "proposed_at", "started_at", "ended_at", "end_reason", "score", "explanation", "agreement",
          "need", "run_id", "is_rematch", "auto_accept", "cadence_days", "reassessment_days", "rematch",
          "declined_by", "decline_reason")


def mentorship_out(doc: dict[str, Any], principal: Principal, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"mentorship_id": doc["_id"], **{k: doc.get(k) for k in PUBLIC}}
    if doc.get("started_at"):
        out["reassessment_due"] = doc["started_at"] + timedelta(days=doc.get("reassessment_days") or 90)
    if full:
        out["goals"] = [{k: v for k, v in g.items()} for g in doc.get("goals") or []]
        out["milestones"] = doc.get("milestones") or []
        out["meetings_count"] = len(doc.get("meetings") or [])
        out["feedback_count"] = len(doc.get("feedback") or [])
    return out


def meeting_out(meeting: dict[str, Any], pair: bool) -> dict[str, Any]:
    out = dict(meeting)
    if not pair:
        out.pop("private_notes", None)
    return out


def _error(exc: LifecycleError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


async def _find(db: Any, network_id: str, mentorship_id: str, principal: Principal) -> dict[str, Any]:
    scope = access.mentorship_scope(principal, network_id)
    doc = await MentorshipStore(db).get(network_id, mentorship_id, scope)
    if doc is None:
        raise HTTPException(404, f"No mentorship {mentorship_id} that you can see.")
    return doc


def _may_write(principal: Principal, doc: dict[str, Any]) -> None:
    """The pair and the program's managers may record steps; a coordinator who only sees the
    mentorship (one side is of their institution) may not, and a participant outside the
    pair never finds it."""
    if not (access.in_pair(principal, doc) or access.acts_for_pair(principal, doc)):
        raise HTTPException(403, "Only the pair and the program's coordinators can record this.")


async def _apply(db: Any, relay: Any, doc: dict[str, Any], step: Step) -> dict[str, Any]:
    updated = await MentorshipStore(db).apply(doc, step)
    if updated is None:
        raise HTTPException(409, "The mentorship changed while you were doing this; read it again and retry.")
    relay.wake()
    return updated


@router.get("")
async def list_mentorships(
    network_id: str, principal: CurrentPrincipal, db: Database,
    program_id: str | None = None,
    status_: Annotated[Literal["proposed", "active", "declined", "ended"] | None, Query(alias="status")] = None,
    person_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    scope = access.mentorship_scope(principal, network_id)
    filters: dict[str, Any] = {}
    if program_id:
        filters["program_id"] = program_id
    if status_:
        filters["status"] = status_
    if person_id:
        filters["$or"] = [{"mentor_id": person_id}, {"mentee_id": person_id}]
    docs = await MentorshipStore(db).list(network_id, scope, filters, after_id(cursor), limit)
    items = [mentorship_out(d, principal) for d in docs]
    return {"items": items, "next_cursor": id_cursor(docs[-1]["_id"]) if len(docs) == limit else None}


@router.get("/{mentorship_id}")
async def get_mentorship(network_id: str, mentorship_id: str, principal: CurrentPrincipal, db: Database) -> dict[str, Any]:
    return mentorship_out(await _find(db, network_id, mentorship_id, principal), principal, full=True)


@router.post("/{mentorship_id}/accept")
async def accept(network_id: str, mentorship_id: str, body: AcceptIn, principal: CurrentPrincipal, db: Database,
                 relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    try:
        side = lifecycle.side_of(doc, principal.person_id, access.acts_for_pair(principal, doc), body.side)
        step, starts = lifecycle.accept(doc, side, principal.subject, body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    if not starts:
        return mentorship_out(await _apply(db, relay, doc, step), principal, full=True)
    places = Places(db)
    mentor = await PoolStore(db).get(network_id, doc["mentor_id"])
    capacity = 0 if mentor is None or mentor.get("erased") else int(mentor.get("capacity") or 0)
    program = await ProgramStore(db).get(network_id, doc["program_id"]) or {}
    missing = await places.take(doc, capacity, int(program.get("max_mentors_per_mentee") or 1))
    if missing == "mentor":
        raise HTTPException(409, "The mentor has no free place left: every place is taken by an active "
                                 "mentorship. Nothing was recorded; ask the coordinator for another match.")
    if missing == "mentee":
        raise HTTPException(409, "The mentee already has as many active mentors as the program allows. "
                                 "Nothing was recorded.")
    updated = await MentorshipStore(db).apply(doc, step)
    if updated is None:
        # Changed meanwhile. Give the places back unless the change was this very mentorship
        # starting (a double-clicked accept): then the places are rightly its.
        now_doc = await MentorshipStore(db).get(network_id, doc["_id"])
        if now_doc is None or now_doc["status"] != "active":
            await places.give_back(doc)
        raise HTTPException(409, "The mentorship changed while you were accepting; read it again and retry.")
    relay.wake()
    return mentorship_out(updated, principal, full=True)


@router.post("/{mentorship_id}/decline")
async def decline(network_id: str, mentorship_id: str, body: DeclineIn, principal: CurrentPrincipal, db: Database,
                  relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    try:
        side = lifecycle.side_of(doc, principal.person_id, access.acts_for_pair(principal, doc), body.side)
        step = lifecycle.decline(doc, side, principal.subject, body.reason, body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    return mentorship_out(await _apply(db, relay, doc, step), principal, full=True)


@router.put("/{mentorship_id}/agreement")
async def put_agreement(network_id: str, mentorship_id: str, body: AgreementIn, principal: CurrentPrincipal,
                        db: Database, relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    try:
        step = lifecycle.agreement(doc, body.cadence_days, body.channel, body.goals, body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    return mentorship_out(await _apply(db, relay, doc, step), principal, full=True)


@router.post("/{mentorship_id}/meetings", status_code=status.HTTP_201_CREATED)
async def schedule_meeting(network_id: str, mentorship_id: str, body: MeetingIn, principal: CurrentPrincipal,
                           db: Database, relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    try:
        step, meeting = lifecycle.schedule(doc, principal.person_id or principal.subject, body.model_dump(), lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    await _apply(db, relay, doc, step)
    return meeting_out(meeting, access.in_pair(principal, doc))


@router.post("/{mentorship_id}/meetings/log", status_code=status.HTTP_201_CREATED)
async def log_meeting(network_id: str, mentorship_id: str, body: MeetingLogIn, principal: CurrentPrincipal,
                      db: Database, relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    pair = access.in_pair(principal, doc)
    if body.private_notes and not pair:
        raise HTTPException(403, "Private notes belong to the pair: only the mentor or the mentee can write them.")
    try:
        step, meeting = lifecycle.log_meeting(doc, principal.person_id or principal.subject, body.model_dump(), lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    await _apply(db, relay, doc, step)
    return meeting_out(meeting, pair)


@router.get("/{mentorship_id}/meetings")
async def list_meetings(network_id: str, mentorship_id: str, principal: CurrentPrincipal, db: Database) -> list[dict[str, Any]]:
    doc = await _find(db, network_id, mentorship_id, principal)
    pair = access.in_pair(principal, doc)
    return [meeting_out(m, pair) for m in doc.get("meetings") or []]


@router.post("/{mentorship_id}/goals", status_code=status.HTTP_201_CREATED)
async def set_goal(network_id: str, mentorship_id: str, body: GoalIn, principal: CurrentPrincipal, db: Database,
                   relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    try:
        step, goal = lifecycle.set_goal(doc, body.model_dump(), body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    await _apply(db, relay, doc, step)
    return goal


@router.patch("/{mentorship_id}/goals/{goal_id}")
async def update_goal(network_id: str, mentorship_id: str, goal_id: str, body: ProgressIn, principal: CurrentPrincipal,
                      db: Database, relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    try:
        step = lifecycle.progress(doc, goal_id, body.progress, body.note, body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    updated = await _apply(db, relay, doc, step)
    return next(g for g in updated["goals"] if g["goal_id"] == goal_id)


@router.post("/{mentorship_id}/milestones", status_code=status.HTTP_201_CREATED)
async def milestone(network_id: str, mentorship_id: str, body: MilestoneIn, principal: CurrentPrincipal,
                    db: Database, relay: Relay) -> dict[str, Any]:
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    try:
        step, record = lifecycle.milestone(doc, body.title, body.goal_id, body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    await _apply(db, relay, doc, step)
    return record


@router.post("/{mentorship_id}/feedback", status_code=status.HTTP_201_CREATED)
async def feedback(network_id: str, mentorship_id: str, body: FeedbackIn, principal: CurrentPrincipal, db: Database,
                   relay: Relay) -> dict[str, Any]:
    """A check-in from the caller's own side of the pair (coordinators give none)."""
    doc = await _find(db, network_id, mentorship_id, principal)
    if not access.in_pair(principal, doc):
        raise HTTPException(403, "Feedback comes from the mentor or the mentee, each for their own side.")
    side = "mentor" if principal.person_id == doc["mentor_id"] else "mentee"
    try:
        step, record = lifecycle.feedback(doc, side, body.model_dump(), body.at, lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    await _apply(db, relay, doc, step)
    return record


@router.post("/{mentorship_id}/end")
async def end(network_id: str, mentorship_id: str, body: EndIn, principal: CurrentPrincipal, db: Database,
              relay: Relay) -> dict[str, Any]:
    """Close with a reason; `rematch` puts the mentee back in the waiting pool of the program
    (the pair itself is never proposed again)."""
    doc = await _find(db, network_id, mentorship_id, principal)
    _may_write(principal, doc)
    try:
        step = lifecycle.end(doc, body.reason, body.rematch, principal.person_id or principal.subject, body.at,
                             lifecycle.now())
    except LifecycleError as exc:
        raise _error(exc) from exc
    updated = await _apply(db, relay, doc, step)
    if doc["status"] == "active":
        await Places(db).give_back(doc)
    return mentorship_out(updated, principal, full=True)
