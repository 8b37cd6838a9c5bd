"""From the matching pool's plain dicts to the scoring models (pure code, no I/O).

The pool is kept from events, so the inputs here are dicts shaped like the event payloads:
`ProfileUpdated` (top level `person_id`, `institution_id`, `career_stage`, and `mentor` / `mentee`
sections), the pool entry written from it by `services.matching.domain.profile_fields` (sections
under `mentor_profile` / `mentee_profile`, id under `_id` or `person_id`), a bare registration
entry (`MentorRegistered` / `MenteeRegistered`: `capacity`, `specialty_interests` at the top), and
`IdentityAttributesChanged` (`attributes`, `use_for_matching`) for affinity. Missing parts mean
"not stated", never an error: a registered person without a full profile can still be matched on
what is known, and the explanation says what is unknown.

    mentee_from_profile(profile, *, program_id="", identity=None, at=None) -> Mentee
    mentor_from_profile(profile, *, program_ids=(), identity=None, active_mentees=0, at=None)
        -> Mentor
    program_from_state(state, *, weights=None) -> Program
    boundary_pairs(profiles) -> frozenset[(mentee id, mentor id)]   # do-not-match, both ways
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.matching.scoring import Mentee, Mentor, Program, Weights

# Profiles' meeting modes are "in-person" and "virtual"; older data may say "video" or "phone".
_MODE_ALIASES = {"video": "virtual", "phone": "virtual", "online": "virtual"}
_FALSE = {"", "false", "no", "none", "0", "prefer-not-to-say", "prefer not to say"}


def _person_id(profile: Mapping[str, Any]) -> str:
    pid = profile.get("person_id") or profile.get("_id")
    if not pid:
        raise ValueError("A profile needs a person_id (or _id)")
    return str(pid)


def _section(profile: Mapping[str, Any], role: str) -> Mapping[str, Any]:
    """The mentor or mentee part, from an event payload (`mentor`) or a pool entry
    (`mentor_profile`); an empty mapping when the person has not filled it in."""
    for key in (role, f"{role}_profile"):
        value = profile.get(key)
        if isinstance(value, Mapping):
            return value
    return {}


def utc_offset(time_zone: str | None, at: datetime | None = None) -> float | None:
    """Hours east of UTC of an IANA time zone at `at` (now when None), so daylight saving is
    counted as it is when the match is made; None for an unknown or missing zone."""
    if not time_zone:
        return None
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    moment = (at or datetime.now(UTC)).astimezone(zone)
    delta = moment.utcoffset()
    return None if delta is None else delta.total_seconds() / 3600


def affinity_tokens(identity: Mapping[str, Any] | None) -> frozenset[str]:
    """The opt-in identity attributes usable for affinity, as `name=value` tokens: only when the
    person allowed their use for matching (`use_for_matching`), and only attributes that state
    something (a false or empty value is no shared identity)."""
    if not identity or not identity.get("use_for_matching"):
        return frozenset()
    attributes = identity.get("attributes") or {}
    return frozenset(
        f"{name}={str(value).strip().lower()}"
        for name, value in attributes.items()
        if str(value).strip().lower() not in _FALSE
    )


def _modes(values: Iterable[str]) -> frozenset[str]:
    return frozenset(_MODE_ALIASES.get(v, v) for v in values if v)


def _strings(values: Iterable[Any] | None) -> frozenset[str]:
    return frozenset(str(v) for v in values or () if v)


def mentee_from_profile(
    profile: Mapping[str, Any],
    *,
    program_id: str = "",
    identity: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Mentee:
    """A mentee for scoring. `program_id` is the program being matched (the caller knows the
    enrolment); `identity` is the person's last `IdentityAttributesChanged` payload, if any.

    Mentee profiles carry no time zone; a `time_zone` in the mentee part or at the top level is
    used when present, else the time-zone factor is neutral. `prefer_same_institution` true or
    false becomes a same- or cross-institution preference, used when the program accepts either.
    A person who is also a mentor brings their own do-not-match list, so a boundary holds in both
    directions."""
    part = _section(profile, "mentee")
    mentor_part = _section(profile, "mentor")
    specialties = _strings(part.get("specialty_interests") or profile.get("specialty_interests"))
    language = part.get("preferred_language")
    mode = part.get("preferred_mode")
    prefer_same = part.get("prefer_same_institution")
    wanted = int(part.get("mentors_wanted") or 1)
    return Mentee(
        id=_person_id(profile),
        institution_id=str(profile.get("institution_id") or ""),
        career_stage=str(profile.get("career_stage") or ""),
        needs=tuple(str(n) for n in part.get("needs") or ()),
        mentors_wanted=max(1, wanted),
        specialties=specialties,
        languages=frozenset({language}) if language else frozenset(),
        meeting_modes=_modes([mode]) if mode else frozenset(),
        utc_offset=utc_offset(part.get("time_zone") or profile.get("time_zone"), at),
        affinity_preferences=affinity_tokens(identity),
        program_id=program_id,
        mentor_needs=tuple(str(n) for n in part.get("mentors_for_needs") or ()),
        institution_preference=None if prefer_same is None else ("same" if prefer_same else "cross"),
        do_not_match=_strings(mentor_part.get("do_not_match")),
    )


def mentor_from_profile(
    profile: Mapping[str, Any],
    *,
    program_ids: Iterable[str] = (),
    identity: Mapping[str, Any] | None = None,
    active_mentees: int = 0,
    at: datetime | None = None,
) -> Mentor:
    """A mentor for scoring, with the places still free: the profile's capacity less
    `active_mentees` (mentorships active or accepted and not yet ended), never below zero.
    `program_ids` are the programs the mentor is enrolled in as a mentor."""
    part = _section(profile, "mentor")
    # A pool entry's top-level capacity / paused are the freshest (MentorCapacityChanged and
    # MentorPaused may update them without a new profile section); an event payload has only
    # the section.
    capacity = profile["capacity"] if "capacity" in profile else part.get("capacity", 0)
    paused = profile["paused"] if "paused" in profile else part.get("paused", False)
    specialties = set(_strings(profile.get("specialty_interests")))
    if part.get("specialty"):
        specialties.add(str(part["specialty"]))
    return Mentor(
        id=_person_id(profile),
        institution_id=str(profile.get("institution_id") or ""),
        career_stage=str(profile.get("career_stage") or ""),
        capacity=max(0, int(capacity or 0) - max(0, active_mentees)),
        help_offered=_strings(part.get("help_offered")),
        specialties=frozenset(specialties),
        languages=_strings(part.get("languages")),
        meeting_modes=_modes(part.get("meeting_modes") or ()),
        utc_offset=utc_offset(part.get("time_zone"), at),
        affinities=affinity_tokens(identity),
        trained=bool(part.get("training_completed", False)),
        paused=bool(paused),
        program_ids=_strings(program_ids),
        do_not_match=_strings(part.get("do_not_match")),
    )


def program_from_state(state: Mapping[str, Any], *, weights: Weights | None = None) -> Program:
    """A program for scoring from a `ProgramCreated` / `ProgramUpdated` payload: its type sets
    the career-stage rule, and `cross_institution` false asks for same-institution pairs."""
    cross = state.get("cross_institution", True)
    return Program(
        id=str(state.get("program_id") or state.get("_id") or state.get("id") or ""),
        type=str(state.get("type") or "near-peer"),
        institution_rule="either" if cross else "same",
        weights=weights or Weights(),
    )


def boundary_pairs(profiles: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    """Every (mentee id, mentor id) a do-not-match list forbids, in both directions: a person
    who supervises or evaluates another is matched with them in neither role."""
    pairs: set[tuple[str, str]] = set()
    for profile in profiles:
        pid = _person_id(profile)
        for other in _section(profile, "mentor").get("do_not_match") or ():
            pairs.add((pid, str(other)))
            pairs.add((str(other), pid))
    return frozenset(pairs)
