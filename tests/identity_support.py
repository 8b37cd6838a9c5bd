"""Sign-in helpers the identity tests share: a real OpenID provider (`oidc-provider-mock`,
served on a free port) and the authorization-code flow with PKCE driven through it the way
the web app drives it, plus reading profiles' events off the broker."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import werkzeug.serving
from aiokafka import AIOKafkaConsumer
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

REDIRECT_URI = "http://127.0.0.1:8000/sign-in/oidc/callback"


class Idp:
    """One mock identity provider, a real HTTP server in a thread of the test process."""

    def __init__(self, token_max_age: timedelta = timedelta(minutes=5)) -> None:
        import oidc_provider_mock

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = werkzeug.serving.make_server(
            "127.0.0.1", 0,
            oidc_provider_mock.app(access_token_max_age=token_max_age, require_nonce=True),
            threaded=True,
        )
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        daemon=True)

    def start(self) -> Idp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(2)
        self._server.server_close()


@contextmanager
def running_idp(**kwargs) -> Iterator[Idp]:
    idp = Idp(**kwargs).start()
    try:
        yield idp
    finally:
        idp.stop()


async def authorization_code_flow(
    http: httpx.AsyncClient, issuer: str, client_id: str, email: str, *,
    email_verified: bool = True, nonce: str | None = None,
) -> tuple[str, str]:
    """Sign `email` in at the IdP as the web app would: authorization request with state,
    nonce and a PKCE challenge, the user's consent, the callback's state checked, the code
    exchanged with the verifier. Returns (ID token, nonce)."""
    sub = f"sub-{uuid.uuid4().hex[:10]}"
    claims = {"email": email, "email_verified": email_verified, "name": email.split("@")[0]}
    (await http.put(f"{issuer}/users/{sub}", json=claims)).raise_for_status()
    state, nonce, verifier = generate_token(24), nonce or generate_token(24), generate_token(48)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
              "scope": "openid email profile", "state": state, "nonce": nonce,
              "code_challenge": create_s256_code_challenge(verifier),
              "code_challenge_method": "S256"}
    form = await http.get(f"{issuer}/oauth2/authorize", params=params)
    assert form.status_code == 200, form.text
    consent = await http.post(f"{issuer}/oauth2/authorize", params=params, data={"sub": sub},
                              follow_redirects=False)
    assert consent.status_code == 302, consent.text
    callback = parse_qs(urlparse(consent.headers["location"]).query)
    assert callback["state"] == [state], "the IdP must return the state the web sent"
    token = await http.post(f"{issuer}/oauth2/token", data={
        "grant_type": "authorization_code", "code": callback["code"][0],
        "redirect_uri": REDIRECT_URI, "client_id": client_id, "client_secret": "secret",
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    return token.json()["id_token"], nonce


async def profiles_event(bootstrap: str, event_type: str, predicate, timeout: float = 30) -> dict:
    """The first event of this type on the profiles topic that matches (reading from the
    start: tests share the topic)."""
    from shared.events.topics import PROFILES_TOPIC

    consumer = AIOKafkaConsumer(PROFILES_TOPIC, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest")
    await consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    # Other tests put malformed records on this topic on purpose: select by
                    # the type header before parsing.
                    if dict(record.headers or ()).get("ce_type") != event_type.encode():
                        continue
                    event = json.loads(record.value)
                    if predicate(event["data"]):
                        return event
    finally:
        await consumer.stop()
    raise AssertionError(f"no {event_type} event matched within {timeout}s")
