"""Matching keeps its own pool of mentors and mentees from profile events."""

from __future__ import annotations

from pydantic import BaseModel
from pymongo import UpdateOne

from services.matching.domain import pool_entry
from services.matching.store import POOL
from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    entry = pool_entry(payload)  # type: ignore[arg-type]
    uow.add(POOL, UpdateOne({"_id": entry["person_id"]}, {"$set": entry}, upsert=True))


def handlers() -> dict[str, Handler]:
    return {"MenteeRegistered": on_person_registered, "MentorRegistered": on_person_registered}
