"""Sign-in use cases: find the person, open a session, issue and refresh tokens, sign out.

Whatever proved who the caller is (the network's IdP, an email link, local sign-in), the end
is the same: a session of one person in one network, an access token naming the person and
the grants they hold now, and a refresh token that is exchanged on every use. Grants are read
again at every refresh, so a revoked grant is gone from the next token: it lives at most
ACCESS_TOKEN_TTL_SECONDS (5 minutes by default) in tokens issued before the revocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from services.profiles.identity_settings import IdentitySettings, identity_settings
from services.profiles.identity_store import IdentityStore
from services.profiles.organisation import _now
from services.profiles.session_store import Reused, SessionStore
from shared.auth import Grant, Kind, TokenIssuer, signing_key


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"
    person_id: str
    network_id: str


class SessionRefused(Exception):
    """The refresh token does not open a session (unknown, used, expired or revoked)."""


def token_issuer(request: Request) -> TokenIssuer:
    """The platform's issuer, made once per process from the configured signing key."""
    issuer = getattr(request.app.state, "token_issuer", None)
    if issuer is None:
        settings = request.app.state.settings
        issuer = TokenIssuer(signing_key(settings), issuer=settings.jwt_issuer,
                             audience=settings.jwt_audience,
                             ttl_seconds=identity_settings().access_token_ttl_seconds)
        request.app.state.token_issuer = issuer
    return issuer


@dataclass
class SignIn:
    db: AsyncDatabase
    issuer: TokenIssuer
    settings: IdentitySettings

    @property
    def people(self) -> IdentityStore:
        return IdentityStore(self.db)

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(self.db)

    async def grants_of(self, network_id: str, person: dict[str, Any]) -> list[Grant]:
        """The person's active grants, counting those held under the same email as a staff
        member or a participant (one human, two records)."""
        ids = [person["_id"]]
        if person.get("email"):
            ids += [p["_id"] for p in await self.people.by_email(network_id, person["email"])]
        records = await self.people.active_grants(network_id, list(dict.fromkeys(ids)))
        return list(dict.fromkeys(r.grant for r in records))

    async def grants_of_each(self, network_id: str,
                             people: list[dict[str, Any]]) -> dict[str, list[Grant]]:
        """`grants_of` for a whole list with two queries instead of two per person: a
        network's staff grants are few, so all of them are read with their holders' emails."""
        active = await self.people.grants(network_id, person_id=None, limit=100_000, after=None)
        emails: dict[str, str | None] = {}
        for holder in dict.fromkeys(r.person_id for r in active):
            found = await self.people.person(network_id, holder)
            emails[holder] = (found or {}).get("email")
        each: dict[str, list[Grant]] = {}
        for person in people:
            email = person.get("email")
            held = [r.grant for r in active
                    if r.person_id == person["_id"] or (email and emails.get(r.person_id) == email)]
            each[person["_id"]] = list(dict.fromkeys(held))
        return each

    async def _tokens(self, session: dict[str, Any], person: dict[str, Any],
                      refresh_token: str) -> Tokens:
        grants = await self.grants_of(session["network_id"], person)
        access = self.issuer.issue(kind=Kind.PERSON, network_id=session["network_id"],
                                   person_id=person["_id"], grants=grants,
                                   session_id=session["_id"])
        return Tokens(access_token=access, refresh_token=refresh_token,
                      expires_in=self.issuer.ttl_seconds, person_id=person["_id"],
                      network_id=session["network_id"])

    async def start(self, network_id: str, person: dict[str, Any], method: str) -> Tokens:
        ttl = timedelta(hours=self.settings.session_ttl_hours)
        session, refresh = await self.sessions.open(network_id, person["_id"], method, _now(), ttl)
        return await self._tokens(session, person, refresh)

    async def refresh(self, refresh_token: str) -> Tokens:
        now = _now()
        try:
            rotated = await self.sessions.rotate(refresh_token, now)
        except Reused as exc:
            raise SessionRefused(
                "This refresh token was already used, so a copy of it exists somewhere: the "
                "session is now closed for safety. Sign in again.") from exc
        if rotated is None:
            raise SessionRefused("This session has ended (signed out, expired or unknown); "
                                 "sign in again.")
        session, new_refresh = rotated
        person = await self.people.person(session["network_id"], session["person_id"])
        if person is None:  # erased since: the session ends with them
            await self.sessions.revoke(session["_id"], now, "person gone")
            raise SessionRefused("This person is no longer part of the network.")
        return await self._tokens(session, person, new_refresh)

    async def sign_out(self, refresh_token: str) -> None:
        session_id = await self.sessions.session_of(refresh_token)
        if session_id is not None:
            await self.sessions.revoke(session_id, _now(), "signed out")
