"""Profiles' sign-in HTTP API, called server to server by the web app (browsers never hold
the platform's tokens). The contract, and the sign-in sequence: docs/access-model.md.

Every answer that signs someone in is the same `Tokens` body. Refusals say what to do next
and never whether an email exists: the email-link request answers 202 alike for everyone, and
its rate limits (per email, per client address) apply to existing and unknown emails alike.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.profiles.domain import SOURCE, normalise_email
from services.profiles.identity_settings import IdentitySettings, identity_settings
from services.profiles.identity_store import IdentityStore
from services.profiles.oidc import InvalidIdToken, ProviderUnavailable, verify_id_token
from services.profiles.organisation import _now
from services.profiles.session_store import new_secret
from services.profiles.sign_in import SessionRefused, SignIn, Tokens, token_issuer
from shared.events import new_event
from shared.events.schemas import SignInLinkRequested
from shared.idempotency import outside_transaction
from shared.service import Database, Relay

# Outside the request transaction: each write here is one atomic document (a nonce, a link,
# a session), some answer 401 after writing (a reused refresh token revokes its session),
# and a duplicate key is an answer, not an error; a transaction would undo or abort them.
router = APIRouter(tags=["sign-in"])

Id = Annotated[str, Field(min_length=1, max_length=100)]
Secret = Annotated[str, Field(min_length=16, max_length=4096)]
LIMIT_WINDOW = timedelta(minutes=15)
LINK_SENT = ("If this email belongs to someone in the network, a sign-in link is on its way. "
             "It works once, within 15 minutes.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OidcSessionIn(_In):
    network_id: Id
    id_token: Secret
    nonce: Annotated[str, Field(min_length=8, max_length=512)]


class EmailLinkIn(_In):
    network_id: Id
    email: EmailStr


class LinkSessionIn(_In):
    token: Secret


class LocalSessionIn(_In):
    network_id: Id
    person_id: Id


class RefreshIn(_In):
    refresh_token: Secret


class SignInOptions(BaseModel):
    oidc: bool
    email_link: bool
    local: bool


class LocalPerson(BaseModel):
    person_id: str
    display_name: str
    email: str
    institution_id: str | None = None
    roles: list[str] = []
    grants: list[dict[str, str]] = []


async def sign_in_service(request: Request, db: Database) -> SignIn:
    return SignIn(db, token_issuer(request), identity_settings())


Service = Annotated[SignIn, Depends(sign_in_service)]
Settings = Annotated[IdentitySettings, Depends(identity_settings)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message)


def _refused(reason: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "reason": reason}, status_code=403)


def client_address(request: Request, trusted: list[str]) -> str:
    """The caller's address: the peer, or, when the peer is a trusted proxy (the web app),
    the nearest untrusted address its X-Forwarded-For names."""
    peer = request.client.host if request.client else "unknown"
    if peer not in trusted:
        return peer
    for hop in reversed(request.headers.get("x-forwarded-for", "").split(",")):
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            continue
        if hop not in trusted:
            return hop
    return peer


@router.get("/networks/{network_id}/sign-in-options", response_model=SignInOptions)
async def sign_in_options(network_id: str, settings: Settings, db: Database) -> SignInOptions:
    """How people of this network can sign in (public: the sign-in page asks first)."""
    if await IdentityStore(db).network(network_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such network.")
    return SignInOptions(oidc=network_id in settings.oidc_providers, email_link=True,
                         local=settings.local_sign_in)


@router.post("/auth/oidc/session", response_model=Tokens,
             responses={401: {}, 403: {"description": "unknown_person or wrong_network"}})
@outside_transaction
async def oidc_session(body: OidcSessionIn, service: Service, settings: Settings) -> Any:
    """Exchange the network IdP's ID token (and the nonce the web generated) for a session."""
    provider = settings.oidc_providers.get(body.network_id)
    if provider is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            "This network does not sign in with an identity provider.")
    try:
        identity = await verify_id_token(body.id_token, body.nonce, provider,
                                         settings.oidc_leeway_seconds)
    except InvalidIdToken as exc:
        raise _unauthorized(str(exc)) from exc
    except ProviderUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    if not await service.sessions.first_use_of_nonce(identity.issuer, body.nonce, _now()):
        raise _unauthorized("This ID token was already used to sign in; start again.")
    found = await service.people.by_email(body.network_id, identity.email)
    if not found:
        elsewhere = [n for n in await service.people.networks_of_email(identity.email)
                     if n != body.network_id]
        if elsewhere:
            return _refused("wrong_network", f"{identity.email} is not registered in this "
                            "network; sign in at the network you belong to.")
        return _refused("unknown_person", f"{identity.email} is not registered in this network; "
                        "ask your program coordinator to add you.")
    return await service.start(body.network_id, found[0], "oidc")


