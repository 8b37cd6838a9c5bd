"""Profiles service wiring."""

from pymongo.asynchronous.database import AsyncDatabase

from services.profiles import (
    api,
    audit,
    auth_api,
    change_requests_api,
    enrolment_api,
    grants_api,
    identity_store,
    import_api,
    me_api,
    mentorships_view,
    networks_api,
    import_jobs,
    organisation_api,
    organisation_store,
    people_api,
    privacy,
    session_store,
    store,
    vocabulary_api,
)
from services.profiles.identity_settings import identity_settings
from shared.auth import signing_key
from shared.events.topics import AUDIT_TOPICS, MATCHING_TOPIC
from shared.messaging.consumer import Handler
from shared.service import ServiceDefinition
from shared.settings import ServiceSettings


class UnsafeSetting(RuntimeError):
    """A development convenience was turned on outside development."""


def check_identity_settings() -> None:
    """Refuse to start without a signing key, or with local sign-in outside development."""
    settings = ServiceSettings(service_name="profiles")
    signing_key(settings)
    if identity_settings().local_sign_in and not settings.is_development:
        raise UnsafeSetting(
            f"LOCAL_SIGN_IN lets anyone act as anyone; it is refused outside development "
            f"(ENVIRONMENT={settings.environment}).")


def handlers() -> dict[str, Handler]:
    return {**mentorships_view.handlers(), **audit.handlers()}


async def create_indexes(db: AsyncDatabase) -> None:
    check_identity_settings()
    await store.create_indexes(db)
    await organisation_store.create_indexes(db)
    await audit.create_indexes(db)
    await identity_store.create_indexes(db)
    await session_store.create_indexes(db)
    await mentorships_view.create_indexes(db)
    await import_jobs.create_indexes(db)


DEFINITION = ServiceDefinition(
    name="profiles",
    title="Profiles: networks, institutions, programs, people and sign-in",
    routers=[
        api.router,
        people_api.router,
        organisation_api.router,
        enrolment_api.router,
        privacy.router,
        audit.router,
        import_api.router,
        networks_api.router,
        grants_api.router,
        auth_api.router,
        me_api.router,
        vocabulary_api.router,
        change_requests_api.router,
    ],
    outbox_collections=store.OUTBOX_COLLECTIONS + organisation_store.OUTBOX_COLLECTIONS
    + identity_store.OUTBOX_COLLECTIONS + session_store.OUTBOX_COLLECTIONS,
    # Matching's events keep the view of who is in which mentorship (`/me`, who sees whom);
    # the audit log is kept here: every service's entries arrive on its audit topic.
    subscriptions=[MATCHING_TOPIC, *AUDIT_TOPICS.values()],
    handlers=handlers,
    create_indexes=create_indexes,
    # A change and its audit entry commit together, and only then is the answer sent.
    atomic_writes=True,
)
