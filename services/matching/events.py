"""Matching keeps its own pool of mentors and mentees from profile events."""

from __future__ import annotations

from pydantic import BaseModel
from pymongo import UpdateOne

from services.matching.domain import newer_profile, pool_entry, profile_fields
from services.matching.store import POOL
from shared.events import CloudEvent
from shared.events.schemas import ProfileUpdated
from shared.messaging.consumer import Handler, UnitOfWork


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    entry = pool_entry(payload)  # type: ignore[arg-type]
    uow.add(POOL, UpdateOne({"_id": entry["person_id"]}, {"$set": entry}, upsert=True))


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


def handlers() -> dict[str, Handler]:
    return {
        "MenteeRegistered": on_person_registered,
        "MentorRegistered": on_person_registered,
        "ProfileUpdated": on_profile_updated,
    }
