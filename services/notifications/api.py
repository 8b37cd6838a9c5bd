"""Notifications HTTP API: a person's own in-app feed.

Only the person reads and changes their feed: whose feed it is comes from the token's person
id, never from the URL, so there is no id to guess. Another person's notification id is a 404,
the same as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from services.notifications.store import FeedStore
from shared.auth import CurrentPrincipal
from shared.pagination import decode_cursor, encode_cursor
from shared.service import Database

router = APIRouter(prefix="/me/notifications", tags=["feed"])


class NotificationOut(BaseModel):
    id: str
    kind: str
    channel: str
    title: str
    body: str
    created_at: datetime
    read: bool


class FeedPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class Marked(BaseModel):
    marked_read: int
    unread_count: int


async def feed_owner(principal: CurrentPrincipal) -> str:
    if principal.person_id is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Only a participant's own token can read their feed."
        )
    return principal.person_id


async def feed_store(db: Database) -> FeedStore:
    return FeedStore(db)


Owner = Annotated[str, Depends(feed_owner)]
Store = Annotated[FeedStore, Depends(feed_store)]


@router.get("", response_model=FeedPage)
async def my_notifications(
    owner: Owner,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    unread_only: bool = False,
) -> FeedPage:
    after = decode_cursor(cursor, parts=2)
    before = (datetime.fromisoformat(after[0]), after[1]) if after else None
    documents = await store.page(owner, limit=limit, before=before, unread_only=unread_only)
    last = documents[-1] if len(documents) == limit else None
    return FeedPage(
        items=[NotificationOut(id=d["_id"], **d) for d in documents],
        next_cursor=encode_cursor(last["created_at"].isoformat(), last["_id"]) if last else None,
        unread_count=await store.unread_count(owner),
    )


@router.post("/read", response_model=Marked)
async def mark_all_read(owner: Owner, store: Store) -> Marked:
    marked = await store.mark_read(owner)
    return Marked(marked_read=marked, unread_count=await store.unread_count(owner))


@router.post("/{notification_id}/read", response_model=Marked)
async def mark_read(notification_id: str, owner: Owner, store: Store) -> Marked:
    if not await store.exists(owner, notification_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "You have no notification with this id.")
    marked = await store.mark_read(owner, notification_id)
    return Marked(marked_read=marked, unread_count=await store.unread_count(owner))
