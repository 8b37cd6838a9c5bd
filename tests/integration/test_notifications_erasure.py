"""Erasure and exactly-once on real Kafka, SecantusDB and SMTP (harness: test_notifications_time)."""

from __future__ import annotations

from datetime import timedelta

from services.notifications import view
from tests.integration.test_notifications_time import DAY, _pair, harness  # noqa: F401


async def test_an_erased_person_gets_nothing_more_and_their_data_leaves(harness):
    h = harness
    t0 = h.clock.now()
    pair, mentor, mentee = await _pair(h, started_at=t0)
    await h.drain()
    assert len(h.to(mentee, "Meet")) == 1
    def ours() -> int:  # the consumer also reads other tests' events: count this pair's mail
        return len(h.to(mentee)) + len(h.to(mentor))
    before = ours()
    # A meeting is scheduled (its emails pending), then the mentee is erased before they leave.
    await h.send(h.events.meeting_scheduled(pair, t0 + 3 * DAY, at=t0),
                 h.events.erased(pair.mentee_id, at=t0))
    await h.drain()
    assert h.to(mentee, "Meeting") == []
    assert h.to(mentor, "Meeting") == []  # it would show the erased person's name and address
    person = await h.db[view.PEOPLE].find_one({"_id": pair.mentee_id})
    assert person["erased"] is True and "email" not in person and "display_name" not in person
    assert await h.db["notifications"].count_documents({"person_id": pair.mentee_id}) == 0
    mentor_feed = [n async for n in h.db["notifications"].find({"person_id": pair.mentor_id, "about": pair.mentee_id})]
    assert mentor_feed and all("Ada" not in n["title"] + n["body"] for n in mentor_feed)
    to_them = [d async for d in h.db["deliveries"].find({"recipient": pair.mentee_id})]
    assert to_them and all("to" not in d and "subject" not in d for d in to_them)
    assert {d["status"] for d in to_them} <= {"sent", "cancelled"}
    # Nor do the records that keep each sent message's address and subject for the admins.
    kept = [e async for b in h.db["delivery_sender"].find({"kind": "settled"}) for e in b.get("sent", [])]
    # (The consumer reads other tests' events too, some about other people named Ada: look at
    # this pair's records only.)
    assert kept and not any(mentee in str(e) for e in kept)
    assert not any("Ada" in str(e) for e in kept if e.get("to") == mentor)
    # Time passes: no nudge to or about them, and a late registration event restores nothing.
    late = h.events.person("mentee", "Ada Lovelace", mentee, person_id=pair.mentee_id, at=t0)
    await h.send(late)
    await h.at(t0 + 40 * DAY)
    assert ours() == before
    person = await h.db[view.PEOPLE].find_one({"_id": pair.mentee_id})
    assert "email" not in person and "display_name" not in person
    cancelled = await h.db["deliveries"].find_one({"_id": f"{late.id}:{pair.mentee_id}:email"})
    assert cancelled["status"] == "cancelled"


async def test_a_redelivered_event_sends_one_message_per_recipient_and_channel(harness):
    h = harness
    t0 = h.clock.now()
    pair, mentor, mentee = await _pair(h, started_at=t0)
    proposed = h.events.proposed(pair, at=t0)
    await h.publish(proposed, proposed)
    fresh = h.events.milestone(pair, "Poster", at=t0)
    await h.send(fresh)
    await h.drain()
    h.clock.at = t0 + timedelta(minutes=1)
    await h.drain()
    assert len(h.to(mentee, "A mentor for you: Grace Hopper")) == 1
    assert len(h.to(mentor, "A mentee for you: Ada Lovelace")) == 1
    feed = await h.db["notifications"].count_documents({"person_id": pair.mentee_id, "kind": "match_proposed"})
    assert feed == 1
    # Its MessageDelivered event was staged with the batch's outcome (the outbox sends it).
    sent = f"{proposed.id}:{pair.mentee_id}:email"
    staged = [e async for b in h.db["delivery_sender"].find({"kind": "settled"})
              for e in b.get("_pending_events", []) if e["data"]["delivery_id"] == sent]
    assert [e["type"] for e in staged] == ["MessageDelivered"]
