"""The delivery worker and its channels: SMTP (pooled connections), webhooks, the in-app feed.

One loop per process: claim a batch of due deliveries, look up what they need in a few
queries, decide and send them concurrently, write in-app notifications in one bulk write and
settle the batch in another. Restarts and second instances are safe (see deliveries.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib
import httpx
from pymongo import InsertOne
from pymongo.errors import BulkWriteError
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications import view
from services.notifications.clock import CLOCK, Clock
from services.notifications.composer import Composed, Lookups, compose
from services.notifications.config import DeliverySettings
from services.notifications.deliveries import DeliveryStore, Outcome
from services.notifications.kinds import EMAIL, IN_APP, WEBHOOK
from services.notifications.policy import Preferences, decide
from services.notifications.signing import (
    DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature,
)
from services.notifications.store import NOTIFICATIONS
from shared.logging import get_logger

log = get_logger(__name__)


class SendError(Exception):
    """A channel refused or failed: retried with backoff, then failed with this reason."""


class SmtpSender:
    """Multipart emails (text and HTML, plus attachments) over a few reused SMTP connections."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(max(1, settings.smtp_connections))
        self._sender = parseaddr(settings.smtp_from)[1]

    def message(self, delivery: dict[str, Any], to: str, composed: Composed, now: datetime) -> bytes:
        """The raw message: multipart/alternative (text, HTML), inside multipart/mixed when there
        are attachments. Built with the compat32 MIME classes: the default email policy's header
        parsing costs several times more than rendering and sending together."""
        body = MIMEMultipart("alternative")
        body.attach(MIMEText(composed.message.text, "plain", "utf-8"))
        body.attach(MIMEText(composed.message.html, "html", "utf-8"))
        message = body
        if composed.attachments:
            message = MIMEMultipart("mixed")
            message.attach(body)
            for a in composed.attachments:
                part = MIMEBase(a.maintype, a.subtype, **a.params, charset="utf-8")
                part.set_payload(a.content)
                encoders.encode_base64(part)
                part.add_header("Content-Disposition", "attachment", filename=a.filename)
                message.attach(part)
        message["From"] = self._settings.smtp_from
        message["To"] = to
        message["Subject"] = _header(composed.message.subject)
        message["Date"] = format_datetime(now)
        message["Message-ID"] = f"<{delivery['_id'].replace(':', '.')}@mentorship.local>"
        if composed.unsubscribe_url:
            message["List-Unsubscribe"] = f"<{composed.unsubscribe_url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return message.as_bytes()

    async def send(self, to: str, message: bytes) -> None:
        async with self._slots:
            for reused in (True, False):
                client = self._idle.pop() if reused and self._idle else None
                fresh = client is None
                try:
                    if client is None:
                        client = aiosmtplib.SMTP(hostname=self._settings.smtp_host,
                                                 port=self._settings.smtp_port,
                                                 timeout=self._settings.smtp_timeout_seconds)
                        await client.connect()
                    errors, _ = await client.sendmail(self._sender, [to], message)
                    if errors:
                        raise SendError(f"refused: {errors}")
                except aiosmtplib.SMTPServerDisconnected:
                    _close(client)
                    if fresh:
                        raise
                    continue  # a kept connection the server had closed: once more, fresh
                except BaseException:
                    _close(client)
                    raise
                self._idle.append(client)
                return

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await client.quit()
            except Exception:
                _close(client)


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:
            pass


