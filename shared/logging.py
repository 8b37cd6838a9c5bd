"""Structured JSON logs (structlog) with a correlation id that follows a request into events.

The HTTP middleware binds the id of the incoming request (or a new one); events created
while it is bound carry it in `correlationid`; consumers bind it again while they handle the
event, so one user action can be followed across every service's log.
"""

from __future__ import annotations

import logging
import sys

import structlog

CORRELATION_KEY = "correlation_id"


def configure_logging(service: str, *, level: str = "INFO", json_output: bool = True) -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper(), force=True)
    for noisy in ("aiokafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def current_correlation_id() -> str | None:
    return structlog.contextvars.get_contextvars().get(CORRELATION_KEY)


def bind_correlation_id(correlation_id: str) -> None:
    structlog.contextvars.bind_contextvars(**{CORRELATION_KEY: correlation_id})


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
