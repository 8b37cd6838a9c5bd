"""Wiring every service shares: FastAPI app, MongoDB, outbox relay, consumer, health, metrics.

A service describes itself with a `ServiceDefinition` (its routers, the collections that
stage events, the topics it consumes and its handlers); `create_app` turns that into a
running process with the same operational surface everywhere: `/healthz`, `/readyz`,
`/metrics`, `/openapi.json`, JSON logs with correlation ids, and bearer-token auth.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.asynchronous.database import AsyncDatabase
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import audit_trail
from shared.auth import MissingKey, TokenVerifier, ensure_local_keypair
from shared.connections import kafka_options, mongo_credentials
from shared.db import create_client
from shared.events.topics import ALL_TOPICS
from shared.headers import SecurityHeaders
from shared import ratelimit
from shared.health import Readiness
from shared.idempotency import IdempotentRequests
from shared.idempotency import ensure_indexes as ensure_idempotency_indexes
from shared.limits import DEFAULT_MAX_BODY_BYTES, MAX_QUOTED, ExplainTooLarge, capped
from shared.logging import bind_correlation_id, configure_logging, get_logger
from shared.messaging.consumer import EventConsumer, Handler, ensure_consumer_indexes
from shared.messaging.kafka import create_producer, ensure_topics, kafka_reachable, topic_layout
from shared.messaging.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.messaging.outbox import OutboxRelay, ensure_outbox_indexes
from shared.settings import ServiceSettings

log = get_logger(__name__)
CORRELATION_HEADER = "X-Correlation-ID"


class Worker(Protocol):
    """A background loop of a service: `run` until `stop` is called (never cancelled)."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ServiceDefinition:
    name: str
    title: str
    routers: Sequence[APIRouter] = ()
    outbox_collections: Sequence[str] = ()
    subscriptions: Sequence[str] = ()
    handlers: Callable[[], Mapping[str, Handler]] | None = None
    create_indexes: Callable[[AsyncDatabase], Awaitable[None]] | None = None
    workers: Callable[[AsyncDatabase], Sequence[Worker]] | None = None
    # Every write request in one MongoDB transaction, key or not (shared/idempotency.py):
    # for services whose writes and audit entries must commit together.
    atomic_writes: bool = False
    # False for a service that neither publishes nor consumes events (the web app): no outbox
    # relay, no topics, and readiness does not depend on Kafka.
    messaging: bool = True
    # Privileged changes the audit log records: (method, route path) -> action, such as
    # ("PUT", "/networks/{network_id}/templates/{kind}"): "template.changed". Every 403 of
    # every route is recorded too (shared/audit_trail.py).
    audited: Mapping[tuple[str, str], str] = field(default_factory=dict)


