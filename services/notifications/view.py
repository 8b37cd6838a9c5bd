"""This service's own view of people, programs and mentorships, built from events alone.

Writes are operations for the consumer's unit of work (pymongo's, or `Ensure` and `Update`,
which a batch combines where it can), written so that events of different topics may arrive
in any order: timestamps only move forward (`$max`), a mentorship's stage only advances
(proposed < active < closed), and an erased person's record never takes personal data again
(the data is written only where `erased` is absent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.filters import below
from shared.messaging.writes import Ensure, Update

PEOPLE, PROGRAMS, MENTORSHIPS = "people", "programs", "mentorships"
PREFERENCES, TEMPLATES, WEBHOOKS, NETWORK_SETTINGS = (
    "preferences", "templates", "webhooks", "network_settings"
)
PROPOSED, ACTIVE, CLOSED = 1, 2, 3
STAGE_NAMES = {PROPOSED: "proposed", ACTIVE: "active", CLOSED: "closed"}


async def create_indexes(db: AsyncDatabase) -> None:
    await db[MENTORSHIPS].create_index([("program_id", ASCENDING), ("stage", ASCENDING)])
    await db[MENTORSHIPS].create_index([("mentor_id", ASCENDING)])
    await db[MENTORSHIPS].create_index([("mentee_id", ASCENDING)])
    await db[PEOPLE].create_index([("programs", ASCENDING), ("registered_at", ASCENDING)])
    await db[WEBHOOKS].create_index([("network_id", ASCENDING)])


def person_created(person_id: str, network_id: str) -> Ensure:
    return Ensure(person_id, {"network_id": network_id})


def person_data(person_id: str, fields: dict[str, Any], add: dict[str, Any] | None = None) -> Update:
    """Personal data, never written onto an erased person's record (follows person_created)."""
    update: dict[str, Any] = {"$set": fields} if fields else {}
    if add:
        update["$addToSet"] = add
    return Update({"_id": person_id, "erased": {"$exists": False}}, update)


def registered(p: Any, role: str) -> list[Ensure | Update]:
    return [
        person_created(p.person_id, p.network_id),
        person_data(
            p.person_id,
            {"institution_id": p.institution_id, "display_name": p.display_name,
             "email": p.email, "registered_at": p.registered_at},
            {"roles": role, **({"programs": p.program_id} if p.program_id else {})},
        ),
    ]


def profile_updated(p: Any) -> list[Ensure | Update]:
    fields: dict[str, Any] = {"display_name": p.display_name, "profile_version": p.version}
    if p.mentor and p.mentor.time_zone:
        fields["time_zone"] = p.mentor.time_zone
    if p.mentee:
        fields["goals"] = [g.text for g in p.mentee.goals]
    return [
        person_created(p.person_id, p.network_id),
        Update(
            {"_id": p.person_id, "erased": {"$exists": False}, **below("profile_version", p.version)},
            {"$set": fields},
        ),
    ]


def enrolled(p: Any) -> list[Ensure | Update]:
    return [person_created(p.person_id, p.network_id),
            person_data(p.person_id, {}, {"programs": p.program_id, "roles": p.role})]


def erased(person_id: str, network_id: str, at: datetime) -> UpdateOne:
    """Replace the person by a tombstone: an id, the network and the fact of erasure."""
    return UpdateOne(
        {"_id": person_id},
        {"$set": {"erased": True, "erased_at": at, "network_id": network_id},
         "$unset": {k: "" for k in ("display_name", "email", "goals", "time_zone",
                                    "institution_id", "registered_at")}},
        upsert=True,
    )


def program_state(p: Any) -> list[Ensure | Update]:
    """The program at its version; an older version arriving late changes nothing."""
    fields = {k: getattr(p, k) for k in (
        "network_id", "institution_id", "name", "cadence_days", "reassessment_days",
        "coordinator_emails", "version")}
    return [Ensure(p.program_id, {"version": 0}),
            Update({"_id": p.program_id, "version": {"$lt": p.version}}, {"$set": fields})]


def mentorship(p: Any, stage: int, fields: dict[str, Any] | None = None,
               later: dict[str, datetime] | None = None, add: dict[str, Any] | None = None) -> UpdateOne:
    """Upsert the pair (every mentorship event carries it) and advance its stage."""
    update: dict[str, Any] = {
        "$setOnInsert": {"network_id": p.network_id, "program_id": p.program_id,
                         "mentor_id": p.mentor_id, "mentee_id": p.mentee_id},
        "$max": {"stage": stage, **(later or {})},
    }
    if fields:
        update["$set"] = fields
    if add:
        update["$addToSet"] = add
    return UpdateOne({"_id": p.mentorship_id}, update, upsert=True)


async def people(db: AsyncDatabase, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    return {d["_id"]: d async for d in db[PEOPLE].find({"_id": {"$in": list(ids)}})}


async def programs(db: AsyncDatabase, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    return {d["_id"]: d async for d in db[PROGRAMS].find({"_id": {"$in": list(ids)}})}


def public(person: dict[str, Any] | None) -> dict[str, Any]:
    """What templates may show of a person (nothing of an erased or unknown one)."""
    if not person or person.get("erased") or "display_name" not in person:
        return {"display_name": "a participant", "first_name": "there", "email": None, "goals": []}
    return {"display_name": person["display_name"],
            "first_name": person["display_name"].split()[0],
            "email": person.get("email"), "goals": person.get("goals", [])}
