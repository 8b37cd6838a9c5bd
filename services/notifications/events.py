"""Notifications turns events into messages for people, and keeps its own view to do so.

Each handler writes, in the consumer's transaction, the view change, the deliveries the event
deserves (keyed by event, recipient and channel) and the jobs it creates or re-arms. Handlers
read only to find a network's webhook endpoints and, for recognition, the count of meetings.
"""

from __future__ import annotations

from typing import Any

from pymongo import DeleteMany, DeleteOne, InsertOne, UpdateMany

from services.notifications import domain, view, wakeup
from services.notifications.config import DeliverySettings
from services.notifications.deliveries import DELIVERIES, OPEN, forget_sent_details, upsert
from services.notifications.policy import next_digest_at
from services.notifications.scheduler import JOBS, poke
from services.notifications.store import NOTIFICATIONS
from services.notifications import timing
from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork

SETTINGS = DeliverySettings()
ERASED_TEXT = "This message referred to a person whose data has been erased."


async def _deliver(event: CloudEvent, uow: UnitOfWork, network_id: str, plans: list[domain.Planned],
                   *, source: str | None = None, program_id: str | None = None,
                   mentorship_id: str | None = None) -> None:
    webhooks = await _webhooks(uow, network_id)
    documents = domain.deliveries(
        source or event.id, network_id, plans, created_at=event.time, event_time=event.time,
        program_id=program_id, mentorship_id=mentorship_id, webhooks=webhooks,
    )
    for document in documents:
        # Keyed by the event: the inbox applies an event once, so a plain insert (far cheaper
        # than an upsert on this store) cannot collide. Other sources may recur: upsert.
        uow.add(DELIVERIES, InsertOne(document) if source is None else upsert(document))
    wakeup.deliveries_recorded({d["channel"] for d in documents})


async def _webhooks(uow: UnitOfWork, network_id: str) -> list[dict[str, Any]]:
    """The network's endpoints, read once per batch (a batch is one transaction)."""
    cache: dict[str, list[dict[str, Any]]] = uow.__dict__.setdefault("_notification_webhooks", {})
    if network_id not in cache:
        cache[network_id] = [w async for w in uow.db[view.WEBHOOKS].find(
            {"network_id": network_id}, session=uow.session)]
    return cache[network_id]


def _add(uow: UnitOfWork, collection: str, ops: list[Any] | Any) -> None:
    for op in ops if isinstance(ops, list) else [ops]:
        uow.add(collection, op)


# --- profiles -----------------------------------------------------------------------------


