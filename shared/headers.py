"""Security headers on every response of every service.

* `X-Content-Type-Options: nosniff`, so a JSON body is never run as a script or page;
* `Referrer-Policy: no-referrer`: links carry tokens (unsubscribe, sign-in) that must not leak
  to the next site in a Referer;
* a Content-Security-Policy: JSON and the plain pages may load nothing and be framed by
  nobody; the analytics dashboard may load scripts, styles and data from its own origin only
  (its HTML has no inline script or style, so none is allowed); FastAPI's own /docs page loads
  Swagger UI from a CDN with an inline script, so there only framing is forbidden;
* `X-Frame-Options: DENY` for browsers older than `frame-ancestors`;
* `Strict-Transport-Security` when the request came over https (directly, or through a proxy
  uvicorn trusts, which sets the scheme): browsers then never use plain http again;
* `Cache-Control: no-store` unless a route says otherwise: responses carry personal data.

A route that sets one of these itself keeps its own value.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
DASHBOARD_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_POLICY = "frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
DOCS = ("/docs", "/redoc")


def policy_for(path: str) -> str:
    if path == "/dashboard" or path.startswith("/dashboard/"):
        return DASHBOARD_POLICY
    if path.startswith(DOCS):
        return DOCS_POLICY
    return API_POLICY


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        wanted = {
            b"x-content-type-options": b"nosniff",
            b"referrer-policy": b"no-referrer",
            b"content-security-policy": policy_for(path).encode(),
            b"x-frame-options": b"DENY",
        }
        if not path.startswith("/dashboard/static/"):
            wanted[b"cache-control"] = b"no-store"
        if scope.get("scheme") == "https":
            wanted[b"strict-transport-security"] = HSTS.encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in wanted.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
