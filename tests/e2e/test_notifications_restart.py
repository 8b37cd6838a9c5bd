"""A restart in the middle of a send never sends twice.

The service is killed (SIGKILL) while the SMTP server holds the DATA of one message; the server
then accepts it (the ambiguous case: the message did arrive). After the restart the email is
marked failed as interrupted, visible to admins and never resent automatically, while the
in-app copy, written idempotently, is simply completed; later messages flow as usual.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import uuid

import httpx
import pytest
from aiosmtpd.controller import Controller

from ops.infra import free_port
from services.notifications.deliveries import INTERRUPTED
from tests.e2e.conftest import Platform, in_thread
from tests.support import eventually, mentee_registered_event, stays
from tests.notifications_support import publish


class HoldingMailbox:
    """Keeps every message it receives, and holds the reply to DATA for `hold` until released
    (the server has the message; the client does not know yet: the ambiguous moment)."""

    def __init__(self, hold: str) -> None:
        self.hold, self.release, self.holding = hold, threading.Event(), threading.Event()
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        if self.hold in envelope.rcpt_tos:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> int:
        return sum(m["To"] == address for m in self.messages)


@pytest.fixture
def holding():
    mailbox = HoldingMailbox(f"held-{uuid.uuid4().hex[:6]}@example.org")
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.port = controller.port
    try:
        yield mailbox
    finally:
        mailbox.release.set()
        controller.stop()


async def test_a_send_interrupted_by_a_crash_is_not_resent_after_the_restart(private_infra, jwt_keys, tmp_path, holding):
    platform = Platform(private_infra, jwt_keys, tmp_path / "platform", smtp_port=holding.port,
                        extra_env={"DELIVERY_CLAIM_SECONDS": "2"})
    network_id = f"net-{uuid.uuid4().hex[:6]}"
    try:
        await in_thread(platform.start, "notifications")
        held = mentee_registered_event("held-person", network_id=network_id, email=holding.hold)
        await publish(private_infra.kafka_bootstrap, held)
        assert await in_thread(holding.holding.wait, 30)
        await in_thread(platform.kill, "notifications")
        holding.release.set()
        assert holding.to(holding.hold) == 1

        await in_thread(platform.start, "notifications")
        later = f"later-{uuid.uuid4().hex[:6]}@example.org"
        await publish(private_infra.kafka_bootstrap,
                      mentee_registered_event("later-person", network_id=network_id, email=later))
        await eventually(lambda: holding.to(later), lambda n: n == 1)
        url = f"{platform.url('notifications')}/networks/{network_id}/deliveries"
        admin = {"Authorization": f"Bearer {jwt_keys.token('network_admin', network_id)}"}
        async with httpx.AsyncClient(timeout=10) as http:
            async def failed() -> list[dict]:
                response = await http.get(url, params={"status": "failed"}, headers=admin)
                return response.json()
            [record] = await eventually(failed, lambda r: len(r) == 1)
            assert record["to"] == holding.hold and record["last_error"] == INTERRUPTED
            feed = f"{platform.url('notifications')}/me/notifications"
            mine = {"Authorization": f"Bearer {jwt_keys.token('mentee', network_id, person_id='held-person')}"}

            async def items() -> list[dict]:
                return (await http.get(feed, headers=mine)).json()["items"]
            await eventually(items, lambda i: len(i) == 1)  # the in-app copy completed once
        await stays(lambda: holding.to(holding.hold), 1, seconds=1.5)
    finally:
        holding.release.set()
        await in_thread(platform.close)
