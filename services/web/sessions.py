"""Server-side sessions: the browser holds a random id, the tokens stay here.

A session is one document in the web app's own `sessions` collection, keyed by the SHA-256
of the id in the cookie (a copy of the database does not hand out live cookies). It holds the
access and refresh tokens profiles issued at sign-in, the synchronizer token of the session's
forms (CSRF), and a short-lived copy of `GET /me` for the navigation. Sessions are not domain
data: they die with the sign-out, after SESSION_IDLE_HOURS without a request, or when
profiles refuses the refresh token.

The refresh token rotates on every use and a reused one revokes the whole session at
profiles, so two requests of one session must never refresh at the same time: whoever takes
the `refreshing` lease (a conditional update) refreshes, the others wait for its result.

Sign-in attempts through an identity provider (state, nonce, PKCE verifier) live in
`sign_in_attempts` for ten minutes, bound to the browser by a cookie naming the attempt.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.db import update_and_read
from shared.filters import below

SESSIONS = "sessions"
ATTEMPTS = "sign_in_attempts"
ATTEMPT_TTL = timedelta(minutes=10)
REFRESH_LEASE = timedelta(seconds=15)


def now() -> datetime:
    return datetime.now(UTC)


def key_of(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create_indexes(db: AsyncDatabase) -> None:
    # TTL indexes: the store removes what expired (sessions, abandoned sign-in attempts).
    await db[SESSIONS].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    await db[ATTEMPTS].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)


@dataclass
class Session:
    key: str
    csrf: str
    person_id: str
    network_id: str
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    expires_at: datetime
    me: dict[str, Any] | None = None
    me_at: datetime | None = None
    flash: list[str] = field(default_factory=list)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Session:
        return cls(
            key=doc["_id"], csrf=doc["csrf"], person_id=doc["person_id"],
            network_id=doc["network_id"], access_token=doc["access_token"],
            refresh_token=doc["refresh_token"],
            access_expires_at=_aware(doc["access_expires_at"]),
            expires_at=_aware(doc["expires_at"]), me=doc.get("me"),
            me_at=_aware(doc["me_at"]) if doc.get("me_at") else None,
            flash=list(doc.get("flash") or []),
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _token_fields(tokens: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "access_expires_at": at + timedelta(seconds=int(tokens.get("expires_in") or 300)),
    }


class SessionStore:
    def __init__(self, db: AsyncDatabase, idle: timedelta) -> None:
        self._sessions = db[SESSIONS]
        self._attempts = db[ATTEMPTS]
        self._idle = idle

    async def create(self, tokens: dict[str, Any]) -> tuple[str, Session]:
        """A new session for freshly issued tokens; returns the cookie value and the session."""
        session_id = secrets.token_urlsafe(32)
        at = now()
        doc = {
            "_id": key_of(session_id),
            "csrf": secrets.token_urlsafe(32),
            "person_id": tokens["person_id"],
            "network_id": tokens["network_id"],
            "created_at": at,
            "expires_at": at + self._idle,
            **_token_fields(tokens, at),
        }
        await self._sessions.insert_one(doc)
        return session_id, Session.from_document(doc)

    async def load(self, session_id: str | None) -> Session | None:
        """The live session of this cookie, its idle deadline pushed back; None otherwise."""
        if not session_id or len(session_id) > 200:
            return None
        at = now()
        doc = await update_and_read(
            self._sessions, {"_id": key_of(session_id), "expires_at": {"$gt": at}},
            {"$set": {"expires_at": at + self._idle}},
        )
        return Session.from_document(doc) if doc else None

    async def get(self, key: str) -> Session | None:
        doc = await self._sessions.find_one({"_id": key})
        return Session.from_document(doc) if doc else None

    async def take_refresh_lease(self, session: Session) -> bool:
        """True for the one caller that may refresh now (the refresh token is unchanged)."""
        at = now()
        # No lease, or an expired one: one clause (an `$or`, or a findAndModify, would make
        # the embedded store scan every session, see `shared.db.update_and_read`).
        taken = await self._sessions.update_one(
            {"_id": session.key, "refresh_token": session.refresh_token,
             **below("refreshing_until", at)},
            {"$set": {"refreshing_until": at + REFRESH_LEASE}},
        )
        return taken.matched_count == 1

    async def store_tokens(self, session: Session, tokens: dict[str, Any]) -> Session:
        fields = _token_fields(tokens, now())
        await self._sessions.update_one(
            {"_id": session.key}, {"$set": fields, "$unset": {"refreshing_until": ""}}
        )
        for name, value in fields.items():
            setattr(session, name, value)
        return session

    async def remember_me(self, session: Session, me: dict[str, Any] | None) -> None:
        session.me, session.me_at = me, (now() if me is not None else None)
        await self._sessions.update_one(
            {"_id": session.key}, {"$set": {"me": me, "me_at": session.me_at}}
        )

    async def add_flash(self, session: Session, message: str) -> None:
        await self._sessions.update_one({"_id": session.key}, {"$push": {"flash": message}})

    async def pop_flash(self, session: Session) -> list[str]:
        if not session.flash:
            return []
        await self._sessions.update_one({"_id": session.key}, {"$set": {"flash": []}})
        flash, session.flash = session.flash, []
        return flash

    async def delete(self, session: Session) -> None:
        await self._sessions.delete_one({"_id": session.key})

    # ------------------------------------------------------------ sign-in attempts (OIDC)

    async def start_attempt(self, fields: dict[str, Any]) -> str:
        attempt_id = secrets.token_urlsafe(24)
        await self._attempts.insert_one(
            {"_id": key_of(attempt_id), "expires_at": now() + ATTEMPT_TTL, **fields}
        )
        return attempt_id

    async def finish_attempt(self, attempt_id: str | None) -> dict[str, Any] | None:
        """The attempt this browser started (once: it is deleted as it is read)."""
        if not attempt_id or len(attempt_id) > 200:
            return None
        doc = await self._attempts.find_one_and_delete(
            {"_id": key_of(attempt_id), "expires_at": {"$gt": now()}}
        )
        return doc
