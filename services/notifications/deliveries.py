"""Email deliveries: exactly one message per (event, recipient, channel), sent with retries.

A handler records a delivery in the same transaction that applies the event, keyed by
event, recipient and channel, so a redelivered event finds the record and adds nothing. The
worker claims due deliveries one at a time with an atomic update, so two instances never send
the same one; marks them sent, or schedules a retry with backoff, or after the last attempt
marks them failed with the reason (admins see and can retry those). A claim that outlived its
process is ambiguous (the server may have accepted the message): it is marked failed as
interrupted, never resent automatically, so no one gets a message twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications.config import DeliverySettings
from shared.logging import get_logger

log = get_logger(__name__)

DELIVERIES = "deliveries"
INTERRUPTED = (
    "interrupted while sending (the service stopped); not resent automatically so that no one "
    "gets it twice: retry by hand if it did not arrive"
)


async def create_indexes(db: AsyncDatabase) -> None:
    await db[DELIVERIES].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[DELIVERIES].create_index([("network_id", ASCENDING), ("status", ASCENDING)])


def delivery_id(event_id: str, person_id: str, channel: str) -> str:
    return f"{event_id}:{person_id}:{channel}"


class DeliveryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._deliveries = db[DELIVERIES]

    async def claim_due(self, now: datetime, claim_for: timedelta) -> dict[str, Any] | None:
        return await self._deliveries.find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            {"$set": {"status": "sending", "claimed_until": now + claim_for}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def mark_sent(self, delivery_id: str, now: datetime) -> None:
        await self._deliveries.update_one(
            {"_id": delivery_id, "status": "sending"},
            {"$set": {"status": "sent", "sent_at": now}, "$unset": {"claimed_until": ""}},
        )

    async def retry_later(self, delivery_id: str, at: datetime, error: str) -> None:
        await self._deliveries.update_one(
            {"_id": delivery_id, "status": "sending"},
            {"$set": {"status": "pending", "next_attempt_at": at, "last_error": error},
             "$unset": {"claimed_until": ""}},
        )

    async def mark_failed(self, delivery_id: str, error: str) -> None:
        await self._deliveries.update_one(
            {"_id": delivery_id, "status": "sending"},
            {"$set": {"status": "failed", "last_error": error}, "$unset": {"claimed_until": ""}},
        )

    async def resolve_interrupted(self, now: datetime) -> int:
        result = await self._deliveries.update_many(
            {"status": "sending", "claimed_until": {"$lt": now}},
            {"$set": {"status": "failed", "last_error": INTERRUPTED}, "$unset": {"claimed_until": ""}},
        )
        return result.modified_count

    async def retry_by_hand(self, network_id: str, delivery_id: str, now: datetime) -> bool:
        result = await self._deliveries.update_one(
            {"_id": delivery_id, "network_id": network_id, "status": "failed"},
            {"$set": {"status": "pending", "next_attempt_at": now, "attempts": 0}},
        )
        return result.modified_count == 1

    async def list(self, network_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"network_id": network_id}
        if status:
            query["status"] = status
        cursor = self._deliveries.find(query, {"html": 0, "text": 0}).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]


class SmtpSender:
    """Sends one delivery as a multipart/alternative email (plain text and HTML)."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings

    async def send(self, delivery: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = delivery["to"]
        message["Subject"] = delivery["subject"]
        message["Message-ID"] = f"<{delivery['_id']}@mentorship.local>"
        message.set_content(delivery["text"])
        message.add_alternative(delivery["html"], subtype="html")
        await aiosmtplib.send(
            message,
            hostname=self._settings.smtp_host,
            port=self._settings.smtp_port,
            timeout=self._settings.smtp_timeout_seconds,
        )


@dataclass
class DeliveryWorker:
    """Sends due deliveries until stopped; restarts and second instances are safe."""

    store: DeliveryStore
    sender: SmtpSender
    settings: DeliverySettings
    _stopping: bool = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                now = datetime.now(UTC)
                if loop.time() >= next_sweep:
                    if resolved := await self.store.resolve_interrupted(now):
                        log.warning("deliveries.interrupted_marked_failed", count=resolved)
                    next_sweep = loop.time() + self.settings.delivery_claim_seconds / 2
                delivery = await self.store.claim_due(
                    now, timedelta(seconds=self.settings.delivery_claim_seconds)
                )
                if delivery is None:
                    await asyncio.sleep(self.settings.delivery_poll_ms / 1000)
                    continue
                await self._attempt(delivery)
            except Exception as exc:  # the database is away: try again shortly
                log.warning("deliveries.worker_error", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _attempt(self, delivery: dict[str, Any]) -> None:
        try:
            await self.sender.send(delivery)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            attempts = delivery["attempts"]
            error = f"attempt {attempts}: {exc!r}"[:1000]
            if attempts >= self.settings.delivery_max_attempts:
                await self.store.mark_failed(delivery["_id"], error)
                log.warning("deliveries.failed", delivery_id=delivery["_id"], error=error)
                return
            delay = min(
                self.settings.delivery_backoff_seconds * 2 ** (attempts - 1),
                self.settings.delivery_backoff_max_seconds,
            )
            await self.store.retry_later(
                delivery["_id"], datetime.now(UTC) + timedelta(seconds=delay), error
            )
            return
        await self.store.mark_sent(delivery["_id"], datetime.now(UTC))
        log.info("deliveries.sent", delivery_id=delivery["_id"], kind=delivery.get("kind"))
