"""Analytics projects every event into counts; each event applies once (inbox)."""

from __future__ import annotations

from pydantic import BaseModel

from services.analytics.domain import registration_increments, scope_id
from services.analytics.store import REGISTRATIONS
from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    for scope, increments in registration_increments(payload):  # type: ignore[arg-type]
        uow.increment(REGISTRATIONS, scope_id(scope), increments, scope)


def handlers() -> dict[str, Handler]:
    return {"MenteeRegistered": on_person_registered, "MentorRegistered": on_person_registered}
