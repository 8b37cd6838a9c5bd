"""Time-driven messages and the delivery worker on real Kafka, SecantusDB and SMTP/HTTP servers.

The events are produced to Kafka as profiles and matching would publish them; the service's
consumer, scheduler and delivery worker run in process, and the scheduler and worker read a
clock the tests move forward: nudges after days of silence, check-ins, reminders, quiet hours
and digests, without sleeping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiosmtpd.controller import Controller
from icalendar import Calendar

from ops.infra import free_port
from services.notifications import app as notifications_app, events as handlers_module, view
from services.notifications.clock import FixedClock
from services.notifications.config import DeliverySettings
from services.notifications.jobs import RUNNERS
from services.notifications.scheduler import JOBS, Scheduler
from services.notifications.sending import DeliveryWorker
from shared.messaging.consumer import OFFSETS, EventConsumer, applied_ids
from shared.messaging.kafka import create_producer
from tests.e2e.conftest import Mailbox
from tests.notifications_support import RECEIVER_ADDRESS, Events, WebhookReceiver, pair_ids, publish
from tests.support import eventually

DAY = timedelta(days=1)
SECRET = "integration-tests-unsubscribe-secret-0123456789"


class Harness:
    def __init__(self, db, settings, mailbox: Mailbox, clock: FixedClock) -> None:
        self.db, self.settings, self.mailbox, self.clock = db, settings, mailbox, clock
        self.delivery = DeliverySettings(
            smtp_port=mailbox.port, delivery_backoff_seconds=0.01, delivery_max_attempts=3,
            delivery_batch_size=200, app_url="https://app.test",
            webhook_allow_http=True, webhook_allowed_addresses=RECEIVER_ADDRESS)
        self.worker = DeliveryWorker(db, self.delivery, clock, unsubscribe_secret=SECRET)
        self.scheduler = Scheduler(db, self.delivery, RUNNERS, clock)
        self.events = Events(f"net-{settings.service_name}")
        # Unique per test: the consumer reads the session's shared topics.
        self.coordinator = f"coord-{settings.service_name}@example.org"

    async def publish(self, *events) -> None:
        await publish(self.settings.kafka_bootstrap_servers, *events)

    async def applied(self, *events) -> None:
        """Wait until the consumer applied these events (their ids are in its inbox). The
        consumer starts at the session's topics' ends, but other tests' services may still
        publish there meanwhile, and it applies those too."""
        ids = [e.id for e in events]
        await eventually(lambda: applied_ids(self.db, ids),
                         lambda found: len(found) == len(ids), timeout=90, what="events applied")

    async def send(self, *events) -> None:
        await self.publish(*events)
        await self.applied(*events)

    async def drain(self) -> None:
        """Run the scheduler and the worker at the clock's time until nothing is due."""
        for _ in range(50):
            ran = await self.scheduler.run_due()
            sent = await self.worker.run_once()
            if not ran and not sent:
                return
            if sent and self.clock.now() < datetime.now(UTC):  # retries due in real time
                await asyncio.sleep(0.02)
        raise AssertionError("the worker never ran out of work")

    async def at(self, moment: datetime) -> None:
        self.clock.at = moment
        await self.drain()

    def to(self, address: str, subject_part: str = "") -> list[email.message.EmailMessage]:
        return [m for m in self.mailbox.to(address) if subject_part in m["Subject"]]


