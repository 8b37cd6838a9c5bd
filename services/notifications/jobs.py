"""What each kind of scheduled job does when it falls due.

Every runner reads the current view (a mentorship that ended, a meeting that moved, an erased
person all stop the job), writes its messages as deliveries keyed by the job and the moment
it stands for, and says when it wants to run next.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.notifications import domain, view, wakeup
from services.notifications.config import DeliverySettings
from services.notifications.deliveries import DELIVERIES, upsert
from services.notifications.policy import Preferences, next_digest_at
from services.notifications.rendering import render
from services.notifications.scheduler import Next, Runner
from services.notifications import timing


async def webhooks_of(db: AsyncDatabase, network_id: str) -> list[dict[str, Any]]:
    return [w async for w in db[view.WEBHOOKS].find({"network_id": network_id})]


async def _write(db: AsyncDatabase, source: str, network_id: str, plans: list[domain.Planned],
                 now: datetime, *, mentorship: dict[str, Any] | None = None,
                 program_id: str | None = None) -> int:
    if not plans:
        return 0
    documents = domain.deliveries(
        source, network_id, plans, created_at=now, event_time=now,
        program_id=program_id or (mentorship or {}).get("program_id"),
        mentorship_id=(mentorship or {}).get("_id"),
        webhooks=await webhooks_of(db, network_id))
    await db[DELIVERIES].bulk_write([upsert(d) for d in documents], ordered=False)
    wakeup.deliveries_recorded({d["channel"] for d in documents})
    return len(documents)


def _active(m: dict[str, Any] | None) -> bool:
    return bool(m) and m.get("stage") == view.ACTIVE


async def meeting_reminder(db: AsyncDatabase, job: dict[str, Any], now: datetime,
                           settings: DeliverySettings) -> Next:
    m = await db[view.MENTORSHIPS].find_one({"_id": job["mentorship_id"]})
    meeting = (m or {}).get("meetings_scheduled", {}).get(job["meeting_id"])
    if not _active(m) or not meeting or meeting["starts_at"] <= now:
        return Next(None)
    due = timing.reminder_at(meeting["starts_at"], settings.reminder_hours_before)
    if due > now:  # the meeting moved later: wait for its new reminder time
        return Next(due)
    facts = {k: v for k, v in meeting.items() if k != "starts_at"}
    facts["starts_at"] = meeting["starts_at"].isoformat()
    source = f"reminder:{job['meeting_id']}:{meeting['starts_at'].isoformat()}"
    await _write(db, source, m["network_id"],
                 domain.meeting_reminder(facts, m["mentor_id"], m["mentee_id"]), now, mentorship=m)
    return Next(None)


def _cadence(m: dict[str, Any], program: dict[str, Any] | None) -> int:
    return int(m.get("agreed_cadence_days") or m.get("cadence_days")
               or (program or {}).get("cadence_days") or 14)


async def silence(db: AsyncDatabase, job: dict[str, Any], now: datetime,
                  settings: DeliverySettings) -> Next:
    """Nudge a pair that stopped meeting: mentee, then mentor, then the coordinators."""
    m = await db[view.MENTORSHIPS].find_one({"_id": job["mentorship_id"]})
    if not _active(m) or not m.get("started_at"):
        return Next(None)
    program = await db[view.PROGRAMS].find_one({"_id": m["program_id"]})
    cadence = _cadence(m, program)
    anchor = max(m["started_at"], m.get("last_meeting_at") or m["started_at"])
    due, next_at = timing.due_stages(timing.silence_stages(anchor, cadence, settings.nudge_grace_days), now)
    days = (now - anchor).days
    for stage in due:
        m = {**m, "cadence_days": cadence}
        plans = domain.silence_nudge(stage.name, m, days, (program or {}).get("coordinator_emails", []))
        await _write(db, f"silence:{m['_id']}:{anchor.isoformat()}:{stage.name}", m["network_id"],
                     plans, now, mentorship=m)
    return Next(next_at)


async def checkin(db: AsyncDatabase, job: dict[str, Any], now: datetime,
                  settings: DeliverySettings) -> Next:
    m = await db[view.MENTORSHIPS].find_one({"_id": job["mentorship_id"]})
    if not _active(m) or not m.get("started_at"):
        return Next(None)
    program = await db[view.PROGRAMS].find_one({"_id": m["program_id"]})
    period = int((program or {}).get("reassessment_days") or 90)
    point, next_at = timing.checkin_point(m["started_at"], period, now)
    if point > 0:
        await _write(db, f"checkin:{m['_id']}:{point}", m["network_id"], domain.checkin(m, point),
                     now, mentorship=m)
    return Next(next_at)


async def program_digest(db: AsyncDatabase, job: dict[str, Any], now: datetime,
                         settings: DeliverySettings) -> Next:
    """Stalled pairs, pending proposals and new registrations of a program, to its coordinators."""
    program = await db[view.PROGRAMS].find_one({"_id": job["program_id"]})
    if not program or not program.get("coordinator_emails"):
        return Next(None)
    network = await db[view.NETWORK_SETTINGS].find_one({"_id": program["network_id"]}) or {}
    frequency = network.get("coordinator_digest", "daily")
    if frequency == "off":
        return Next(now + timedelta(days=1))
    since = job.get("last_digest_at") or now - timedelta(days=7 if frequency == "weekly" else 1)
    plans, about = [], set()
    stalled, pending = [], []
    grace = timedelta(days=settings.nudge_grace_days)
    async for m in db[view.MENTORSHIPS].find({"program_id": program["_id"], "stage": {"$in": [view.PROPOSED, view.ACTIVE]}}):
        pair = {"mentor_id": m["mentor_id"], "mentee_id": m["mentee_id"], "mentorship_id": m["_id"]}
        if m["stage"] == view.PROPOSED and m.get("proposed_at"):
            pending.append({**pair, "days_waiting": (now - m["proposed_at"]).days})
        elif m["stage"] == view.ACTIVE and m.get("started_at"):
            anchor = max(m["started_at"], m.get("last_meeting_at") or m["started_at"])
            if now - anchor > timedelta(days=_cadence(m, program)) + grace:
                stalled.append({**pair, "days_silent": (now - anchor).days})
        about |= {m["mentor_id"], m["mentee_id"]}
    new = await db[view.PEOPLE].count_documents(
        {"programs": program["_id"], "registered_at": {"$gte": since, "$lte": now}})
    facts = {"program_id": program["_id"], "frequency": frequency, "stalled": stalled,
             "pending": pending, "new_registrations": new, "since_text": since.strftime("%d %b %Y")}
    for address in program["coordinator_emails"]:
        plans.append(domain.Planned("coordinator_digest", domain.coordinator(address), facts, tuple(sorted(about))))
    await _write(db, f"digest:{program['_id']}:{now.date().isoformat()}", program["network_id"], plans,
                 now, program_id=program["_id"])
    await db["jobs"].update_one({"_id": job["_id"]}, {"$set": {"last_digest_at": now}})
    return Next(next_digest_at(now, "UTC", frequency))


async def personal_digest(db: AsyncDatabase, job: dict[str, Any], now: datetime,
                          settings: DeliverySettings) -> Next:
    """Gather the person's held emails into one digest email."""
    from services.notifications.composer import Lookups, context_for

    person_id = job["recipient"]
    stored = await db[view.PREFERENCES].find_one({"_id": person_id}) or {}
    prefs = Preferences.model_validate({k: v for k, v in stored.items() if k in Preferences.model_fields})
    held = [d async for d in db[DELIVERIES].find({"recipient": person_id, "status": "held"}).sort("created_at", 1)]
    if held:
        ids = {p for d in held for p in d.get("about", [])} | {person_id}
        lookups = Lookups(people=await view.people(db, ids),
                          programs=await view.programs(db, {d["program_id"] for d in held if d.get("program_id")}))
        items = []
        for d in held:
            message = render(d["kind"], context_for(d, lookups, settings))
            items.append({"subject": message.subject, "summary": message.summary})
        plan = domain.Planned("personal_digest", person_id,
                              {"frequency": prefs.digest or "daily", "items": items, "held": [d["_id"] for d in held]},
                              tuple(sorted(ids - {person_id})))
        await _write(db, f"pdigest:{person_id}:{job['due_at'].isoformat()}", held[0]["network_id"], [plan], now)
        await db[DELIVERIES].update_many({"_id": {"$in": [d["_id"] for d in held]}, "status": "held"},
                                         {"$set": {"status": "digested", "digested_at": now}})
    if not prefs.digest:
        return Next(None)
    return Next(next_digest_at(now, prefs.time_zone, prefs.digest))


RUNNERS: dict[str, Runner] = {
    "meeting_reminder": meeting_reminder,
    "silence": silence,
    "checkin": checkin,
    "program_digest": program_digest,
    "personal_digest": personal_digest,
}
