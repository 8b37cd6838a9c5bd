"""Bearer-token auth shared by every service (PyJWT, RS256).

A token names a caller of one of three kinds:

* `person`: someone of one network, with the staff grants they hold (network admin of the
  network, coordinator of an institution, coordinator of a program; any mix). Participant
  roles (mentor / mentee of a program) are not in the token: they come from enrolments and
  mentorships, which each service checks against its own data.
* `service`: an internal service (`service` names it), accepted only by routes that say so.
* `operator`: the platform operator, who creates networks and reaches no network's people.

Profiles issues the platform's own short-lived access tokens (`TokenIssuer`, signed with the
local key in development and `JWT_PRIVATE_KEY_FILE` elsewhere). Every service verifies them
with the platform's public key, and, for integrations, tokens of an external issuer whose keys
come from `JWT_JWKS_URL`. Tokens in the older one-role shape (`role`, `institution_id`,
`program_ids`, `person_id`) are still accepted and mapped to grants, so scripts, tests and
external issuers that mint them keep working.

A 401 says what the caller can act on (sign in again, wrong audience, missing claim), never a
library's internals.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

ALGORITHM = "RS256"
TOKEN_VERSION = 2
PLATFORM_KID = "mentorship-platform"
PLATFORM_ISSUER = "mentorship-local"
AUDIENCE = "mentorship"


class Kind(StrEnum):
    PERSON = "person"
    SERVICE = "service"
    OPERATOR = "operator"


class GrantRole(StrEnum):
    """Staff roles a person holds by grant, each over its own scope."""

    NETWORK_ADMIN = "network_admin"
    INSTITUTION_COORDINATOR = "institution_coordinator"
    PROGRAM_COORDINATOR = "program_coordinator"


class Role(StrEnum):
    """The older one-role token shape (and `mentorship token --role`), mapped to grants."""

    NETWORK_ADMIN = "network_admin"
    INSTITUTION_COORDINATOR = "institution_coordinator"
    PROGRAM_COORDINATOR = "program_coordinator"
    MENTOR = "mentor"
    MENTEE = "mentee"
    SERVICE = "service"
    OPERATOR = "operator"


class Grant(BaseModel):
    """One staff role over one scope: the network, an institution, or a program."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: GrantRole
    institution_id: str | None = Field(default=None, min_length=1, max_length=100)
    program_id: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _scoped(self) -> Grant:
        wants = {
            GrantRole.NETWORK_ADMIN: (False, False),
            GrantRole.INSTITUTION_COORDINATOR: (True, False),
            GrantRole.PROGRAM_COORDINATOR: (False, True),
        }[self.role]
        if wants != (self.institution_id is not None, self.program_id is not None):
            scope = {(False, False): "no institution or program",
                     (True, False): "an institution_id", (False, True): "a program_id"}[wants]
            raise ValueError(f"a {self.role.value} grant names {scope}")
        return self

    def claim(self) -> dict[str, str]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def parse(cls, text: str) -> Grant:
        """`network_admin`, `institution_coordinator:<id>` or `program_coordinator:<id>`."""
        role, _, scope = text.partition(":")
        role = GrantRole(role)
        if role == GrantRole.INSTITUTION_COORDINATOR:
            return cls(role=role, institution_id=scope or None)
        if role == GrantRole.PROGRAM_COORDINATOR:
            return cls(role=role, program_id=scope or None)
        if scope:
            raise ValueError("a network_admin grant has no scope")
        return cls(role=role)


