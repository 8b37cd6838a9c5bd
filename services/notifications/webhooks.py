"""Webhooks: signed POSTs to a network's endpoints, and only ever to the public internet.

A webhook URL is checked when it is registered and again at every delivery, after its name is
resolved: every address it resolves to must be a public one (no loopback, private, link-local,
multicast, reserved or unspecified address, IPv4 embedded in IPv6 included), unless the
address is in the operator's explicit allow-list (tests name their own receiver there). The
request then goes to the address that was checked (the connection is pinned to it; the Host
header and TLS server name stay the URL's), redirects are never followed, and https is
required unless a development setting allows http.

Nothing an endpoint does is reported back in detail: a refused, unreachable, slow or failing
endpoint all read "did not accept the delivery", so deliveries cannot map which internal
ports answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.notifications.composer import Composed
from services.notifications.config import DeliverySettings
from services.notifications.signing import (
    DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature,
)
from services.notifications.smtp import PermanentFailure, SendError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NOT_ALLOWED = ("The webhook URL is not allowed: use https, no credentials in the URL, and a host "
               "whose every address is on the public internet.")
NOT_ACCEPTED = "the endpoint did not accept the delivery (no 2xx answer; redirects are not followed)"


class TargetRefused(ValueError):
    """The URL may not be called (the message says nothing about what the name resolves to)."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    address: str  # the checked address the request is pinned to


def _embedded_v4(ip: Address) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip.teredo:
            return ip.teredo[1]
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: Address, allowed: list[Network] = ()) -> bool:  # type: ignore[assignment]
    """A global unicast address (or one the operator allowed explicitly)."""
    if any(ip in network for network in allowed):
        return True
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    inner = _embedded_v4(ip)
    return inner is None or is_public(inner)


def _split(url: str, allow_http: bool) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(NOT_ALLOWED) from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise TargetRefused(NOT_ALLOWED)
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(url: str, settings: DeliverySettings) -> Target:
    """The address to call for this URL, after checking every address it resolves to."""
    scheme, host, port = _split(url, settings.webhook_allow_http)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM), settings.webhook_timeout_seconds)
        except (OSError, TimeoutError) as exc:
            raise TargetRefused(NOT_ALLOWED) from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    allowed = settings.allowed_webhook_networks
    if not addresses or not all(is_public(ip, allowed) for ip in addresses):
        raise TargetRefused(NOT_ALLOWED)
    return Target(url=url, host=host, port=port, address=str(addresses[0]))


_WEBHOOK_FACTS = {"mentor_id", "mentee_id", "meeting_id", "starts_at", "duration_minutes",
                  "mode", "title", "stage", "days_silent", "reason", "why", "meetings", "role",
                  "auto_accept", "cadence_days"}


class WebhookSender:
    """POSTs a JSON payload signed with the endpoint's secret (HMAC-SHA256 of `ts.body`)."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds,
                                         follow_redirects=False, trust_env=False)

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
        try:
            target = await resolve(endpoint["url"], self._settings)
        except TargetRefused as exc:
            raise PermanentFailure("refused: the endpoint's address is not a public internet address") from exc
        timestamp = str(int(now.timestamp()))
        url = httpx.URL(target.url)
        name = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal
        host_header = name if url.port is None else f"{name}:{url.port}"
        headers = {
            "Host": host_header,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(endpoint["secret"], timestamp, body),
            DELIVERY_HEADER: delivery_id,
        }
        try:
            response = await self._client.post(
                url.copy_with(host=target.address), content=body, headers=headers,
                extensions={"sni_hostname": target.host} if url.scheme == "https" else {})
        except httpx.HTTPError as exc:
            raise SendError(NOT_ACCEPTED) from exc
        if not 200 <= response.status_code < 300:
            raise SendError(NOT_ACCEPTED)

    async def close(self) -> None:
        await self._client.aclose()
