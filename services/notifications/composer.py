"""Turns a delivery record into the message that leaves: context, rendering, attachments.

Names and addresses are looked up now, from this service's view, not copied when the event
arrived: a message waiting for quiet hours to end shows the name a person has today, and an
erased person's details are in no pending record. Every link points at the web app (APP_URL):
the page of the kind, the person's preferences, and the unsubscribe page with a signed token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notifications import view
from services.notifications.config import DeliverySettings
from services.notifications.invitations import invitation
from services.notifications.kinds import KINDS, PREFERENCES_PAGE, UNSUBSCRIBE_PAGE
from services.notifications.rendering import RenderedMessage, render
from services.notifications.sandbox import TemplateSandbox
from services.notifications.signing import unsubscribe_token


@dataclass
class Lookups:
    """Everything a batch of deliveries needs, fetched in a few queries."""

    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    preferences: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    filename: str
    maintype: str
    subtype: str
    content: bytes
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Composed:
    message: RenderedMessage
    attachments: tuple[Attachment, ...] = ()
    unsubscribe_url: str | None = None
    link: str | None = None  # the web app page the message is about


def page_link(delivery: dict[str, Any], base: str) -> str | None:
    """APP_URL + the kind's page, when the message has one (a sign-in link carries its own)."""
    spec = KINDS[delivery["kind"]]
    if spec.page is None:
        return None
    if "{mentorship_id}" in spec.page and not delivery.get("mentorship_id"):
        return None
    return base + spec.page.format(mentorship_id=delivery.get("mentorship_id"))


def _when(iso: str) -> str:
    at = datetime.fromisoformat(iso)
    return at.strftime("%a %d %b %Y, %H:%M %Z").strip()


def context_for(delivery: dict[str, Any], lookups: Lookups, settings: DeliverySettings,
                secret: str = "") -> dict[str, Any]:
    """Everything the templates may use. `secret` signs the unsubscribe link (email only)."""
    facts = dict(delivery.get("context") or {})
    recipient = delivery["recipient"]
    person = lookups.people.get(recipient)
    if person is not None and (person.get("display_name") or not facts.get("display_name")):
        shown = view.public(person)
    elif facts.get("display_name"):  # named by the event (a sign-in link to staff)
        shown = view.public({"display_name": facts["display_name"], "email": facts.get("email")})
    else:  # a coordinator, known by address only
        shown = {"display_name": "Coordinator", "first_name": "there",
                 "email": recipient.removeprefix("email:"), "goals": []}
    people = {pid: view.public(lookups.people.get(pid)) for pid in delivery.get("about", [])}
    program_id = facts.get("program_id") or delivery.get("program_id")
    program = lookups.programs.get(program_id) if program_id else None
    spec = KINDS[delivery["kind"]]
    base = settings.link_base
    unsubscribe_url = None
    if not spec.mandatory and delivery["channel"] == "email" and secret:
        token = unsubscribe_token(secret, recipient, delivery["network_id"], delivery["kind"])
        unsubscribe_url = f"{base}{UNSUBSCRIBE_PAGE}?token={token}"
    context: dict[str, Any] = {
        "role": None, "side": None, "need": None, "agenda": "", "location": "",
        "explanation": [], "auto_accept": False, "is_rematch": False,
        **facts,
        "kind": delivery["kind"],
        "mandatory": spec.mandatory,
        "recipient": shown,
        "recipient_id": recipient,
        "people": people,
        "mentor": people.get(facts.get("mentor_id", ""), view.public(None)),
        "mentee": people.get(facts.get("mentee_id", ""), view.public(None)),
        "program": {"name": program["name"], "cadence_days": program.get("cadence_days")}
        if program and program.get("name") else None,
        "mentorship_id": delivery.get("mentorship_id"),
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": f"{base}{PREFERENCES_PAGE}",
        "app_url": base,
        "link": page_link(delivery, base),
    }
    for field in ("starts_at", "expires_at"):
        if field in facts:
            context[f"{field}_text"] = _when(facts[field])
    return context


async def compose(delivery: dict[str, Any], lookups: Lookups, settings: DeliverySettings,
                  now: datetime, *, sandbox: TemplateSandbox, secret: str = "") -> Composed:
    """The message: the kind's templates, with the network's overrides rendered in the
    sandbox (TemplateFailed when an override cannot render within its limits)."""
    context = context_for(delivery, lookups, settings, secret)
    overrides = lookups.templates.get((delivery["network_id"], delivery["kind"]))
    overridden = await sandbox.render(overrides, context) if overrides else None
    message = render(delivery["kind"], context, overridden)
    attachments: tuple[Attachment, ...] = ()
    if delivery["kind"] == "meeting_scheduled" and delivery["channel"] == "email":
        attachments = (_ics(delivery, context, settings, now),)
    return Composed(message, attachments, context["unsubscribe_url"], context["link"])


def _ics(delivery: dict[str, Any], context: dict[str, Any], settings: DeliverySettings,
         now: datetime) -> Attachment:
    facts = delivery["context"]
    attendees = [(p["display_name"], p["email"]) for p in (context["mentor"], context["mentee"]) if p["email"]]
    content = invitation(
        meeting_id=facts["meeting_id"],
        sequence=int(facts.get("sequence", 0)),
        summary=f"Mentoring: {context['mentor']['display_name']} and {context['mentee']['display_name']}",
        starts_at=datetime.fromisoformat(facts["starts_at"]),
        duration_minutes=int(facts["duration_minutes"]),
        location=facts.get("location") or "",
        description=facts.get("agenda") or "Mentoring meeting",
        organizer_email=settings.smtp_from.split("<")[-1].rstrip(">").strip(),
        attendees=attendees,
        stamp=now,
    )
    return Attachment("meeting.ics", "text", "calendar", content, {"method": "REQUEST"})
