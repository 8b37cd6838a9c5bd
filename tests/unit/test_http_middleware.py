"""The correlation and metrics middleware every service runs (a plain ASGI middleware)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY

from shared.logging import current_correlation_id
from shared.service import CORRELATION_HEADER, CorrelationAndMetrics


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(CorrelationAndMetrics, service="mw-test")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str | None]:
        if thing_id == "missing":
            raise HTTPException(404, "no such thing")
        return {"correlation": current_correlation_id()}

    return app


def _count(route: str, status: str) -> float:
    return REGISTRY.get_sample_value("http_requests_total", {
        "service": "mw-test", "method": "GET", "route": route, "status": status}) or 0.0


async def test_correlation_id_is_bound_echoed_and_requests_counted_by_route_template():
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = _count("/things/{thing_id}", "200"), _count("/things/{thing_id}", "404")
        given = await client.get("/things/1", headers={CORRELATION_HEADER: "trace-7"})
        assert given.json() == {"correlation": "trace-7"}
        assert given.headers[CORRELATION_HEADER] == "trace-7"
        fresh = await client.get("/things/missing")
        assert fresh.status_code == 404 and len(fresh.headers[CORRELATION_HEADER]) == 36
        unmatched = await client.get("/nowhere")
        assert unmatched.status_code == 404
    assert _count("/things/{thing_id}", "200") == before[0] + 1
    assert _count("/things/{thing_id}", "404") == before[1] + 1
    assert _count("<unmatched>", "404") >= 1
