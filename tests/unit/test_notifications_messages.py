"""Message plans, delivery keys, rendering and overrides, signed tokens, invitations (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from services.notifications import domain
from services.notifications.api_admin import SAMPLE
from services.notifications.invitations import invitation
from services.notifications.kinds import KINDS
from services.notifications.rendering import render
from services.notifications.sandbox_child import render_parts
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


def _refusal(parts: dict[str, str], limit: int = 10_000) -> str:
    answer = render_parts(parts, SAMPLE, limit)
    assert "error" in answer, answer
    return f"{answer['part']} (line {answer.get('line')}): {answer['error']}"


def test_overrides_render_in_the_sandbox_and_bad_ones_are_refused_with_the_reason():
    overrides = {"subject": "Bienvenue {{ recipient.first_name }}", "html": "<p>{{ recipient.display_name }}</p>"}
    context = {**SAMPLE, "recipient": {**SAMPLE["recipient"], "display_name": "<i>x</i>"}}
    rendered = render_parts(overrides, context, 10_000)["parts"]
    message = render("welcome", context, rendered)
    assert message.subject == "Bienvenue Ada" and message.html.strip() == "<p>&lt;i&gt;x&lt;/i&gt;</p>"
    assert "Hello Ada" in message.text  # parts not overridden keep the default
    assert "subject" in _refusal({"subject": "{{ unknown_name }}"})
    assert "line 1" in _refusal({"text": "{% if %}"})
    assert "unsafe" in _refusal({"text": "{{ recipient.__class__.__mro__ }}"})
    assert "unsafe" in _refusal({"text": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})


def test_overrides_that_would_build_enormous_values_are_refused_before_computing_them():
    assert "exponent" in _refusal({"text": "{{ 9 ** (9 ** 9) }}"})  # Jinja reads 9**9**9 as (9**9)**9
    assert "characters" in _refusal({"text": "{{ 'a' * 1000000000 }}"})
    assert "characters" in _refusal({"text": "{% for i in range(5000) %}{{ i }}{% endfor %}"}, limit=1_000)
    assert render_parts({"text": "{{ 2 ** 10 }} {{ 'ab' * 3 }}"}, SAMPLE, 1_000) == {"parts": {"text": "1024 ababab"}}


@pytest.mark.parametrize("kind", [k for k, spec in KINDS.items() if spec.page and "email" in spec.channels])
def test_every_email_links_to_its_page_in_the_web_app(kind):
    link = f"https://app.example.org{KINDS[kind].page.format(mentorship_id='m1')}"
    message = render(kind, {**SAMPLE, "kind": kind, "link": link})
    assert link in message.text and f'href="{link}"' in message.html


def test_the_welcome_asks_to_complete_the_profile_and_the_sign_in_link_carries_its_link():
    welcome = render("welcome", {**SAMPLE, "link": "https://app.example.org/profile", "mandatory": True})
    assert "Complete your profile: https://app.example.org/profile" in welcome.text
    sign_in = render("sign_in_link", {**SAMPLE, "kind": "sign_in_link", "mandatory": True})
    assert SAMPLE["link_url"] in sign_in.text and SAMPLE["link_url"] in sign_in.html
    assert "mandatory" in sign_in.text and "unsubscribe" not in sign_in.text.lower()


def test_unsubscribe_tokens_cannot_be_forged_or_altered():
    token = unsubscribe_token("s3cret", "person-1", "n1", "nudge")
    assert read_unsubscribe_token("s3cret", token) == ("person-1", "n1", "nudge")
    assert read_unsubscribe_token("other", token) is None
    for field, value in ((0, "person-2"), (1, "n2"), (2, "milestone")):  # each named fact is signed
        named = ["person-1", "n1", "nudge"]
        named[field] = value
        altered = unsubscribe_token("s3cret", *named).split(".")[0] + "." + token.split(".")[1]
        assert read_unsubscribe_token("s3cret", altered) is None
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