class Principal(BaseModel):
    """The authenticated caller, as the token describes them."""

    model_config = ConfigDict(frozen=True)

    subject: str
    kind: Kind = Kind.PERSON
    network_id: str | None = None
    person_id: str | None = None
    grants: tuple[Grant, ...] = ()
    session_id: str | None = None
    service: str | None = None  # kind service: which service calls

    @property
    def is_service(self) -> bool:
        return self.kind == Kind.SERVICE

    @property
    def is_operator(self) -> bool:
        return self.kind == Kind.OPERATOR

    @property
    def is_person(self) -> bool:
        return self.kind == Kind.PERSON

    @property
    def is_network_admin(self) -> bool:
        return self.is_person and any(g.role == GrantRole.NETWORK_ADMIN for g in self.grants)

    @property
    def institution_ids(self) -> tuple[str, ...]:
        """Institutions this person coordinates."""
        if not self.is_person:
            return ()
        return tuple(dict.fromkeys(
            g.institution_id for g in self.grants
            if g.role == GrantRole.INSTITUTION_COORDINATOR and g.institution_id
        ))

    @property
    def program_ids(self) -> tuple[str, ...]:
        """Programs this person coordinates."""
        if not self.is_person:
            return ()
        return tuple(dict.fromkeys(
            g.program_id for g in self.grants
            if g.role == GrantRole.PROGRAM_COORDINATOR and g.program_id
        ))

    @property
    def is_staff(self) -> bool:
        """Holds any grant (a participant-only person holds none)."""
        return self.is_person and bool(self.grants)

    def coordinates_institution(self, institution_id: str | None) -> bool:
        return institution_id is not None and institution_id in self.institution_ids

    def coordinates_program(self, program_id: str | None) -> bool:
        return program_id is not None and program_id in self.program_ids

    def is_self(self, person_id: str | None) -> bool:
        """The caller is this very person (acting for themselves)."""
        return self.is_person and self.person_id is not None and self.person_id == person_id

    @property
    def role_label(self) -> str:
        """How the audit log names what the caller acted as: their grants, or their kind."""
        if self.is_service:
            return f"service:{self.service or self.subject}"
        if self.is_operator:
            return "operator"
        if not self.grants:
            return "participant"
        return ",".join(dict.fromkeys(g.role.value for g in self.grants))


# ---------------------------------------------------------------- claims


class TokenRejected(Exception):
    """The token cannot be accepted; the message is safe to show the caller."""


def access_claims(
    *,
    kind: Kind | str,
    network_id: str | None,
    person_id: str | None = None,
    grants: Iterable[Grant] = (),
    session_id: str | None = None,
    service: str | None = None,
    subject: str | None = None,
    ttl_seconds: int,
    issuer: str,
    audience: str,
    now: int | None = None,
) -> dict[str, Any]:
    """The platform's access-token claims (the shape IDENTITY-CONTRACT.md fixes)."""
    kind = Kind(kind)
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject or person_id or (f"service:{service}" if service else
                                        f"{kind.value}-{uuid.uuid4().hex[:8]}"),
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
        "ver": TOKEN_VERSION,
        "kind": kind.value,
        "network_id": network_id,
        "person_id": person_id,
        "sid": session_id,
        "grants": [g.claim() for g in grants] if kind == Kind.PERSON else [],
    }
    if service:
        claims["service"] = service
    return claims


def legacy_grants(
    role: Role | str, institution_id: str | None, program_ids: Iterable[str] | None
) -> tuple[Kind, list[Grant]]:
    """The kind and grants an older one-role token stands for.

    `program_ids` always meant "the programs this caller coordinates", so each becomes a
    program coordinator grant; an institution coordinator's institution becomes theirs.
    """
    role = Role(role)
    if role == Role.SERVICE:
        return Kind.SERVICE, []
    if role == Role.OPERATOR:
        return Kind.OPERATOR, []
    grants: list[Grant] = []
    if role == Role.NETWORK_ADMIN:
        grants.append(Grant(role=GrantRole.NETWORK_ADMIN))
    if role == Role.INSTITUTION_COORDINATOR and institution_id:
        grants.append(Grant(role=GrantRole.INSTITUTION_COORDINATOR, institution_id=institution_id))
    if role in (Role.INSTITUTION_COORDINATOR, Role.PROGRAM_COORDINATOR):
        grants += [Grant(role=GrantRole.PROGRAM_COORDINATOR, program_id=p)
                   for p in dict.fromkeys(program_ids or [])]
    return Kind.PERSON, grants


