"""Delivery records on a real store: one sender at a time, batches never overlap, interrupted
sends never resent automatically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifications.deliveries import INTERRUPTED, DeliveryStore, Outcome, create_indexes

MINUTE = timedelta(seconds=60)


def _pending(n: int, now: datetime, channel: str = "email") -> dict:
    return {"_id": f"d{n}", "network_id": "n1", "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now, "to": f"p{n}@example.org",
            "channel": channel, "kind": "welcome", "recipient": f"p{n}", "person_id": f"p{n}"}


async def test_one_instance_sends_at_a_time_and_its_batches_never_overlap(db):
    await create_indexes(db)
    now = datetime.now(UTC)
    await db["deliveries"].insert_many([_pending(n, now) for n in range(20)])
    first, second = DeliveryStore(db), DeliveryStore(db)
    assert await first.hold_lease(now, MINUTE) is True
    assert await second.hold_lease(now, MINUTE) is False  # a live holder keeps it
    one = await first.claim_batch(now, MINUTE, 8)
    two = await first.claim_batch(now, MINUTE, 8)
    assert len(one) == len(two) == 8 and not {d["_id"] for d in one} & {d["_id"] for d in two}
    await first.settle([Outcome(d, "sent", to=d["to"], subject="s") for d in one], now)
    # The holder died; after its lease the other instance takes over, and leaves the dead
    # one's unsettled batch alone until it is resolved as interrupted.
    later = now + MINUTE + timedelta(seconds=1)
    assert await second.hold_lease(later, MINUTE) is True
    three = await second.claim_batch(later, MINUTE, 20)
    assert sorted(d["_id"] for d in three) == sorted(
        f"d{n}" for n in range(20) if f"d{n}" not in {d["_id"] for d in one + two})
    assert await db["deliveries"].count_documents({"status": "sent", "attempts": 1}) == 8


async def test_a_send_interrupted_by_a_crash_is_marked_failed_not_resent(db):
    now = datetime.now(UTC)
    store = DeliveryStore(db)
    await db["deliveries"].insert_many([_pending(1, now), _pending(2, now, channel="in_app"), _pending(3, now)])
    assert await store.hold_lease(now, MINUTE)
    crashed = await store.claim_batch(now, MINUTE, 2)  # then the process died
    assert {d["_id"] for d in crashed} == {"d1", "d2"}
    assert await store.resolve_interrupted(now + timedelta(seconds=30)) == 0  # still in flight
    assert await store.resolve_interrupted(now + timedelta(seconds=61)) == 1
    record = await db["deliveries"].find_one({"_id": "d1"})
    assert (record["status"], record["last_error"], record["attempts"]) == ("failed", INTERRUPTED, 1)
    # The in-app copy is written idempotently: it simply goes again. The email never does.
    nxt = await store.claim_batch(now + timedelta(seconds=61), MINUTE, 10)
    assert sorted(d["_id"] for d in nxt) == ["d2", "d3"]
    assert await store.retry_by_hand("n1", "d1", now) is True
    assert await store.retry_by_hand("other-network", "d3", now) is False
    again = await store.claim_batch(now + timedelta(seconds=62), MINUTE, 10)
    assert [d["_id"] for d in again] == ["d1"]


async def test_an_instance_whose_clock_runs_ahead_leaves_the_live_holder_its_lease(db):
    """Two instances, one of them with its notifications clock two days ahead (as tests move
    it to make a nudge fall due). The lease is between processes and runs on real time: the
    one ahead used to find the live holder's lease expired, take it, and send the same
    deliveries at the same time (a nudge mailed twice)."""
    from services.notifications import app as notifications_app
    from services.notifications.clock import FixedClock
    from services.notifications.config import DeliverySettings
    from services.notifications.deliveries import LEASE_ID, SENDER_STATE
    from services.notifications.sending import DeliveryWorker

    await notifications_app.create_indexes(db)
    settings = DeliverySettings(delivery_lease_seconds=30, delivery_claim_seconds=30)
    now = datetime.now(UTC)
    secret = "integration-tests-unsubscribe-secret-0123456789"
    holder = DeliveryWorker(db, settings, FixedClock(now), unsubscribe_secret=secret)
    ahead = DeliveryWorker(db, settings, FixedClock(now + timedelta(days=2)),
                           unsubscribe_secret=secret)
    try:
        await holder.run_once()
        assert await ahead.run_once() == 0
        lease = await db[SENDER_STATE].find_one({"_id": LEASE_ID})
        assert lease["holder"] == holder.store.holder
    finally:
        for worker in (holder, ahead):
            if worker.smtp is not None:
                await worker.close()
