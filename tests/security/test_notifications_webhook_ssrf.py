"""Webhooks reached internal addresses (SSRF): loopback, the MongoDB port, [::1], 0.0.0.0 and
the cloud metadata address were accepted, signed bodies were POSTed to a loopback listener,
and delivery errors told closed ports from open ones. The services under test allow only the
tests' own receiver address (127.0.0.2) explicitly; everything else internal is refused."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pymongo import AsyncMongoClient

from ops.infra import free_port
from tests.notifications_support import RECEIVER_ADDRESS, Events, WebhookReceiver, publish
from tests.support import eventually, stays


class Listener:
    """A loopback HTTP listener that counts what reaches it (it must see nothing)."""

    def __init__(self) -> None:
        listener = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                listener.hits += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_internal_webhook_targets_are_refused_at_registration(
        api, platform, network_id):
    url = f"{platform.url('notifications')}/networks/{network_id}/webhooks"
    mongo_port = platform.servers.mongodb_uri.split(":")[2].split("/")[0]
    internal = [f"http://127.0.0.1:{mongo_port}/", f"http://localhost:{mongo_port}/", "http://[::1]:8080/",
                "http://0.0.0.0:8080/", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/",
                "http://192.168.1.1/", "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/",
                "http://user:pw@127.0.0.2/", "ftp://example.org/"]
    for target in internal:
        refused = await api.http.post(url, json={"url": target}, headers=api.auth(network_id))
        assert refused.status_code == 422, (target, refused.text)
        assert "not allowed" in refused.json()["detail"] or "url" in refused.json()["detail"].lower(), target
    assert (await api.http.get(url, headers=api.auth(network_id))).json() == []
    # The one address the operator allowed (the tests' receiver) is accepted.
    allowed = await api.http.post(url, json={"url": f"http://{RECEIVER_ADDRESS}:9/hook"}, headers=api.auth(network_id))
    assert allowed.status_code == 201


async def test_a_stored_internal_target_is_refused_at_delivery_and_errors_say_nothing_of_what_answered(
        api, platform, network_id):
    """A webhook already stored with an internal URL (or whose name now resolves to one) is
    checked again at each delivery, after resolution: nothing reaches the listener. And a
    failing endpoint and a closed port read the same."""
    listener, failing = Listener(), WebhookReceiver(fail_first=100)
    closed_port = free_port()
    client = AsyncMongoClient(platform.servers.mongodb_uri, tz_aware=True)
    try:
        hooks = client["mentorship_notifications"]["webhooks"]
        await hooks.insert_many([
            {"_id": f"wh-internal-{uuid.uuid4().hex[:6]}", "network_id": network_id, "kinds": ["welcome"],
             "url": f"http://127.0.0.1:{listener.port}/", "secret": "s"},
            {"_id": f"wh-failing-{uuid.uuid4().hex[:6]}", "network_id": network_id, "kinds": ["welcome"],
             "url": failing.url, "secret": "s"},
            {"_id": f"wh-closed-{uuid.uuid4().hex[:6]}", "network_id": network_id, "kinds": ["welcome"],
             "url": f"http://{RECEIVER_ADDRESS}:{closed_port}/", "secret": "s"},
        ])
        events = Events(network_id)
        await publish(platform.servers.kafka_bootstrap,
                      events.person("mentee", "Ada Lovelace", f"ssrf-{uuid.uuid4().hex[:6]}@example.org"))

        async def failed() -> list[dict]:
            response = await api.http.get(f"{platform.url('notifications')}/networks/{network_id}/deliveries",
                                          params={"channel": "webhook", "status": "failed"},
                                          headers=api.auth(network_id))
            return response.json()
        records = await eventually(failed, lambda r: len(r) == 3, timeout=60, what="three failed webhooks")
        by_target = {r["to"]: r for r in records}
        internal = by_target[f"http://127.0.0.1:{listener.port}/"]
        assert internal["attempts"] == 1 and "not a public internet address" in internal["last_error"]
        assert listener.hits == 0
        answered = by_target[failing.url]["last_error"].split(": ", 1)[1]
        unanswered = by_target[f"http://{RECEIVER_ADDRESS}:{closed_port}/"]["last_error"].split(": ", 1)[1]
        assert answered == unanswered and "503" not in answered and "refused" not in unanswered.lower()
        await stays(lambda: listener.hits, 0, seconds=0.5)
    finally:
        await client.close()
        listener.close()
        failing.close()


def test_the_address_policy_and_https_only_outside_development():
    import asyncio
    import ipaddress

    from services.notifications.config import DeliverySettings
    from services.notifications.webhooks import TargetRefused, is_public, resolve

    for address in ("127.0.0.1", "::1", "0.0.0.0", "::", "169.254.169.254", "fe80::1", "10.0.0.1",
                    "172.16.0.1", "192.168.0.1", "100.64.0.1", "224.0.0.1", "ff02::1", "fd00::1",
                    "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1", "240.0.0.1", "255.255.255.255"):
        assert not is_public(ipaddress.ip_address(address)), address
    assert is_public(ipaddress.ip_address("8.8.8.8")) and is_public(ipaddress.ip_address("2606:4700::1111"))
    assert is_public(ipaddress.ip_address("127.0.0.2"), [ipaddress.ip_network("127.0.0.2/32")])

    async def refused(url: str, **settings) -> bool:
        try:
            await resolve(url, DeliverySettings(**settings))
        except TargetRefused:
            return True
        return False
    assert asyncio.run(refused("http://8.8.8.8/hook"))  # http only with the development flag
    assert not asyncio.run(refused("https://8.8.8.8/hook"))
    assert not asyncio.run(refused("http://8.8.8.8/hook", webhook_allow_http=True))
    assert asyncio.run(refused("https://localhost/hook"))  # a name is judged by what it resolves to