def _text(claims: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = claims.get(name)
    if value is None or value == "":
        if required:
            raise TokenRejected(f"The bearer token is not valid: it lacks the '{name}' claim.")
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise TokenRejected(f"The bearer token is not valid: its '{name}' claim is not a short text.")
    return value


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The caller a verified token's claims describe (either shape); TokenRejected otherwise."""
    subject = _text(claims, "sub", required=True)
    assert subject is not None
    if "kind" in claims or claims.get("ver") == TOKEN_VERSION:
        try:
            kind = Kind(claims.get("kind"))
        except ValueError:
            raise TokenRejected(
                "The bearer token is not valid: its 'kind' claim must be person, service or "
                "operator.") from None
        raw = claims.get("grants") or []
        if not isinstance(raw, list) or len(raw) > 200:
            raise TokenRejected("The bearer token is not valid: 'grants' must be a list.")
        try:
            grants = [Grant.model_validate(g) for g in raw]
        except ValueError:
            raise TokenRejected(
                "The bearer token is not valid: a grant must be network_admin, "
                "institution_coordinator with an institution_id, or program_coordinator with "
                "a program_id.") from None
    else:
        try:
            kind, grants = legacy_grants(
                claims.get("role"), claims.get("institution_id"), claims.get("program_ids")
            )
        except ValueError:
            raise TokenRejected(
                "The bearer token is not valid: its 'role' claim is not one this platform "
                f"knows ({', '.join(r.value for r in Role)}).") from None
        program_ids = claims.get("program_ids")
        if program_ids is not None and not (
            isinstance(program_ids, list) and all(isinstance(p, str) for p in program_ids)
        ):
            raise TokenRejected("The bearer token is not valid: 'program_ids' must be a list of ids.")
    network_id = _text(claims, "network_id", required=kind != Kind.OPERATOR)
    if kind != Kind.PERSON and grants:
        raise TokenRejected("The bearer token is not valid: only a person's token carries grants.")
    return Principal(
        subject=subject,
        kind=kind,
        network_id=network_id,
        person_id=_text(claims, "person_id", required=False) if kind == Kind.PERSON else None,
        grants=tuple(dict.fromkeys(grants)),
        session_id=_text(claims, "sid", required=False),
        service=_text(claims, "service", required=False) if kind == Kind.SERVICE else None,
    )


# ---------------------------------------------------------------- keys and issuing


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


def sign(claims: Mapping[str, Any], private_key_pem: bytes) -> str:
    return jwt.encode(dict(claims), private_key_pem, algorithm=ALGORITHM,
                      headers={"kid": PLATFORM_KID})


def issue_token(
    private_key_pem: bytes,
    *,
    role: Role | str | None = None,
    network_id: str | None,
    institution_id: str | None = None,
    program_ids: list[str] | None = None,
    person_id: str | None = None,
    subject: str | None = None,
    grants: Iterable[Grant] = (),
    kind: Kind | str | None = None,
    service: str | None = None,
    ttl_seconds: int = 3600,
    issuer: str = PLATFORM_ISSUER,
    audience: str = AUDIENCE,
) -> str:
    """Sign a token for local use (CLI, tests, seed, demo): a `role` in the older one-role
    sense is turned into its grants, and `grants` are added to them."""
    mapped_kind, mapped = legacy_grants(role, institution_id, program_ids) if role else (
        Kind(kind or Kind.PERSON), [])
    all_grants = list(dict.fromkeys([*mapped, *grants]))
    if service and mapped_kind != Kind.SERVICE:
        raise ValueError("`service` names the calling service of a service token")
    return sign(access_claims(
        kind=mapped_kind, network_id=network_id, person_id=person_id, grants=all_grants,
        service=service or (subject if mapped_kind == Kind.SERVICE else None),
        subject=subject or (f"{Role(role).value}-{uuid.uuid4().hex[:8]}" if role and not person_id
                            else None),
        ttl_seconds=ttl_seconds, issuer=issuer, audience=audience,
    ), private_key_pem)


class TokenIssuer:
    """Profiles' issuer of the platform's short-lived access tokens."""

    def __init__(self, private_key_pem: bytes, *, issuer: str, audience: str,
                 ttl_seconds: int) -> None:
        self._key = private_key_pem
        self.issuer, self.audience, self.ttl_seconds = issuer, audience, ttl_seconds

    def issue(self, *, kind: Kind | str = Kind.PERSON, network_id: str | None,
              person_id: str | None = None, grants: Iterable[Grant] = (),
              session_id: str | None = None, service: str | None = None) -> str:
        return sign(access_claims(
            kind=kind, network_id=network_id, person_id=person_id, grants=grants,
            session_id=session_id, service=service, ttl_seconds=self.ttl_seconds,
            issuer=self.issuer, audience=self.audience,
        ), self._key)


class MissingKey(RuntimeError):
    """A signing or verifying key is not configured outside development."""


def signing_key(settings: Any) -> bytes:
    """The platform's private key: JWT_PRIVATE_KEY_FILE, or (development only) the local key
    pair under the data dir, created on first use. Outside development the file is required."""
    configured: Path | None = settings.jwt_private_key_file
    if configured is not None:
        try:
            return Path(configured).read_bytes()
        except OSError as exc:
            raise MissingKey(f"JWT_PRIVATE_KEY_FILE={configured} cannot be read: "
                             f"{exc.strerror}") from exc
    if not settings.is_development:
        raise MissingKey(
            f"JWT_PRIVATE_KEY_FILE is not set. Outside development (ENVIRONMENT="
            f"{settings.environment}) profiles signs access tokens only with a configured key."
        )
    private_path, public_path = ensure_local_keypair(settings.data_dir)
    configured_public = settings.jwt_public_key_file
    if configured_public is not None and Path(configured_public).read_bytes() != (
        public_path.read_bytes()
    ):
        raise MissingKey(
            f"JWT_PUBLIC_KEY_FILE={configured_public} is not the pair of the local key in "
            f"{private_path.parent}: profiles would sign tokens the other services cannot "
            "verify. Set JWT_PRIVATE_KEY_FILE to its pair."
        )
    return private_path.read_bytes()


# ---------------------------------------------------------------- verifying

_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError,
     "The bearer token has expired; sign in again (or refresh your session)."),
    (jwt.ImmatureSignatureError, "The bearer token is not valid yet; check the issuer's clock."),
    (jwt.InvalidAudienceError,
     "The bearer token is not valid: it was issued for another audience."),
    (jwt.InvalidIssuerError, "The bearer token is not valid: its issuer is not trusted here."),
    (jwt.InvalidSignatureError,
     "The bearer token is not valid: it is not signed by a key this platform trusts."),
    (jwt.InvalidAlgorithmError,
     f"The bearer token is not valid: it must be signed with {ALGORITHM}."),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The bearer token is not valid: it lacks the '{exc.claim}' claim."
    for kind, message in _REASONS:
        if isinstance(exc, kind):
            return message
    return "The bearer token is not valid: it is not a well-formed signed JWT."


