"""Matching keeps its own pool of mentors and mentees, and its view of programs, from profile
events alone; withdrawals and erasures close the person's open mentorships.

Every handler is idempotent (the consumer skips redelivered ids; guards make a replayed older
version a no-op) and order-independent where events of different aggregates meet: a person's
events share a key and arrive in order, but an enrolment may name a program matching has not
heard of yet, which is fine (membership is kept per person, the program view per program).

Writes that must not resurrect an erased person use two operations: an upsert that only
creates the document (`$setOnInsert`), then a guarded update that never upserts. A guarded
upsert would collide with the existing document instead of doing nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pymongo import DeleteMany, UpdateOne

from services.matching import lifecycle
from services.matching.domain import (
    affinities,
    erased_fields,
    identity_view,
    membership_field,
    newer_profile,
    not_older_profile,
    pool_entry,
    profile_fields,
    program_view,
)
from services.matching.store import MENTORSHIPS, POOL, PREFERENCES, PROGRAMS, give_back_ops
from shared.events import CloudEvent
from shared.events.schemas import (
    IdentityAttributesChanged,
    MentorCapacityChanged,
    MentorPaused,
    ParticipantWithdrawn,
    PersonEnrolled,
    PersonErased,
    ProfileUpdated,
    ProgramCreated,
    ProgramUpdated,
)
from shared.filters import below
from shared.messaging.consumer import Handler, UnitOfWork
from shared.messaging.outbox import stage_update
from shared.messaging.writes import Ensure, Update

LIVE = {"erased": {"$ne": True}}


def _ensure(uow: UnitOfWork, collection: str, doc_id: str, fields: dict[str, Any]) -> None:
    uow.add(collection, Ensure(doc_id, fields))


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    entry = pool_entry(payload)  # type: ignore[arg-type]
    person_id = entry["person_id"]
    _ensure(uow, POOL, person_id, {"network_id": entry["network_id"]})
    update: dict[str, Any] = {"$set": entry}
    if entry["program_id"]:
        # Registering in a program enrols in it (profiles also publishes PersonEnrolled for
        # that; both are accepted and the set makes them one membership).
        update["$addToSet"] = {membership_field(entry["role"]): entry["program_id"]}
    uow.add(POOL, Update({"_id": person_id, **LIVE}, update))


async def on_profile_updated(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    """No upsert: a person's events share a key, so registration is already in the pool; an
    upsert whose version guard fails would collide on the id instead of doing nothing."""
    profile: ProfileUpdated = payload  # type: ignore[assignment]
    uow.add(
        POOL,
        UpdateOne(
            newer_profile(profile.person_id, profile.version), {"$set": profile_fields(profile)}
        ),
    )


async def on_capacity_changed(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    change: MentorCapacityChanged = payload  # type: ignore[assignment]
    uow.add(
        POOL,
        UpdateOne(not_older_profile(change.person_id, change.version), {"$set": {"capacity": change.capacity}}),
    )


async def on_paused(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    change: MentorPaused = payload  # type: ignore[assignment]
    uow.add(
        POOL, UpdateOne(not_older_profile(change.person_id, change.version), {"$set": {"paused": change.paused}})
    )


async def on_identity_changed(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    change: IdentityAttributesChanged = payload  # type: ignore[assignment]
    _ensure(uow, POOL, change.person_id, {"network_id": change.network_id})
    guard = {
        "_id": change.person_id,
        **LIVE,
        **below("identity_version", change.version),
    }
    fields = {"affinities": affinities(change), "identity": identity_view(change), "identity_version": change.version}
    uow.add(POOL, Update(guard, {"$set": fields}))


async def on_program(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    program: ProgramCreated | ProgramUpdated = payload  # type: ignore[assignment]
    _ensure(uow, PROGRAMS, program.program_id, {"network_id": program.network_id})
    guard = {
        "_id": program.program_id,
        **below("version", program.version),
    }
    uow.add(PROGRAMS, Update(guard, {"$set": program_view(program)}))


async def on_enrolled(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    enrolled: PersonEnrolled = payload  # type: ignore[assignment]
    _ensure(uow, POOL, enrolled.person_id, {"network_id": enrolled.network_id})
    update = {
        "$set": {"network_id": enrolled.network_id, "institution_id": enrolled.institution_id},
        "$addToSet": {membership_field(enrolled.role): enrolled.program_id},
    }
    uow.add(POOL, Update({"_id": enrolled.person_id, **LIVE}, update))


def _event_time(at: datetime, doc: dict[str, Any], current: datetime) -> datetime:
    """When a closure caused by another service's event happened: its time, but never before
    the mentorship's last step nor in the future (clocks of two services differ)."""
    return max(min(lifecycle._ms(at), current), lifecycle._ms(doc["last_step_at"]))


