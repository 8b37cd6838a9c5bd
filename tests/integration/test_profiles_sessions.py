"""Sign-in's one-time steps on the real document store (SecantusDB): a refresh token and an
email link are spent once, also when two requests race; a link expires; a reused refresh token
ends its session; rate-limit windows count per bucket."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.profiles.session_store import Reused, SessionStore, digest

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(hours=12)


async def test_a_refresh_token_is_exchanged_once_and_its_reuse_ends_the_session(db):
    store = SessionStore(db)
    session, first = await store.open("n", "p1", "local", NOW, TTL)
    assert await db["refresh_tokens"].find_one({"_id": first}) is None  # stored hashed only
    assert await db["refresh_tokens"].find_one({"_id": digest(first)}) is not None
    rotated = await store.rotate(first, NOW + timedelta(minutes=4))
    assert rotated is not None and rotated[0]["_id"] == session["_id"]
    second = rotated[1]
    assert second != first
    with pytest.raises(Reused):  # the stolen copy comes back
        await store.rotate(first, NOW + timedelta(minutes=5))
    assert await store.rotate(second, NOW + timedelta(minutes=6)) is None  # session revoked
    revoked = await db["sessions"].find_one({"_id": session["_id"]})
    assert revoked["revoked_reason"] == "refresh token reused"


async def test_two_racing_refreshes_of_one_token_let_one_through(db):
    store = SessionStore(db)
    _, token = await store.open("n", "p1", "local", NOW, TTL)
    outcomes = await asyncio.gather(*(store.rotate(token, NOW) for _ in range(4)),
                                    return_exceptions=True)
    assert sum(isinstance(o, tuple) for o in outcomes) == 1
    assert sum(isinstance(o, Reused) for o in outcomes) == 3


class _SlowToReadSessions(SessionStore):
    """Reads a session only after the other requests had their turn, as a loaded store
    answers: racing reuses then revoke the session before the first exchange reads it."""

    async def live(self, session_id, now):
        await asyncio.sleep(0.3)  # the others' few round trips take milliseconds
        return await super().live(session_id, now)


async def test_the_first_of_racing_refreshes_gets_through_whatever_order_the_store_answers(db):
    store = _SlowToReadSessions(db)
    session, token = await store.open("n", "p1", "local", NOW, TTL)
    outcomes = await asyncio.gather(*(store.rotate(token, NOW) for _ in range(4)),
                                    return_exceptions=True)
    assert sum(isinstance(o, tuple) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, Reused) for o in outcomes) == 3, outcomes
    # The reuse still ends the session: the refresh token the winner got leads nowhere.
    winner = next(o for o in outcomes if isinstance(o, tuple))
    assert await store.rotate(winner[1], NOW) is None


async def test_a_refresh_racing_a_sign_out_is_refused(db):
    store = SessionStore(db)
    session, token = await store.open("n", "p1", "local", NOW, TTL)
    await store.revoke(session["_id"], NOW, "signed out")
    assert await store.rotate(token, NOW) is None
    assert await db["refresh_tokens"].count_documents({"session_id": session["_id"]}) == 1


async def test_sessions_expire_and_unknown_tokens_open_nothing(db):
    store = SessionStore(db)
    _, token = await store.open("n", "p1", "local", NOW, TTL)
    assert await store.rotate(token, NOW + TTL + timedelta(seconds=1)) is None
    assert await store.rotate("never-issued-token-value", NOW) is None


async def test_an_email_link_works_once_and_only_before_it_expires(db):
    store = SessionStore(db)
    expires = NOW + timedelta(minutes=15)
    await store.add_link("link-token-1", "n", "p1", NOW, expires, [])
    await store.add_link("link-token-2", "n", "p1", NOW, expires, [])
    assert await db["sign_in_links"].find_one({"_id": "link-token-1"}) is None  # hashed
    used = await asyncio.gather(*(store.use_link("link-token-1", NOW) for _ in range(3)))
    assert [u is not None for u in used].count(True) == 1
    assert await store.use_link("link-token-1", NOW + timedelta(minutes=1)) is None
    assert await store.use_link("link-token-2", expires + timedelta(seconds=1)) is None
    assert await store.use_link("unknown-token", NOW) is None


async def test_rate_limit_windows_count_per_bucket_and_start_again(db):
    store = SessionStore(db)
    window = timedelta(minutes=15)
    counts = [(await store.count("email:n:a@x.org", NOW, window))[0] for _ in range(3)]
    assert counts == [1, 2, 3]
    assert (await store.count("email:n:b@x.org", NOW, window))[0] == 1
    later, ends = await store.count("email:n:a@x.org", NOW + window, window)
    assert later == 1 and ends > NOW + window


async def test_an_oidc_nonce_is_spent_once(db):
    store = SessionStore(db)
    assert await store.first_use_of_nonce("https://idp", "nonce-1", NOW)
    assert not await store.first_use_of_nonce("https://idp", "nonce-1", NOW)
    assert await store.first_use_of_nonce("https://other-idp", "nonce-1", NOW)


async def test_what_sign_in_leaves_behind_is_removed_by_the_store(db):
    from services.profiles.session_store import TTL_INDEXES, create_indexes

    await create_indexes(db)
    for collection, field, keep in TTL_INDEXES:
        indexes = await db[collection].index_information()
        ttl = [i for i in indexes.values() if i["key"] == [(field, 1)] and "expireAfterSeconds" in i]
        assert ttl and ttl[0]["expireAfterSeconds"] == keep, (collection, indexes)
