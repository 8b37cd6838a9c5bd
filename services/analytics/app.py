"""Analytics service wiring."""

from pymongo.asynchronous.database import AsyncDatabase

from services.analytics import api, dashboard, events, reports_api, store
from services.analytics.live import loaded_projection
from shared.events.topics import DOMAIN_TOPICS
from shared.service import ServiceDefinition


async def prepare(db: AsyncDatabase) -> None:
    """Indexes, then the live projection from the stored facts before the first report."""
    await store.create_indexes(db)
    await loaded_projection(db)


DEFINITION = ServiceDefinition(
    name="analytics",
    title="Analytics: program health, roll-ups and the dashboard",
    routers=[api.router, reports_api.router, dashboard.router],
    outbox_collections=store.OUTBOX_COLLECTIONS,
    subscriptions=list(DOMAIN_TOPICS),
    handlers=events.handlers,
    create_indexes=prepare,
)
