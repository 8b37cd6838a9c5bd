"""A person's notification preferences, and unsubscribe links that work without a login.

Preferences belong to the person in the token; the unsubscribe link carries a signed token
naming the recipient, the network and the kind, so it works from any mail client. The link
opens the web app's unsubscribe page (APP_URL/unsubscribe?token=...), which asks this service:
GET says what the token would turn off, POST turns it off (JSON for the web app, a small HTML
page for a browser or a mail client's one-click POST of RFC 8058). A token is honoured only
when its signature holds and its recipient still belongs to its network; anything else is a
400 that changes nothing. GETs never change anything, so link scanners cannot unsubscribe.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ValidationError

from services.notifications import view
from services.notifications.api import feed_owner
from services.notifications.clock import CLOCK
from services.notifications.config import unsubscribe_secret
from services.notifications.domain import preference_key
from services.notifications.kinds import KINDS
from services.notifications.policy import Preferences, next_digest_at
from services.notifications.scheduler import JOBS, poke
from services.notifications.signing import read_unsubscribe_token
from shared.auth import CurrentPrincipal
from shared.service import Database

router = APIRouter(tags=["preferences"])
# Abuse limits: once shared/ratelimit.py lands, the unsubscribe routes take its per-IP limit.


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


NOT_VALID = "This unsubscribe link is not valid (it may have been cut or altered)."


async def _belongs(db: Any, recipient: str, network_id: str) -> bool:
    """The token's recipient is still part of the token's network."""
    if recipient.startswith("email:"):
        address = recipient.removeprefix("email:")
        async for program in db[view.PROGRAMS].find({"network_id": network_id}, {"coordinator_emails": 1}):
            if address in {a.strip().lower() for a in program.get("coordinator_emails") or []}:
                return True
        return False
    person = await db[view.PEOPLE].find_one({"_id": recipient}, {"network_id": 1, "erased": 1})
    return bool(person) and person.get("network_id") == network_id and not person.get("erased")


async def _token(token: str | None, db: Any) -> tuple[str, str, str]:
    """(recipient, network, kind) of a genuine token whose recipient belongs to its network."""
    read = read_unsubscribe_token(unsubscribe_secret(), token or "")
    if read is None or read[2] not in KINDS or KINDS[read[2]].mandatory:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, NOT_VALID)
    if not await _belongs(db, read[0], read[1]):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, NOT_VALID)
    return read


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept or request.headers.get("content-type", "").startswith("application/json")


Token = Annotated[str | None, Query(min_length=10, max_length=2000)]


@router.get("/unsubscribe", response_model=None)
async def unsubscribe_page(request: Request, db: Database, token: Token = None) -> HTMLResponse | JSONResponse:
    """What the token would turn off (JSON for the web app's page; HTML otherwise). Changes
    nothing."""
    _, network_id, kind = await _token(token, db)
    if _wants_json(request):
        return JSONResponse({"kind": kind, "description": KINDS[kind].description, "network_id": network_id})
    form = (f"<p>Stop emails about: {escape(KINDS[kind].description)}?</p>"
            f"<form method=\"post\" action=\"/unsubscribe?token={escape(token or '')}\">"
            "<button type=\"submit\">Unsubscribe</button></form>")
    return _page("Unsubscribe", form)


@router.post("/unsubscribe", response_model=None)
async def unsubscribe(request: Request, db: Database, token: Token = None) -> HTMLResponse | JSONResponse:
    """Turn email off for the kind named in the signed token; no login needed. The token comes
    in the query (the link, a one-click POST) or as JSON `{"token": ...}` (the web app)."""
    if token is None and request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) and isinstance(body.get("token"), str) else None
        if token is not None and not 10 <= len(token) <= 2000:
            token = None
    recipient, network_id, kind = await _token(token, db)
    key = preference_key(recipient, network_id)
    prefs = _stored(await db[view.PREFERENCES].find_one({"_id": key}))
    channels = {**prefs.channels, kind: {**prefs.channels.get(kind, {}), "email": False}}
    try:
        prefs = Preferences.model_validate({**prefs.model_dump(), "channels": channels})
    except ValidationError as exc:  # pragma: no cover - tokens exist for optional kinds only
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    await db[view.PREFERENCES].update_one(
        {"_id": key},
        {"$set": {"channels": prefs.model_dump(mode="json")["channels"], "network_id": network_id}},
        upsert=True,
    )
    if _wants_json(request):
        return JSONResponse({"unsubscribed": True, "kind": kind, "description": KINDS[kind].description,
                             "network_id": network_id})
    return _page("Unsubscribed",
                 f"<p>You will no longer receive emails about: {escape(KINDS[kind].description)}.</p>")
