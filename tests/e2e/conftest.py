"""The four services as real processes on the tests' embedded servers.

`platform` is shared by the session; tests that kill the broker or a service use
`private_platform`, which runs on servers of its own so the damage stays there.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
from datetime import timedelta
from email.message import EmailMessage
import uuid
from types import SimpleNamespace
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ops.infra import ManagedProcess, free_port
from ops.stack import start_service, wait_ready
from shared.settings import DEFAULT_PORTS
from tests.identity_support import Idp

SERVICES = tuple(DEFAULT_PORTS)
# Started by default; the web app is started by the tests that use it (tests/e2e/web).
BACKENDS = tuple(name for name in SERVICES if name != "web")


class Mailbox:
    """A real SMTP server's handler (aiosmtpd) that keeps what it receives, can refuse
    recipients (a number of temporary refusals, 451, or "always", 550) and can hold a
    recipient's send midway."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: dict[str, int | str] = {}
        # Addresses whose RCPT is answered only once released: the sender waits mid-send,
        # before the message reaches the server. `holding` names those it is waiting on.
        self.held: set[str] = set()
        self.holding: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.held:
            self.holding.add(address)
            while address in self.held:
                await asyncio.sleep(0.05)
        rule = self.refuse.get(address)
        if rule == "always":
            return "550 5.1.1 Mailbox unavailable"
        if isinstance(rule, int) and rule > 0:
            self.refuse[address] = rule - 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class Platform:
    def __init__(
        self,
        servers,
        jwt_keys,
        root: Path,
        *,
        extra_env: dict[str, str] | None = None,
        database_prefix: str = "mentorship",
        smtp_port: int | None = None,
    ) -> None:
        self.smtp_port = smtp_port
        self.servers = servers
        self.jwt_keys = jwt_keys
        self.root = root
        self.extra_env = extra_env or {}
        self.database_prefix = database_prefix
        self.ports = {name: free_port() for name in SERVICES}
        self.procs: dict[str, ManagedProcess] = {}

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            # /readyz says "not ready" after 3 s of failed probes (production waits 15 s).
            "READINESS_GRACE_SECONDS": "3",
            "READINESS_PROBE_INTERVAL_SECONDS": "0.5",
            **self.extra_env,
            "MONGODB_DATABASE": f"{self.database_prefix}_{name}",
            "SMTP_PORT": str(self.smtp_port or 1),
            "DELIVERY_BACKOFF_SECONDS": "0.2",
            "DELIVERY_MAX_ATTEMPTS": "3",
            "DELIVERY_POLL_MS": "50",
            # Each step of a journey waits for the events before it: keep the idle
            # consumers' pause short (production lets it grow to a second).
            "CONSUMER_IDLE_POLL_MAX_MS": "250",
            # Webhooks may reach the tests' receiver (a loopback address of its own) over
            # http, and no other internal address.
            "WEBHOOK_ALLOW_HTTP": "true",
            "WEBHOOK_ALLOWED_ADDRESSES": "127.0.0.2",
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.kafka_bootstrap,
            "MONGODB_URI": self.servers.mongodb_uri,
            "DATA_DIR": str(self.root),
            "JWT_PUBLIC_KEY_FILE": str(self.jwt_keys.public_path),
            "JWT_PRIVATE_KEY_FILE": str(self.jwt_keys.private_path),
            "KAFKA_TOPIC_PARTITIONS": "3",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "OUTBOX_VERIFY_SETTLE_SECONDS": "2",
            "OUTBOX_VERIFY_INTERVAL_SECONDS": "0.5",
            "LOG_LEVEL": "DEBUG",  # per-event lines carry the correlation id
            # Where the web app finds the services, and its public address (where the links
            # in every message point).
            **{f"{other.upper()}_URL": self.url(other) for other in BACKENDS},
            "APP_URL": self.url("web"),
            "BACKEND_TIMEOUT_SECONDS": "60",  # the web app's calls, on a loaded test machine
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, *names: str) -> None:
        for name in names or BACKENDS:
            # die_with_parent: an interrupted test run (Ctrl-C, SIGTERM, SIGKILL of pytest)
            # takes the services along instead of leaving them running.
            self.procs[name] = start_service(
                name, self.ports[name], self.env(name), self.root / "logs" / f"{name}.log",
                die_with_parent=True,
            )
        for name in names or BACKENDS:
            wait_ready(self.url(name), 60, proc=self.procs[name])

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop(timeout=10)

    def log(self, name: str) -> str:
        return self.procs[name].log_tail(80)


