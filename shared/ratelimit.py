"""Abuse limits (slowapi): how many requests one token and one address may make.

Each named limit has two budgets, per bearer token and per client IP address, so neither a
stolen token spread over many addresses nor many tokens from one address go unchecked. A
request over a budget gets 429 with `Retry-After` (seconds) and a message that says the limit.

    from shared.ratelimit import rate_limit
    @router.post("/sign-in", dependencies=[rate_limit("sign-in")])

`shared.service.create_app` applies the "write" limit to every POST, PUT, PATCH and DELETE of
every service; sign-in and the unsubscribe link have tighter budgets of their own. The budgets
come from the settings (`RATE_LIMIT_<NAME>` per token and `RATE_LIMIT_<NAME>_PER_IP`, in the
`limits` notation such as "60/minute"), and `RATE_LIMITS_ENABLED=false` turns them off (the
test suites and `mentorship demo` write faster than any person). Counters live in the process
(`RATE_LIMIT_STORAGE_URI`, default memory://): with several replicas behind a load balancer,
point it at a shared Redis (redis://...) so the budget is the platform's, not each replica's.
Behind a proxy, the client address is the proxy's unless uvicorn trusts its X-Forwarded-For
(`FORWARDED_ALLOW_IPS`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Budget:
    per_token: str
    per_ip: str


# Defaults; each can be overridden by a setting of the same name (see the module docstring).
DEFAULT_BUDGETS: dict[str, Budget] = {
    "write": Budget("120/minute", "600/minute"),
    "sign-in": Budget("5/minute", "20/minute"),
    "unsubscribe": Budget("10/minute", "30/minute"),
}

_state: dict[str, Any] = {"enabled": True, "budgets": dict(DEFAULT_BUDGETS), "storage": "memory://"}
_limiter: Limiter | None = None
_checks: dict[str, Callable[[Request], Awaitable[None]]] = {}


def by_token(request: Request) -> str:
    """The bearer token (hashed: the counter's key never holds a credential); requests without
    one share their address's budget."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer " and len(header) > 7:
        return "token:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()[:32]
    return "ip:" + (get_remote_address(request) or "unknown")


def by_address(request: Request) -> str:
    return "ip:" + (get_remote_address(request) or "unknown")


def configure(settings: Any) -> None:
    """Take the budgets, storage and switch from the service's settings (once per process)."""
    global _limiter
    budgets = dict(DEFAULT_BUDGETS)
    for name, budget in DEFAULT_BUDGETS.items():
        field = "rate_limit_" + name.replace("-", "_")
        budgets[name] = Budget(
            getattr(settings, field, None) or budget.per_token,
            getattr(settings, field + "_per_ip", None) or budget.per_ip,
        )
    enabled = getattr(settings, "rate_limits_enabled", None)
    _state.update(
        enabled=(not getattr(settings, "is_development", False)) if enabled is None else enabled,
        budgets=budgets,
        storage=getattr(settings, "rate_limit_storage_uri", "memory://") or "memory://",
    )
    _limiter = None
    _checks.clear()


def limiter() -> Limiter:
    global _limiter
    if _limiter is None:
        _limiter = Limiter(key_func=by_token, key_style="endpoint", storage_uri=_state["storage"],
                           headers_enabled=False)
    return _limiter


def _check(name: str) -> Callable[[Request], Awaitable[None]]:
    """A slowapi-limited function for one named limit (both budgets share its counters' scope,
    so every route using the name draws on one budget)."""
    if name not in _checks:
        if name not in DEFAULT_BUDGETS:
            raise KeyError(f"no rate limit named {name!r}; add it to DEFAULT_BUDGETS")

        async def check(request: Request) -> None:
            return None

        check.__name__ = check.__qualname__ = "limit_" + name.replace("-", "_")
        lim = limiter()
        per_token = lim.limit(lambda: _state["budgets"][name].per_token, key_func=by_token)
        per_ip = lim.limit(lambda: _state["budgets"][name].per_ip, key_func=by_address)
        _checks[name] = per_ip(per_token(check))
    return _checks[name]


async def enforce(name: str, request: Request) -> None:
    """Count this request against the named limit; RateLimitExceeded (429) when over."""
    if not _state["enabled"]:
        return
    request.state._rate_limiting_complete = False  # each named limit is checked on its own
    await _check(name)(request)


def rate_limit(name: str) -> Any:
    """A FastAPI dependency applying the named limit to a route."""

    async def dependency(request: Request) -> None:
        await enforce(name, request)

    return Depends(dependency)


async def writes(request: Request) -> None:
    """Dependency every service's routers get: the "write" limit on changing methods."""
    if request.method in WRITE_METHODS:
        await enforce("write", request)


async def too_many_requests(request: Request, exc: RateLimitExceeded) -> JSONResponse:
    """429 with how long to wait (Retry-After) and which budget ran out."""
    retry_after = 60
    view = getattr(request.state, "view_rate_limit", None)
    if view is not None:
        limit, args = view
        reset_at, _ = limiter().limiter.get_window_stats(limit, *args)
        retry_after = max(1, math.ceil(reset_at - time.time()))
    budget = exc.limit.limit if exc.limit is not None else None
    who = "this address" if exc.limit is not None and exc.limit.key_func is by_address else (
        "your token")
    return JSONResponse(
        status_code=429,
        content={"detail": f"Too many requests from {who} (at most {budget}); try again in "
                           f"{retry_after} seconds."},
        headers={"Retry-After": str(retry_after)},
    )
