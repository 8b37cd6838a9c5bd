"""Matching domain (issue 2 scope): the pool of candidates kept from profile events."""

from __future__ import annotations

from typing import Any

from shared.events.schemas import MenteeRegistered, MentorRegistered, ProfileUpdated


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


def profile_fields(payload: ProfileUpdated) -> dict[str, Any]:
    """What matching keeps of a profile: the whole state at its version (the event carries
    all of it), so the pool never mixes parts of two versions."""
    mentor = payload.mentor.model_dump(mode="json") if payload.mentor else None
    return {
        "display_name": payload.display_name,
        "career_stage": payload.career_stage,
        "institution_id": payload.institution_id,
        "roles": list(payload.roles),
        "mentor_profile": mentor,
        "mentee_profile": payload.mentee.model_dump(mode="json") if payload.mentee else None,
        "capacity": mentor["capacity"] if mentor else 0,
        "paused": mentor["paused"] if mentor else False,
        "profile_version": payload.version,
    }


def newer_profile(person_id: str, version: int) -> dict[str, Any]:
    """Filter that only matches a pool entry holding an older profile version, so a replayed
    or late event never rolls a profile back."""
    return {
        "_id": person_id,
        "$or": [{"profile_version": {"$lt": version}}, {"profile_version": {"$exists": False}}],
    }
