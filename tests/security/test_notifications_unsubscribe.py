"""The unsubscribe secret was a hard-coded string: a link forged with it turned off another
person's email without login. Now the secret is generated into the data dir in development and
required elsewhere, and a token names the person, the network and the kind, each checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid

from services.notifications.signing import unsubscribe_token
from tests.notifications_support import Events, publish
from tests.support import eventually

OLD_PUBLIC_SECRET = "local-development-unsubscribe-secret"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def forged_link_token(recipient: str, network_id: str, kind: str) -> str:
    """What the attacker built: the token format, signed with the string that was in the code."""
    body = _b64(json.dumps([recipient, network_id, kind], separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(OLD_PUBLIC_SECRET.encode(), body.encode(), hashlib.sha256).digest()[:16])}"


async def _preferences(api, platform, network_id: str, person_id: str) -> dict:
    response = await api.http.get(f"{platform.url('notifications')}/me/preferences",
                                  headers=api.auth(network_id, role="mentee", person_id=person_id))
    return response.json()["channels"]


async def test_a_forged_or_altered_unsubscribe_link_changes_nothing(api, platform, network_id):
    events = Events(network_id)
    address = f"victim-{uuid.uuid4().hex[:6]}@example.org"
    victim = events.person("mentee", "Vic Tim", address)
    await publish(platform.servers.kafka_bootstrap, victim)
    await eventually(lambda: api.feed(network_id, victim.subject), lambda f: len(f) == 1)  # known to the service
    url = f"{platform.url('notifications')}/unsubscribe"
    forged = forged_link_token(victim.subject, network_id, "match_proposed")
    for attempt in ({"params": {"token": forged}}, {"json": {"token": forged}}):
        response = await api.http.post(url, **attempt)
        assert response.status_code == 400 and "not valid" in response.text
    # A genuine token (minted here with the platform's generated secret, as the service does)
    # whose network is not the person's: refused, as is one whose signature was altered.
    secret = (platform.root / "secrets" / "unsubscribe_secret").read_text().strip()
    elsewhere = unsubscribe_token(secret, victim.subject, f"{network_id}-other", "match_proposed")
    assert (await api.http.post(url, json={"token": elsewhere})).status_code == 400
    genuine = unsubscribe_token(secret, victim.subject, network_id, "match_proposed")
    altered = genuine.split(".")[0] + "." + forged.split(".")[1]
    assert (await api.http.post(url, json={"token": altered})).status_code == 400
    mandatory = unsubscribe_token(secret, victim.subject, network_id, "welcome")
    assert (await api.http.post(url, json={"token": mandatory})).status_code == 400
    assert await _preferences(api, platform, network_id, victim.subject) == {}
    assert (await api.http.post(url, json={"token": genuine})).status_code == 200
    assert await _preferences(api, platform, network_id, victim.subject) == {"match_proposed": {"email": False}}


def test_the_service_refuses_to_start_outside_development_without_the_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNSUBSCRIBE_SECRET")}
    env.update(ENVIRONMENT="production", DATA_DIR=str(tmp_path), HTTP_PORT="1",
               MONGODB_URI="mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=100",
               KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    try:
        run = subprocess.run([sys.executable, "-m", "services.notifications"], env=env, capture_output=True,
                             text=True, timeout=30, cwd=os.getcwd())
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the service started without its unsubscribe secret") from exc
    assert run.returncode != 0 and "UNSUBSCRIBE_SECRET is not set" in run.stderr
    assert not (tmp_path / "secrets").exists()  # nothing generated outside development
