"""Notifications turns events into messages for people."""

from __future__ import annotations

from pydantic import BaseModel
from pymongo import UpdateOne

from services.notifications.deliveries import DELIVERIES
from services.notifications.domain import email_delivery, welcome, welcome_context
from services.notifications.rendering import render
from services.notifications.store import NOTIFICATIONS
from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    message = welcome(event, payload)  # type: ignore[arg-type]
    uow.add(NOTIFICATIONS, UpdateOne({"_id": message["_id"]}, {"$setOnInsert": message}, upsert=True))
    rendered = render("welcome", welcome_context(payload))  # type: ignore[arg-type]
    email = email_delivery(
        event, payload, kind="welcome", subject=rendered.subject, text=rendered.text, html=rendered.html  # type: ignore[arg-type]
    )
    uow.add(DELIVERIES, UpdateOne({"_id": email["_id"]}, {"$setOnInsert": email}, upsert=True))


def handlers() -> dict[str, Handler]:
    return {"MenteeRegistered": on_person_registered, "MentorRegistered": on_person_registered}