@router.post("/auth/email-link", status_code=status.HTTP_202_ACCEPTED)
@outside_transaction
async def request_email_link(body: EmailLinkIn, request: Request, service: Service,
                             settings: Settings, relay: Relay) -> Any:
    """Send a one-time sign-in link to the email, if it is someone's in the network."""
    now = _now()
    email = normalise_email(str(body.email))
    sessions = service.sessions
    for bucket, limit in ((f"email:{body.network_id}:{email}", settings.email_link_per_email),
                          (f"ip:{client_address(request, settings.trusted_proxies)}",
                           settings.email_link_per_ip)):
        count, ends = await sessions.count(bucket, now, LIMIT_WINDOW)
        if count > limit:
            wait = max(1, math.ceil((ends - now).total_seconds()))
            return JSONResponse(
                {"detail": f"Too many sign-in links asked for; try again in {wait // 60 + 1} "
                           "minutes."},
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
    found = await service.people.by_email(body.network_id, email)
    if found:
        person = found[0]
        token = new_secret()
        expires = now + timedelta(minutes=settings.email_link_minutes)
        payload = SignInLinkRequested(
            person_id=person["_id"], network_id=body.network_id, email=email,
            display_name=person.get("display_name"),
            link_url=f"{settings.app_url.rstrip('/')}/sign-in/email?token={quote(token)}",
            expires_at=expires, requested_at=now,
        )
        event = new_event(payload, subject=person["_id"], tenant_id=body.network_id,
                          source=SOURCE)
        await sessions.add_link(token, body.network_id, person["_id"], now, expires, [event])
        relay.wake()
    return {"detail": LINK_SENT}


@router.post("/auth/email-link/session", response_model=Tokens)
@outside_transaction
async def email_link_session(body: LinkSessionIn, service: Service) -> Tokens:
    """Spend an email sign-in link (once, within its 15 minutes) for a session."""
    link = await service.sessions.use_link(body.token, _now())
    person = await service.people.person(link["network_id"], link["person_id"]) if link else None
    if link is None or person is None:
        raise _unauthorized("This sign-in link is not valid: it was used already, has expired, "
                            "or was cut short. Ask for a new one.")
    return await service.start(link["network_id"], person, "email_link")


def _local_only(settings: IdentitySettings) -> None:
    if not settings.local_sign_in:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")


@router.post("/auth/local/session", response_model=Tokens)
@outside_transaction
async def local_session(body: LocalSessionIn, service: Service, settings: Settings) -> Tokens:
    """Act as a person of the network (the embedded default only: LOCAL_SIGN_IN)."""
    _local_only(settings)
    person = await service.people.person(body.network_id, body.person_id)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such person in this network.")
    return await service.start(body.network_id, person, "local")


@router.get("/auth/local/people", response_model=list[LocalPerson])
async def local_people(
    service: Service, settings: Settings,
    network_id: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[LocalPerson]:
    """Who one may act as with local sign-in (same setting), staff first."""
    _local_only(settings)
    people = await service.people.local_people(network_id, limit)
    grants_of = await service.grants_of_each(network_id, people)
    out = []
    for p in people:
        grants = grants_of[p["_id"]]
        out.append(LocalPerson(person_id=p["_id"], display_name=p.get("display_name") or "",
                               email=p.get("email") or "", institution_id=p.get("institution_id"),
                               roles=p.get("roles") or [], grants=[g.claim() for g in grants]))
    return out


@router.post("/auth/refresh", response_model=Tokens)
@outside_transaction
async def refresh(body: RefreshIn, service: Service) -> Tokens:
    """New tokens for a refresh token, which is spent: the answer carries its successor."""
    try:
        return await service.refresh(body.refresh_token)
    except SessionRefused as exc:
        raise _unauthorized(str(exc)) from exc


@router.post("/auth/sign-out", status_code=status.HTTP_204_NO_CONTENT)
@outside_transaction
async def sign_out(body: RefreshIn, service: Service) -> Response:
    """End the session the refresh token belongs to (its access tokens lapse within minutes)."""
    await service.sign_out(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

