"""Analytics projections fed through a real broker and a real MongoDB-protocol server.

The events of the hand-computed scenario (tests/unit/test_analytics_measures.py) are
published with aiokafka as profiles and matching would publish them, but mentorship events
first and people and programs last, across partitions: the live projection must still give
the hand-computed numbers; the rebuild from the beginning of the topics must give the same
numbers as the live projection; and an erasure must strip the stored facts.
"""

from __future__ import annotations

import asyncio
from datetime import date

from aiokafka import AIOKafkaProducer

from services.analytics import events as analytics_events
from services.analytics.live import forget, loaded_projection
from services.analytics.measures import Period, Report, Scope
from services.analytics.rebuild import rebuild
from services.analytics.scenario import hand_computed
from services.analytics.store import count_facts, create_indexes, load_projection, stored_facts
from shared.messaging.consumer import EventConsumer
from shared.messaging.kafka import create_producer, ensure_topics
from tests.support import eventually

PERIOD = Period.of_days(date(2026, 1, 5), date(2026, 2, 1))
MENTORSHIP_FIRST = {
    "MatchProposed": 0, "MatchAccepted": 0, "MatchDeclined": 0, "MentorshipStarted": 1,
    "MeetingLogged": 0, "FeedbackSubmitted": 0, "GoalSet": 0, "GoalProgressUpdated": 0,
    "MilestoneAchieved": 0, "MentorshipEnded": 0, "AgreementRecorded": 1,
}


class Running:
    def __init__(self, db, settings, topics):
        self.consumer = EventConsumer(
            db=db, settings=settings, topics=topics, handlers=analytics_events.handlers(),
            producer_factory=lambda: create_producer(settings),
        )

    async def __aenter__(self):
        self.task = asyncio.create_task(self.consumer.run())
        return self

    async def __aexit__(self, *exc):
        self.consumer.stop()
        await asyncio.wait_for(self.task, 20)


async def publish(bootstrap, topics, cloud_events):
    """Mentorship events on one topic, the rest on the other, in the order given."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in cloud_events:
            topic = topics[1] if event.type in MENTORSHIP_FIRST else topics[0]
            await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


async def test_live_out_of_order_then_rebuild_equals_live(servers, settings, db, unique):
    topics = [f"t{unique}.profiles", f"t{unique}.matching"]
    await ensure_topics(servers.kafka_bootstrap, topics, partitions=3, client_id="test")
    await create_indexes(db)
    scenario = hand_computed(f"n{unique}").suffixed(unique)
    events = scenario.cloud_events()
    # Out of order: every mentorship event before any person, program or enrolment.
    ordered = sorted(events, key=lambda e: 0 if e.type in MENTORSHIP_FIRST else 1)
    async with Running(db, settings, topics):
        await publish(servers.kafka_bootstrap, topics, ordered)
        await _wait_for_facts(db, len(events))
    live = await loaded_projection(db)
    program = Scope("program", f"n{unique}", f"P1{unique}")
    report = Report(live, program, PERIOD)
    # The hand-computed numbers, whatever the order of arrival.
    assert report.matching()["match_rate_pct"] == 75.0
    assert report.matching()["time_to_match_days_median"] == 5.5
    assert report.engagement()["stalled"] == 1 and report.engagement()["never_met"] == 1
    assert report.outcomes()["nps"]["score"] == 33
    assert [r["mentorship_id"] for r in report.stalled()] == [f"X3{unique}", f"X2{unique}"]
    live_numbers = _numbers(live, f"n{unique}", program)

    done = await rebuild(db, servers.kafka_bootstrap, topics)
    assert done["events"] == len(events) and done["facts"] == len(events)
    assert _numbers(done["projection"], f"n{unique}", program) == live_numbers
    forget(db)
    assert _numbers(await load_projection(db), f"n{unique}", program) == live_numbers

    # The live consumer resumes after the rebuild without applying anything twice.
    more = hand_computed(f"n{unique}")
    more.events = []
    more.meet("X3", 27)  # X3's first meeting, after the rebuild
    async with Running(db, settings, topics):
        await publish(servers.kafka_bootstrap, topics, more.suffixed(unique).cloud_events())
        await _wait_for_facts(db, len(events) + 1)
        await asyncio.sleep(0.5)
    assert await count_facts(db) == len(events) + 1
    after = Report(await loaded_projection(db), program, PERIOD).engagement()
    assert (after["never_met"], after["active"], after["meetings"]) == (0, 2, 5)


async def test_erasure_strips_stored_facts_and_keeps_counts(servers, settings, db, unique):
    topics = [f"t{unique}.profiles", f"t{unique}.matching"]
    await ensure_topics(servers.kafka_bootstrap, topics, partitions=3, client_id="test")
    await create_indexes(db)
    scenario = hand_computed(f"n{unique}")
    scenario.attributes("E2", gender="woman")
    before = _numbers_of(scenario.suffixed(unique), unique)
    scenario.erase("E2", 25)
    scenario.erase("M1", 25)
    events = scenario.suffixed(unique).cloud_events()
    async with Running(db, settings, topics):
        await publish(servers.kafka_bootstrap, topics, events)
        await _wait_for_facts(db, len(events))
    erased = {f"E2{unique}", f"M1{unique}"}
    seen = 0
    async for fact in stored_facts(db):
        if fact.get("person_id") in erased:
            seen += 1
            assert "display_name" not in fact["data"] and "attributes" not in fact["data"]
        assert "email" not in fact["data"]
    assert seen >= 6  # registrations, enrolments, profile, attributes, erasures
    others = [f async for f in stored_facts(db) if f["type"] == "MenteeRegistered" and f["person_id"] not in erased]
    assert others and all("display_name" in f["data"] for f in others)
    forget(db)
    projection = await loaded_projection(db)
    assert projection.people[f"M1{unique}"].name is None
    program = Scope("program", f"n{unique}", f"P1{unique}")
    after = Report(projection, program, PERIOD).summary()
    assert after["enrolment"] == before["enrolment"]
    assert after["engagement"] == before["engagement"]
    assert after["outcomes"] == before["outcomes"]


def _numbers_of(scenario, unique):
    from services.analytics.projection import Projection

    p = Projection()
    for name, payload in scenario.events:
        p.apply(name, payload)
    return Report(p, Scope("program", f"n{unique}", f"P1{unique}"), PERIOD).summary()


async def _wait_for_facts(db, n):
    await eventually(lambda: count_facts(db), lambda c: c == n, what=f"{n} facts")


def _numbers(projection, network_id, program):
    out = {}
    for scope in (Scope("network", network_id), program):
        r = Report(projection, scope, PERIOD)
        out[scope] = (r.summary(), r.series(), r.stalled(), r.equity(), r.mentor_rows())
    return out