async def _start_at_the_end(db, settings, topics: list[str]) -> None:
    """Store the topics' current ends as what this consumer has applied. The session's topics
    hold every earlier test's events (the whole end-to-end suite's, when the suite runs in
    order); a harness's own events are all published after it starts, and working through
    the others first took each test 20-70 s."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await reader.start()
    try:
        await reader.topics()  # metadata of every topic, so their partitions are known
        parts = [TopicPartition(t, p) for t in topics for p in reader.partitions_for_topic(t) or ()]
        ends = await reader.end_offsets(parts) if parts else {}
    finally:
        await reader.stop()
    if ends:
        await db[OFFSETS].insert_many([
            {"_id": f"{tp.topic}:{tp.partition}", "offset": end - 1, "group": settings.service_name}
            for tp, end in ends.items()])


@pytest.fixture
async def harness(settings, db):
    await notifications_app.create_indexes(db)
    await _start_at_the_end(db, settings, notifications_app.DEFINITION.subscriptions)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.port = controller.port
    consumer = EventConsumer(db=db, settings=settings, topics=notifications_app.DEFINITION.subscriptions,
                             handlers=handlers_module.handlers(),
                             producer_factory=lambda: create_producer(settings))
    task = asyncio.create_task(consumer.run())
    h = Harness(db, settings, mailbox, FixedClock(datetime.now(UTC)))
    try:
        yield h
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 20)
        await h.worker.close()
        controller.stop()


async def _pair(h: Harness, *, cadence=14, reassessment=90, coordinators=None,
                started_at: datetime | None = None):
    now = h.clock.now()
    program = h.events.program(cadence_days=cadence, reassessment_days=reassessment,
                               coordinator_emails=list(coordinators or [h.coordinator]), at=now)
    pid = program.subject
    tag = h.settings.service_name
    mentor = h.events.person("mentor", "Grace Hopper", f"grace-{tag}@example.org", program_id=pid, at=now)
    mentee = h.events.person("mentee", "Ada Lovelace", f"ada-{tag}@example.org", program_id=pid, at=now)
    pair = pair_ids(pid, mentor.subject, mentee.subject)
    started = h.events.started(pair, at=started_at or h.clock.now(), cadence_days=cadence)
    await h.send(program, mentor, mentee, started)
    return pair, f"grace-{tag}@example.org", f"ada-{tag}@example.org"


async def test_a_silent_pair_is_nudged_mentee_then_mentor_then_coordinator(harness):
    h = harness
    t0 = h.clock.now()
    pair, mentor, mentee = await _pair(h, started_at=t0)
    await h.drain()
    assert len(h.to(mentee, "Meet Grace Hopper")) == 1 and len(h.to(mentor, "Meet Ada Lovelace")) == 1
    [intro] = h.to(mentee, "Meet")
    text = intro.get_body(preferencelist=("plain",)).get_content()
    assert mentor in text and mentee in text and "every 14 days" in text  # contacts + agenda

    await h.at(t0 + 16 * DAY)
    assert h.to(mentee, "Time to meet") == []
    await h.at(t0 + 17 * DAY + timedelta(minutes=1))
    assert len(h.to(mentee, "Time to meet Grace")) == 1 and h.to(mentor, "Time to meet") == []
    await h.at(t0 + 20 * DAY + timedelta(minutes=1))
    assert len(h.to(mentor, "Time to meet Ada")) == 1
    assert h.to(h.coordinator, "has not met") == []
    await h.at(t0 + 28 * DAY + timedelta(minutes=1))
    stalled = [m for m in h.to(h.coordinator, "has not met for 28 days")]
    assert len(stalled) == 1
    assert "Grace Hopper" in stalled[0].get_body(preferencelist=("plain",)).get_content()
    await h.at(t0 + 29 * DAY)
    assert len(h.to(mentee, "Time to meet")) == 1 and len(h.to(mentor, "Time to meet")) == 1  # once

    # A meeting starts a new series, measured from it.
    await h.send(h.events.meeting_logged(pair, held_at=t0 + 29 * DAY))
    await h.at(t0 + 45 * DAY)
    assert len(h.to(mentee, "Time to meet")) == 1
    await h.at(t0 + (29 + 17) * DAY + timedelta(minutes=1))
    assert len(h.to(mentee, "Time to meet")) == 2


async def test_an_ended_mentorship_gets_no_more_nudges_and_the_mentor_is_thanked(harness):
    h = harness
    t0 = h.clock.now()
    pair, mentor, mentee = await _pair(h, started_at=t0)
    await h.send(h.events.ended(pair, "completed", at=t0 + 5 * DAY))
    await h.at(t0 + 40 * DAY)
    assert h.to(mentee, "Time to meet") == [] and h.to(mentor, "Time to meet") == []
    assert len(h.to(mentor, "Thank you, Grace")) == 1
    ended = await h.db["notifications"].count_documents({"person_id": pair.mentee_id, "kind": "mentorship_ended"})
    assert ended == 1


async def test_check_in_requests_at_each_reassessment_point_once(harness):
    h = harness
    t0 = h.clock.now()
    pair, mentor, mentee = await _pair(h, reassessment=30, started_at=t0)
    await h.send(*(h.events.meeting_logged(pair, held_at=t0 + n * 7 * DAY) for n in range(1, 9)))
    await h.at(t0 + 29 * DAY)
    assert h.to(mentee, "check-in") == []
    await h.at(t0 + 30 * DAY + timedelta(hours=1))
    await h.at(t0 + 31 * DAY)
    assert len(h.to(mentee, "check-in 1")) == 1 and len(h.to(mentor, "check-in 1")) == 1
    await h.at(t0 + 61 * DAY)
    assert len(h.to(mentee, "check-in 2")) == 1 and len(h.to(mentee, "check-in")) == 2


async def test_a_meeting_brings_an_invitation_and_a_reminder_the_day_before(harness):
    h = harness
    t0 = h.clock.now()
    pair, mentor, mentee = await _pair(h, started_at=t0)
    starts = (t0 + 3 * DAY).replace(microsecond=0)
    scheduled = h.events.meeting_scheduled(pair, starts, at=t0)
    await h.send(scheduled)
    await h.drain()
    [invite] = h.to(mentee, "Meeting on")
    [part] = [p for p in invite.iter_attachments() if p.get_content_type() == "text/calendar"]
    [event] = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert event.decoded("dtstart") == starts and event["uid"].startswith(scheduled.data["meeting_id"])
    assert sorted(str(a) for a in event["attendee"]) == sorted([f"mailto:{mentor}", f"mailto:{mentee}"])
    await h.at(starts - DAY - timedelta(minutes=1))
    assert h.to(mentee, "Reminder") == []
    await h.at(starts - DAY + timedelta(minutes=1))
    assert len(h.to(mentee, "Reminder")) == 1 and len(h.to(mentor, "Reminder")) == 1
    await h.at(starts - timedelta(hours=1))
    assert len(h.to(mentee, "Reminder")) == 1


async def test_quiet_hours_hold_email_until_morning_in_the_persons_zone_but_not_the_feed(harness):
    h = harness
    # 23:30 in Paris.
    night = datetime(2026, 1, 10, 22, 30, tzinfo=UTC)
    h.clock.at = night
    pair, mentor, mentee = await _pair(h, started_at=night)
    await h.db[view.PREFERENCES].insert_one(
        {"_id": pair.mentee_id, "time_zone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:00"}})
    await h.send(h.events.milestone(pair, "Case report accepted", at=night))
    await h.drain()
    assert h.to(mentee, "Congratulations") == [] and len(h.to(mentor, "Congratulations")) == 1
    feed = await h.db["notifications"].count_documents({"person_id": pair.mentee_id, "kind": "milestone"})
    assert feed == 1
    await h.at(datetime(2026, 1, 11, 5, 59, tzinfo=UTC))
    assert h.to(mentee, "Congratulations") == []
    await h.at(datetime(2026, 1, 11, 6, 0, tzinfo=UTC))  # 07:00 in Paris
    assert len(h.to(mentee, "Congratulations: Case report accepted")) == 1


async def test_a_digest_gathers_held_emails_and_coordinators_get_their_summary(harness):
    h = harness
    t0 = datetime(2026, 2, 2, 8, tzinfo=UTC)  # a Monday, after 07:00
    h.clock.at = t0
    pair, mentor, mentee = await _pair(h, started_at=t0)
    await h.drain()
    await h.db[view.PREFERENCES].insert_one({"_id": pair.mentee_id, "time_zone": "UTC", "digest": "daily"})
    await h.db[JOBS].insert_one({"_id": f"pdigest:{pair.mentee_id}", "kind": "personal_digest", "status": "pending",
                                 "due_at": t0 + DAY - timedelta(hours=1), "recipient": pair.mentee_id, "pokes": 0})
    await h.send(h.events.milestone(pair, "Poster", at=t0), h.events.milestone(pair, "Paper", at=t0))
    await h.drain()
    assert h.to(mentee, "Congratulations") == [] and len(h.to(mentor, "Congratulations")) == 2
    await h.at(t0 + DAY)
    [digest] = h.to(mentee, "Your daily digest: 2 messages")
    text = digest.get_body(preferencelist=("plain",)).get_content()
    assert "Congratulations: Poster" in text and "Congratulations: Paper" in text
    assert h.to(mentee, "Congratulations") == []
    # The program's coordinators: a daily summary at 07:00 UTC with the new registrations.
    [summary] = h.to(h.coordinator, "Daily digest for Surgery Mentoring")
    assert "New registrations: 2" in summary.get_body(preferencelist=("plain",)).get_content()
    await h.at(t0 + DAY + timedelta(hours=2))
    assert len(h.to(h.coordinator, "Daily digest")) == 1


async def test_two_schedulers_run_each_due_job_once_and_a_dead_ones_job_is_taken_over(harness):
    h = harness
    runs: list[str] = []

    async def counting(db, job, now, settings):
        runs.append(job["_id"])
        await asyncio.sleep(0)
        from services.notifications.scheduler import Next
        return Next(None)

    now = h.clock.now()
    await h.db[JOBS].insert_many([{"_id": f"j{n}", "kind": "count", "status": "pending", "due_at": now,
                                   "pokes": 0} for n in range(30)])
    first = Scheduler(h.db, h.delivery, {"count": counting}, h.clock)
    second = Scheduler(h.db, h.delivery, {"count": counting}, h.clock)
    await asyncio.gather(first.run_due(), second.run_due())
    assert sorted(runs) == sorted(f"j{n}" for n in range(30))

    await h.db[JOBS].insert_one({"_id": "orphan", "kind": "count", "status": "pending", "due_at": now, "pokes": 0})
    dead = Scheduler(h.db, h.delivery, {"count": counting}, h.clock)
    claimed = await dead.store.claim(now, timedelta(seconds=60))  # ...and its process died
    assert claimed["_id"] == "orphan"
    assert await second.run_due() == 0  # the claim still holds
    h.clock.at = now + timedelta(seconds=61)
    assert await second.run_due() == 1 and runs.count("orphan") == 1


async def test_webhooks_are_signed_and_retried_with_backoff_until_accepted(harness):
    h = harness
    receiver = WebhookReceiver(fail_first=2)
    try:
        await h.db[view.WEBHOOKS].insert_one({"_id": "wh-1", "network_id": h.events.network_id,
                                              "url": receiver.url, "secret": "s3cret", "kinds": ["milestone"]})
        pair, mentor, mentee = await _pair(h)
        milestone = h.events.milestone(pair, "Residency match")
        await h.send(milestone)
        for _ in range(6):  # each step moves the clock past the backoff
            h.clock.at = h.clock.now() + timedelta(minutes=5)
            await h.drain()
        assert len(receiver.requests) == 3  # 503, 503, then accepted
        assert len({r.json()["id"] for r in receiver.requests}) == 1  # one message, three tries
        last = receiver.requests[-1]
        expected = hmac.new(b"s3cret", last.headers["X-Mentorship-Timestamp"].encode() + b"." + last.body,
                            hashlib.sha256).hexdigest()
        assert last.headers["X-Mentorship-Signature"] == f"sha256={expected}"
        body = last.json()
        assert body["kind"] == "milestone" and body["data"]["title"] == "Residency match"
        assert body["mentorship_id"] == pair.mentorship_id and "Residency match" in body["text"]
        [record] = [d async for d in h.db["deliveries"].find({"channel": "webhook"})]
        # Its error says it was not accepted, never what answered (no status, no port state).
        assert record["status"] == "sent" and record["attempts"] == 3
        assert "did not accept" in record["last_error"] and "503" not in record["last_error"]
        # Only the kinds the endpoint asked for: the introduction was not announced to it.
        assert all(r.json()["kind"] == "milestone" for r in receiver.requests)
    finally:
        receiver.close()