class WebhookSender:
    """POSTs a JSON payload signed with the endpoint's secret (HMAC-SHA256 of `ts.body`)."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)

    @staticmethod
    def payload(delivery: dict[str, Any], composed: Composed, now: datetime) -> bytes:
        facts = delivery.get("context") or {}
        body = {
            "id": delivery["_id"],
            "kind": delivery["kind"],
            "network_id": delivery["network_id"],
            "program_id": delivery.get("program_id"),
            "mentorship_id": delivery.get("mentorship_id"),
            "occurred_at": delivery["event_time"].isoformat(),
            "sent_at": now.isoformat(),
            "text": composed.message.summary,
            "data": {k: v for k, v in facts.items() if k in _WEBHOOK_FACTS},
        }
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    async def send(self, endpoint: dict[str, Any], delivery_id: str, body: bytes, now: datetime) -> None:
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(endpoint["secret"], timestamp, body),
            DELIVERY_HEADER: delivery_id,
        }
        try:
            response = await self._client.post(endpoint["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise SendError(f"HTTP {response.status_code} from the endpoint")

    async def close(self) -> None:
        await self._client.aclose()


_WEBHOOK_FACTS = {"mentor_id", "mentee_id", "meeting_id", "starts_at", "duration_minutes",
                  "mode", "title", "stage", "days_silent", "reason", "why", "meetings", "role",
                  "auto_accept", "cadence_days"}


async def load_lookups(db: AsyncDatabase, batch: list[dict[str, Any]]) -> Lookups:
    person_ids = {d["recipient"] for d in batch if d.get("person_id")}
    person_ids |= {p for d in batch for p in d.get("about", [])}
    program_ids = {pid for d in batch if (pid := (d.get("context") or {}).get("program_id") or d.get("program_id"))}
    networks = {d["network_id"] for d in batch}
    recipients = list({d["recipient"] for d in batch if d["channel"] == EMAIL})
    endpoints = list({d["recipient"].removeprefix("webhook:") for d in batch if d["channel"] == WEBHOOK})
    lookups = Lookups(
        people=await view.people(db, person_ids),
        programs=await view.programs(db, program_ids),
    )
    async for t in db[view.TEMPLATES].find({"network_id": {"$in": list(networks)}}):
        lookups.templates[(t["network_id"], t["kind"])] = t["parts"]
    if recipients:
        async for p in db[view.PREFERENCES].find({"_id": {"$in": recipients}}):
            lookups.preferences[p["_id"]] = p
    if endpoints:
        async for w in db[view.WEBHOOKS].find({"_id": {"$in": endpoints}}):
            lookups.webhooks[w["_id"]] = w
    return lookups


@dataclass
class DeliveryWorker:
    """Sends due deliveries until stopped."""

    db: AsyncDatabase
    settings: DeliverySettings
    clock: Clock = CLOCK
    smtp: SmtpSender | None = None
    webhooks: WebhookSender | None = None
    _stopping: bool = False
    sent: int = field(default=0)
    _lease_until: float = 0.0
    _next_sweep: float = 0.0

    def __post_init__(self) -> None:
        self.store = DeliveryStore(self.db)
        self.smtp = self.smtp or SmtpSender(self.settings)
        self.webhooks = self.webhooks or WebhookSender(self.settings)
        self._lanes = asyncio.Semaphore(max(1, self.settings.delivery_concurrency))
        self._claiming = asyncio.Lock()

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        """Run `delivery_pipelines` loops: while one batch waits for the store or the SMTP
        server, another is composed and sent (claims are taken one at a time)."""
        try:
            await asyncio.gather(*(self._loop() for _ in range(max(1, self.settings.delivery_pipelines))))
        finally:
            assert self.smtp is not None and self.webhooks is not None
            await self.smtp.close()
            await self.webhooks.close()
            try:
                await self.store.release_lease()
            except Exception as exc:
                log.debug("deliveries.lease_release_failed", error=repr(exc))

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                if not await self.run_once():
                    await asyncio.sleep(self.settings.delivery_poll_ms / 1000)
            except Exception as exc:  # the database is away: try again shortly
                log.warning("deliveries.worker_error", error=repr(exc))
                self._lease_until = 0.0
                await asyncio.sleep(1.0)

    async def _leader(self, now: datetime) -> bool:
        """Hold the sender lease (renewed when a third of it is left); on taking it, and
        every quarter lease after, close the batches of instances that died mid-send."""
        loop = asyncio.get_running_loop()
        lease = min(self.settings.delivery_lease_seconds, self.settings.delivery_claim_seconds)
        if loop.time() < self._lease_until - lease / 3:
            return True
        if not await self.store.hold_lease(now, timedelta(seconds=lease)):
            self._lease_until = 0.0
            return False
        self._lease_until = loop.time() + lease
        if loop.time() >= self._next_sweep:
            if resolved := await self.store.resolve_interrupted(now):
                log.warning("deliveries.interrupted", count=resolved)
            self._next_sweep = loop.time() + lease / 4
        return True

    async def run_once(self) -> int:
        """Claim, send and settle one batch; returns how many deliveries it handled (0 when
        another instance holds the sender lease)."""
        async with self._claiming:  # two claims at once could both miss the other's batch
            now = self.clock.now()
            if not await self._leader(now):
                return 0
            batch = await self.store.claim_batch(
                now, timedelta(seconds=self.settings.delivery_claim_seconds), self.settings.delivery_batch_size)
        if not batch:
            return 0
        try:
            lookups = await load_lookups(self.db, batch)
        except Exception:  # nothing was sent: let the batch be claimed again, not resolved as interrupted
            await self.store.abandon(batch[0]["claim"])
            raise
        feed: list[InsertOne] = []
        outcomes = await asyncio.gather(*(self._guarded(d, lookups, now, feed) for d in batch))
        if feed:
            try:  # inserts (cheaper than upserts here); an item already there stays as it is
                await self.db[NOTIFICATIONS].bulk_write(feed, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
        await self.store.settle(list(outcomes), self.clock.now(), batch[0]["claim"])
        self.sent += sum(o.status == "sent" for o in outcomes)
        return len(batch)

    async def _guarded(self, d: dict[str, Any], lookups: Lookups, now: datetime,
                       feed: list[InsertOne]) -> Outcome:
        async with self._lanes:
            try:
                return await self._attempt(d, lookups, now, feed)
            except SendError as exc:
                return self._retry_or_fail(d, str(exc))
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return self._retry_or_fail(d, repr(exc))
            except Exception as exc:  # a template that cannot render: retrying will not help
                log.warning("deliveries.compose_failed", delivery_id=d["_id"], error=repr(exc))
                return Outcome(d, "failed", reason=f"could not compose the message: {exc!r}"[:1000])

    def _retry_or_fail(self, d: dict[str, Any], error: str) -> Outcome:
        attempts = d["attempts"]
        error = f"attempt {attempts}: {error}"[:1000]
        if attempts >= self.settings.delivery_max_attempts:
            log.warning("deliveries.failed", delivery_id=d["_id"], error=error)
            return Outcome(d, "failed", reason=error)
        delay = min(self.settings.delivery_backoff_seconds * 2 ** (attempts - 1),
                    self.settings.delivery_backoff_max_seconds)
        return Outcome(d, "retry", at=self.clock.now() + timedelta(seconds=delay), reason=error)

    async def _attempt(self, d: dict[str, Any], lookups: Lookups, now: datetime,
                       feed: list[InsertOne]) -> Outcome:
        for about in d.get("about", []):
            if (lookups.people.get(about) or {}).get("erased"):
                return Outcome(d, "cancelled", reason="about a person whose data was erased")
        if d["channel"] == WEBHOOK:
            endpoint = lookups.webhooks.get(d["recipient"].removeprefix("webhook:"))
            if endpoint is None:
                return Outcome(d, "cancelled", reason="the webhook endpoint was removed")
            composed = compose(d, lookups, self.settings, now)
            assert self.webhooks is not None
            d["to"] = endpoint["url"]
            await self.webhooks.send(endpoint, d["_id"], WebhookSender.payload(d, composed, now), now)
            return Outcome(d, "sent", to=endpoint["url"], subject=composed.message.summary)
        to = d["recipient"].removeprefix("email:")
        if d.get("person_id"):
            person = lookups.people.get(d["person_id"]) or {}
            if person.get("erased"):
                return Outcome(d, "cancelled", reason="the recipient's data was erased")
            if not person.get("email"):
                return self._wait_for_recipient(d, now)
            to = person["email"]
        d["to"] = to  # recorded with a failure too, for the admin who reads it
        stored = {k: v for k, v in lookups.preferences.get(d["recipient"], {}).items()
                  if k in Preferences.model_fields}
        person_zone = (lookups.people.get(d.get("person_id") or "") or {}).get("time_zone")
        if "time_zone" not in stored and person_zone:  # the profile's zone until one is chosen
            stored["time_zone"] = person_zone
        try:
            prefs = Preferences.model_validate(stored)
        except ValueError:  # e.g. a zone name from a profile this Python does not know
            prefs = Preferences.model_validate({**stored, "time_zone": "UTC"})
        decision = decide(prefs, d["kind"], d["channel"], now)
        if decision.action in ("skip", "hold"):
            return Outcome(d, "skipped" if decision.action == "skip" else "held", reason=decision.reason)
        if decision.action == "defer":
            return Outcome(d, "defer", at=decision.at, reason=decision.reason)
        composed = compose(d, lookups, self.settings, now)
        if d["channel"] == IN_APP:
            feed.append(_feed_item(d, composed))
            return Outcome(d, "sent", to="in_app", subject=composed.message.headline)
        assert self.smtp is not None
        await self.smtp.send(to, self.smtp.message(d, to, composed, now))
        return Outcome(d, "sent", to=to, subject=composed.message.subject)

    def _wait_for_recipient(self, d: dict[str, Any], now: datetime) -> Outcome:
        if now - d["created_at"] > timedelta(hours=self.settings.recipient_wait_horizon_hours):
            return Outcome(d, "failed", reason="the recipient never became known to this service")
        return Outcome(d, "defer", at=now + timedelta(seconds=self.settings.recipient_wait_seconds),
                       reason="waiting for the recipient's registration")


def _feed_item(d: dict[str, Any], composed: Composed) -> InsertOne:
    item = {
        "_id": d["_id"], "person_id": d["person_id"], "network_id": d["network_id"],
        "kind": d["kind"], "channel": IN_APP, "title": composed.message.headline,
        "body": composed.message.summary, "about": d.get("about", []),
        "mentorship_id": d.get("mentorship_id"), "source": d["source"],
        "created_at": d["created_at"], "read": False,
    }
    return InsertOne(item)
