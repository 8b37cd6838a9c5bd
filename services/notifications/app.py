"""Notifications service wiring."""

from pymongo.asynchronous.database import AsyncDatabase

from services.notifications import api, deliveries, events, store
from services.notifications.config import DeliverySettings
from services.notifications.deliveries import DeliveryStore, DeliveryWorker, SmtpSender
from shared.events.topics import MATCHING_TOPIC, PROFILES_TOPIC
from shared.service import ServiceDefinition, Worker


async def create_indexes(db: AsyncDatabase) -> None:
    await store.create_indexes(db)
    await deliveries.create_indexes(db)


def workers(db: AsyncDatabase) -> list[Worker]:
    settings = DeliverySettings()
    return [DeliveryWorker(DeliveryStore(db), SmtpSender(settings), settings)]


DEFINITION = ServiceDefinition(
    name="notifications",
    title="Notifications: email, in-app and webhook messages",
    routers=[api.router, api.admin_router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    subscriptions=[PROFILES_TOPIC, MATCHING_TOPIC],
    handlers=events.handlers,
    create_indexes=create_indexes,
    workers=workers,
)
