"""Helpers of the notifications tests: the events of profiles and matching, built as those
services would publish them (CloudEvents via shared.events) and produced to Kafka with a real
aiokafka producer; a real HTTP receiver for webhooks."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.events import CloudEvent, new_event, spec_for
from shared.events import schemas as s


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Pair:
    mentorship_id: str
    mentor_id: str
    mentee_id: str
    program_id: str


@dataclass
class Events:
    """Events of one network, with the ids tests need to refer to them again."""

    network_id: str
    institution_id: str = "inst-a"

    def _event(self, payload: Any, subject: str, at: datetime | None = None) -> CloudEvent:
        return new_event(payload, subject=subject, tenant_id=self.network_id, source="/tests", at=at)

    def program(self, *, cadence_days: int = 14, reassessment_days: int = 90,
                coordinator_emails: list[str] | None = None, version: int = 1,
                program_id: str | None = None, name: str = "Surgery Mentoring",
                at: datetime | None = None) -> CloudEvent:
        program_id = program_id or _id("prog")
        today = date(2026, 1, 1)
        payload = s.ProgramCreated(
            program_id=program_id, network_id=self.network_id, institution_id=self.institution_id,
            name=name, type="career", cohort_start=today, cohort_end=today + timedelta(days=365),
            enrolment_opens=today, enrolment_closes=today + timedelta(days=30),
            cross_institution=False, max_mentors_per_mentee=1, cadence_days=cadence_days,
            requires_approval=False, version=version, reassessment_days=reassessment_days,
            coordinator_emails=coordinator_emails or [], created_at=at or datetime.now(UTC))
        return self._event(payload, program_id, at)

    def person(self, role: str, name: str, email: str, *, program_id: str | None = None,
               person_id: str | None = None, at: datetime | None = None) -> CloudEvent:
        person_id = person_id or _id(role)
        model = s.MentorRegistered if role == "mentor" else s.MenteeRegistered
        payload = model(person_id=person_id, network_id=self.network_id,
                        institution_id=self.institution_id, program_id=program_id,
                        display_name=name, email=email, career_stage="M2",
                        registered_at=at or datetime.now(UTC))
        return self._event(payload, person_id, at)

    def _ref(self, pair: Pair) -> dict[str, Any]:
        return dict(mentorship_id=pair.mentorship_id, network_id=self.network_id,
                    program_id=pair.program_id, mentor_id=pair.mentor_id, mentee_id=pair.mentee_id,
                    mentor_institution_id=self.institution_id, mentee_institution_id=self.institution_id)

    def proposed(self, pair: Pair, at: datetime | None = None, **extra: Any) -> CloudEvent:
        at = at or datetime.now(UTC)
        return self._event(s.MatchProposed(**self._ref(pair), proposed_at=at,
                                           explanation=["Both in surgery"], **extra), pair.mentorship_id, at)

    def accepted(self, pair: Pair, side: str, at: datetime | None = None) -> CloudEvent:
        at = at or datetime.now(UTC)
        by = pair.mentor_id if side == "mentor" else pair.mentee_id
        return self._event(s.MatchAccepted(**self._ref(pair), side=side, by=by, accepted_at=at),
                           pair.mentorship_id, at)

    def started(self, pair: Pair, at: datetime | None = None, cadence_days: int = 14) -> CloudEvent:
        at = at or datetime.now(UTC)
        return self._event(s.MentorshipStarted(**self._ref(pair), cadence_days=cadence_days,
                                               started_at=at), pair.mentorship_id, at)

    def meeting_scheduled(self, pair: Pair, starts_at: datetime, *, meeting_id: str | None = None,
                          at: datetime | None = None) -> CloudEvent:
        at = at or datetime.now(UTC)
        return self._event(s.MeetingScheduled(
            **self._ref(pair), meeting_id=meeting_id or _id("meet"), starts_at=starts_at,
            duration_minutes=45, mode="video", location="https://meet.example.org/room-1",
            agenda="Goals and expectations", scheduled_at=at), pair.mentorship_id, at)

    def meeting_logged(self, pair: Pair, held_at: datetime, meeting_id: str | None = None) -> CloudEvent:
        return self._event(s.MeetingLogged(
            **self._ref(pair), meeting_id=meeting_id or _id("meet"), held_at=held_at,
            duration_minutes=45, mode="video", logged_at=held_at), pair.mentorship_id, held_at)

    def milestone(self, pair: Pair, title: str, at: datetime | None = None) -> CloudEvent:
        at = at or datetime.now(UTC)
        return self._event(s.MilestoneAchieved(**self._ref(pair), milestone_id=_id("ms"), title=title,
                                               achieved_at=at), pair.mentorship_id, at)

    def ended(self, pair: Pair, reason: str = "completed", at: datetime | None = None) -> CloudEvent:
        at = at or datetime.now(UTC)
        return self._event(s.MentorshipEnded(**self._ref(pair), reason=reason, ended_at=at),
                           pair.mentorship_id, at)

    def sign_in_link(self, person_id: str, email: str, link_url: str, *, display_name: str | None = None,
                     minutes: int = 15) -> CloudEvent:
        at = datetime.now(UTC)
        return self._event(s.SignInLinkRequested(
            person_id=person_id, network_id=self.network_id, email=email, display_name=display_name,
            link_url=link_url, expires_at=at + timedelta(minutes=minutes), requested_at=at), person_id, at)

    def erased(self, person_id: str, at: datetime | None = None) -> CloudEvent:
        at = at or datetime.now(UTC)
        return self._event(s.PersonErased(person_id=person_id, network_id=self.network_id,
                                          institution_id=self.institution_id, erased_at=at), person_id, at)


def pair_ids(program_id: str, mentor_id: str, mentee_id: str) -> Pair:
    return Pair(_id("mship"), mentor_id, mentee_id, program_id)


async def publish(bootstrap: str, *events: CloudEvent) -> None:
    """Produce the events to their topics, keyed by subject, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            spec = spec_for(event.type)
            assert spec is not None
            await producer.send_and_wait(spec.topic, event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# Webhooks reach only public addresses; the tests' receiver listens on a loopback address of
# its own that the services under test allow explicitly (WEBHOOK_ALLOWED_ADDRESSES), so that
# 127.0.0.1 stays refused like every other internal address.
RECEIVER_ADDRESS = "127.0.0.2"


@dataclass
class WebhookReceiver:
    """A real HTTP server on a free port that records every POST and can fail the first ones."""

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                failing = receiver.fail_first > 0
                receiver.fail_first -= 1 if failing else 0
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((RECEIVER_ADDRESS, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{RECEIVER_ADDRESS}:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
