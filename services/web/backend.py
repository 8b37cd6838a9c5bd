"""Calls to the four services' HTTP APIs, with the signed-in person's own access token.

The web app decides nothing about who may see what: it forwards the person's token and shows
what the services answer, so every tenancy rule is enforced once, in the service that owns
the data. An answer of 400 or more becomes `ApiError`, carrying the service's own message
(and the fields it named) for the page to show next to the form.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.web.config import WebSettings
from shared.logging import get_logger

log = get_logger(__name__)
SERVICES = ("profiles", "matching", "notifications", "analytics")


class ApiError(Exception):
    """A service said no (or could not be reached: status 503)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None,
                 body: Any = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.body = body

    def field_errors(self) -> dict[str, str]:
        """Field name (last part of the service's path) -> message."""
        out: dict[str, str] = {}
        for err in self.errors:
            name = str(err.get("field") or "").split(".")[-1] or str(err.get("field") or "")
            if name and name not in out:
                out[name] = str(err.get("message") or "is not valid")
        return out


def _detail(response: httpx.Response) -> tuple[str, list[dict[str, str]], Any]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase, [], None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):  # FastAPI's own validation shape
            errors = [{"field": ".".join(str(p) for p in d.get("loc", [])[1:]),
                       "message": d.get("msg", "")} for d in detail if isinstance(d, dict)]
            return "; ".join(e["message"] for e in errors) or "Invalid input", errors, body
        return str(detail or response.reason_phrase), list(body.get("errors") or []), body
    return response.reason_phrase, [], body


class Backend:
    """One pooled HTTP client for every service; owned by the app (a worker closes it)."""

    def __init__(self, settings: WebSettings) -> None:
        self.urls = {name: getattr(settings, f"{name}_url").rstrip("/") for name in SERVICES}
        self.client = httpx.AsyncClient(
            timeout=settings.backend_timeout_seconds,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=40),
        )
        self._stop = asyncio.Event()

    async def request(
        self, method: str, service: str, path: str, *, token: str | None = None,
        json: Any = None, params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None, content: bytes | None = None,
    ) -> httpx.Response:
        """The raw answer (any status); 503 ApiError when the service cannot be reached."""
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            return await self.client.request(
                method, f"{self.urls[service]}{path}", json=json, params=params, headers=sent,
                content=content,
            )
        except httpx.HTTPError as exc:
            log.warning("backend.unreachable", service=service, path=path, error=repr(exc))
            raise ApiError(503, f"The {service} service cannot be reached right now; "
                                "try again in a moment.") from exc

    @staticmethod
    def check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            detail, errors, body = _detail(response)
            raise ApiError(response.status_code, detail, errors, body)
        return response

    # Worker protocol: keeps the client open while the app runs, closes it at shutdown.
    async def run(self) -> None:
        await self._stop.wait()
        await self.client.aclose()

    def stop(self) -> None:
        self._stop.set()
