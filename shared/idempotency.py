"""Safe retries and all-or-nothing requests: `Idempotency-Key` and request transactions.

A client whose answer was lost (a dropped connection, a 5xx from a proxy, an instance killed
mid-request) cannot know whether its create happened. Retrying blindly doubles it; not retrying
may lose it. With an `Idempotency-Key` header on a write (any unique string of the client's,
a UUID is usual) the retry is safe:

- the first request with a key claims a record (the caller, the key and a hash of the method,
  path and body) and runs in one MongoDB transaction that also stores its answer in the
  record, so "the change happened" and "its answer is kept" are one commit;
- a retry with the same key and body gets that first answer again (header
  `Idempotent-Replayed: true`) and changes nothing;
- the same key with a different request is refused (422), and a retry while the first is
  still running gets 409 with `Retry-After`;
- only 2xx answers are kept, and only they commit: after a 4xx or a 5xx nothing was changed
  (the transaction did not commit), and the client may fix the request and use the key again.

The caller is the verified subject of the bearer token, so one client's key never reaches
another's answer; a request without a valid token is not handled here (the route says 401).
Records expire after IDEMPOTENCY_RETENTION_HOURS (24).

A service can also ask for every write request to run in one transaction, key or not
(`ServiceDefinition.atomic_writes`): profiles does, so a change and its audit entry commit
together and an answer is sent only once both are stored. An endpoint that must not be one
transaction (a bulk import writing thousands of documents in pipelined batches, idempotent by
itself) is marked `@outside_transaction`; with a key it still gets its answer kept and
replayed, without the transaction.

Routes need nothing: their stores get a database handle bound to the request's session
(`shared.service.get_db`), and PyMongo's bound session (`session.bind()`) carries every
operation of the request into the transaction. Write conflicts (two transactions touching the
same document) run the request again, within IDEMPOTENCY_RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import ASCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from starlette.datastructures import Headers
from fastapi.routing import iter_route_contexts
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger
from shared.limits import LARGEST_BODY_BYTES
from shared.settings import ServiceSettings

log = get_logger(__name__)

RECORDS = "idempotency_keys"
HEADER = "idempotency-key"
REPLAYED = b"idempotent-replayed"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
# Headers of a kept answer that describe the exchange, not the answer.
NOT_KEPT = frozenset({b"date", b"server", b"x-correlation-id"})

F = TypeVar("F", bound=Callable[..., Any])


def outside_transaction(endpoint: F) -> F:
    """Mark an endpoint whose writes must not be one transaction (too large, pipelined)."""
    endpoint.__outside_transaction__ = True  # type: ignore[attr-defined]
    return endpoint


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[RECORDS].create_index([("expires_at", ASCENDING)], name="retention",
                                   expireAfterSeconds=0)


# ---------------------------------------------------------------- answers


@dataclass
class Answer:
    """A complete HTTP answer, held back until the transaction behind it has committed."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def error(cls, status: int, detail: str, extra: dict[str, str] | None = None) -> Answer:
        import json

        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
        return cls(status, headers, body)

    async def send(self, send: Send, *, replayed: bool = False) -> None:
        headers = list(self.headers) + ([(REPLAYED, b"true")] if replayed else [])
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def _run(app: ASGIApp, scope: Scope, body: bytes, receive: Receive) -> Answer:
    """Run the app on a request whose body was read already; collect its answer."""
    delivered = False

    async def replay_body() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the client's disconnect, if it comes

    answer = Answer(500)
    limit: list[Any] = []

    async def collect(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            # The route's body limit leaves the scope when the route returns; the answer goes
            # out later, and a 413 names the limit (shared/limits.py): keep it for then.
            limit.append(scope.get(MAX_BODY_SIZE_SCOPE_KEY))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, replay_body, collect)
    if answer.status == 413 and limit and limit[0] is not None:
        scope[MAX_BODY_SIZE_SCOPE_KEY] = limit[0]
    return answer


class BodyTooLarge(Exception):
    """More than any route of the platform accepts."""


