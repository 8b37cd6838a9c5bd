"""The lease that makes exactly one relay per service publish.

Replicas of a service all run a relay; only the one holding the lease (one document in
`outbox_state`) sweeps, appends to the log, publishes and verifies. The holder renews it every
third of its duration from a task of its own, so no long step of the relay can let it lapse.
A standby tries to take it about once a second: after a clean shutdown (the holder releases
it) the hand-over takes at most that second; after a crash, the lease's duration plus that
second.

Each taking-over increments the lease's epoch. The log's sequence counter records the epoch
of the last relay that reserved numbers from it and refuses an older one (`LeaseLost`), so a
former holder that has not noticed yet (a stalled process) cannot interleave its appends with
the new holder's. A holder also stops acting a third of the lease before it would expire by
its own clock, measured from when it sent the renewal.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.logging import get_logger

log = get_logger(__name__)

STATE = "outbox_state"
LEASE_ID = "lease"


class LeaseLost(Exception):
    """Another relay took the lease: stop publishing at once."""


class Lease:
    def __init__(self, db: AsyncDatabase, seconds: float, owner: object) -> None:
        self._db = db
        self.seconds = seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(owner)}"
        self.epoch = 0
        self._valid_until = 0.0
        self.report: dict[str, Any] = {}  # the holder's backlog, for replicas and operators
        self.holder_report: dict[str, Any] = {}  # what the current holder last reported

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    def time_left(self) -> float:
        return max(0.01, self._valid_until - asyncio.get_running_loop().time())

    def held(self) -> bool:
        """True while this relay may act as the holder (with a safety margin)."""
        return asyncio.get_running_loop().time() < self._valid_until

    async def acquire_or_renew(self) -> bool:
        """Renew the lease this relay holds, or take a free or expired one."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.seconds)
        state = self._db[STATE]
        fields = {"holder": self.holder, "until": until, "report": self.report}
        renewed = None
        if self.epoch:
            renewed = await state.find_one_and_update(
                {"_id": LEASE_ID, "holder": self.holder, "epoch": self.epoch},
                {"$set": fields},
                return_document=ReturnDocument.AFTER,
            )
        if renewed is None:
            renewed = await state.find_one_and_update(
                {"_id": LEASE_ID, "until": {"$lt": now}},
                {"$set": fields, "$inc": {"epoch": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if renewed is None:
                try:
                    await state.insert_one({"_id": LEASE_ID, **fields, "epoch": 1})
                    renewed = {"epoch": 1}
                except DuplicateKeyError:
                    pass
            if renewed is not None:
                log.info("outbox.lease_taken", holder=self.holder, epoch=renewed["epoch"])
        if renewed is None:
            if self.epoch:
                log.warning("outbox.lease_lost", holder=self.holder, epoch=self.epoch)
            self.epoch, self._valid_until = 0, 0.0
            current = await state.find_one({"_id": LEASE_ID}, {"report": 1})
            self.holder_report = (current or {}).get("report") or {}
            return False
        self.epoch = int(renewed["epoch"])
        self._valid_until = sent + self.seconds - self.renew_every
        self.holder_report = self.report
        return True

    def drop(self) -> None:
        """Stop acting as the holder now (the relay stops or saw another holder's epoch)."""
        self._valid_until = 0.0

    async def release(self) -> None:
        """Let a standby take over at once instead of after the lease's duration."""
        if not self.epoch:
            return
        epoch, self.epoch = self.epoch, 0
        self._valid_until = 0.0
        try:
            await self._db[STATE].update_one(
                {"_id": LEASE_ID, "holder": self.holder, "epoch": epoch},
                {"$set": {"until": datetime.now(UTC) - timedelta(seconds=1)}},
            )
        except Exception as exc:
            log.debug("outbox.lease_release_failed", error=repr(exc))
