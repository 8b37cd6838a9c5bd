"""Notifications: the feed with its unread count, and the person's preferences (channels per
kind, quiet hours, digest). Both belong to the person in the token; notifications decides."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from services.web.backend import ApiError
from services.web.context import SignedIn, csrf_protect, flash, is_htmx, redirect, render
from services.web.pages.common import form_of, one, q
from services.web.pages.participant_zones import COMMON_TIME_ZONES

router = APIRouter(dependencies=[Depends(csrf_protect)])
CHANNEL_NAMES = {"email": "Email", "in_app": "In the app"}


@router.get("/notifications")
async def feed(who: SignedIn, cursor: str = "", unread: str = "") -> Response:
    page = await who.api.get("notifications", "/me/notifications", params={
        "limit": 20, "cursor": cursor or None, "unread_only": "true" if unread == "1" else None})
    return await render(who, "participant/notifications.html", {
        "title": "Notifications", "page": page, "unread_only": unread == "1"})


@router.post("/notifications/read")
async def read_all(request: Request, who: SignedIn) -> Response:
    marked = await who.api.post("notifications", "/me/notifications/read")
    await flash(who, f"{marked['marked_read']} marked as read.")
    return redirect(request, "/notifications")


@router.post("/notifications/{notification_id}/read")
async def read_one(request: Request, who: SignedIn, notification_id: str) -> Response:
    marked = await who.api.post("notifications", f"/me/notifications/{q(notification_id)}/read")
    if is_htmx(request):
        return await render(who, "participant/_unread.html", {"unread": marked["unread_count"],
                                                              "oob": True, "nid": notification_id},
                            partial=True)
    return redirect(request, "/notifications")


def _table(prefs: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for kind in prefs["kinds"]:
        chosen = prefs.get("channels", {}).get(kind["kind"], {})
        rows.append({**kind, "on": {c: chosen.get(c, True) for c in kind["channels"]}})
    return rows


@router.get("/notifications/preferences")
async def preferences(who: SignedIn) -> Response:
    prefs = await who.api.get("notifications", "/me/preferences")
    return await render(who, "participant/preferences.html", {
        "title": "Notification preferences", "prefs": prefs, "rows": _table(prefs),
        "zones": COMMON_TIME_ZONES, "channel_names": CHANNEL_NAMES, "errors": {}})


def preferences_body(form: dict[str, list[str]], kinds: list[dict[str, Any]]) -> dict[str, Any]:
    """The PUT body: every optional kind's channels as ticked; mandatory kinds stay on."""
    ticked = set(form.get("channel", []))
    channels = {k["kind"]: {c: f"{k['kind']}:{c}" in ticked for c in k["channels"]}
                for k in kinds if not k["mandatory"]}
    start, end = one(form, "quiet_start"), one(form, "quiet_end")
    return {
        "time_zone": one(form, "time_zone") or "UTC",
        "quiet_hours": {"start": start, "end": end} if start and end else None,
        "channels": channels,
        "digest": one(form, "digest") or None,
    }


@router.post("/notifications/preferences")
async def save_preferences(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    prefs = await who.api.get("notifications", "/me/preferences")
    body = preferences_body(form, prefs["kinds"])
    try:
        await who.api.call("PUT", "notifications", "/me/preferences", json=body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        shown = {**prefs, **body, "kinds": prefs["kinds"]}
        errors = exc.field_errors()
        if "start" in errors or "end" in errors or "quiet_hours" in errors:
            errors["quiet_start"] = errors.get("quiet_hours") or errors.get("start") or errors.get("end")
        return await render(who, "participant/preferences.html", {
            "title": "Notification preferences", "prefs": shown, "rows": _table(shown),
            "zones": COMMON_TIME_ZONES, "channel_names": CHANNEL_NAMES, "errors": errors,
            "error": exc.detail}, status_code=422)
    await flash(who, "Your notification preferences are saved.")
    return redirect(request, "/notifications/preferences")
