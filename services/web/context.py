"""Who is asking, on whose behalf the services are called, and how pages are answered.

Every page gets a `Visitor`: the session (None before sign-in) and `api`, which calls a
service with the session's access token, refreshing it shortly before it expires (and once
more when a service answers 401). A page that needs a signed-in person depends on
`SignedIn`; without a session the person is sent to the sign-in page and brought back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.web.backend import ApiError, Backend
from services.web.config import WebSettings
from services.web.sessions import Session, SessionStore, now
from shared.logging import get_logger

log = get_logger(__name__)
HERE = Path(__file__).parent
SESSION_COOKIE = "mentorship_session"
ANON_COOKIE = "mentorship_visitor"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
ME_FRESH = timedelta(seconds=20)
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "jinja"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


STATIC_VERSION = _static_version()
templates.globals["static"] = lambda path: f"/static/{path}?v={STATIC_VERSION}"


class SignInRequired(Exception):
    """Raised by `SignedIn` without a live session; answered with a redirect to sign in."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """Only a path of this app (never another origin) is a place to go back to."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


class Api:
    """The services, called as the signed-in person (or anonymously for public routes)."""

    def __init__(self, visitor: Visitor) -> None:
        self._visitor = visitor

    async def call(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        """JSON of a 2xx answer (None for 204); ApiError otherwise."""
        response = await self.raw(method, service, path, **kwargs)
        Backend.check(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def raw(self, method: str, service: str, path: str, **kwargs: Any):
        visitor = self._visitor
        token = await visitor.access_token()
        response = await visitor.backend.request(method, service, path, token=token, **kwargs)
        if response.status_code == 401 and visitor.session is not None:
            # Expired early, or revoked: one refresh, then the person signs in again.
            if await visitor.refresh(force=True):
                response = await visitor.backend.request(
                    method, service, path, token=visitor.session.access_token, **kwargs
                )
            if response.status_code == 401:
                await visitor.end_session()
                raise SignInRequired(visitor.request.url.path)
        if method.upper() in UNSAFE and visitor.session is not None:
            visitor.session.me_at = None  # what changed may show in the navigation
        return response

    async def get(self, service: str, path: str, **kwargs: Any) -> Any:
        return await self.call("GET", service, path, **kwargs)

    async def post(self, service: str, path: str, **kwargs: Any) -> Any:
        return await self.call("POST", service, path, **kwargs)


@dataclass
class Visitor:
    request: Request
    settings: WebSettings
    backend: Backend
    store: SessionStore
    session: Session | None

    @property
    def api(self) -> Api:
        return Api(self)

    @property
    def network_id(self) -> str | None:
        return self.session.network_id if self.session else None

    @property
    def person_id(self) -> str | None:
        return self.session.person_id if self.session else None

    async def access_token(self) -> str | None:
        session = self.session
        if session is None:
            return None
        margin = timedelta(seconds=self.settings.refresh_margin_seconds)
        if session.access_expires_at - margin <= now():
            await self.refresh()
        return session.access_token

    async def refresh(self, force: bool = False) -> bool:
        """New tokens from profiles (rotating the refresh token); False if refused."""
        session = self.session
        assert session is not None
        if not await self.store.take_refresh_lease(session):
            return await self._wait_for_refresh(session)
        response = await self.backend.request(
            "POST", "profiles", "/auth/refresh", json={"refresh_token": session.refresh_token}
        )
        if response.status_code != 200:
            log.info("session.refresh_refused", status=response.status_code)
            await self.end_session()
            raise SignInRequired(self.request.url.path)
        await self.store.store_tokens(session, response.json())
        return True

    async def _wait_for_refresh(self, session: Session) -> bool:
        """Another request of this session is refreshing: use the tokens it gets."""
        for _ in range(60):
            await asyncio.sleep(0.1)
            current = await self.store.get(session.key)
            if current is None:
                raise SignInRequired(self.request.url.path)
            if current.refresh_token != session.refresh_token:
                session.access_token = current.access_token
                session.refresh_token = current.refresh_token
                session.access_expires_at = current.access_expires_at
                return True
        return False

    async def end_session(self) -> None:
        if self.session is not None:
            await self.store.delete(self.session)
            self.session = None
            self.request.state.clear_session = True

    async def me(self, fresh: bool = False) -> dict[str, Any]:
        """`GET /me` of profiles, kept a few seconds in the session for the navigation."""
        session = self.session
        assert session is not None
        if not fresh and session.me is not None and session.me_at and now() - session.me_at < ME_FRESH:
            return session.me
        me = await self.api.get("profiles", "/me")
        await self.store.remember_me(session, me)
        return me

    # ------------------------------------------------------------------ CSRF

    def csrf_token(self) -> str:
        """The session's synchronizer token; before sign-in, one bound to the visitor cookie."""
        if self.session is not None:
            return self.session.csrf
        anon = self.request.state.anon_id
        return hmac.new(self.settings_secret, anon.encode(), hashlib.sha256).hexdigest()

    @property
    def settings_secret(self) -> bytes:
        return self.request.app.state.web_secret

    def csrf_ok(self, presented: str | None) -> bool:
        if not presented:
            return False
        if self.session is not None:
            return hmac.compare_digest(presented, self.session.csrf)
        anon = self.request.cookies.get(ANON_COOKIE)
        if not anon:
            return False
        expected = hmac.new(self.settings_secret, anon.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(presented, expected)


async def visitor(request: Request) -> Visitor:
    cached = getattr(request.state, "visitor", None)
    if cached is not None:
        return cached
    app = request.app
    settings: WebSettings = app.state.settings
    store = SessionStore(app.state.db, timedelta(hours=settings.session_idle_hours))
    session = await store.load(request.cookies.get(SESSION_COOKIE))
    anon = request.cookies.get(ANON_COOKIE)
    if not anon or len(anon) > 100:
        anon = secrets.token_urlsafe(24)
        request.state.new_anon_id = anon
    request.state.anon_id = anon
    found = Visitor(request, settings, app.state.backend, store, session)
    request.state.visitor = found
    return found


async def csrf_protect(request: Request) -> None:
    """Every form and every htmx request that changes something carries the token."""
    if request.method not in UNSAFE:
        return
    who = await visitor(request)
    if await _one_click_unsubscribe(request):
        return
    presented = request.headers.get(CSRF_HEADER)
    if not presented:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    if not who.csrf_ok(presented):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form has expired or did not come from this site. Go back, reload the page "
            "and try again.",
        )


async def _one_click_unsubscribe(request: Request) -> bool:
    """RFC 8058: a mail client posts `List-Unsubscribe=One-Click` to the link itself, with no
    form of ours; the signed token in the URL is what authorises it."""
    if request.url.path != "/unsubscribe" or not request.query_params.get("token"):
        return False
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return False
    form = await request.form()
    return form.get("List-Unsubscribe") == "One-Click" and CSRF_FIELD not in form


async def signed_in(request: Request) -> Visitor:
    who = await visitor(request)
    if who.session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return who


AnyVisitor = Annotated[Visitor, Depends(visitor)]
SignedIn = Annotated[Visitor, Depends(signed_in)]


def sign_in_redirect(request: Request, next_path: str) -> Response:
    target = f"/sign-in?next={quote(safe_next(next_path), safe='')}"
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


def redirect(request: Request, target: str) -> Response:
    """After a successful form: a full page load (htmx follows HX-Redirect)."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def navigation(who: Visitor) -> dict[str, Any]:
    """The areas this person may use: participant, coordinator, admin (from GET /me)."""
    if who.session is None:
        return {"areas": [], "me": None}
    try:
        me = await who.me()
    except ApiError as exc:
        log.warning("me.unavailable", status=exc.status, detail=exc.detail)
        return {"areas": ["participant"], "me": None, "unread": None}
    grants = me.get("grants") or []
    roles = {g.get("role") for g in grants}
    areas = ["participant"]
    if roles & {"network_admin", "institution_coordinator", "program_coordinator"}:
        areas.append("coordinator")
    if "network_admin" in roles:
        areas.append("admin")
    return {"areas": areas, "me": me}


async def render(
    who: Visitor, name: str, context: dict[str, Any] | None = None, *,
    status_code: int = 200, partial: bool = False,
) -> HTMLResponse:
    """A page (or, for htmx, just the fragment `name`) with the layout's context."""
    ctx: dict[str, Any] = {"csrf_token": who.csrf_token(), "request": who.request,
                           "path": who.request.url.path, "settings": who.settings}
    if not partial:
        ctx.update(await navigation(who))
        ctx["flash"] = await who.store.pop_flash(who.session) if who.session else []
    ctx.update(context or {})
    html = templates.get_template(name).render(ctx)
    return HTMLResponse(html, status_code=status_code)


async def flash(who: Visitor, message: str) -> None:
    if who.session is not None:
        await who.store.add_flash(who.session, message)
