"""The delivery worker: in-app, webhook and email deliveries, each channel on its own.

Per channel, a loop claims a batch of due deliveries, looks up what they need in a few
queries, decides and sends them concurrently, and settles the outcomes a chunk at a time (see
deliveries.py). Channels never wait for each other: a mail server that never answers holds
back only emails, while the feed and webhooks keep flowing. A batch's claim is renewed while it
is being sent, so only a process that really died leaves sends to be resolved as interrupted.
Restarts and second instances are safe (one instance holds the sender lease).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import InsertOne
from pymongo.errors import BulkWriteError
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications import view, wakeup
from services.notifications.clock import CLOCK, Clock
from services.notifications.composer import Composed, Lookups, compose
from services.notifications.config import DeliverySettings, unsubscribe_secret
from services.notifications.deliveries import DeliveryStore, Outcome
from services.notifications.domain import preference_key
from services.notifications.kinds import EMAIL, IN_APP, WEBHOOK
from services.notifications.metrics import DELIVERIES, SETTLED, SMTP_REACHABLE
from services.notifications.policy import Preferences, decide
from services.notifications.sandbox import SandboxUnavailable, TemplateFailed, TemplateSandbox
from services.notifications.smtp import PermanentFailure, SendError, SmtpSender
from services.notifications.store import NOTIFICATIONS
from services.notifications.webhooks import WebhookSender
from shared.logging import get_logger

log = get_logger(__name__)

CHANNELS = (IN_APP, WEBHOOK, EMAIL)
# A wake-up comes while the consumer's transaction that recorded the deliveries is still open:
# look after these pauses until they are there (a slow commit under load takes a while).
WAKE_LOOKS = (0.03, 0.1, 0.3)


async def load_lookups(db: AsyncDatabase, batch: list[dict[str, Any]]) -> Lookups:
    person_ids = {d["recipient"] for d in batch if d.get("person_id")}
    person_ids |= {p for d in batch for p in d.get("about", [])}
    program_ids = {pid for d in batch if (pid := (d.get("context") or {}).get("program_id") or d.get("program_id"))}
    networks = {d["network_id"] for d in batch}
    preference_ids = list({preference_key(d["recipient"], d["network_id"]) for d in batch
                           if d["channel"] in (EMAIL, IN_APP)})
    endpoints = list({d["recipient"].removeprefix("webhook:") for d in batch if d["channel"] == WEBHOOK})
    lookups = Lookups(
        people=await view.people(db, person_ids),
        programs=await view.programs(db, program_ids),
    )
    async for t in db[view.TEMPLATES].find({"network_id": {"$in": list(networks)}}):
        lookups.templates[(t["network_id"], t["kind"])] = t["parts"]
    if preference_ids:
        async for p in db[view.PREFERENCES].find({"_id": {"$in": preference_ids}}):
            lookups.preferences[p["_id"]] = p
    if endpoints:
        async for w in db[view.WEBHOOKS].find({"_id": {"$in": endpoints}}):
            lookups.webhooks[w["_id"]] = w
    return lookups


def wall_clock() -> datetime:
    """Leases and batch claims are between processes: they run on real time, whatever the
    notifications clock says."""
    return datetime.now(UTC)


@dataclass
class DeliveryWorker:
    """Sends due deliveries until stopped."""

    db: AsyncDatabase
    settings: DeliverySettings
    clock: Clock = CLOCK
    smtp: SmtpSender | None = None
    webhooks: WebhookSender | None = None
    sandbox: TemplateSandbox | None = None
    unsubscribe_secret: str = ""  # read from the environment (or generated in development) when empty
    sent: int = field(default=0)
    _stopping: bool = False
    _lease_until: float = 0.0
    _next_sweep: float = 0.0

    def __post_init__(self) -> None:
        self.store = DeliveryStore(self.db)
        self.smtp = self.smtp or SmtpSender(self.settings)
        self.webhooks = self.webhooks or WebhookSender(self.settings)
        self.sandbox = self.sandbox or TemplateSandbox(self.settings)
        self.unsubscribe_secret = self.unsubscribe_secret or unsubscribe_secret()
        self._lanes = asyncio.Semaphore(max(1, self.settings.delivery_concurrency))
        self._claiming = asyncio.Lock()
        self._wakes = {channel: asyncio.Event() for channel in CHANNELS}
        self._more = {channel: asyncio.Event() for channel in CHANNELS}  # a full batch was claimed
        self._lost: set[str] = set()  # batches whose claim another instance resolved

    def stop(self) -> None:
        self._stopping = True
        self.wake(CHANNELS)
        for event in self._more.values():
            event.set()

    def wake(self, channels: Any = CHANNELS) -> None:
        for channel in channels:
            if channel in self._wakes:
                self._wakes[channel].set()

    async def run(self) -> None:
        """Per channel, one loop that polls and is woken by new deliveries; for email,
        `delivery_pipelines - 1` more that take further batches while the first waits for the
        mail server; and the housekeeping of metrics and the mail server's health."""
        unsubscribe = wakeup.subscribe(self.wake)
        loops = [self._lead(channel) for channel in CHANNELS]
        loops += [self._helper(EMAIL) for _ in range(max(1, self.settings.delivery_pipelines) - 1)]
        try:
            await asyncio.gather(*loops, self._housekeeping())
        finally:
            unsubscribe()
            await self.close()

    async def close(self) -> None:
        assert self.smtp is not None and self.webhooks is not None and self.sandbox is not None
        await self.smtp.close()
        await self.webhooks.close()
        await self.sandbox.close()
        try:
            await self.store.release_lease()
        except Exception as exc:
            log.debug("deliveries.lease_release_failed", error=repr(exc))

    async def _step(self, channel: str) -> int:
        try:
            handled = await self.run_channel(channel)
        except Exception as exc:  # the database is away: try again shortly
            log.warning("deliveries.worker_error", channel=channel, error=repr(exc))
            self._lease_until = 0.0
            await asyncio.sleep(1.0)
            return 0
        if handled >= self.settings.delivery_batch_size:
            self._more[channel].set()  # more may be due: a helper takes the next batch meanwhile
        return handled

    async def _lead(self, channel: str) -> None:
        wake, poll = self._wakes[channel], self.settings.delivery_poll_ms / 1000
        while not self._stopping:
            if await self._step(channel):
                continue
            try:
                await asyncio.wait_for(wake.wait(), poll)
            except (TimeoutError, asyncio.TimeoutError):
                continue
            wake.clear()
            for pause in WAKE_LOOKS:
                await asyncio.sleep(pause)
                if self._stopping or await self._step(channel):
                    break

    async def _helper(self, channel: str) -> None:
        more = self._more[channel]
        while not self._stopping:
            await more.wait()
            more.clear()
            while not self._stopping and await self._step(channel) >= self.settings.delivery_batch_size:
                pass

    async def _housekeeping(self) -> None:
        """Delivery counts for the metrics, and a look at the mail server when idle."""
        assert self.smtp is not None
        next_probe = 0.0
        while not self._stopping:
            try:
                counts = await self.store.counts(CHANNELS, ("pending", "failed"))
                for (channel, status), n in counts.items():
                    DELIVERIES.labels(channel, status).set(n)
                health = self.smtp.health
                stale = health.checked_at is None or time.monotonic() >= next_probe
                if stale:
                    await self.smtp.probe()
                    next_probe = time.monotonic() + self.settings.smtp_probe_seconds
                if health.reachable is not None:
                    SMTP_REACHABLE.set(1 if health.reachable else 0)
            except Exception as exc:
                log.debug("deliveries.housekeeping_failed", error=repr(exc))
            for _ in range(int(self.settings.delivery_metrics_seconds * 10)):
                if self._stopping:
                    return
                await asyncio.sleep(0.1)

    async def _leader(self, now: datetime) -> bool:
        """Hold the sender lease (renewed when a third of it is left); on taking it, and
        every quarter lease after, close the batches of instances that died mid-send.

        `now` is the wall clock, never the notifications clock (which tests move): an instance
        whose clock ran ahead took the lease from a live holder and both sent. The lease is
        counted from before the store was asked: a slow answer must not make this instance
        believe it holds the lease for longer than the store says."""
        loop = asyncio.get_running_loop()
        lease = min(self.settings.delivery_lease_seconds, self.settings.delivery_claim_seconds)
        if loop.time() < self._lease_until - lease / 3:
            return True
        asked = loop.time()
        if not await self.store.hold_lease(now, timedelta(seconds=lease)):
            self._lease_until = 0.0
            return False
        self._lease_until = asked + lease
        if loop.time() >= self._next_sweep:
            if resolved := await self.store.resolve_interrupted(now):
                log.warning("deliveries.interrupted", count=resolved)
            self._next_sweep = loop.time() + lease / 4
        return True

    async def run_once(self) -> int:
        """One batch of each channel; returns how many deliveries were handled (0 when
        another instance holds the sender lease). Tests and benches drive the worker with it."""
        return sum([await self.run_channel(channel) for channel in CHANNELS])

    async def run_channel(self, channel: str) -> int:
        """Claim, send and settle one batch of a channel; returns its size."""
        async with self._claiming:  # two claims at once could both miss the other's batch
            now = self.clock.now()  # what is due
            if not await self._leader(wall_clock()):
                return 0
            batch = await self.store.claim_batch(
                now, timedelta(seconds=self.settings.delivery_claim_seconds),
                self.settings.delivery_batch_size, channel, claimed_at=wall_clock())
        if not batch:
            return 0
        token = batch[0]["claim"]
        renewal = asyncio.create_task(self._keep_claimed(token))
        try:
            try:
                lookups = await load_lookups(self.db, batch)
            except Exception:  # nothing was sent: let the batch be claimed again, not resolved as interrupted
                await self.store.abandon(token)
                raise
            await self._send_batch(channel, batch, lookups, now, token)
        finally:
            renewal.cancel()
            self._lost.discard(token)
        return len(batch)

    async def _keep_claimed(self, token: str) -> None:
        """Renew the batch's claim every third of the claim period while it is being sent."""
        claim = self.settings.delivery_claim_seconds
        while True:
            await asyncio.sleep(claim / 3)
            try:
                if not await self.store.renew(token, wall_clock() + timedelta(seconds=claim)):
                    log.warning("deliveries.claim_lost", batch=token)
                    self._lost.add(token)
                    return
            except Exception as exc:  # the database is away: the next renewal may get through
                log.warning("deliveries.claim_renewal_failed", error=repr(exc))

    async def _send_batch(self, channel: str, batch: list[dict[str, Any]], lookups: Lookups,
                          now: datetime, token: str) -> None:
        """Send a chunk at a time; each chunk is settled while the next one is sent."""
        size = self.settings.delivery_settle_chunk if channel == EMAIL else len(batch)
        settling: asyncio.Task[None] | None = None
        try:
            for start in range(0, len(batch), size):
                chunk, feed = batch[start:start + size], []
                outcomes = list(await asyncio.gather(*(self._guarded(d, lookups, now, feed, token) for d in chunk)))
                if feed:
                    await self._write_feed(feed)
                if settling is not None:
                    await settling
                final = start + size >= len(batch)
                settling = asyncio.create_task(self.store.settle(outcomes, self.clock.now(), token, final=final))
                for o in outcomes:
                    SETTLED.labels(channel, o.status).inc()
                self.sent += sum(o.status == "sent" for o in outcomes)
        finally:
            if settling is not None:
                await settling

    async def _write_feed(self, feed: list[InsertOne]) -> None:
        try:  # inserts (cheaper than upserts here); an item already there stays as it is
            await self.db[NOTIFICATIONS].bulk_write(feed, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def _guarded(self, d: dict[str, Any], lookups: Lookups, now: datetime,
                       feed: list[InsertOne], token: str) -> Outcome:
        async with self._lanes:
            if self._stopping or token in self._lost:
                return Outcome(d, "release", reason="not attempted: the worker is stopping")
            try:
                return await self._attempt(d, lookups, now, feed)
            except PermanentFailure as exc:
                log.warning("deliveries.refused", delivery_id=d["_id"], error=str(exc))
                return Outcome(d, "failed", reason=f"attempt {d['attempts']}: {exc}"[:1000])
            except (SendError, SandboxUnavailable) as exc:
                return self._retry_or_fail(d, str(exc))
            except TemplateFailed as exc:  # the network's template cannot render: retrying will not help
                return Outcome(d, "failed", reason=f"could not compose the message: the template {exc}"[:1000])
            except Exception as exc:
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

    async def _compose(self, d: dict[str, Any], lookups: Lookups, now: datetime) -> Composed:
        assert self.sandbox is not None
        return await compose(d, lookups, self.settings, now, sandbox=self.sandbox,
                             secret=self.unsubscribe_secret)

    async def _attempt(self, d: dict[str, Any], lookups: Lookups, now: datetime,
                       feed: list[InsertOne]) -> Outcome:
        for about in d.get("about", []):
            if (lookups.people.get(about) or {}).get("erased"):
                return Outcome(d, "cancelled", reason="about a person whose data was erased")
        if d["channel"] == WEBHOOK:
            endpoint = lookups.webhooks.get(d["recipient"].removeprefix("webhook:"))
            if endpoint is None:
                return Outcome(d, "cancelled", reason="the webhook endpoint was removed")
            composed = await self._compose(d, lookups, now)
            assert self.webhooks is not None
            d["to"] = endpoint["url"]
            await self.webhooks.send(endpoint, d["_id"], WebhookSender.payload(d, composed, now), now)
            return Outcome(d, "sent", to=endpoint["url"], subject=composed.message.summary)
        expires = (d.get("context") or {}).get("expires_at")
        if expires and datetime.fromisoformat(expires) <= now:
            return Outcome(d, "cancelled", reason="the link expired before it could be sent")
        to = d["recipient"].removeprefix("email:")
        if d.get("person_id"):
            person = lookups.people.get(d["person_id"]) or {}
            given = (d.get("context") or {}).get("email")  # a sign-in link names its address
            if person.get("erased"):
                return Outcome(d, "cancelled", reason="the recipient's data was erased")
            if not person.get("email") and not given:
                return self._wait_for_recipient(d, now)
            to = given or person["email"]
        if d["channel"] == EMAIL:
            d["to"] = to  # recorded with a failure too, for the admin who reads it
        decision = decide(self._preferences(d, lookups), d["kind"], d["channel"], now)
        if decision.action in ("skip", "hold"):
            return Outcome(d, "skipped" if decision.action == "skip" else "held", reason=decision.reason)
        if decision.action == "defer":
            return Outcome(d, "defer", at=decision.at, reason=decision.reason)
        composed = await self._compose(d, lookups, now)
        if d["channel"] == IN_APP:
            feed.append(_feed_item(d, composed))
            return Outcome(d, "sent", to="in_app", subject=composed.message.headline)
        assert self.smtp is not None
        message = self.smtp.message(
            delivery_id=d["_id"], to=to, subject=composed.message.subject, text=composed.message.text,
            html=composed.message.html, date=now, attachments=composed.attachments,
            unsubscribe_url=composed.unsubscribe_url)
        await self.smtp.send(to, message)
        return Outcome(d, "sent", to=to, subject=composed.message.subject)

    @staticmethod
    def _preferences(d: dict[str, Any], lookups: Lookups) -> Preferences:
        key = preference_key(d["recipient"], d["network_id"])
        stored = {k: v for k, v in lookups.preferences.get(key, {}).items() if k in Preferences.model_fields}
        person_zone = (lookups.people.get(d.get("person_id") or "") or {}).get("time_zone")
        if "time_zone" not in stored and person_zone:  # the profile's zone until one is chosen
            stored["time_zone"] = person_zone
        try:
            return Preferences.model_validate(stored)
        except ValueError:  # e.g. a zone name from a profile this Python does not know
            return Preferences.model_validate({**stored, "time_zone": "UTC"})

    def _wait_for_recipient(self, d: dict[str, Any], now: datetime) -> Outcome:
        if now - d["created_at"] > timedelta(hours=self.settings.recipient_wait_horizon_hours):
            return Outcome(d, "failed", reason="the recipient never became known to this service")
        return Outcome(d, "defer", at=now + timedelta(seconds=self.settings.recipient_wait_seconds),
                       reason="waiting for the recipient's registration")


def _feed_item(d: dict[str, Any], composed: Composed) -> InsertOne:
    item = {
        "_id": d["_id"], "person_id": d["person_id"], "network_id": d["network_id"],
        "kind": d["kind"], "channel": IN_APP, "title": composed.message.headline,
        "body": composed.message.summary, "link": composed.link, "about": d.get("about", []),
        "mentorship_id": d.get("mentorship_id"), "source": d["source"],
        "created_at": d["created_at"], "read": False,
    }
    return InsertOne(item)
