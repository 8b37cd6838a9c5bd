"""Notifications HTTP API: a person's own in-app feed.

Only the person reads and changes their feed: whose feed it is comes from the token's person
id, never from the URL, so there is no id to guess. Another person's notification id is a 404,
the same as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from services.notifications import view, wakeup
from services.notifications.clock import CLOCK
from services.notifications.deliveries import DeliveryStore
from services.notifications.store import FeedStore
from shared.auth import CurrentPrincipal, require_network
from shared.pagination import decode_cursor, encode_cursor
from shared.service import Database

router = APIRouter(prefix="/me/notifications", tags=["feed"])


class NotificationOut(BaseModel):
    id: str
    kind: str
    channel: str
    title: str
    body: str
    link: str | None = None  # the web app page the message is about
    created_at: datetime
    read: bool


class FeedPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class Marked(BaseModel):
    marked_read: int
    unread_count: int


async def feed_owner(principal: CurrentPrincipal, db: Database) -> str:
    """The person whose feed and preferences these are: the token's own person, in the
    token's own network. A person id of another network (in this service's view of people)
    is refused, so a token of one network never reaches a person of another; service and
    operator tokens have no feed."""
    if not principal.is_person or principal.person_id is None or principal.network_id is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Only a person's own token reads their feed."
        )
    known = await db[view.PEOPLE].find_one({"_id": principal.person_id}, {"network_id": 1})
    stored = await db[view.PREFERENCES].find_one({"_id": principal.person_id}, {"network_id": 1})
    for found in (known, stored):
        if found is not None and found.get("network_id") not in (None, principal.network_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "Your token does not give access to this person."
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


admin_router = APIRouter(prefix="/networks/{network_id}/deliveries", tags=["deliveries"])


class DeliveryOut(BaseModel):
    id: str
    person_id: str | None = None
    recipient: str
    channel: str
    kind: str
    to: str | None = None
    subject: str | None = None
    status: str
    reason: str | None = None
    attempts: int
    last_error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


async def require_network_admin(network_id: str, principal: CurrentPrincipal, denied: str) -> str:
    """Who may call the network's admin routes: its network admins. `denied` is the route's
    own explanation of a refusal."""
    require_network(principal, network_id)
    if not principal.is_network_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, denied)
    return network_id


def network_admins(denied: str) -> Any:
    """A dependency admitting the network's admins, refusing others with `denied`."""
    async def dependency(network_id: str, principal: CurrentPrincipal) -> str:
        return await require_network_admin(network_id, principal, denied)
    return Depends(dependency)


# Delivery records show addresses and errors.
Admin = Annotated[str, network_admins("Only network admins see deliveries and retry them.")]


@admin_router.get("", response_model=list[DeliveryOut])
async def list_deliveries(
    network_id: Admin,
    db: Database,
    status_filter: Annotated[
        Literal["pending", "sent", "failed", "held", "skipped", "cancelled", "digested"]
        | None, Query(alias="status")
    ] = None,
    channel: Literal["email", "in_app", "webhook"] | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DeliveryOut]:
    documents = await DeliveryStore(db).list(network_id, status_filter, limit, channel=channel, kind=kind)
    # An interrupted send never recorded its address: show the person's current one.
    unknown = {d["person_id"] for d in documents if not d.get("to") and d.get("person_id")
               and d["channel"] == "email"}
    people = await view.people(db, unknown)
    for d in documents:
        if not d.get("to") and d.get("person_id") in people:
            d["to"] = people[d["person_id"]].get("email")
    return [DeliveryOut(id=d["_id"], **d) for d in documents]


@admin_router.post("/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_delivery(network_id: Admin, delivery_id: str, db: Database) -> dict[str, str]:
    if not await DeliveryStore(db).retry_by_hand(network_id, delivery_id, CLOCK.now()):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "Only a failed delivery of this network can be retried by hand.",
        )
    wakeup.deliveries_recorded()  # a failed delivery of any channel
    return {"status": "pending"}