async def _close_open(
    uow: UnitOfWork, query: dict[str, Any], reason: str, at: datetime, leaving: str
) -> list[dict[str, Any]]:
    """Close the open mentorships matching `query`: active ones end (freeing the mentor's
    place), proposals lapse. When the mentor is the one `leaving`, the mentee goes back to
    waiting (rematch)."""
    await uow.flush()  # see what earlier events of this batch wrote
    current = lifecycle.now()
    cursor = uow.db[MENTORSHIPS].find(
        {**query, "status": {"$in": list(lifecycle.OPEN)}}, session=uow.session
    )
    docs = [doc async for doc in cursor]
    for doc in docs:
        rematch = doc["mentor_id"] == leaving
        step = lifecycle.close(doc, reason, rematch, _event_time(at, doc, current), current)
        filter_ = {"_id": doc["_id"], **(step.expect or {})}
        uow.add(MENTORSHIPS, UpdateOne(filter_, stage_update(step.update(), step.events)))
        if doc["status"] == "active":
            for collection, operation in give_back_ops(doc):
                uow.add(collection, operation)
    return docs


async def on_withdrawn(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    """Leaving a program (or all, in one role or both) ends membership there and closes the
    person's open mentorships in it, reason "withdrawn"."""
    left: ParticipantWithdrawn = payload  # type: ignore[assignment]
    roles = [left.role] if left.role else ["mentor", "mentee"]
    if left.program_id:
        update: dict[str, Any] = {"$pull": {membership_field(r): left.program_id for r in roles}}
    else:
        update = {"$set": {membership_field(r): [] for r in roles}}
    uow.add(POOL, UpdateOne({"_id": left.person_id}, update))
    for role in roles:  # one query per side, each on its index (no top-level `$or`)
        query: dict[str, Any] = {f"{role}_id": left.person_id, "network_id": left.network_id}
        if left.program_id:
            query["program_id"] = left.program_id
        await _close_open(uow, query, "withdrawn", left.withdrawn_at, left.person_id)


async def on_erased(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    """Personal data goes: the pool entry keeps only the pseudonymous id, institution and
    roles; open mentorships close (reason "erased"); free text of every mentorship of the
    person is overwritten; their ranked preferences are deleted. Dates, statuses and scores
    stay, so analytics' counts are unchanged and anonymous."""
    erased: PersonErased = payload  # type: ignore[assignment]
    person = erased.person_id
    _ensure(uow, POOL, person, {"network_id": erased.network_id})
    uow.add(
        POOL,
        UpdateOne(
            {"_id": person},
            {"$set": erased_fields(), "$unset": {"email": "", "identity_version": ""}},
        ),
    )
    uow.add(PREFERENCES, DeleteMany({"person_id": person}))
    sides = [{f"{role}_id": person, "network_id": erased.network_id} for role in ("mentor", "mentee")]
    for involving in sides:
        await _close_open(uow, involving, "erased", erased.erased_at, person)
    await uow.flush()
    for involving in sides:
        async for doc in uow.db[MENTORSHIPS].find(involving, session=uow.session):
            uow.add(MENTORSHIPS, UpdateOne({"_id": doc["_id"]}, {"$set": lifecycle.scrub(doc, person)}))


def handlers() -> dict[str, Handler]:
    return {
        "MenteeRegistered": on_person_registered,
        "MentorRegistered": on_person_registered,
        "ProfileUpdated": on_profile_updated,
        "MentorCapacityChanged": on_capacity_changed,
        "MentorPaused": on_paused,
        "IdentityAttributesChanged": on_identity_changed,
        "ProgramCreated": on_program,
        "ProgramUpdated": on_program,
        "PersonEnrolled": on_enrolled,
        "ParticipantWithdrawn": on_withdrawn,
        "PersonErased": on_erased,
    }
