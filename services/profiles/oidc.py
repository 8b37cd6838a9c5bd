"""Verifying a network's OpenID Connect ID token (PyJWT with the IdP's published keys).

The web app runs the authorization-code flow with PKCE and checks `state`; it hands profiles
the ID token and the nonce it generated. Profiles trusts nothing in the token it has not
checked: the signature against the keys of the issuer's discovery document (`jwks_uri`), the
issuer, the audience (the network's client id; `azp` when there are several), expiry and
issue time, the nonce, and that the IdP verified the email. A nonce is accepted once, so an
ID token captured on its way cannot be replayed for a second session.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

import httpx
import jwt

from services.profiles.identity_settings import OidcProvider

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
DISCOVERY_TTL_SECONDS = 3600


class InvalidIdToken(Exception):
    """The ID token is refused; the message says why, in words the web can show."""


class ProviderUnavailable(Exception):
    """The IdP's discovery document or keys cannot be fetched right now."""


@dataclass(frozen=True)
class VerifiedIdentity:
    issuer: str
    subject: str
    email: str


class _Discovery:
    """An issuer's discovery document and key client, fetched once an hour."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, dict[str, Any], jwt.PyJWKClient]] = {}
        self._lock = asyncio.Lock()

    async def get(self, issuer: str) -> tuple[dict[str, Any], jwt.PyJWKClient]:
        cached = self._cache.get(issuer)
        if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1], cached[2]
        async with self._lock:
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=5, follow_redirects=False) as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ProviderUnavailable(
                    "The network's identity provider cannot be reached right now; try again "
                    "shortly.") from exc
            if document.get("issuer") != issuer or not document.get("jwks_uri"):
                raise ProviderUnavailable(
                    "The network's identity provider publishes a discovery document for another "
                    "issuer; an administrator must correct OIDC_PROVIDERS.")
            keys = jwt.PyJWKClient(document["jwks_uri"], cache_keys=True, lifespan=300)
            self._cache[issuer] = (time.monotonic(), document, keys)
            return document, keys


DISCOVERY = _Discovery()


def _check(id_token: str, key: Any, algorithms: list[str], provider: OidcProvider, nonce: str,
           leeway: int) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            id_token, key, algorithms=algorithms, audience=provider.client_id,
            issuer=provider.issuer, leeway=leeway,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidIdToken("The ID token has expired; sign in again.") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidIdToken("The ID token was issued for another application.") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidIdToken("The ID token comes from another identity provider than this "
                             "network's.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidIdToken(f"The ID token lacks the '{exc.claim}' claim.") from exc
    except jwt.PyJWTError as exc:
        raise InvalidIdToken("The ID token's signature is not valid.") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise InvalidIdToken("The ID token was issued for another application.")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
        raise InvalidIdToken("The ID token's nonce does not match this sign-in; start again.")
    if claims.get("email_verified") is not True or not isinstance(claims.get("email"), str):
        raise InvalidIdToken("The identity provider has not verified an email for this account.")
    return claims


def _signing_key(keys: jwt.PyJWKClient, id_token: str, header: dict[str, Any]) -> jwt.PyJWK:
    """The key named by the token's `kid`; an IdP that names none must publish one key."""
    if header.get("kid"):
        return keys.get_signing_key_from_jwt(id_token)
    candidates = keys.get_signing_keys()
    if len(candidates) != 1:
        raise jwt.PyJWKClientError("no kid, and the provider publishes several keys")
    return candidates[0]


async def verify_id_token(id_token: str, nonce: str, provider: OidcProvider,
                          leeway: int) -> VerifiedIdentity:
    """The identity an ID token proves; InvalidIdToken or ProviderUnavailable otherwise."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise InvalidIdToken("The ID token is not a well-formed signed JWT.") from exc
    document, keys = await DISCOVERY.get(provider.issuer)
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in offered if a in ALGORITHMS]
    if header.get("alg") not in algorithms:
        raise InvalidIdToken("The ID token is signed with an algorithm this platform does not "
                             "accept.")
    signing_key = None
    for attempt in range(2):  # a dropped connection to the IdP is worth one more try
        try:
            signing_key = await asyncio.to_thread(_signing_key, keys, id_token, header)
            break
        except (jwt.PyJWKClientConnectionError, OSError, HTTPException, ValueError) as exc:
            # urllib lets a reset connection or a cut-off body through unwrapped.
            if attempt:
                raise ProviderUnavailable("The identity provider's keys cannot be fetched "
                                          "right now; try again shortly.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidIdToken("The ID token is not signed by a key of this network's "
                                 "identity provider.") from exc
    assert signing_key is not None
    claims = _check(id_token, signing_key.key, algorithms, provider, nonce, leeway)
    return VerifiedIdentity(issuer=provider.issuer, subject=claims["sub"],
                            email=claims["email"].strip().lower())
