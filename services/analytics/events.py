"""Analytics keeps a fact of every event it measures and folds it into the live projection.

Registration counts (issue 2) stay as counters: one document per scope, merged per batch.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.analytics.domain import registration_increments, scope_id
from services.analytics.facts import to_fact
from services.analytics.live import live_for
from services.analytics.projection import Projection
from services.analytics.store import FACTS, REGISTRATIONS, erase_person, insert_batch
from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork


async def on_person_registered(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    for scope, increments in registration_increments(payload):  # type: ignore[arg-type]
        uow.increment(REGISTRATIONS, scope_id(scope), increments, scope)
    await on_fact(event, payload, uow)


async def on_fact(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    projection = live_for(uow.db).projection
    person_id = payload.__dict__.get("person_id")  # getattr of a missing field costs more
    erased = person_id in projection.erased or event.type == "PersonErased"
    _batch(uow).append(to_fact(event, payload, erased))
    if event.type == "PersonErased":
        uow.add(FACTS, erase_person(person_id))  # type: ignore[arg-type]
        uow.__dict__.pop(BATCH, None)  # later facts of this batch go to a document after it
    projection.apply(event.type, payload)


BATCH = "_analytics_facts"


def _batch(uow: UnitOfWork) -> list[dict[str, Any]]:
    """The facts document of this consumer batch, staged once and filled by each handler
    before the unit of work flushes (one insert per batch instead of one per event)."""
    facts = uow.__dict__.get(BATCH)
    if facts is None:
        facts = uow.__dict__[BATCH] = []
        uow.add(FACTS, insert_batch(facts))
    return facts


def handlers() -> dict[str, Handler]:
    table: dict[str, Handler] = {name: on_fact for name in Projection().event_types}
    table["MenteeRegistered"] = on_person_registered
    table["MentorRegistered"] = on_person_registered
    return table
