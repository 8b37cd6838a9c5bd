"""Matching domain: the pool of candidates and the programs, kept from profile events alone
(pure: no I/O). Each function turns an event payload into the fields matching keeps, so the
handlers only decide how to write them (guards that make replays and reordering harmless).
"""

from __future__ import annotations

from typing import Any

from shared.events.schemas import (
    IdentityAttributesChanged,
    MenteeRegistered,
    MentorRegistered,
    ProfileUpdated,
    ProgramCreated,
    ProgramUpdated,
)
from shared.filters import at_most, below

ROLES = ("mentor", "mentee")
ERASED_NAME = "(erased)"


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


def membership_field(role: str) -> str:
    """Where a person's programs in one role are kept: `mentor_programs` / `mentee_programs`.
    Membership is per role because one person may mentor in one program and be mentored in
    another."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return f"{role}_programs"


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
    or late event never rolls a profile back. An erased person's entry never changes again."""
    return {
        "_id": person_id,
        "erased": {"$ne": True},
        **below("profile_version", version),
    }


def not_older_profile(person_id: str, version: int) -> dict[str, Any]:
    """Filter for the single-field events (capacity, pause) published with a profile version:
    they apply unless a later whole profile is already there."""
    return {
        "_id": person_id,
        "erased": {"$ne": True},
        **at_most("profile_version", version),
    }


def affinities(payload: IdentityAttributesChanged) -> list[str]:
    """Opt-in identity attributes usable for affinity matching, as "name:value" terms; none
    unless the person allowed matching to use them. Never shown to anyone."""
    if not payload.use_for_matching:
        return []
    return sorted(f"{name}:{value}" for name, value in payload.attributes.items() if value)


def identity_view(payload: IdentityAttributesChanged) -> dict[str, Any] | None:
    """The identity payload kept for affinity scoring: only when the person allowed matching
    to use it; nothing otherwise."""
    if not payload.use_for_matching:
        return None
    return {"attributes": dict(payload.attributes), "use_for_matching": True}


def erased_fields() -> dict[str, Any]:
    """What is left of an erased person: the pseudonymous id, institution and role counts."""
    return {
        "display_name": ERASED_NAME,
        "specialty_interests": [],
        "mentor_profile": None,
        "mentee_profile": None,
        "affinities": [],
        "identity": None,
        "capacity": 0,
        "paused": True,
        "erased": True,
    }


PROGRAM_FIELDS = (
    "network_id",
    "institution_id",
    "name",
    "type",
    "cross_institution",
    "max_mentors_per_mentee",
    "cadence_days",
    "auto_accept",
    "reassessment_days",
    "ranked_preferences",
    "cohort_start",
    "cohort_end",
)


def program_view(payload: ProgramCreated | ProgramUpdated) -> dict[str, Any]:
    """What matching needs of a program, at the event's version."""
    state = payload.model_dump(mode="json")
    view = {name: state[name] for name in PROGRAM_FIELDS}
    view["version"] = payload.version
    return view


def institution_rule(program: dict[str, Any]) -> str:
    """A program of one institution matches inside it unless it is cross-institution; a
    network-wide program matches across institutions."""
    if program.get("institution_id") is None or program.get("cross_institution"):
        return "either"
    return "same"
