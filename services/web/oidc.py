"""The authorization-code flow with PKCE against a network's identity provider (Authlib).

The web app only runs the browser's side of the flow: it sends the person to the provider
with a fresh state, nonce and PKCE challenge, exchanges the code for tokens, and hands the ID
token and the nonce to profiles (`POST /auth/oidc/session`), which verifies the token itself
(issuer's keys, audience, expiry, nonce, verified email) and decides who the person is.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from services.web.config import OidcProvider

_DISCOVERY: dict[str, tuple[float, dict[str, Any]]] = {}
DISCOVERY_TTL = 3600.0


class OidcError(Exception):
    """The provider could not be used; the message is for the person signing in."""


async def discover(provider: OidcProvider) -> dict[str, Any]:
    """The issuer's metadata (authorization and token endpoints), cached for an hour."""
    cached = _DISCOVERY.get(provider.issuer)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    async with httpx.AsyncClient() as client:  # discovery is public: no token to send
        try:
            response = await client.get(url, timeout=10)
            response.raise_for_status()
            metadata = response.json()
        except Exception as exc:
            raise OidcError("Your institution's sign-in service cannot be reached right now; "
                            "try again in a moment.") from exc
    _DISCOVERY[provider.issuer] = (time.monotonic() + DISCOVERY_TTL, metadata)
    return metadata


def _client(provider: OidcProvider, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret or None,
        scope=provider.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if provider.client_secret else "none",
    )


async def start(provider: OidcProvider, redirect_uri: str) -> tuple[str, dict[str, str]]:
    """The provider's URL to send the browser to, and what the callback must check."""
    metadata = await discover(provider)
    secrets = {"state": generate_token(32), "nonce": generate_token(32),
               "code_verifier": generate_token(64)}
    async with _client(provider, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=secrets["state"], nonce=secrets["nonce"],
            code_verifier=secrets["code_verifier"],
        )
    return url, secrets


async def finish(provider: OidcProvider, redirect_uri: str, code: str,
                 code_verifier: str) -> str:
    """Exchange the code (with the PKCE verifier) for the ID token."""
    metadata = await discover(provider)
    async with _client(provider, redirect_uri) as client:
        try:
            token = await client.fetch_token(
                metadata["token_endpoint"], code=code, code_verifier=code_verifier,
                grant_type="authorization_code",
            )
        except Exception as exc:
            raise OidcError("Your institution's sign-in service did not accept this sign-in; "
                            "start again.") from exc
    id_token = token.get("id_token")
    if not id_token:
        raise OidcError("Your institution's sign-in service returned no ID token.")
    return id_token
