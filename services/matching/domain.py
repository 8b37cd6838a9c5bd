"""Matching domain (issue 2 scope): the pool of candidates kept from profile events."""

from __future__ import annotations

from typing import Any

from shared.events.schemas import MenteeRegistered, MentorRegistered


def pool_entry(payload: MenteeRegistered | MentorRegistered) -> dict[str, Any]:
    """The matching service's own view of a participant, built from the event alone."""
    role = "mentor" if isinstance(payload, MentorRegistered) else "mentee"
    entry: dict[str, Any] = {
        "person_id": payload.person_id,
        "network_id": payload.network_id,
        "institution_id": payload.institution_id,
        "program_id": payload.program_id,
        "role": role,
        "display_name": payload.display_name,
        "career_stage": payload.career_stage,
        "specialty_interests": list(payload.specialty_interests),
    }
    if isinstance(payload, MentorRegistered):
        entry["capacity"] = payload.capacity
    return entry
