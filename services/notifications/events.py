"""Notifications turns events into messages for people."""

from __future__ import annotations

from pydantic import BaseModel
from pymongo import UpdateOne

from services.notifications.domain import welcome
from services.notifications.store import NOTIFICATIONS
from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    message = welcome(event, payload)  # type: ignore[arg-type]
    uow.add(NOTIFICATIONS, UpdateOne({"_id": message["_id"]}, {"$setOnInsert": message}, upsert=True))


def handlers() -> dict[str, Handler]:
    return {"MenteeRegistered": on_person_registered, "MentorRegistered": on_person_registered}
