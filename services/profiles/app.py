"""Profiles service wiring."""

from services.profiles import api, store
from shared.service import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="profiles",
    title="Profiles: networks, institutions, programs and people",
    routers=[api.router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    create_indexes=store.create_indexes,
)
