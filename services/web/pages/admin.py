"""A network admin's pages: institutions and chapters, vocabularies (add and retire terms),
grants, webhooks, template overrides with a preview, failed deliveries with retry, and the
audit log. The services refuse anyone who is not a network admin of the network."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from services.web.backend import ApiError
from services.web.context import SignedIn, Visitor, csrf_protect, flash, redirect, render
from services.web.pages.common import form_of, net, one, programs, q

router = APIRouter(prefix="/admin", dependencies=[Depends(csrf_protect)])
KINDS = (("career-stages", "Career stages"), ("specialties", "Specialties"),
         ("help-categories", "Help categories"))
GRANT_ROLES = (("network_admin", "Network admin"),
               ("institution_coordinator", "Institution coordinator"),
               ("program_coordinator", "Program coordinator"))


async def _institutions(who: Visitor) -> list[dict[str, Any]]:
    return (await who.api.get("profiles", f"{net(who)}/institutions", params={"limit": 100}))["items"]


@router.get("/institutions")
async def institutions(who: SignedIn) -> Response:
    return await render(who, "admin/institutions.html", {
        "title": "Institutions and chapters", "items": await _institutions(who), "errors": {}})


@router.post("/institutions")
async def add_institution(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    body = {"id": one(form, "id"), "name": one(form, "name"), "kind": one(form, "kind", "institution")}
    try:
        await who.api.post("profiles", f"{net(who)}/institutions", json=body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await render(who, "admin/institutions.html", {
            "title": "Institutions and chapters", "items": await _institutions(who),
            "errors": exc.field_errors() or {"id": exc.detail}, "error": exc.detail,
            "new": body}, status_code=exc.status)
    await flash(who, f"{body['name']} is added.")
    return redirect(request, "/admin/institutions")


@router.get("/vocabularies")
async def vocabularies(who: SignedIn) -> Response:
    found = await asyncio.gather(*(who.api.get("profiles", f"{net(who)}/vocabularies/{k}/retirements")
                                   for k, _ in KINDS))
    return await render(who, "admin/vocabularies.html", {
        "title": "Vocabularies", "kinds": [(k, label, v) for (k, label), v in zip(KINDS, found, strict=True)]})


@router.post("/vocabularies/{kind}")
async def change_vocabulary(request: Request, who: SignedIn, kind: str) -> Response:
    form = await form_of(request)
    if one(form, "action") == "retire":
        term = one(form, "term")
        await who.api.post("profiles", f"{net(who)}/vocabularies/{q(kind)}/retirements",
                           json={"terms": [term]})
        await flash(who, f"“{term}” is retired: nobody can choose it any more; profiles that "
                         "have it keep it.")
    else:
        terms = [t.strip() for t in one(form, "terms").replace("\n", ",").split(",") if t.strip()]
        await who.api.post("profiles", f"{net(who)}/vocabularies/{q(kind)}", json={"terms": terms})
        await flash(who, f"Added: {', '.join(terms)}.")
    return redirect(request, "/admin/vocabularies")


@router.get("/grants")
async def grants(who: SignedIn) -> Response:
    page, places, everything = await asyncio.gather(
        who.api.get("profiles", f"{net(who)}/grants", params={"limit": 200}),
        _institutions(who), programs(who))
    return await render(who, "admin/grants.html", {
        "title": "Grants", "grants": page["items"], "roles": GRANT_ROLES,
        "institutions": [(i["id"], i["name"]) for i in places],
        "programs": [(p["id"], p["name"]) for p in everything.values()], "errors": {}})


@router.post("/grants")
async def add_grant(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    body = {"email": one(form, "email") or None, "role": one(form, "role"),
            "institution_id": one(form, "institution_id") or None,
            "program_id": one(form, "program_id") or None}
    if body["role"] != "institution_coordinator":
        body["institution_id"] = None
    if body["role"] != "program_coordinator":
        body["program_id"] = None
    await who.api.post("profiles", f"{net(who)}/grants",
                       json={k: v for k, v in body.items() if v is not None})
    await flash(who, f"{body['email']} now holds the grant.")
    return redirect(request, "/admin/grants")


@router.post("/grants/{grant_id}/revoke")
async def revoke_grant(request: Request, who: SignedIn, grant_id: str) -> Response:
    await who.api.call("DELETE", "profiles", f"{net(who)}/grants/{q(grant_id)}")
    await flash(who, "The grant is revoked; it stops working at the holder's next sign-in "
                     "refresh (within minutes).")
    return redirect(request, "/admin/grants")


@router.get("/webhooks")
async def webhooks(who: SignedIn) -> Response:
    hooks, prefs = await asyncio.gather(
        who.api.get("notifications", f"{net(who)}/webhooks"),
        who.api.get("notifications", "/me/preferences"))
    return await render(who, "admin/webhooks.html", {
        "title": "Webhooks", "hooks": hooks, "kinds": [k["kind"] for k in prefs["kinds"]],
        "errors": {}})


@router.post("/webhooks")
async def add_webhook(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    created = await who.api.post("notifications", f"{net(who)}/webhooks", json={
        "url": one(form, "url"), "kinds": form.get("kinds", [])})
    hooks = await who.api.get("notifications", f"{net(who)}/webhooks")
    prefs = await who.api.get("notifications", "/me/preferences")
    return await render(who, "admin/webhooks.html", {
        "title": "Webhooks", "hooks": hooks, "kinds": [k["kind"] for k in prefs["kinds"]],
        "created": created, "errors": {}})


@router.post("/webhooks/{webhook_id}/remove")
async def remove_webhook(request: Request, who: SignedIn, webhook_id: str) -> Response:
    await who.api.call("DELETE", "notifications", f"{net(who)}/webhooks/{q(webhook_id)}")
    await flash(who, "The webhook is removed.")
    return redirect(request, "/admin/webhooks")


async def _templates_context(who: Visitor, kind: str) -> dict[str, Any]:
    overrides, prefs = await asyncio.gather(
        who.api.get("notifications", f"{net(who)}/templates"),
        who.api.get("notifications", "/me/preferences"))
    kinds = [k["kind"] for k in prefs["kinds"]]
    chosen = kind if kind in kinds else kinds[0]
    current = next((o for o in overrides if o["kind"] == chosen), {})
    return {"title": "Message templates", "overrides": overrides, "kinds": kinds,
            "chosen": chosen, "current": current, "errors": {}}


@router.get("/templates")
async def templates_page(who: SignedIn, kind: str = "") -> Response:
    return await render(who, "admin/templates.html", await _templates_context(who, kind))


@router.post("/templates")
async def save_template(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    kind = one(form, "kind")
    parts = {name: one(form, name) or None for name in ("subject", "summary", "text", "html")}
    context = await _templates_context(who, kind)
    context["current"] = {"kind": kind, **parts}
    try:
        if one(form, "action") == "preview":
            context["preview"] = await who.api.post(
                "notifications", f"{net(who)}/templates/{q(kind)}/preview", json=parts)
            return await render(who, "admin/templates.html", context)
        await who.api.call("PUT", "notifications", f"{net(who)}/templates/{q(kind)}", json=parts)
    except ApiError as exc:
        if exc.status != 422:
            raise
        context["error"] = exc.detail
        return await render(who, "admin/templates.html", context, status_code=422)
    await flash(who, f"The {kind} template is saved.")
    return redirect(request, f"/admin/templates?kind={q(kind)}")


@router.get("/deliveries")
async def deliveries(who: SignedIn, status: str = "failed") -> Response:
    items = await who.api.get("notifications", f"{net(who)}/deliveries",
                              params={"status": status or None, "limit": 100})
    return await render(who, "admin/deliveries.html", {
        "title": "Deliveries", "items": items, "status": status})


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, who: SignedIn, delivery_id: str) -> Response:
    await who.api.post("notifications", f"{net(who)}/deliveries/{q(delivery_id)}/retry")
    await flash(who, "The delivery is queued again.")
    return redirect(request, "/admin/deliveries")


@router.get("/audit")
async def audit(who: SignedIn, action: str = "", target_id: str = "", cursor: str = "") -> Response:
    page = await who.api.get("profiles", f"{net(who)}/audit", params={
        "limit": 50, "action": action or None, "target_id": target_id or None,
        "cursor": cursor or None})
    return await render(who, "admin/audit.html", {
        "title": "Audit log", "page": page, "action": action, "target_id": target_id})


routers = [router]
