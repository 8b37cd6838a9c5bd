"""Matching service wiring."""

from services.matching import api, events, feedback_view_api, lifecycle_api, runs_api, store
from shared.events.topics import PROFILES_TOPIC
from shared.service import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="matching",
    title="Matching: the matching engine and the life of a mentorship",
    routers=[api.router, runs_api.router, lifecycle_api.router, feedback_view_api.router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    subscriptions=[PROFILES_TOPIC],
    handlers=events.handlers,
    create_indexes=store.create_indexes,
)