class Api:
    """A thin client of the public HTTP APIs, with tokens for the roles tests need."""

    def __init__(self, platform: Platform, client: httpx.AsyncClient) -> None:
        self.platform = platform
        self.http = client

    def token(self, role: str = "network_admin", network_id: str = "", **scope) -> str:
        return self.platform.jwt_keys.token(role, network_id, **scope)

    def auth(self, network_id: str, role: str = "network_admin", **scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, network_id, **scope)}"}

    async def ensure_institution(self, network_id: str, institution_id: str = "inst-a") -> None:
        """People register at institutions the network has: add it (once) first."""
        response = await self.http.post(
            f"{self.platform.url('profiles')}/networks/{network_id}/institutions",
            json={"id": institution_id, "name": f"Institution {institution_id}"},
            headers=self.auth(network_id),
        )
        assert response.status_code in (201, 409), response.text

    async def register_mentee(self, network_id: str, n: int | str = 0, **fields) -> httpx.Response:
        await self.ensure_institution(network_id, fields.get("institution_id", "inst-a"))
        body = {
            "institution_id": "inst-a",
            "display_name": f"Mentee {n}",
            "email": f"mentee{n}-{uuid.uuid4().hex[:6]}@example.org",
            "career_stage": "M2",
            **fields,
        }
        return await self.http.post(
            f"{self.platform.url('profiles')}/networks/{network_id}/mentees",
            json=body,
            headers=self.auth(network_id),
        )

    async def registrations(self, network_id: str) -> int:
        response = await self.http.get(
            f"{self.platform.url('analytics')}/networks/{network_id}/registrations",
            headers=self.auth(network_id),
        )
        response.raise_for_status()
        return response.json()["total"]["mentees_registered"]

    async def pool_size(self, network_id: str) -> int:
        response = await self.http.get(
            f"{self.platform.url('matching')}/networks/{network_id}/pool/mentees",
            headers=self.auth(network_id),
        )
        response.raise_for_status()
        return len(response.json())

    async def notification_count(self, network_id: str, person_ids: list[str]) -> int:
        """How many of these people have their welcome already."""
        return sum([len(await self.feed(network_id, p)) > 0 for p in person_ids])

    async def feed(self, network_id: str, person_id: str) -> list[dict]:
        response = await self.http.get(
            f"{self.platform.url('notifications')}/me/notifications",
            headers=self.auth(network_id, role="mentee", person_id=person_id),
        )
        response.raise_for_status()
        return response.json()["items"]


class IdentityProviders:
    """Two mock OpenID providers for the session's platform (started before it: profiles reads
    OIDC_PROVIDERS at start). Networks `a` and `b` share the provider `idp` (one organisation
    that runs two networks; b has its own client id); `stale` issues ID tokens that expired two
    minutes before they were issued."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.networks = {k: f"oidc-{k}-{suffix}" for k in ("a", "b", "stale")}
        self.clients = {k: f"client-{k}" for k in self.networks}
        self.idp = Idp().start()
        self.stale = Idp(token_max_age=timedelta(seconds=-120)).start()

    def issuer(self, key: str) -> str:
        return (self.stale if key == "stale" else self.idp).issuer

    def env(self) -> dict[str, str]:
        providers = {n: {"issuer": self.issuer(k), "client_id": self.clients[k],
                         "client_secret": "secret"} for k, n in self.networks.items()}
        return {"OIDC_PROVIDERS": json.dumps(providers)}

    def stop(self) -> None:
        self.idp.stop()
        self.stale.stop()


@pytest.fixture
def private_platform(private_infra, jwt_keys, tmp_path) -> Iterator[Platform]:
    running = Platform(private_infra, jwt_keys, tmp_path / "platform")
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def tansu_platform(infra, tansu_bootstrap, jwt_keys, tmp_path_factory) -> Iterator[Platform]:
    """The four services on Tansu, the second Kafka-protocol broker, configured around its
    gaps (no idempotent producer), with databases of their own on the session's store."""
    servers = SimpleNamespace(kafka_bootstrap=tansu_bootstrap, mongodb_uri=infra.mongodb_uri)
    running = Platform(
        servers,
        jwt_keys,
        tmp_path_factory.mktemp("tansu-platform"),
        extra_env={"KAFKA_IDEMPOTENT_PRODUCER": "false"},
        database_prefix="tansu",
    )
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
async def tansu_api(tansu_platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield Api(tansu_platform, client)


@pytest.fixture
async def private_api(private_platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield Api(private_platform, client)


async def in_thread(fn, *args):
    """Run a blocking process-control call without stalling the test's event loop."""
    return await asyncio.to_thread(fn, *args)