async def _read_body(receive: Receive, limit: int = LARGEST_BODY_BYTES) -> bytes | None:
    """The whole request body; None when the client went away first. The routes' own limits
    apply after routing, which comes after this: past the largest of them, stop reading."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


# ---------------------------------------------------------------- records


@dataclass
class Claim:
    record_id: str
    owner: str
    request: tuple[str, str, str, str]  # caller, key, fingerprint, what: to claim it again


@dataclass
class Refusal:
    answer: Answer
    replayed: bool = False


class Records:
    """The kept answers of one service, one document per (caller, key)."""

    def __init__(self, db: AsyncDatabase, settings: ServiceSettings) -> None:
        self._records = db[RECORDS]
        self._claim = timedelta(seconds=settings.idempotency_claim_seconds)
        self._retention = timedelta(hours=settings.idempotency_retention_hours)

    @staticmethod
    def record_id(caller: str, key: str) -> str:
        return hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()

    async def claim(self, caller: str, key: str, fingerprint: str, what: str) -> Claim | Refusal:
        """Claim the key for this request, or the reason not to run it (a kept answer, a
        different request under the same key, the first try still running)."""
        record_id = self.record_id(caller, key)
        owner = os.urandom(8).hex()
        for _ in range(5):
            now = datetime.now(UTC)
            try:
                await self._records.insert_one({
                    "_id": record_id, "caller": caller, "key": key, "request": what,
                    "fingerprint": fingerprint, "state": "pending", "owner": owner,
                    "claimed_until": now + self._claim, "created_at": now,
                    "expires_at": now + self._retention,
                })
                return Claim(record_id, owner, (caller, key, fingerprint, what))
            except DuplicateKeyError:
                pass
            found = await self._records.find_one({"_id": record_id})
            if found is None:
                continue  # released or expired meanwhile: claim it again
            if found["fingerprint"] != fingerprint:
                return Refusal(Answer.error(
                    422, f"This Idempotency-Key was already used for a different request "
                    f"({found.get('request', 'another request')}); use a new key for a new "
                    "request."))
            if found["state"] == "done":
                return Refusal(Answer(found["status"], [(bytes(k), bytes(v)) for k, v in
                                                        found["headers"]], bytes(found["body"])),
                               replayed=True)
            if found["claimed_until"] > now:
                wait = max(1, int((found["claimed_until"] - now).total_seconds() + 0.999))
                return Refusal(Answer.error(
                    409, "A request with this Idempotency-Key is in progress; retry in a "
                    "moment with the same key to get its answer.", {"Retry-After": str(wait)}))
            taken = await self._records.update_one(
                {"_id": record_id, "state": "pending", "owner": found["owner"]},
                {"$set": {"owner": owner, "claimed_until": now + self._claim}},
            )
            if taken.matched_count == 1:  # its first try died without an answer: run it again
                return Claim(record_id, owner, (caller, key, fingerprint, what))
        return Refusal(Answer.error(409, "A request with this Idempotency-Key is in progress; "
                                         "retry in a moment with the same key.",
                                    {"Retry-After": "1"}))

    async def keep(self, db: AsyncDatabase, claim: Claim, answer: Answer) -> bool:
        """Store the answer (in the request's transaction when there is one); False when the
        claim was taken over meanwhile (then this try must not commit)."""
        done = await db[RECORDS].update_one(
            {"_id": claim.record_id, "state": "pending", "owner": claim.owner},
            {"$set": {"state": "done", "status": answer.status,
                      "headers": [[k, v] for k, v in answer.headers if k not in NOT_KEPT],
                      "body": answer.body, "completed_at": datetime.now(UTC)},
             "$unset": {"claimed_until": ""}},
        )
        return done.matched_count == 1

    async def release(self, db: AsyncDatabase, claim: Claim) -> None:
        """Forget the claim: the request ended without an answer worth keeping."""
        await db[RECORDS].delete_one(
            {"_id": claim.record_id, "owner": claim.owner, "state": "pending"})


# ---------------------------------------------------------------- the middleware


class _ClaimLost(Exception):
    """Another try of the same key took the claim over: this one must not commit."""


class _OutcomeUnknown(Exception):
    """Committed, but the store went away before the commit was known to be durable."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


def _commit_unknown(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label("UnknownTransactionCommitResult")


class IdempotentRequests:
    """ASGI middleware: keyed writes answered once, and (for services that ask) every write
    request in one transaction. See the module docstring."""

    def __init__(self, app: ASGIApp, *, settings: ServiceSettings, atomic_writes: bool) -> None:
        self.app = app
        self._settings = settings
        self._atomic_writes = atomic_writes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        transactional = not _outside_transaction(app, scope)
        caller = _caller(app, headers) if key is not None else None
        if caller is None:
            key = None  # no verified caller, no kept answer: the route answers as it would
        if key is None and not (self._atomic_writes and transactional):
            await self.app(scope, receive, send)
            return
        if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
            await Answer.error(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable "
                                    "characters (a UUID is usual).").send(send)
            return
        try:
            body = await _read_body(receive)
        except BodyTooLarge:
            await Answer.error(413, f"The request body is larger than {LARGEST_BODY_BYTES:,} "
                                    "bytes, more than any request of this platform takes.").send(send)
            return
        if body is None:
            return
        records = Records(app.state.db, self._settings)
        claim = None
        if key is not None:
            what = f"{scope['method']} {scope['path']}"
            fingerprint = hashlib.sha256(
                b"\n".join([what.encode(), scope.get("query_string", b""), body])).hexdigest()
            try:
                claimed = await records.claim(caller, key, fingerprint, what)
            except ConnectionFailure as exc:
                await _unavailable(exc, outcome_unknown=False).send(send)
                return
            if isinstance(claimed, Refusal):
                await claimed.answer.send(send, replayed=claimed.replayed)
                return
            claim = claimed
        if transactional:
            answer, replayed = await self._in_transaction(scope, body, receive, records, claim)
        else:
            answer, replayed = await self._kept(scope, body, receive, records, claim)
        await answer.send(send, replayed=replayed)
        if answer.status < 400 and hasattr(app.state, "relay"):
            app.state.relay.wake()  # its events are committed now: let them leave at once

    async def _kept(self, scope: Scope, body: bytes, receive: Receive, records: Records,
                    claim: Claim | None) -> tuple[Answer, bool]:
        """Run without a transaction (the endpoint is idempotent by itself), keep a 2xx."""
        db = scope["app"].state.db
        try:
            answer = await _run(self.app, scope, body, receive)
        except BaseException:
            if claim is not None:
                await _quietly(records.release(db, claim))
            raise
        if claim is not None:
            try:
                if 200 <= answer.status < 300:
                    await records.keep(db, claim, answer)
                else:
                    await records.release(db, claim)
            except PyMongoError as exc:
                log.warning("idempotency.not_kept", error=repr(exc))
        return answer, False

    async def _in_transaction(self, scope: Scope, body: bytes, receive: Receive,
                              records: Records, claim: Claim | None) -> tuple[Answer, bool]:
        """Run the request in one transaction, again after a write conflict; the answer is
        kept (or the claim released) in the same transaction."""
        app = scope["app"]
        base: AsyncDatabase = app.state.db
        # Inside a transaction the write concern belongs to the commit, not to each operation
        # (the embedded URI sets journal=true on every write, which MongoDB refuses there).
        db = base.with_options(write_concern=WriteConcern())
        deadline = time.monotonic() + self._settings.idempotency_retry_seconds
        backoff = 0.02
        while True:
            try:
                answer = await self._attempt(scope, body, receive, db, records, claim)
                return answer, False
            except _ClaimLost:
                reason = "claim lost"  # another try of the key finished or took over: see below
            except _OutcomeUnknown as exc:
                return _unavailable(exc.__cause__ or exc, outcome_unknown=True), False
            except (ConnectionFailure, OperationFailure) as exc:
                unknown = _commit_unknown(exc)
                transient = _transient(exc) and not unknown
                if not (transient or unknown or isinstance(exc, ConnectionFailure)):
                    raise  # the route's own error (an unexpected duplicate...): a plain 500
                if not transient or time.monotonic() > deadline:
                    if claim is not None and not unknown:
                        await _quietly(records.release(base, claim))
                    return _unavailable(exc, outcome_unknown=unknown), False
                reason = repr(exc)
            log.info("request.transaction_retried", path=scope["path"], reason=reason)
            if claim is not None:
                # The other try may have finished: then its answer is ours.
                try:
                    again = await records.claim(*claim.request)
                except PyMongoError as exc:
                    return _unavailable(exc, outcome_unknown=False), False
                if isinstance(again, Refusal):
                    return again.answer, again.replayed
                claim = again
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    async def _attempt(self, scope: Scope, body: bytes, receive: Receive, db: AsyncDatabase,
                       records: Records, claim: Claim | None) -> Answer:
        client = db.client
        async with client.start_session() as session:
            async with session.bind():
                await session.start_transaction()
                try:
                    scope.setdefault("state", {})["db"] = db
                    answer = await _run(self.app, scope, body, receive)
                    if answer.status >= 400:
                        # An error answer changes nothing. (A duplicate key the route turned
                        # into a 409 has aborted the transaction anyway: MongoDB ends a
                        # transaction at its first error.)
                        await session.abort_transaction()
                        if claim is not None:
                            await _quietly(records.release(scope["app"].state.db, claim))
                        return answer
                    if claim is not None and not await records.keep(db, claim, answer):
                        raise _ClaimLost
                    await _commit(session, self._settings.idempotency_retry_seconds)
                    await _journal(scope["app"].state.db)
                    return answer
                except BaseException:
                    if session.in_transaction:
                        await _quietly(session.abort_transaction())
                    raise
                finally:
                    scope["state"].pop("db", None)


async def _commit(session: Any, budget: float) -> None:
    """Commit; a commit whose outcome is unknown (the connection dropped) is sent again, which
    the server answers with the outcome it had."""
    deadline = time.monotonic() + budget
    while True:
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if not _commit_unknown(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


JOURNAL = "commit_journal"


async def _journal(db: AsyncDatabase) -> None:
    """Make a committed transaction durable before it is answered, where the commit alone is not.

    When the client asks for journaled writes (`journal=true` in the URI, as the embedded
    SecantusDB does), one small journaled write after the commit flushes the write-ahead log,
    and with it the commit before it: SecantusDB commits a transaction without syncing its log
    whatever the write concern, and lost a few acknowledged commits to each `kill -9` in our
    tests (none with this write). MongoDB honours the write concern at commit; without `j` in
    the URI nothing is written here.
    """
    if not db.write_concern.document.get("j"):
        return
    slot = int.from_bytes(os.urandom(1)) % 16  # spread the writes: no hot document
    try:
        try:
            await db[JOURNAL].update_one({"_id": slot}, {"$inc": {"commits": 1}}, upsert=True)
        except DuplicateKeyError:  # two first writes to the slot raced: it exists now
            await db[JOURNAL].update_one({"_id": slot}, {"$inc": {"commits": 1}})
    except PyMongoError as exc:
        raise _OutcomeUnknown from exc


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except PyMongoError as exc:
        log.debug("idempotency.cleanup_failed", error=repr(exc))


def _unavailable(exc: BaseException, *, outcome_unknown: bool) -> Answer:
    log.warning("request.database_unavailable", error=repr(exc), outcome_unknown=outcome_unknown)
    if outcome_unknown:
        detail = ("The database stopped answering while saving this request: it may or may "
                  "not have been saved. Retry with the same Idempotency-Key to find out.")
    elif _transient(exc):
        detail = ("The data this request changes was busy with other writes; nothing was "
                  "changed. Retry in a moment.")
    else:
        detail = "The database is unavailable; nothing was changed. Retry in a moment."
    return Answer.error(503, detail, {"Retry-After": "1"})


def _caller(app: Any, headers: Headers) -> str | None:
    """Who asks: the verified subject of the bearer token, or None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    verifier = getattr(app.state, "token_verifier", None)
    if scheme.lower() != "bearer" or not token or verifier is None:
        return None
    try:
        principal = verifier.verify(token.strip())
    except Exception:  # an invalid token: the route will say 401
        return None
    return f"{getattr(principal, 'network_id', '')}/{principal.subject}"


def _outside_transaction(app: Any, scope: Scope) -> bool:
    """Is the request for an endpoint marked `@outside_transaction`? Decided before routing,
    from the app's routes as FastAPI reports them (included routers flattened: a router
    included with options is kept as one nested route, whose match names no endpoint)."""
    marked = getattr(app.state, "outside_transaction_routes", None)
    if marked is None:
        marked = [(compile_path(rc.path)[0], frozenset(rc.methods or ()))
                  for rc in iter_route_contexts(app.router.routes)
                  if getattr(getattr(rc, "endpoint", None), "__outside_transaction__", False)]
        app.state.outside_transaction_routes = marked
    path = scope.get("path", "")
    return any(scope["method"] in methods and regex.match(path) for regex, methods in marked)


__all__ = ["IdempotentRequests", "Records", "ensure_indexes", "outside_transaction"]
