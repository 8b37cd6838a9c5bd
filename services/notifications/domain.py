"""Notifications domain (issue 2 scope): which message an event deserves."""

from __future__ import annotations


from typing import Any

from shared.events import CloudEvent
from shared.events.schemas import MenteeRegistered, MentorRegistered


def welcome(event: CloudEvent, payload: MenteeRegistered | MentorRegistered) -> dict[str, Any]:
    """The in-app welcome for a newly registered person.

    Its id derives from the event id and the recipient, so one event can never produce two
    welcomes for the same person (exactly one message per event, recipient and channel).
    """
    role = "mentor" if isinstance(payload, MentorRegistered) else "mentee"
    first_name = payload.display_name.split()[0]
    return {
        "_id": f"{event.id}:{payload.person_id}:in_app",
        "person_id": payload.person_id,
        "network_id": payload.network_id,
        "kind": "welcome",
        "channel": "in_app",
        "title": f"Welcome, {first_name}",
        "body": (
            f"You are registered as a {role}. Complete your profile so we can find the right "
            "match for you."
        ),
        "source_event_id": event.id,
        "created_at": event.time,
        "read": False,
    }




def welcome_context(payload: MenteeRegistered | MentorRegistered) -> dict[str, Any]:
    """What the welcome templates may use (nothing more: templates see no other fields)."""
    return {
        "first_name": payload.display_name.split()[0],
        "role": "mentor" if isinstance(payload, MentorRegistered) else "mentee",
        "program_id": payload.program_id,
    }


def email_delivery(
    event: CloudEvent,
    payload: MenteeRegistered | MentorRegistered,
    *,
    kind: str,
    subject: str,
    text: str,
    html: str,
) -> dict[str, Any]:
    """A pending email, keyed by event, recipient and channel: one per triple, ever."""
    return {
        "_id": f"{event.id}:{payload.person_id}:email",
        "person_id": payload.person_id,
        "network_id": payload.network_id,
        "channel": "email",
        "kind": kind,
        "to": payload.email,
        "subject": subject,
        "text": text,
        "html": html,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": event.time,
        "created_at": event.time,
        "source_event_id": event.id,
    }