def create_app(definition: ServiceDefinition, settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings(service_name=definition.name)
    if settings.service_name != definition.name:
        settings = settings.model_copy(update={"service_name": definition.name})
    outbox_collections = (*definition.outbox_collections, audit_trail.AUDIT_OUTBOX)
    configure_logging(definition.name, level=settings.log_level, json_output=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = create_client(settings.mongodb_uri, **mongo_credentials(settings))
        db = mongo[settings.database_name]
        app.state.mongo, app.state.db = mongo, db
        app.state.token_verifier = _token_verifier(settings)
        await ensure_outbox_indexes(db, outbox_collections)
        await ensure_consumer_indexes(db, settings)
        await ensure_idempotency_indexes(db)
        if definition.create_indexes:
            await definition.create_indexes(db)
        tasks: list[asyncio.Task[None]] = []
        readiness = _readiness(settings, mongo, definition.messaging)
        app.state.readiness = readiness
        await readiness.probe_all()  # ready as soon as it is, not one interval later
        tasks.append(asyncio.create_task(readiness.run(), name="readiness"))
        relay = OutboxRelay(
            db, settings, outbox_collections, lambda: create_producer(settings)
        )
        app.state.relay = relay
        if definition.messaging:
            tasks.append(
                asyncio.create_task(_with_topics(settings, relay.run), name="outbox-relay")
            )
        consumer = None
        if definition.subscriptions and definition.handlers:
            consumer = EventConsumer(
                db=db,
                settings=settings,
                topics=definition.subscriptions,
                handlers=definition.handlers(),
                producer_factory=lambda: create_producer(settings),
                after_commit=relay.wake,
            )
            tasks.append(asyncio.create_task(consumer.run(), name="event-consumer"))
        app.state.consumer = consumer
        workers = list(definition.workers(db)) if definition.workers else []
        tasks.extend(asyncio.create_task(worker.run(), name=type(worker).__name__) for worker in workers)
        log.info("service.started", port=settings.port, database=settings.database_name)
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop()
            for worker in workers:
                worker.stop()
            relay.stop()
            readiness.stop()
            await asyncio.wait(tasks, timeout=15)
            for task in tasks:
                task.cancel()
            await mongo.close()
            log.info("service.stopped")

    app = FastAPI(title=definition.title, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    # Added first, so it runs inside the correlation and metrics middleware.
    app.add_middleware(IdempotentRequests, settings=settings,
                       atomic_writes=definition.atomic_writes)
    _install_middleware(app, definition)
    app.add_middleware(ExplainTooLarge)
    app.add_middleware(SecurityHeaders)
    _install_error_handlers(app)
    ratelimit.configure(settings)
    app.add_exception_handler(RateLimitExceeded, ratelimit.too_many_requests)
    app.include_router(_operations_router(settings))
    for router in definition.routers:
        # Every route takes at most DEFAULT_MAX_BODY_BYTES unless it declares its own
        # `max_body_size` (a roster import), see shared/limits.py; every write counts against
        # the caller's "write" budget, see shared/ratelimit.py.
        app.include_router(router, max_body_size=DEFAULT_MAX_BODY_BYTES,
                           dependencies=[Depends(ratelimit.writes)])
    return app


async def _with_topics(settings: ServiceSettings, run: Callable[[], Awaitable[None]]) -> None:
    """Create the domain topics (retrying while Kafka is away), then run the relay.

    The API serves writes meanwhile: they land in the outbox and leave when Kafka returns.
    """
    backoff = 0.2
    while True:
        try:
            await ensure_topics(
                settings.kafka_bootstrap_servers,
                ALL_TOPICS,
                **topic_layout(settings),
                client_id=f"{settings.service_name}-admin",
                **kafka_options(settings),
            )
            break
        except Exception as exc:
            log.warning("kafka.topics_unavailable", error=repr(exc), retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
    await run()


def _readiness(settings: ServiceSettings, mongo: Any, messaging: bool) -> Readiness:
    async def mongodb() -> None:
        await mongo.admin.command("ping")

    async def kafka() -> str | None:
        return await kafka_reachable(settings.kafka_bootstrap_servers)

    probes: dict[str, Callable[[], Awaitable[str | None]]] = {"MongoDB": mongodb}
    if messaging:
        probes["Kafka"] = kafka
    return Readiness(
        probes,
        interval=settings.readiness_probe_interval_seconds,
        timeout=settings.readiness_probe_timeout_seconds,
        grace=settings.readiness_grace_seconds,
    )


def _token_verifier(settings: ServiceSettings) -> TokenVerifier:
    """The platform's own public key (the local pair in development, created on first run),
    plus the external issuer's JWKS when JWT_JWKS_URL is set."""
    if settings.jwt_public_key_file is None and settings.is_development:
        ensure_local_keypair(settings.data_dir)
    path = settings.public_key_path
    public_key = path.read_bytes() if path.exists() else None
    if public_key is None and not settings.jwt_jwks_url:
        raise MissingKey(
            f"No key to verify tokens with: {path} does not exist. Set JWT_PUBLIC_KEY_FILE to "
            "the platform's public key (and JWT_JWKS_URL for an external issuer)."
        )
    return TokenVerifier(
        public_key_pem=public_key,
        jwks_url=settings.jwt_jwks_url or None,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        external_issuer=settings.jwt_external_issuer or None,
    )


def _install_middleware(app: FastAPI, definition: ServiceDefinition) -> None:
    app.add_middleware(CorrelationAndMetrics, service=definition.name,
                       audited=dict(definition.audited))


class CorrelationAndMetrics:
    """Binds the request's correlation id (or a new one) for logs and events, echoes it in the
    response, records the request in the HTTP metrics, and has a refusal (403) or a privileged
    change the service declares written to the audit trail (shared/audit_trail.py).

    A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` (`@app.middleware("http")`) runs
    the rest of the app in a task with memory streams, about a fifth of a small request's CPU.
    """

    def __init__(self, app: Any, service: str,
                 audited: dict[tuple[str, str], str] | None = None) -> None:
        self.app = app
        self.service = service
        self.audited = audited or {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == _CORRELATION_KEY), None
        ) or str(uuid.uuid4())
        bind_correlation_id(correlation_id)
        started = time.perf_counter()
        status = [500]

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()),
                                      (_CORRELATION_KEY, correlation_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "<unmatched>")
            method = scope["method"]
            try:
                await audit_trail.after_response(Request(scope), status[0], self.service,
                                                 self.audited, path)
            except Exception as exc:  # the answer stands; the lost entry is logged
                log.error("audit.not_recorded", error=repr(exc), path=scope.get("path"))
            HTTP_REQUESTS.labels(self.service, method, path, str(status[0])).inc()
            HTTP_LATENCY.labels(self.service, method, path).observe(
                time.perf_counter() - started)


_CORRELATION_KEY = CORRELATION_HEADER.lower().encode("latin-1")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """Which field is wrong and why, never the value sent (it may be megabytes): a field
        name that came from the caller (an unknown key) is cut like any quoted value."""
        errors = [
            {
                "field": ".".join(
                    _cut(str(p)) for p in err["loc"] if p not in ("body", "query", "path")
                ),
                "message": _cut(str(err["msg"]), 200),
            }
            for err in exc.errors()[:20]
        ]
        summary = "; ".join(f"{e['field'] or 'request'}: {e['message']}" for e in errors)
        return JSONResponse(
            status_code=422,
            content={"detail": capped(f"Invalid input: {summary}"), "errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Every error detail is capped: a message quoting what was sent stays short."""
        if isinstance(exc.detail, str) and len(exc.detail) > len(capped(exc.detail)):
            exc = StarletteHTTPException(exc.status_code, capped(exc.detail), exc.headers)
        return await http_exception_handler(request, exc)


def _cut(text: str, limit: int = MAX_QUOTED) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _operations_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": settings.service_name}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """503 only when a dependency has been unreachable for READINESS_GRACE_SECONDS (see
        shared/health.py): a busy store answering slowly is not a reason to take the
        instance out."""
        problems = request.app.state.readiness.problems()
        if problems:
            return JSONResponse({"status": "not ready", "reasons": problems}, status_code=503)
        return JSONResponse({"status": "ready", "service": settings.service_name})

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def get_db(request: Request) -> AsyncDatabase:
    """The service's database; inside a request transaction, the handle bound to it."""
    bound = request.scope.get("state", {}).get("db")
    return bound if bound is not None else request.app.state.db


async def get_relay(request: Request) -> OutboxRelay:
    return request.app.state.relay


Database = Annotated[AsyncDatabase, Depends(get_db)]
Relay = Annotated[OutboxRelay, Depends(get_relay)]


def serve(definition: ServiceDefinition) -> None:
    """Entry point of `python -m services.<name>`.

    `HTTP_WORKERS` > 1 serves the API from that many processes (uvicorn workers sharing the
    port), so one busy process (an import, a burst of requests) does not hold up the others'
    requests. Each process runs the outbox relay, of which only the holder of the lease
    publishes. A service that consumes events has each process join its consumer group as
    a member of its own (dynamic membership: one static member id cannot be several
    processes), so the group splits the partitions between them.
    """
    import uvicorn

    settings = ServiceSettings(service_name=definition.name)
    workers = settings.http_workers
    options: dict[str, Any] = dict(
        host=settings.http_host, port=settings.port, log_config=None, access_log=False,
        timeout_graceful_shutdown=10,
    )
    if workers > 1:
        os.environ[APP_DEFINITION_VARIABLE] = f"services.{definition.name}.app:DEFINITION"
        uvicorn.run("shared.service:app_from_environment", factory=True, workers=workers,
                    **options)
    else:
        uvicorn.run(create_app(definition, settings), **options)


APP_DEFINITION_VARIABLE = "SERVICE_DEFINITION"


def app_from_environment() -> FastAPI:
    """The app of the service named by SERVICE_DEFINITION ("module:attribute"), for uvicorn's
    worker processes, which import the app by name."""
    module, _, attribute = os.environ[APP_DEFINITION_VARIABLE].partition(":")
    definition = getattr(importlib.import_module(module), attribute)
    settings = ServiceSettings(service_name=definition.name)
    if definition.subscriptions:  # each process is a consumer group member of its own
        settings = settings.model_copy(update={"kafka_static_membership": False})
    return create_app(definition, settings)
