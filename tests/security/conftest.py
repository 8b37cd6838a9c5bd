"""Fixtures of the security tests.

The notifications attack tests run against the notifications service alone, on servers of their
own: a second copy of the e2e `platform` on the session's servers would share its databases
and Kafka consumer groups (and fence its static members), so it must never be started twice.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller

from ops.infra import free_port
from tests.conftest import Infra
from tests.e2e.conftest import Api, Mailbox, Platform


@pytest.fixture(scope="session")
def notifications_mailbox() -> Iterator[Mailbox]:
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def notifications_platform(jwt_keys, notifications_mailbox, tmp_path_factory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("security-notifications")
    infra = Infra(root / "infra")
    platform = Platform(infra, jwt_keys, root / "platform", smtp_port=notifications_mailbox.port)
    try:
        infra.start_mongo()
        infra.start_kafka()
        platform.start("notifications")
        yield platform
    finally:
        platform.close()
        infra.close()


@pytest.fixture
async def notifications_api(notifications_platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield Api(notifications_platform, client)


@pytest.fixture
def network_id() -> str:
    return f"net-{uuid.uuid4().hex[:8]}"
