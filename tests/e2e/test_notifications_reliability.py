"""The notifications service when the mail server misbehaves: a server that accepts TCP and
never greets, and one that accepts slowly behind a backlog. Channels are independent, claims
are renewed while a send is alive, the mail server's reachability is in the health detail
(never in /readyz), and the backlog is in /metrics. The service runs on servers of its own:
its Kafka consumer must not share the session's consumer group."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller

from ops.infra import free_port
from services.notifications.deliveries import INTERRUPTED
from tests.conftest import Infra
from tests.e2e.conftest import Mailbox, Platform, in_thread
from tests.notifications_support import Events, WebhookReceiver, publish
from tests.support import eventually, stays

CLAIM_SECONDS = 5  # short, so the test is short; long enough for renewals on a loaded machine


class SilentServer:
    """Accepts TCP connections and never says a word (no SMTP greeting)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class SlowMailbox(Mailbox):
    """A working SMTP server that takes `delay` seconds to accept each message."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def _platform(infra: Infra, jwt_keys, root, smtp_port: int, **env: str) -> Platform:
    return Platform(infra, jwt_keys, root, smtp_port=smtp_port, extra_env=env)


@pytest.fixture(scope="module")
def silent_smtp_platform(jwt_keys, tmp_path_factory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("silent-smtp")
    infra, silent = Infra(root / "infra"), SilentServer()
    platform = _platform(infra, jwt_keys, root / "platform", silent.port,
                         SMTP_TIMEOUT_SECONDS=str(3 * CLAIM_SECONDS), DELIVERY_CLAIM_SECONDS=str(CLAIM_SECONDS),
                         DELIVERY_LEASE_SECONDS=str(CLAIM_SECONDS), DELIVERY_METRICS_SECONDS="1",
                         SMTP_PROBE_SECONDS="600")
    try:
        infra.start_mongo()
        infra.start_kafka()
        platform.start("notifications")
        yield platform
    finally:
        platform.close()
        silent.close()
        infra.close()


def _admin(platform: Platform, network_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.jwt_keys.token('network_admin', network_id)}"}


async def _feeds(http: httpx.AsyncClient, platform: Platform, network_id: str, people: list[str]) -> int:
    """How many of these people have their in-app welcome."""
    found = 0
    for person in people:
        token = platform.jwt_keys.token("mentee", network_id, person_id=person)
        response = await http.get(f"{platform.url('notifications')}/me/notifications",
                                  headers={"Authorization": f"Bearer {token}"})
        found += bool(response.json()["items"])
    return found


async def _interrupted(http: httpx.AsyncClient, platform: Platform, network_id: str) -> int:
    response = await http.get(f"{platform.url('notifications')}/networks/{network_id}/deliveries",
                              params={"status": "failed", "limit": 200}, headers=_admin(platform, network_id))
    return sum(d["last_error"] == INTERRUPTED for d in response.json())


async def test_a_mail_server_that_never_greets_holds_back_neither_the_feed_nor_webhooks(silent_smtp_platform):
    """Feed items were written only after every email of their batch finished, and emails of
    a live service were marked failed as interrupted once their claim expired."""
    platform = silent_smtp_platform
    first, second = Events(f"net-{uuid.uuid4().hex[:6]}"), Events(f"net-{uuid.uuid4().hex[:6]}")
    receiver = WebhookReceiver()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            hook = await http.post(f"{platform.url('notifications')}/networks/{second.network_id}/webhooks",
                                   json={"url": receiver.url, "kinds": ["welcome"]},
                                   headers=_admin(platform, second.network_id))
            assert hook.status_code == 201
            people = {events.network_id: [events.person("mentee", f"Person {n}", f"p{n}-{uuid.uuid4().hex[:6]}@example.org")
                                          for n in range(count)]
                      for events, count in ((first, 10), (second, 5))}
            await publish(platform.servers.kafka_bootstrap, *people[first.network_id], *people[second.network_id])

            async def delivered() -> tuple[int, int, int]:
                return (await _feeds(http, platform, first.network_id, [e.subject for e in people[first.network_id]]),
                        await _feeds(http, platform, second.network_id, [e.subject for e in people[second.network_id]]),
                        len(receiver.requests))
            await eventually(delivered, lambda counts: counts == (10, 5, 5), timeout=60, what="feed and webhooks")
            # Meanwhile the emails are still trying the silent server, and claims are renewed:
            # nothing counts as interrupted while the service is alive, for several claim periods.
            assert await _interrupted(http, platform, first.network_id) == 0

            async def interrupted() -> int:
                return (await _interrupted(http, platform, first.network_id)
                        + await _interrupted(http, platform, second.network_id))
            await stays(interrupted, 0, seconds=2 * CLAIM_SECONDS)
    finally:
        receiver.close()


async def test_the_mail_servers_reachability_is_in_the_health_detail_and_the_backlog_in_metrics(
        silent_smtp_platform):
    platform = silent_smtp_platform
    events = Events(f"net-{uuid.uuid4().hex[:6]}")
    await publish(platform.servers.kafka_bootstrap,
                  events.person("mentee", "Mail Less", f"m-{uuid.uuid4().hex[:6]}@example.org"))
    base = platform.url("notifications")
    async with httpx.AsyncClient(timeout=30) as http:
        async def detail() -> dict:
            return (await http.get(f"{base}/healthz/detail")).json()
        health = await eventually(detail, lambda d: d.get("smtp", {}).get("reachable") is False, timeout=60,
                                  what="the mail server found unreachable")
        assert "could not be reached" in health["smtp"]["error"]
        assert health["deliveries"]["email"]["pending"] + health["deliveries"]["email"]["failed"] >= 1
        # An outside mail server never makes the service unready.
        assert (await http.get(f"{base}/readyz")).status_code == 200

        def emails(text: str) -> float:  # waiting or given up, as the metrics say
            found = [re.search(rf'notification_deliveries\{{channel="email",status="{status}"\}} (\S+)', text)
                     for status in ("pending", "failed")]
            return sum(float(m.group(1)) for m in found if m)

        async def metrics() -> str:
            return (await http.get(f"{base}/metrics")).text
        text = await eventually(metrics, lambda t: "notification_smtp_reachable 0.0" in t and emails(t) >= 1,
                                timeout=60)
        assert re.search(r'notification_deliveries\{channel="in_app",status="pending"\} ', text)


async def test_an_in_app_welcome_never_waits_behind_an_email_backlog(jwt_keys, tmp_path):
    """At a steady registration rate the welcomes lagged far behind (p50 102 s): in-app and
    email deliveries were claimed together, oldest first, so a new person's in-app welcome
    waited for every older email to reach the mail server."""
    mailbox = SlowMailbox(delay=1.5)  # four connections: under three emails a second
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    infra = Infra(tmp_path / "infra")
    platform = _platform(infra, jwt_keys, tmp_path / "platform", controller.port)
    backlog, late = Events(f"net-{uuid.uuid4().hex[:6]}"), Events(f"net-{uuid.uuid4().hex[:6]}")
    try:
        await in_thread(infra.start_mongo)
        await in_thread(infra.start_kafka)
        await in_thread(platform.start, "notifications")
        older = [backlog.person("mentee", f"Early {n}", f"early{n}-{uuid.uuid4().hex[:6]}@example.org")
                 for n in range(200)]
        await publish(platform.servers.kafka_bootstrap, *older)
        await eventually(lambda: len(mailbox.messages), lambda n: n >= 4, timeout=90, what="the backlog draining")
        newcomer = late.person("mentee", "Late Comer", f"late-{uuid.uuid4().hex[:6]}@example.org")
        await publish(platform.servers.kafka_bootstrap, newcomer)
        async with httpx.AsyncClient(timeout=30) as http:
            await eventually(lambda: _feeds(http, platform, late.network_id, [newcomer.subject]),
                             lambda n: n == 1, timeout=150, what="the newcomer's in-app welcome")
        emailed = sum(1 for m in mailbox.messages if m["To"] != newcomer.data["email"])
        assert emailed < len(older) // 2, f"{emailed} of the backlog's emails went first"
    finally:
        await in_thread(platform.close)
        infra.close()
        controller.stop()
