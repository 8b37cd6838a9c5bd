"""Signed tokens and signatures (pure): unsubscribe links that need no login, signed webhooks.

An unsubscribe token names the recipient, the network and the kind; its HMAC (keyed by the
service's unsubscribe secret, never a built-in string) proves we issued it, so the link works
from any mail client without a session and cannot be forged or altered for someone else.
Webhook bodies are signed as `<timestamp>.<body>` so a receiver can reject replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

SIGNATURE_HEADER = "X-Mentorship-Signature"
TIMESTAMP_HEADER = "X-Mentorship-Timestamp"
DELIVERY_HEADER = "X-Mentorship-Delivery"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_PURPOSE = b"unsubscribe.v2."  # a MAC made for anything else never reads as an unsubscribe token


def _mac(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + body.encode(), hashlib.sha256).digest()[:16]


def unsubscribe_token(secret: str, recipient: str, network_id: str, kind: str) -> str:
    body = _b64(json.dumps([recipient, network_id, kind], separators=(",", ":")).encode())
    return f"{body}.{_b64(_mac(secret, body))}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str, str] | None:
    """(recipient, network_id, kind) of a genuine token; None for anything else."""
    try:
        body, mac = token.split(".")
        if not hmac.compare_digest(_mac(secret, body), _unb64(mac)):
            return None
        recipient, network_id, kind = json.loads(_unb64(body))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not all(isinstance(v, str) for v in (recipient, network_id, kind)):
        return None
    return recipient, network_id, kind


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"
