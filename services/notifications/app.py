"""Notifications service wiring."""

from pymongo.asynchronous.database import AsyncDatabase

from services.notifications import (
    api,
    api_admin,
    api_people,
    coordinator_api,
    deliveries,
    events,
    health,
    scheduler,
    store,
    view,
)
from services.notifications.config import DeliverySettings, unsubscribe_secret
from services.notifications.jobs import RUNNERS
from services.notifications.scheduler import Scheduler
from services.notifications.sending import DeliveryWorker
from services.notifications.smtp import SmtpSender
from shared.events.topics import MATCHING_TOPIC, PROFILES_TOPIC
from shared.service import ServiceDefinition, Worker


async def create_indexes(db: AsyncDatabase) -> None:
    await store.create_indexes(db)
    await deliveries.create_indexes(db)
    await scheduler.create_indexes(db)
    await view.create_indexes(db)


def workers(db: AsyncDatabase) -> list[Worker]:
    settings = DeliverySettings()
    # Outside development a missing UNSUBSCRIBE_SECRET stops the service here, at start.
    secret = unsubscribe_secret()
    worker = DeliveryWorker(db, settings, smtp=SmtpSender(settings, health.SMTP_HEALTH),
                            unsubscribe_secret=secret)
    return [worker, Scheduler(db, settings, RUNNERS)]


DEFINITION = ServiceDefinition(
    name="notifications",
    title="Notifications: email, in-app and webhook messages",
    routers=[api.router, api.admin_router, api_people.router, api_admin.router, api_admin.test_router,
             coordinator_api.router, health.router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    subscriptions=[PROFILES_TOPIC, MATCHING_TOPIC],
    handlers=events.handlers,
    create_indexes=create_indexes,
    workers=workers,
)
