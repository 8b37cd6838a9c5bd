"""Profiles consumes no events yet: it is the system of record for people."""

from shared.messaging.consumer import Handler

HANDLERS: dict[str, Handler] = {}
