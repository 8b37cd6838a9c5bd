"""Bearer-token auth shared by every service (PyJWT, RS256).

Claims carry who the caller is and how far they reach: a role and a scope (network,
institution, programs, person). Locally the key pair is generated into `.data/jwt/`; in
production a configured public key file or a JWKS URL verifies tokens issued elsewhere.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

ALGORITHM = "RS256"
VERIFIED_FOR_SECONDS = 60.0
VERIFIED_MAX = 10_000


class Role(StrEnum):
    NETWORK_ADMIN = "network_admin"
    INSTITUTION_COORDINATOR = "institution_coordinator"
    PROGRAM_COORDINATOR = "program_coordinator"
    MENTOR = "mentor"
    MENTEE = "mentee"
    SERVICE = "service"


class Principal(BaseModel):
    """The authenticated caller, as the token describes them."""

    subject: str
    role: Role
    network_id: str
    institution_id: str | None = None
    program_ids: list[str] = Field(default_factory=list)
    person_id: str | None = None


def ensure_local_keypair(data_dir: Path) -> tuple[Path, Path]:
    """Create the local signing key pair once; later calls reuse it."""
    key_dir = data_dir / "jwt"
    private_path, public_path = key_dir / "private.pem", key_dir / "public.pem"
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    key_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def issue_token(
    private_key_pem: bytes,
    *,
    role: Role | str,
    network_id: str,
    institution_id: str | None = None,
    program_ids: list[str] | None = None,
    person_id: str | None = None,
    subject: str | None = None,
    ttl_seconds: int = 3600,
    issuer: str = "mentorship-local",
    audience: str = "mentorship",
) -> str:
    """Sign a token for local use (CLI, tests, demo). Production tokens come from an IdP."""
    now = int(time.time())
    claims = {
        "sub": subject or person_id or f"{Role(role).value}-{uuid.uuid4().hex[:8]}",
        "role": Role(role).value,
        "network_id": network_id,
        "institution_id": institution_id,
        "program_ids": program_ids or [],
        "person_id": person_id,
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": issuer,
        "aud": audience,
    }
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens with a static public key or keys fetched from a JWKS URL."""

    def __init__(
        self,
        *,
        public_key_pem: bytes | None = None,
        jwks_url: str | None = None,
        issuer: str,
        audience: str,
    ) -> None:
        if public_key_pem is None and jwks_url is None:
            raise ValueError("a public key or a JWKS URL is required to verify tokens")
        # Parsed once: PyJWT parses a PEM on every decode, a third of a verification's CPU.
        self._public_key = (
            serialization.load_pem_public_key(public_key_pem) if public_key_pem else None
        )
        self._jwks = jwt.PyJWKClient(jwks_url) if jwks_url else None
        self._issuer = issuer
        self._audience = audience
        # Tokens verified lately, until their expiry but for at most VERIFIED_FOR_SECONDS: a
        # client sends the same token with every request, and an RS256 verification costs
        # more than the rest of a small request's authentication together.
        self._verified: dict[str, tuple[float, Principal]] = {}

    def verify(self, token: str) -> Principal:
        now = time.time()
        known = self._verified.get(token)
        if known is not None and now < known[0]:
            return known[1].model_copy()
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (min(expires, now + VERIFIED_FOR_SECONDS), principal)
        return principal.model_copy()

    def _verify(self, token: str) -> tuple[Principal, float]:
        key = (
            self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._public_key
        )
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=self._issuer,
            audience=self._audience,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
        return Principal(
            subject=claims["sub"],
            role=claims["role"],
            network_id=claims["network_id"],
            institution_id=claims.get("institution_id"),
            program_ids=claims.get("program_ids") or [],
            person_id=claims.get("person_id"),
        ), float(claims["exp"])


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: 401 unless a valid bearer token is presented.

    Async on purpose, like every dependency here: FastAPI runs a plain `def` dependency in
    its thread pool, and those hops were most of the API's CPU under load.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "A bearer token is required (Authorization: Bearer <token>).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = verifier.verify(credentials.credentials)
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"The bearer token is not valid: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_network(principal: Principal, network_id: str) -> None:
    """403 when the caller's token does not reach this network."""
    if principal.role != Role.SERVICE and principal.network_id != network_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Your token does not give access to this network."
        )
