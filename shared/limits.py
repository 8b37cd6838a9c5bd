"""Request size limits and error messages that never echo what was sent.

The limit itself is FastAPI's `max_body_size`: a default (`DEFAULT_MAX_BODY_BYTES`, given by
`shared.service.create_app` to every router it includes) that a route overrides with its own (a roster import is
megabytes, a profile edit kilobytes). A body over it is refused with 413 before it is read
(at once when `Content-Length` says so, otherwise as soon as the stream passes the limit).
`ExplainTooLarge` adds two things: the 413 says what the limit is (Starlette answers a plain
"Content Too Large"), and what the client still sends is read and dropped before answering, up
to `DRAIN_BYTES`, so a client that writes its whole body before reading sees the 413 instead of
a reset connection.

Error messages are for people: they may quote a value someone sent, but never at length, or a
10 MB list item would come back in the 422. `shown` quotes a value cut to a few dozen
characters; `capped` is the last guard every error detail passes.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # JSON requests of every API; nginx's default too
# The most any route takes (a roster import, 20 MB): what a middleware that must hold a whole
# body before routing (the request transaction) reads at most.
LARGEST_BODY_BYTES = 20 * 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024
MAX_DETAIL = 1000  # characters of an error detail
MAX_QUOTED = 60  # characters of a value quoted in a message


def shown(value: Any, limit: int = MAX_QUOTED) -> str:
    """`repr` of a value a caller sent, cut to `limit` characters (with its length when cut)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes | list | tuple | dict) else None
    return f"{text[:limit]}... ({size} characters)" if size is not None else f"{text[:limit]}..."


def capped(detail: str, limit: int = MAX_DETAIL) -> str:
    return detail if len(detail) <= limit else detail[:limit] + "... (message cut)"


def too_large(scope: Scope) -> str:
    """The 413 message, with the limit that applied to this request."""
    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    if not isinstance(limit, int):
        return "The request body is larger than this endpoint accepts; send less at once."
    size = f"{limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else f"{limit / 1024:g} KB"
    return f"The request body is larger than this endpoint accepts ({size}); send less at once."


class ExplainTooLarge:
    """ASGI middleware around the routes' own limits: a 413 says, in JSON like every other
    error, what the limit is; and before it goes out the rest of the request body is read and
    dropped (up to DRAIN_BYTES), so a client that writes its whole body before reading gets
    the answer instead of a reset connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        finished = False
        replaced = False

        async def counting() -> Message:
            nonlocal received, finished
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                finished = not message.get("more_body", False)
            else:
                finished = True
            return message

        async def explaining_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                while not finished and received <= DRAIN_BYTES:
                    await counting()
                body = json.dumps({"detail": too_large(scope)}).encode()
                replaced = True
                await send({
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())],
                })
                await send({"type": "http.response.body", "body": body})
                return
            if replaced:  # the original 413's body: already answered
                return
            await send(message)

        await self.app(scope, counting, explaining_send)
