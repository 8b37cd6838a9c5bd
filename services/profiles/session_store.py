"""Persistence of sign-in: sessions, their rotating refresh tokens, email sign-in links,
sign-in rate limits and used OIDC nonces.

Secrets (refresh tokens, link tokens) are stored only as SHA-256 hashes: a copy of the
database signs nobody in. Every one-time step is a single conditional write (`used_at: None`
-> now), so two concurrent uses of one token cannot both succeed.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, DuplicateKeyError

from shared.db import update_and_read
from shared.events import CloudEvent
from shared.messaging.outbox import WITHOUT_OUTBOX, stage_insert

SESSIONS, REFRESH_TOKENS, SIGN_IN_LINKS = "sessions", "refresh_tokens", "sign_in_links"
SIGN_IN_LIMITS, OIDC_NONCES = "sign_in_limits", "oidc_nonces"
OUTBOX_COLLECTIONS = (SIGN_IN_LINKS,)
_DAY = 24 * 3600
TTL_INDEXES = (
    (SESSIONS, "expires_at", _DAY),
    (REFRESH_TOKENS, "issued_at", 30 * _DAY),
    (SIGN_IN_LINKS, "expires_at", 7 * _DAY),
    (SIGN_IN_LIMITS, "expires_at", 0),
    (OIDC_NONCES, "at", _DAY),
)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_indexes(db: AsyncDatabase) -> None:
    """Every collection exists from the start: a sign-in never waits on (or races) the store
    creating one on its first write."""
    await db[REFRESH_TOKENS].create_index([("session_id", ASCENDING)])
    await db[SESSIONS].create_index([("network_id", ASCENDING), ("person_id", ASCENDING)])
    # What sign-in leaves behind is removed by the store itself (TTL indexes), each kept a
    # while past its use: a used refresh token as long as its session could live (its reuse
    # revokes the session), a link long after it expired because its SignInLinkRequested rides
    # in it until the outbox relay has swept it, a nonce longer than any ID token lives.
    for collection, field, keep in TTL_INDEXES:
        await db[collection].create_index([(field, ASCENDING)], expireAfterSeconds=keep,
                                          name=f"{field}_ttl")


REUSED = "refresh token reused"


class Reused(Exception):
    """A refresh token that was already exchanged came back: the session is revoked."""


class SessionStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._sessions, self._tokens = db[SESSIONS], db[REFRESH_TOKENS]
        self._links, self._limits, self._nonces = (
            db[SIGN_IN_LINKS], db[SIGN_IN_LIMITS], db[OIDC_NONCES])

    # ------------------------------------------------------------ sessions

    async def open(self, network_id: str, person_id: str, method: str, now: datetime,
                   ttl: timedelta) -> tuple[dict[str, Any], str]:
        """A new session and its first refresh token."""
        session = {"_id": f"ses-{uuid.uuid4().hex}", "network_id": network_id,
                   "person_id": person_id, "method": method, "created_at": now,
                   "expires_at": now + ttl, "revoked_at": None, "revoked_reason": None}
        await self._sessions.insert_one(session)
        return session, await self._new_refresh(session["_id"], now)

    async def _new_refresh(self, session_id: str, now: datetime) -> str:
        token = new_secret()
        await self._tokens.insert_one({"_id": digest(token), "session_id": session_id,
                                       "issued_at": now, "used_at": None})
        return token

    async def rotate(self, refresh_token: str, now: datetime) -> tuple[dict[str, Any], str] | None:
        """Exchange a refresh token for a new one. None when the token is unknown, or its
        session is revoked or expired; Reused (and the session revoked) when it was already
        exchanged: someone holds a copy.

        The session is checked before the token is claimed, so of several racing exchanges
        the one that claims it gets through even when the others, arriving a moment later
        as reuses, revoke the session before it finishes: the first exchange wins and the
        session ends with the second, whatever order the store answers in."""
        key = digest(refresh_token)
        seen = await self._tokens.find_one({"_id": key})
        if seen is None:
            return None
        if seen["used_at"] is not None:
            await self._reused(seen["session_id"], now)
        session = await self.live(seen["session_id"], now)
        if session is None:
            if await self._tokens.find_one({"_id": key, "used_at": {"$ne": None}}):
                await self._reused(seen["session_id"], now)  # claimed by a racer meanwhile
            return None
        claimed = await self._tokens.update_one({"_id": key, "used_at": None},
                                                {"$set": {"used_at": now}})
        if claimed.matched_count == 0:
            await self._reused(seen["session_id"], now)
        if await self._ended_otherwise(session["_id"]):
            return None
        return session, await self._new_refresh(session["_id"], now)

    async def _reused(self, session_id: str, now: datetime) -> None:
        await self.revoke(session_id, now, REUSED)
        raise Reused(session_id)

    async def _ended_otherwise(self, session_id: str) -> bool:
        """Whether the session was ended between its check and the claim for a reason other
        than this very token's reuse (a sign-out, a removed person)."""
        found = await self._sessions.find_one({"_id": session_id}, {"revoked_reason": 1})
        return found is None or found.get("revoked_reason") not in (None, REUSED)

    async def live(self, session_id: str, now: datetime) -> dict[str, Any] | None:
        session = await self._sessions.find_one({"_id": session_id})
        if session is None or session["revoked_at"] is not None:
            return None
        expires = session["expires_at"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=now.tzinfo)
        return session if expires > now else None

    async def session_of(self, refresh_token: str) -> str | None:
        found = await self._tokens.find_one({"_id": digest(refresh_token)})
        return found["session_id"] if found else None

    async def revoke(self, session_id: str, now: datetime, reason: str) -> None:
        await self._sessions.update_one({"_id": session_id, "revoked_at": None},
                                        {"$set": {"revoked_at": now, "revoked_reason": reason}})

    # ------------------------------------------------------------ email sign-in links

    async def add_link(self, token: str, network_id: str, person_id: str, now: datetime,
                       expires_at: datetime, events: list[CloudEvent]) -> None:
        await self._links.insert_one(stage_insert(
            {"_id": digest(token), "network_id": network_id, "person_id": person_id,
             "created_at": now, "expires_at": expires_at, "used_at": None}, events))

    async def use_link(self, token: str, now: datetime) -> dict[str, Any] | None:
        """Spend a link once: None when unknown, used or expired."""
        found = await update_and_read(
            self._links, {"_id": digest(token), "used_at": None}, {"$set": {"used_at": now}},
            WITHOUT_OUTBOX)
        if found is None:
            return None
        expires = found["expires_at"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=now.tzinfo)
        return found if expires > now else None

    # ------------------------------------------------------------ limits and nonces

    async def count(self, bucket: str, now: datetime, window: timedelta) -> tuple[int, datetime]:
        """Count one more attempt in the bucket's current window: (attempts so far, when the
        window ends)."""
        seconds = int(window.total_seconds())
        start = int(now.timestamp()) // seconds * seconds
        ends = datetime.fromtimestamp(start + seconds, tz=now.tzinfo)
        key = {"_id": f"{bucket}@{start}"}
        # An update and a read by id, not a findAndModify (a scan of the whole collection on
        # the embedded store, see `shared.db.update_and_read`); the count read may include a
        # concurrent attempt too, which only errs on the side of the limit.
        for _ in range(2):  # an upsert racing another creates it once; the loser retries
            try:
                await self._limits.update_one(
                    key, {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": ends}}, upsert=True)
            except DuplicateKeyError:
                continue
            doc = await self._limits.find_one(key)
            return int((doc or {}).get("count", 1)), ends
        return 1 << 30, ends

    async def first_use_of_nonce(self, issuer: str, nonce: str, now: datetime) -> bool:
        """An ID token's nonce is spent once: a replayed ID token is refused.

        A connection dropped mid-write is retried once; the claim id tells our own earlier
        write (it landed before the drop) from someone else's use of the nonce."""
        claim = uuid.uuid4().hex
        document = {"_id": digest(f"{issuer} {nonce}"), "at": now, "claim": claim}
        for attempt in range(2):
            try:
                await self._nonces.insert_one(document)
                return True
            except DuplicateKeyError:
                stored = await self._nonces.find_one({"_id": document["_id"]})
                return stored is not None and stored.get("claim") == claim
            except AutoReconnect:
                if attempt:
                    raise
        return False