class KeysUnavailable(Exception):
    """The external issuer's keys could not be fetched (not the caller's fault)."""


class TokenVerifier:
    """Verifies the platform's own tokens with its public key, and, when configured, an
    external issuer's tokens with the keys its JWKS URL publishes."""

    def __init__(
        self,
        *,
        public_key_pem: bytes | None = None,
        jwks_url: str | None = None,
        issuer: str = PLATFORM_ISSUER,
        audience: str = AUDIENCE,
        external_issuer: str | None = None,
    ) -> None:
        if public_key_pem is None and not jwks_url:
            raise ValueError("a public key or a JWKS URL is required to verify tokens")
        self._public_key = public_key_pem
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._issuer = issuer
        self._external_issuer = external_issuer or issuer
        self._audience = audience

    def _route(self, token: str) -> tuple[Any, str]:
        """Which key and issuer the token must match: the platform's own (its kid, or no kid
        when no JWKS is configured), else the external issuer's JWKS."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from exc
        kid = header.get("kid")
        own = self._public_key is not None and (kid in (None, PLATFORM_KID) or self._jwks is None)
        if own:
            return self._public_key, self._issuer
        assert self._jwks is not None
        try:
            return self._jwks.get_signing_key_from_jwt(token).key, self._external_issuer
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable("The token issuer's keys cannot be fetched right now; "
                                  "try again shortly.") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(
                "The bearer token is not valid: it is not signed by a key this platform "
                "trusts.") from exc

    def verify(self, token: str) -> Principal:
        key, issuer = self._route(token)
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], issuer=issuer, audience=self._audience,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from exc
        return principal_from_claims(claims)


_bearer = HTTPBearer(auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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
            headers=_CHALLENGE,
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = verifier.verify(credentials.credentials)
    except TokenRejected as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=_CHALLENGE) from exc
    except KeysUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def forbidden(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


SERVICE_REFUSED = ("Service tokens are not accepted here: this route serves the people of a "
                   "network, not other services.")
OPERATOR_REFUSED = ("Platform operators create networks; they have no access to a network's "
                    "people, programs or reports.")


def require_network(principal: Principal, network_id: str) -> None:
    """403 unless the caller is a person of this network.

    Every participant and staff route starts here: service and operator tokens are refused
    (a route that serves a service says so with `require_service`), and so is a person of
    another network.
    """
    if principal.is_service:
        raise forbidden(SERVICE_REFUSED)
    if principal.is_operator:
        raise forbidden(OPERATOR_REFUSED)
    if principal.network_id != network_id:
        raise forbidden("Your token does not give access to this network.")


def require_service(principal: Principal, network_id: str | None, *services: str) -> None:
    """403 unless the caller is one of these internal services, for this network."""
    if not principal.is_service or (principal.service or principal.subject) not in services:
        raise forbidden(f"Only the {' or '.join(services)} service calls this route.")
    if network_id is not None and principal.network_id != network_id:
        raise forbidden("Your token does not give access to this network.")


def require_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise forbidden("Only the platform operator creates networks.")
