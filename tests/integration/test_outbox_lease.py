"""The outbox lease: one relay of a service publishes at a time, also when the store is slow.

Two relays of one service (two instances) share its database; a store that takes seconds to
answer the holder's renewal must not leave both believing they hold the lease.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pymongo import AsyncMongoClient, MongoClient

from shared.messaging.outbox import LEASE_SECONDS, STATE, OutboxRelay
from shared.settings import ServiceSettings
from tests.conftest import Infra

SLOW_MS = 5000  # longer than the third of the lease the holder keeps in reserve


async def test_a_slow_renewal_never_leaves_two_relays_holding_the_lease(tmp_path: Path):
    servers = Infra(tmp_path / "infra", test_commands=True)
    clients: list[AsyncMongoClient] = []
    try:
        await asyncio.to_thread(servers.start_mongo)
        settings = ServiceSettings(service_name="lease", mongodb_uri=servers.mongodb_uri,
                                   kafka_bootstrap_servers="127.0.0.1:1")

        def relay(app_name: str) -> OutboxRelay:
            client = AsyncMongoClient(servers.mongodb_uri, appname=app_name, tz_aware=True)
            clients.append(client)
            return OutboxRelay(client["mentorship_lease"], settings, [], lambda: None)

        first, second = relay("relay-one"), relay("relay-two")
        assert await first._hold_lease()
        assert not await second._hold_lease()
        # The holder's next renewal waits SLOW_MS in the store before it is applied.
        with MongoClient(servers.mongodb_uri) as admin:
            admin.admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1},
                                 "data": {"failCommands": ["findAndModify"], "appName": "relay-one",
                                          "blockConnection": True, "blockTimeMS": SLOW_MS}})
        first._lease_until = 0.0  # renewal due now
        assert await first._hold_lease()
        renewed = time.monotonic()
        lease = await clients[1]["mentorship_lease"][STATE].find_one({"_id": "lease"})
        # Wait until the lease the store holds has lapsed (the renewal's `until` was set
        # before the store waited), while the holder may still count on it.
        await asyncio.sleep(max(0.0, LEASE_SECONDS - SLOW_MS / 1000 + 0.5 - (time.monotonic() - renewed)))
        took_over = await second._hold_lease()
        still_mine = await first._hold_lease()
        assert not (took_over and still_mine), (
            f"both relays hold the lease (stored: {lease}); the holder counted its lease from "
            "the end of the slow write instead of from the moment it asked")
    finally:
        for client in clients:
            await client.close()
        servers.close()
