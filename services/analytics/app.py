"""Analytics service wiring."""

from services.analytics import api, events, store
from shared.events.topics import DOMAIN_TOPICS
from shared.service import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="analytics",
    title="Analytics: program health, roll-ups and the dashboard",
    routers=[api.router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    subscriptions=list(DOMAIN_TOPICS),
    handlers=events.handlers,
    create_indexes=store.create_indexes,
)
