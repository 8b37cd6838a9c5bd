"""Web app wiring: the shared service surface (/healthz, /readyz, /metrics, JSON logs) plus
pages, static files, security headers and sessions.

Readiness is the web app's own: its process and its session store. The services it calls are
not part of it, so one service being away shows on the pages that need it (a clear message)
instead of taking every page, sign-in included, out of the load balancer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.web import security, sessions, signin
from services.web.backend import Backend
from services.web.config import WebSettings
from services.web.pages import admin, coordinate, participant, public
from shared.secrets import read_secret
from shared.service import ServiceDefinition, create_app

STATIC = Path(__file__).parent / "static"


class CachedStatic(StaticFiles):
    """Static files are requested with a content hash (?v=...), so they may be kept a year."""

    async def get_response(self, path, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def create_web_app(settings: WebSettings | None = None) -> FastAPI:
    settings = settings or WebSettings()
    backend = Backend(settings)
    definition = ServiceDefinition(
        name="web",
        title="Web app: the platform's pages for participants, coordinators and admins",
        routers=[signin.router, public.router, *participant.routers, *coordinate.routers,
                 *admin.routers],
        create_indexes=sessions.create_indexes,
        workers=lambda db: [backend],
        messaging=False,
    )
    app = create_app(definition, settings)
    app.state.backend = backend
    app.state.web_secret = read_secret(
        "WEB_SESSION_SECRET", environment=settings.environment, data_dir=settings.data_dir
    ).encode()
    app.mount("/static", CachedStatic(directory=STATIC), name="static")
    security.install(app)
    return app
