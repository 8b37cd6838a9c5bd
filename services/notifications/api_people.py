"""A person's notification preferences, and unsubscribe links that work without a login.

Preferences belong to the person in the token; the unsubscribe link carries a signed token
naming the recipient and the kind, so it works from any mail client (GET shows a page with a
button, POST unsubscribes: link scanners that follow GETs change nothing; mail clients use the
one-click POST of RFC 8058 via the List-Unsubscribe-Post header).
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError

from services.notifications import view
from services.notifications.api import feed_owner
from services.notifications.clock import CLOCK
from services.notifications.config import DeliverySettings
from services.notifications.kinds import KINDS
from services.notifications.policy import Preferences, next_digest_at
from services.notifications.scheduler import JOBS, poke
from services.notifications.signing import read_unsubscribe_token
from shared.auth import CurrentPrincipal
from shared.ratelimit import rate_limit
from shared.service import Database

router = APIRouter(tags=["preferences"])
SETTINGS = DeliverySettings()


class KindOut(BaseModel):
    kind: str
    description: str
    channels: list[str]
    mandatory: bool


class PreferencesOut(Preferences):
    kinds: list[KindOut]


def _kinds() -> list[KindOut]:
    return [KindOut(kind=k.name, description=k.description, channels=list(k.channels),
                    mandatory=k.mandatory) for k in KINDS.values()]


def _stored(document: dict[str, Any] | None) -> Preferences:
    fields = {k: v for k, v in (document or {}).items() if k in Preferences.model_fields}
    return Preferences.model_validate(fields)


@router.get("/me/preferences", response_model=PreferencesOut)
async def my_preferences(owner: Annotated[str, Depends(feed_owner)], db: Database) -> PreferencesOut:
    prefs = _stored(await db[view.PREFERENCES].find_one({"_id": owner}))
    return PreferencesOut(**prefs.model_dump(), kinds=_kinds())


@router.put("/me/preferences", response_model=PreferencesOut)
async def set_preferences(
    body: Preferences, principal: CurrentPrincipal, owner: Annotated[str, Depends(feed_owner)], db: Database
) -> PreferencesOut:
    """Replace the person's preferences (mandatory kinds cannot be turned off: 422)."""
    await db[view.PREFERENCES].update_one(
        {"_id": owner},
        {"$set": {**body.model_dump(mode="json"), "network_id": principal.network_id}},
        upsert=True,
    )
    now = CLOCK.now()
    # Digest on: the first one at the next 07:00 local. Off: run now to release what is held.
    due = next_digest_at(now, body.time_zone, body.digest) if body.digest else now
    await db[JOBS].bulk_write([poke(f"pdigest:{owner}", "personal_digest", due, recipient=owner)])
    return PreferencesOut(**body.model_dump(), kinds=_kinds())


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = (f"<!doctype html><html lang=\"en\"><head><title>{escape(title)}</title></head>"
            f"<body style=\"font-family: system-ui, sans-serif\"><h1>{escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status_code)


def _token(token: str) -> tuple[str, str, str]:
    read = read_unsubscribe_token(SETTINGS.unsubscribe_secret, token)
    if read is None or read[2] not in KINDS or KINDS[read[2]].mandatory:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "This unsubscribe link is not valid (it may have been cut or altered).")
    return read


Token = Annotated[str, Query(min_length=10, max_length=2000)]


@router.get("/unsubscribe", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[rate_limit("unsubscribe")])
async def unsubscribe_page(token: Token) -> HTMLResponse:
    _, _, kind = _token(token)
    form = (f"<p>Stop emails about: {escape(KINDS[kind].description)}?</p>"
            f"<form method=\"post\" action=\"/unsubscribe?token={escape(token)}\">"
            "<button type=\"submit\">Unsubscribe</button></form>")
    return _page("Unsubscribe", form)


@router.post("/unsubscribe", response_class=HTMLResponse,
             dependencies=[rate_limit("unsubscribe")])
async def unsubscribe(token: Token, db: Database) -> HTMLResponse:
    """Turn email off for the kind named in the signed token; no login needed."""
    recipient, network_id, kind = _token(token)
    stored = await db[view.PREFERENCES].find_one({"_id": recipient})
    prefs = _stored(stored)
    channels = {**prefs.channels, kind: {**prefs.channels.get(kind, {}), "email": False}}
    try:
        prefs = Preferences.model_validate({**prefs.model_dump(), "channels": channels})
    except ValidationError as exc:  # pragma: no cover - tokens exist for optional kinds only
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    await db[view.PREFERENCES].update_one(
        {"_id": recipient},
        {"$set": {"channels": prefs.model_dump(mode="json")["channels"], "network_id": network_id}},
        upsert=True,
    )
    return _page("Unsubscribed",
                 f"<p>You will no longer receive emails about: {escape(KINDS[kind].description)}.</p>")
