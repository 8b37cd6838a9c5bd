"""The outbox lease: one relay of a service publishes at a time, also when the store is slow.

Two relays of one service (two instances) share its database; a store that takes seconds to
answer the holder's renewal must not leave both believing they hold the lease.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pymongo import AsyncMongoClient, MongoClient

from shared.messaging.outbox_lease import STATE, Lease
from tests.conftest import Infra

LEASE_SECONDS = 10.0  # the relay's default (OUTBOX_LEASE_SECONDS)
SLOW_MS = 5000  # longer than the third of the lease the holder keeps in reserve


async def test_a_slow_renewal_never_leaves_two_relays_holding_the_lease(tmp_path: Path):
    servers = Infra(tmp_path / "infra", test_commands=True)
    clients: list[AsyncMongoClient] = []
    try:
        await asyncio.to_thread(servers.start_mongo)

        def relay(app_name: str) -> Lease:
            client = AsyncMongoClient(servers.mongodb_uri, appname=app_name, tz_aware=True)
            clients.append(client)
            return Lease(client["mentorship_lease"], LEASE_SECONDS, object())

        first, second = relay("relay-one"), relay("relay-two")
        assert await first.acquire_or_renew()
        assert not await second.acquire_or_renew()
        # The holder's next renewal waits SLOW_MS in the store before it is applied.
        with MongoClient(servers.mongodb_uri) as admin:
            admin.admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1},
                                 "data": {"failCommands": ["findAndModify"], "appName": "relay-one",
                                          "blockConnection": True, "blockTimeMS": SLOW_MS}})
        assert await first.acquire_or_renew()
        renewed = time.monotonic()
        lease = await clients[1]["mentorship_lease"][STATE].find_one({"_id": "lease"})
        # Wait until the lease the store holds has lapsed (the renewal's `until` was set
        # before the store waited), while the holder may still count on it.
        await asyncio.sleep(max(0.0, LEASE_SECONDS - SLOW_MS / 1000 + 0.5 - (time.monotonic() - renewed)))
        took_over = await second.acquire_or_renew()
        still_mine = first.held()  # what the holder's publishing steps check
        assert not (took_over and still_mine), (
            f"both relays hold the lease (stored: {lease}); the holder counted its lease from "
            "the end of the slow write instead of from the moment it asked")
    finally:
        for client in clients:
            await client.close()
        servers.close()
