"""Signing in and out: an identity provider (OIDC), an emailed link, or (local only) a picker.

Each way ends the same: profiles issues the platform's tokens, the web app keeps them in a new
server-side session, and the browser gets only the session's random id in an HttpOnly cookie.
A new session id is issued at every sign-in (no session fixation).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from services.web import oidc
from services.web.backend import ApiError, Backend
from services.web.context import (
    AnyVisitor,
    Visitor,
    csrf_protect,
    redirect,
    render,
    safe_next,
)
from services.web.profile_form import profile_gaps
from services.web.security import set_cookie

router = APIRouter(dependencies=[Depends(csrf_protect)])
OIDC_COOKIE = "mentorship_oidc"


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _options(who: Visitor, network: str) -> dict[str, Any]:
    response = await who.backend.request(
        "GET", "profiles", f"/networks/{quote(network, safe='')}/sign-in-options"
    )
    Backend.check(response)
    return response.json()


async def _local_people(who: Visitor, network: str) -> list[dict[str, Any]]:
    response = await who.backend.request(
        "GET", "profiles", "/auth/local/people", params={"network_id": network}
    )
    Backend.check(response)
    body = response.json()
    items = body.get("items", body.get("people", [])) if isinstance(body, dict) else body
    people = [{"id": p.get("person_id") or p.get("id"), **p} for p in items]
    return sorted(people, key=lambda p: str(p.get("display_name", "")).lower())


@router.get("/sign-in")
async def sign_in_page(who: AnyVisitor, network: str = "", next: str = "/",
                       sent: str = "") -> Response:
    network = (network or who.settings.default_network).strip()
    context: dict[str, Any] = {"network": network, "next": safe_next(next), "title": "Sign in",
                               "options": None, "people": [], "sent": sent == "1"}
    try:
        context["options"] = await _options(who, network)
    except ApiError as exc:
        context["network_error"] = (
            f"There is no network “{network}”, or it cannot be reached: {exc.detail}"
        )
    options = context["options"] or {}
    context["oidc"] = bool(options.get("oidc")) and network in who.settings.oidc_providers
    if options.get("local"):
        try:
            context["people"] = await _local_people(who, network)
        except ApiError:
            context["people"] = []
    return await render(who, "sign_in/sign_in.html", context)


async def start_session(who: Visitor, tokens: dict[str, Any], next_path: str) -> Response:
    """Keep the tokens in a new session; first visit with an incomplete profile: /profile."""
    if who.session is not None:
        await who.end_session()
    session_id, session = await who.store.create(tokens)
    who.session = session
    who.request.state.new_session_id = session_id
    who.request.state.clear_session = False
    target = safe_next(next_path)
    if target == "/":
        try:
            me = await who.me(fresh=True)
            if profile_gaps(me.get("person") or {}):
                target = "/profile?first=1"
        except ApiError:
            pass
    return redirect(who.request, target)


@router.post("/sign-in/local")
async def sign_in_local(request: Request, who: AnyVisitor) -> Response:
    form = await _form(request)
    network, person = form.get("network", ""), form.get("person_id", "")
    response = await who.backend.request(
        "POST", "profiles", "/auth/local/session",
        json={"network_id": network, "person_id": person},
    )
    if response.status_code != 200:
        Backend.check(response)
    return await start_session(who, response.json(), form.get("next", "/"))


@router.post("/sign-in/email-link")
async def request_email_link(request: Request, who: AnyVisitor) -> Response:
    form = await _form(request)
    network, email = form.get("network", "").strip(), form.get("email", "").strip()
    if "@" not in email:
        context = {"network": network, "next": "/", "title": "Sign in", "sent": False,
                   "options": await _options(who, network), "people": [],
                   "errors": {"email": "Enter the email address you registered with, "
                                       "like name@example.org."}, "email": email}
        context["oidc"] = bool(context["options"].get("oidc")) and network in who.settings.oidc_providers
        return await render(who, "sign_in/sign_in.html", context, status_code=422)
    response = await who.backend.request(
        "POST", "profiles", "/auth/email-link", json={"network_id": network, "email": email}
    )
    if response.status_code not in (200, 202):
        Backend.check(response)
    return redirect(request, f"/sign-in?network={quote(network)}&sent=1")


@router.get("/sign-in/email")
async def email_link_landing(who: AnyVisitor, token: str = "") -> Response:
    """A page with a button, not an immediate sign-in: mail scanners that open links must not
    spend the one-time token."""
    return await render(who, "sign_in/email_landing.html",
                        {"token": token, "title": "Sign in from your email"})


@router.post("/sign-in/email")
async def email_link_sign_in(request: Request, who: AnyVisitor) -> Response:
    form = await _form(request)
    response = await who.backend.request(
        "POST", "profiles", "/auth/email-link/session", json={"token": form.get("token", "")}
    )
    if response.status_code != 200:
        return await render(who, "sign_in/email_landing.html", {
            "token": "", "title": "Sign in from your email",
            "error": "This sign-in link has expired or was already used. Ask for a new one.",
        }, status_code=401)
    return await start_session(who, response.json(), "/")


@router.get("/sign-in/oidc")
async def oidc_start(request: Request, who: AnyVisitor, network: str = "",
                     next: str = "/") -> Response:
    provider = who.settings.oidc_providers.get(network)
    if provider is None:
        raise ApiError(404, f"The network “{network}” has no identity provider configured here.")
    redirect_uri = who.settings.app_url.rstrip("/") + "/sign-in/oidc/callback"
    try:
        url, secrets = await oidc.start(provider, redirect_uri)
    except oidc.OidcError as exc:
        raise ApiError(503, str(exc)) from exc
    attempt = await who.store.start_attempt(
        {**secrets, "network_id": network, "next": safe_next(next)}
    )
    response = RedirectResponse(url, status_code=303)
    set_cookie(response, OIDC_COOKIE, attempt, who.settings.secure_cookies, max_age=600)
    return response


@router.get("/sign-in/oidc/callback")
async def oidc_callback(request: Request, who: AnyVisitor, code: str = "", state: str = "",
                        error: str = "", error_description: str = "") -> Response:
    attempt = await who.store.finish_attempt(request.cookies.get(OIDC_COOKIE))
    if error:
        return await _refused(who, f"Your institution's sign-in said: {error_description or error}.")
    if attempt is None or not state or state != attempt["state"]:
        return await _refused(who, "This sign-in was not started here or took too long. "
                                   "Start again from the sign-in page.")
    provider = who.settings.oidc_providers.get(attempt["network_id"])
    if provider is None:
        return await _refused(who, "This network no longer has an identity provider here.")
    redirect_uri = who.settings.app_url.rstrip("/") + "/sign-in/oidc/callback"
    try:
        id_token = await oidc.finish(provider, redirect_uri, code, attempt["code_verifier"])
    except oidc.OidcError as exc:
        return await _refused(who, str(exc))
    response = await who.backend.request(
        "POST", "profiles", "/auth/oidc/session",
        json={"network_id": attempt["network_id"], "id_token": id_token,
              "nonce": attempt["nonce"]},
    )
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        return await _refused(who, detail or "The platform did not accept this sign-in.",
                              status_code=response.status_code)
    result = await start_session(who, response.json(), attempt.get("next") or "/")
    result.delete_cookie(OIDC_COOKIE, path="/")
    return result


async def _refused(who: Visitor, message: str, status_code: int = 403) -> Response:
    response = await render(who, "sign_in/refused.html", {"title": "Sign-in refused",
                                                          "detail": message},
                            status_code=status_code if status_code >= 400 else 403)
    response.delete_cookie(OIDC_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, who: AnyVisitor) -> Response:
    if who.session is not None:
        await who.backend.request(
            "POST", "profiles", "/auth/sign-out",
            json={"refresh_token": who.session.refresh_token},
        )
        await who.end_session()
    return redirect(request, "/sign-in")