async def on_registered(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    role = "mentor" if event.type == "MentorRegistered" else "mentee"
    _add(uow, view.PEOPLE, view.registered(p, role))
    await _deliver(event, uow, p.network_id, domain.on_registered(p, role), program_id=p.program_id)


async def on_sign_in_link(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    """Sent at once (an urgent kind), by email only; the link leaves the record once sent."""
    await _deliver(event, uow, p.network_id, domain.on_sign_in_link(p))


async def on_profile_updated(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    _add(uow, view.PEOPLE, view.profile_updated(p))


async def on_enrolled(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    _add(uow, view.PEOPLE, view.enrolled(p))


async def on_program(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    _add(uow, view.PROGRAMS, view.program_state(p))
    if p.coordinator_emails:
        due = next_digest_at(event.time, "UTC", "daily")
        uow.add(JOBS, poke(f"digest:{p.program_id}", "program_digest", due, program_id=p.program_id))


async def on_erased(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    """No message to or about the person ever again; their data leaves this database."""
    pid = p.person_id
    uow.add(view.PEOPLE, view.erased(pid, p.network_id, p.erased_at))
    cancel = {"$set": {"status": "cancelled", "reason": "a person concerned was erased"}}
    uow.add(DELIVERIES, UpdateMany({"recipient": pid, "status": {"$in": list(OPEN)}}, cancel))
    uow.add(DELIVERIES, UpdateMany({"about": pid, "status": {"$in": list(OPEN)}}, cancel))
    uow.add(DELIVERIES, UpdateMany({"recipient": pid}, {"$unset": {"to": "", "subject": "", "context": ""}}))
    uow.add(DELIVERIES, UpdateMany({"about": pid}, {"$unset": {"subject": "", "context.items": ""}}))
    await forget_sent_details(uow.db, pid, session=uow.session)
    uow.add(NOTIFICATIONS, DeleteMany({"person_id": pid}))
    uow.add(NOTIFICATIONS, UpdateMany({"about": pid}, {"$set": {"title": "Message removed", "body": ERASED_TEXT}}))
    uow.add(view.PREFERENCES, DeleteOne({"_id": pid}))
    uow.add(JOBS, UpdateMany({"recipient": pid}, {"$set": {"status": "cancelled"}}))


# --- matching -----------------------------------------------------------------------------


async def on_proposed(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.PROPOSED, later={"proposed_at": p.proposed_at}))
    await _deliver(event, uow, p.network_id, domain.on_match_proposed(p),
                   program_id=p.program_id, mentorship_id=p.mentorship_id)


async def on_accepted(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.PROPOSED, add={"accepted": p.side}))
    if p.by is not None:  # an automatic acceptance tells no one anything new
        await _deliver(event, uow, p.network_id, domain.on_match_accepted(p),
                       program_id=p.program_id, mentorship_id=p.mentorship_id)


async def on_declined(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.CLOSED, {"closed_reason": "declined"}))


async def on_started(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(
        p, view.ACTIVE, {"cadence_days": p.cadence_days, "started_at": p.started_at},
        later={"proposed_at": p.proposed_at} if p.proposed_at else None))
    uow.add(JOBS, poke(f"silence:{p.mentorship_id}", "silence", event.time, mentorship_id=p.mentorship_id))
    uow.add(JOBS, poke(f"checkin:{p.mentorship_id}", "checkin", event.time, mentorship_id=p.mentorship_id))
    await _deliver(event, uow, p.network_id, domain.on_mentorship_started(p),
                   program_id=p.program_id, mentorship_id=p.mentorship_id)


async def on_agreement(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.PROPOSED, {"agreed_cadence_days": p.cadence_days}))
    uow.add(JOBS, poke(f"silence:{p.mentorship_id}", "silence", event.time, mentorship_id=p.mentorship_id))


async def on_meeting_scheduled(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    meeting = {"meeting_id": p.meeting_id, "starts_at": p.starts_at, "duration_minutes": p.duration_minutes,
               "mode": p.mode, "location": p.location, "agenda": p.agenda, "scheduled_at": p.scheduled_at}
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.PROPOSED, {f"meetings_scheduled.{p.meeting_id}": meeting}))
    reminder = timing.reminder_at(p.starts_at, SETTINGS.reminder_hours_before)
    if reminder > p.scheduled_at:  # a meeting booked for tomorrow morning needs no reminder
        uow.add(JOBS, poke(f"reminder:{p.meeting_id}", "meeting_reminder", reminder,
                           mentorship_id=p.mentorship_id, meeting_id=p.meeting_id))
    sequence = int(p.scheduled_at.timestamp())
    await _deliver(event, uow, p.network_id, domain.on_meeting_scheduled(p, sequence),
                   program_id=p.program_id, mentorship_id=p.mentorship_id)


async def on_meeting_logged(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(
        p, view.PROPOSED, later={"last_meeting_at": p.held_at}, add={"meetings_logged": p.meeting_id}))
    uow.add(JOBS, poke(f"silence:{p.mentorship_id}", "silence", event.time, mentorship_id=p.mentorship_id))
    await uow.flush()
    m = await uow.db[view.MENTORSHIPS].find_one({"_id": p.mentorship_id}, {"meetings_logged": 1},
                                                session=uow.session)
    needed = SETTINGS.recognition_meetings
    if m and len(m.get("meetings_logged", [])) >= needed:
        await _deliver(event, uow, p.network_id,
                       [domain.meetings_recognition(p.mentor_id, p.mentee_id, needed)],
                       source=f"recognition:{p.mentorship_id}:meetings:{needed}",
                       program_id=p.program_id, mentorship_id=p.mentorship_id)


async def on_milestone(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.PROPOSED, add={"milestones": p.milestone_id}))
    await _deliver(event, uow, p.network_id, domain.on_milestone(p),
                   program_id=p.program_id, mentorship_id=p.mentorship_id)


async def on_feedback(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.PROPOSED, later={f"feedback_at.{p.side}": p.submitted_at}))


async def on_ended(event: CloudEvent, p: Any, uow: UnitOfWork) -> None:
    uow.add(view.MENTORSHIPS, view.mentorship(p, view.CLOSED, {"closed_reason": p.reason},
                                              later={"ended_at": p.ended_at}))
    uow.add(JOBS, UpdateMany({"mentorship_id": p.mentorship_id}, {"$set": {"status": "cancelled"}}))
    uow.add(DELIVERIES, UpdateMany(
        {"mentorship_id": p.mentorship_id, "status": {"$in": ["pending", "held"]},
         "kind": {"$in": ["nudge", "meeting_reminder", "checkin_request", "stalled_pair"]}},
        {"$set": {"status": "cancelled", "reason": "the mentorship ended"}}))
    if p.reason != "erased":
        await _deliver(event, uow, p.network_id, domain.on_mentorship_ended(p, p.reason == "completed"),
                       program_id=p.program_id, mentorship_id=p.mentorship_id)


def handlers() -> dict[str, Handler]:
    table: dict[str, Any] = {
        "MenteeRegistered": on_registered,
        "MentorRegistered": on_registered,
        "ProfileUpdated": on_profile_updated,
        "SignInLinkRequested": on_sign_in_link,
        "PersonEnrolled": on_enrolled,
        "ProgramCreated": on_program,
        "ProgramUpdated": on_program,
        "PersonErased": on_erased,
        "MatchProposed": on_proposed,
        "MatchAccepted": on_accepted,
        "MatchDeclined": on_declined,
        "MentorshipStarted": on_started,
        "AgreementRecorded": on_agreement,
        "MeetingScheduled": on_meeting_scheduled,
        "MeetingLogged": on_meeting_logged,
        "MilestoneAchieved": on_milestone,
        "FeedbackSubmitted": on_feedback,
        "MentorshipEnded": on_ended,
    }
    return table
