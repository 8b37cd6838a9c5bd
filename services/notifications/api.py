"""Notifications HTTP API (issue 2 scope: a person's own in-app feed)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from services.notifications.store import FeedStore
from shared.auth import CurrentPrincipal
from shared.service import Database

router = APIRouter(tags=["feed"])


class NotificationOut(BaseModel):
    id: str
    kind: str
    channel: str
    title: str
    body: str
    created_at: datetime
    read: bool


@router.get("/me/notifications", response_model=list[NotificationOut])
async def my_notifications(principal: CurrentPrincipal, db: Database) -> list[NotificationOut]:
    """Only the person reads their own feed: the token's person id decides whose it is."""
    if principal.person_id is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Only a participant's own token can read their feed."
        )
    documents = await FeedStore(db).for_person(principal.person_id)
    return [NotificationOut(id=d["_id"], **d) for d in documents]
