"""Headers every answer carries, the cookies the app sets, and how refusals look to a person.

The content security policy allows scripts, styles, images and requests from this origin only:
no inline script or style anywhere (htmx is configured not to inject its indicator style or
evaluate code), so injected markup cannot run. Pages are never cached (they show personal
data) and never framed; no Referer leaves the site, because a sign-in link or an unsubscribe
link carries its token in the URL.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from services.web.backend import ApiError
from services.web.context import (
    ANON_COOKIE,
    SESSION_COOKIE,
    SignInRequired,
    render,
    sign_in_redirect,
    visitor,
)
from shared.logging import get_logger

log = get_logger(__name__)

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers_and_cookies(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The page's own time (services' calls included), for browsers' tools and bench/web.py.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        settings = request.app.state.settings
        new_session = getattr(request.state, "new_session_id", None)
        if new_session:
            set_cookie(response, SESSION_COOKIE, new_session, settings.secure_cookies,
                       max_age=int(settings.session_idle_hours * 3600))
        elif getattr(request.state, "clear_session", False):
            response.delete_cookie(SESSION_COOKIE, path="/", secure=settings.secure_cookies,
                                   httponly=True, samesite="lax")
        anon = getattr(request.state, "new_anon_id", None)
        if anon:
            set_cookie(response, ANON_COOKIE, anon, settings.secure_cookies, max_age=None)
        return response

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, exc: SignInRequired) -> Response:
        response = sign_in_redirect(request, exc.next_path)
        if getattr(request.state, "clear_session", False):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(ApiError)
    async def service_refused(request: Request, exc: ApiError) -> Response:
        return await error_page(request, exc.status, exc.detail)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        if request.url.path in ("/healthz", "/readyz", "/metrics"):
            from fastapi.responses import JSONResponse
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return await error_page(request, exc.status_code, str(exc.detail))


def set_cookie(response: Response, name: str, value: str, secure: bool,
               max_age: int | None) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (not sent on cross-site posts)."""
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure, httponly=True,
                        samesite="lax")


TITLES = {400: "That did not work", 401: "Please sign in", 403: "Not allowed",
          404: "Not found", 409: "That cannot be done now", 422: "Please check what you entered",
          503: "A service is unavailable"}


async def error_page(request: Request, status_code: int, detail: str) -> Response:
    who = await visitor(request)
    status_code = status_code if status_code >= 400 else 500
    title = TITLES.get(status_code, "Something went wrong")
    if request.headers.get("HX-Request"):
        # htmx swaps only 2xx by default: the fragment goes to the page's alert region.
        html = (await render(who, "_error_fragment.html", {"title": title, "detail": detail},
                             partial=True)).body
        return HTMLResponse(html, status_code=200, headers={"HX-Retarget": "#alerts",
                                                            "HX-Reswap": "innerHTML"})
    return await render(who, "error.html", {"title": title, "detail": detail,
                                            "status": status_code}, status_code=status_code)
