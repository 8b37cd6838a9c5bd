"""Message plans, delivery keys, rendering and overrides, signed tokens, invitations (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from services.notifications import domain
from services.notifications.api_admin import SAMPLE
from services.notifications.invitations import invitation
from services.notifications.kinds import KINDS
from services.notifications.rendering import InvalidTemplate, render, validate_override
from services.notifications.signing import read_unsubscribe_token, unsubscribe_token, webhook_signature

NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_one_delivery_per_source_recipient_and_channel_and_one_webhook_per_endpoint():
    plans = [domain.Planned("milestone", "mentee-1", {"title": "T"}, ("mentor-1", "mentee-1")),
             domain.Planned("milestone", "mentor-1", {"title": "T"}, ("mentor-1", "mentee-1"))]
    hooks = [{"_id": "w1", "kinds": []}, {"_id": "w2", "kinds": ["welcome"]}]
    docs = domain.deliveries("evt-1", "n1", plans, created_at=NOW, event_time=NOW, webhooks=hooks)
    ids = [d["_id"] for d in docs]
    assert len(ids) == len(set(ids)) == 5  # 2 people x (email, in_app) + one webhook (w1 only)
    assert "evt-1:mentee-1:email" in ids and "evt-1:milestone:webhook:w1:webhook" in ids
    again = domain.deliveries("evt-1", "n1", plans, created_at=NOW, event_time=NOW, webhooks=hooks)
    assert [d["_id"] for d in again] == ids  # the same event twice: the same keys
    assert all("@" not in str(d["context"]) for d in docs)  # no addresses copied into the record


def test_one_source_never_plans_two_messages_for_a_recipient_and_channel():
    class Ended:
        mentor_id, mentee_id, reason = "mentor-1", "mentee-1", "completed"
    plans = domain.on_mentorship_ended(Ended(), recognise=True)
    assert sorted(p.kind for p in plans) == ["mentor_recognition", "mentorship_ended"]
    docs = domain.deliveries("evt-9", "n1", plans, created_at=NOW, event_time=NOW)
    assert len({d["_id"] for d in docs}) == len(docs)
    with pytest.raises(ValueError, match="two messages"):
        domain.deliveries("evt-9", "n1", plans + plans, created_at=NOW, event_time=NOW)


def test_coordinators_are_recipients_by_address():
    m = {"_id": "m1", "mentor_id": "a", "mentee_id": "b", "cadence_days": 14, "program_id": "p"}
    [plan] = domain.silence_nudge("coordinator", m, 30, ["Coord@Example.org"])
    assert plan.recipient == "email:coord@example.org" and plan.kind == "stalled_pair"
    assert domain.person_of(plan.recipient) is None
    [nudge] = domain.silence_nudge("mentee", m, 18, [])
    assert nudge.recipient == "b"


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_renders_all_parts(kind):
    message = render(kind, {**SAMPLE, "kind": kind})
    assert message.subject and message.summary and message.text.strip() and message.html.strip()


def test_html_is_escaped_and_text_is_not():
    hostile = {**SAMPLE, "recipient": {**SAMPLE["recipient"], "first_name": "<b>Bo</b>"}}
    message = render("welcome", hostile)
    assert "&lt;b&gt;Bo&lt;/b&gt;" in message.html and "<b>Bo</b>" in message.text


def test_mandatory_messages_say_so_and_others_carry_the_unsubscribe_link():
    assert "mandatory" in render("welcome", {**SAMPLE, "mandatory": True}).text
    milestone = render("milestone", SAMPLE)
    assert SAMPLE["unsubscribe_url"] in milestone.text and SAMPLE["unsubscribe_url"] in milestone.html


def test_overrides_render_in_the_sandbox_and_bad_ones_are_refused_with_the_reason():
    overrides = {"subject": "Bienvenue {{ recipient.first_name }}", "html": "<p>{{ recipient.display_name }}</p>"}
    validate_override("welcome", overrides, SAMPLE)
    message = render("welcome", {**SAMPLE, "recipient": {**SAMPLE["recipient"], "display_name": "<i>x</i>"}}, overrides)
    assert message.subject == "Bienvenue Ada" and message.html.strip() == "<p>&lt;i&gt;x&lt;/i&gt;</p>"
    assert "Hello Ada" in message.text  # parts not overridden keep the default
    with pytest.raises(InvalidTemplate, match="subject"):
        validate_override("welcome", {"subject": "{{ unknown_name }}"}, SAMPLE)
    with pytest.raises(InvalidTemplate, match="line"):
        validate_override("welcome", {"text": "{% if %}"}, SAMPLE)
    with pytest.raises(InvalidTemplate, match="unsafe|access"):
        validate_override("welcome", {"text": "{{ recipient.__class__.__mro__ }}"}, SAMPLE)


def test_unsubscribe_tokens_cannot_be_forged_or_altered():
    token = unsubscribe_token("s3cret", "person-1", "n1", "nudge")
    assert read_unsubscribe_token("s3cret", token) == ("person-1", "n1", "nudge")
    assert read_unsubscribe_token("other", token) is None
    body, mac = token.split(".")
    forged = unsubscribe_token("guess", "person-2", "n1", "nudge").split(".")[0] + "." + mac
    assert read_unsubscribe_token("s3cret", forged) is None
    assert read_unsubscribe_token("s3cret", "garbage") is None


def test_webhook_signature_is_hmac_sha256_of_timestamp_and_body():
    import hashlib
    import hmac
    expected = hmac.new(b"k", b"123.{}", hashlib.sha256).hexdigest()
    assert webhook_signature("k", "123", b"{}") == f"sha256={expected}"


def test_invitation_is_rfc5545_with_uid_sequence_and_attendees():
    raw = invitation(meeting_id="meet-1", sequence=7, summary="Mentoring", starts_at=NOW,
                     duration_minutes=45, location="Room 3", description="Goals",
                     organizer_email="no-reply@mentorship.local",
                     attendees=[("Ada", "ada@example.org"), ("Bo", "bo@example.org")], stamp=NOW)
    calendar = Calendar.from_ical(raw)
    [event] = calendar.walk("VEVENT")
    assert str(calendar["method"]) == "REQUEST"
    assert str(event["uid"]) == "meet-1@mentorship.local" and int(event["sequence"]) == 7
    assert event.decoded("dtstart") == NOW
    assert (event.decoded("dtend") - NOW).total_seconds() == 45 * 60
    assert sorted(str(a) for a in event["attendee"]) == ["mailto:ada@example.org", "mailto:bo@example.org"]
