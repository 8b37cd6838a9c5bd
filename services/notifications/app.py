"""Notifications service wiring."""

from services.notifications import api, events, store
from shared.events.topics import MATCHING_TOPIC, PROFILES_TOPIC
from shared.service import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="notifications",
    title="Notifications: email, in-app and webhook messages",
    routers=[api.router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    subscriptions=[PROFILES_TOPIC, MATCHING_TOPIC],
    handlers=events.handlers,
    create_indexes=store.create_indexes,
)
