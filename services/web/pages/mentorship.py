"""One proposal or mentorship: answer it, then the agreement, meetings (with a calendar
file), goals with progress, milestones, feedback, and the end with a reason or a rematch.

Every form works as a plain post (redirect back to the page) and, with htmx, swaps only its
own section of the page. What the pair may do and see is matching's decision: private meeting
notes come back only to the mentor and the mentee.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from icalendar import Calendar, Event

from services.web.backend import ApiError
from services.web.context import SignedIn, Visitor, csrf_protect, flash, is_htmx, redirect, render
from services.web.pages.common import form_of, names, net, one, programs, q

router = APIRouter(dependencies=[Depends(csrf_protect)])

END_REASONS = (
    ("completed", "We reached our goals (completed)"),
    ("no_fit", "It is not a good fit"),
    ("withdrawn", "I am withdrawing from the program"),
    ("left_institution", "I left the institution"),
)
MODES = ("video", "in-person", "phone")


def _path(mid: str) -> str:
    return f"/mentorships/{q(mid)}"


async def load(who: Visitor, mid: str) -> dict[str, Any]:
    base = f"{net(who)}/mentorships/{q(mid)}"
    doc, meetings, everything = await asyncio.gather(
        who.api.get("matching", base), who.api.get("matching", f"{base}/meetings"),
        programs(who),
    )
    people = await names(who, (doc["mentor_id"], doc["mentee_id"]))
    side = "mentor" if doc["mentor_id"] == who.person_id else (
        "mentee" if doc["mentee_id"] == who.person_id else None)
    other = doc["mentee_id"] if side == "mentor" else doc["mentor_id"]
    categories = []
    try:
        categories = (await who.api.get("profiles", f"{net(who)}/vocabularies/help-categories"))["terms"]
    except ApiError:
        pass
    scheduled = [m for m in meetings if m.get("status") == "scheduled"]
    return {
        "ms": doc, "mid": mid, "side": side, "other_name": people.get(other, "someone"),
        "mentor_name": people.get(doc["mentor_id"]), "mentee_name": people.get(doc["mentee_id"]),
        "program": everything.get(doc["program_id"], {"name": doc["program_id"]}),
        "meetings": sorted(meetings, key=lambda m: str(m.get("starts_at") or m.get("held_at"))),
        "scheduled": scheduled, "categories": categories, "end_reasons": END_REASONS,
        "modes": MODES, "waiting_for_me": side is not None and doc["status"] == "proposed"
        and not (doc.get("accepted_by") or {}).get(side),
        "title": f"Mentorship with {people.get(other, 'someone')}",
        "suggested_start": (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:00"),
    }


@router.get("/mentorships/{mid}")
async def page(who: SignedIn, mid: str) -> Response:
    return await render(who, "participant/mentorship.html", await load(who, mid))


async def _after(request: Request, who: Visitor, mid: str, section: str, message: str) -> Response:
    """htmx: the refreshed section; a plain form: back to the page with a message."""
    if is_htmx(request):
        context = await load(who, mid)
        context["done"] = message
        return await render(who, f"participant/_{section}.html", context, partial=True)
    await flash(who, message)
    return redirect(request, _path(mid))


def _utc(value: str, what: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"Enter {what} as a date and time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(422, f"Enter {what} as a whole number.") from None


@router.post("/mentorships/{mid}/accept")
async def accept(request: Request, who: SignedIn, mid: str) -> Response:
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/accept", json={})
    await flash(who, "You accepted.")
    return redirect(request, _path(mid))


@router.post("/mentorships/{mid}/decline")
async def decline(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/decline",
                       json={"reason": one(form, "reason")})
    await flash(who, "You declined this proposal.")
    return redirect(request, _path(mid))


@router.post("/mentorships/{mid}/agreement")
async def agreement(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    goals = [line.strip() for line in one(form, "expectations").splitlines() if line.strip()]
    await who.api.call("PUT", "matching", f"{net(who)}/mentorships/{q(mid)}/agreement", json={
        "cadence_days": _int(one(form, "cadence_days"), "how often you meet (days)"),
        "channel": one(form, "channel") or "video", "goals": goals})
    return await _after(request, who, mid, "agreement", "The agreement is saved.")


@router.post("/mentorships/{mid}/meetings")
async def schedule(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/meetings", json={
        "starts_at": _utc(one(form, "starts_at"), "when the meeting starts"),
        "duration_minutes": _int(one(form, "duration_minutes", "45"), "the duration"),
        "mode": one(form, "mode") or "video", "location": one(form, "location") or None,
        "agenda": one(form, "agenda") or None})
    return await _after(request, who, mid, "meetings", "The meeting is scheduled.")


@router.post("/mentorships/{mid}/meetings/log")
async def log_meeting(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    topics = [t.strip() for t in one(form, "topics").split(",") if t.strip()]
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/meetings/log", json={
        "meeting_id": one(form, "meeting_id") or None,
        "held_at": _utc(one(form, "held_at"), "when the meeting was held"),
        "duration_minutes": _int(one(form, "duration_minutes", "45"), "the duration"),
        "mode": one(form, "mode") or "video", "topics": topics,
        "private_notes": one(form, "private_notes") or None})
    return await _after(request, who, mid, "meetings", "The meeting is logged.")


@router.post("/mentorships/{mid}/goals")
async def new_goal(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/goals", json={
        "text": one(form, "text"), "category": one(form, "category"),
        "target_date": one(form, "target_date") or None})
    return await _after(request, who, mid, "goals", "The goal is set.")


@router.post("/mentorships/{mid}/goals/{goal_id}")
async def goal_progress(request: Request, who: SignedIn, mid: str, goal_id: str) -> Response:
    form = await form_of(request)
    await who.api.call("PATCH", "matching",
                       f"{net(who)}/mentorships/{q(mid)}/goals/{q(goal_id)}", json={
                           "progress": _int(one(form, "progress"), "the progress (0-100)"),
                           "note": one(form, "note")})
    return await _after(request, who, mid, "goals", "The progress is recorded.")


@router.post("/mentorships/{mid}/milestones")
async def milestone(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/milestones", json={
        "title": one(form, "title"), "goal_id": one(form, "goal_id") or None})
    return await _after(request, who, mid, "goals", "The milestone is recorded. Well done!")


@router.post("/mentorships/{mid}/feedback")
async def feedback(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    recommend = one(form, "recommend")
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/feedback", json={
        "satisfaction": _int(one(form, "satisfaction"), "how satisfied you are (1-5)"),
        "working": one(form, "working") == "yes",
        "recommend": _int(recommend, "the recommendation (0-10)") if recommend else None,
        "comment": one(form, "comment") or None})
    return await _after(request, who, mid, "feedback", "Thank you: your feedback is recorded.")


@router.post("/mentorships/{mid}/end")
async def end(request: Request, who: SignedIn, mid: str) -> Response:
    form = await form_of(request)
    await who.api.post("matching", f"{net(who)}/mentorships/{q(mid)}/end", json={
        "reason": one(form, "reason"), "rematch": one(form, "rematch") == "true"})
    message = ("The mentorship is closed, and you are back in the program's matching for "
               "a new mentor." if one(form, "rematch") == "true" else "The mentorship is closed.")
    await flash(who, message)
    return redirect(request, _path(mid))


@router.get("/mentorships/{mid}/meetings/{meeting_id}.ics")
async def calendar_file(who: SignedIn, mid: str, meeting_id: str) -> Response:
    context = await load(who, mid)
    meeting = next((m for m in context["meetings"] if m.get("meeting_id") == meeting_id), None)
    if meeting is None or not meeting.get("starts_at"):
        raise ApiError(404, "This mentorship has no scheduled meeting with that id.")
    starts = datetime.fromisoformat(str(meeting["starts_at"]).replace("Z", "+00:00"))
    if starts.tzinfo is None:
        starts = starts.replace(tzinfo=UTC)
    cal = Calendar()
    cal.add("prodid", "-//Mentorship platform//web//EN")
    cal.add("version", "2.0")
    event = Event()
    event.add("uid", f"{meeting_id}@mentorship")
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", starts)
    event.add("dtend", starts + timedelta(minutes=int(meeting.get("duration_minutes") or 45)))
    event.add("summary", f"Mentoring: {context['mentor_name']} and {context['mentee_name']}")
    if meeting.get("location"):
        event.add("location", meeting["location"])
    if meeting.get("agenda"):
        event.add("description", meeting["agenda"])
    cal.add_component(event)
    return Response(cal.to_ical(), media_type="text/calendar", headers={
        "Content-Disposition": f'attachment; filename="meeting-{meeting_id}.ics"'})
