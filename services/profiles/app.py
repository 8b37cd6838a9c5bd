"""Profiles service wiring."""

from pymongo.asynchronous.database import AsyncDatabase

from services.profiles import (
    api,
    audit,
    enrolment_api,
    import_api,
    organisation_api,
    organisation_store,
    people_api,
    privacy,
    store,
)
from shared.service import ServiceDefinition


async def create_indexes(db: AsyncDatabase) -> None:
    await store.create_indexes(db)
    await organisation_store.create_indexes(db)
    await audit.create_indexes(db)


DEFINITION = ServiceDefinition(
    name="profiles",
    title="Profiles: networks, institutions, programs and people",
    routers=[
        api.router,
        people_api.router,
        organisation_api.router,
        enrolment_api.router,
        privacy.router,
        audit.router,
        import_api.router,
    ],
    outbox_collections=store.OUTBOX_COLLECTIONS + organisation_store.OUTBOX_COLLECTIONS,
    create_indexes=create_indexes,
    # A change and its audit entry commit together, and only then is the answer sent.
    atomic_writes=True,
)
