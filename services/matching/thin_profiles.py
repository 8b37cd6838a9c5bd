"""Profiles too thin to match on (pure code, no I/O).

A mentee who names no needs and no specialty interest, or a mentor who offers no help and names
no specialty, is matched on logistics alone (career stage, language, time zone): among mentors
with the same logistics every choice scores the same, so the match is no better than chance.
Many people register and never fill in the rest (a blank profile), and a draft run lists them so
the coordinator can ask them to complete it before publishing.

The rule, per program: a profile is thin when it states none of the factors that say what a
mentee wants or a mentor offers (needs / help offered, specialty) among those the program gives
weight to; a program that weighs neither judges by the other stated factors it weighs (language,
meeting mode, time zone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.matching.scoring import Mentee, Mentor, Weights

SUBSTANCE = ("needs", "specialty")
LOGISTICS = ("language", "meeting_mode", "time_zone")
WORDS = {
    "needs": "needs",
    "specialty": "specialty interests",
    "language": "languages",
    "meeting_mode": "meeting modes",
    "time_zone": "time zone",
}
MENTOR_WORDS = {**WORDS, "needs": "help offered", "specialty": "specialty"}


def mentee_stated(e: Mentee) -> set[str]:
    """The profile factors the mentee filled in."""
    return {
        f
        for f, filled in (
            ("needs", bool(e.needs)),
            ("specialty", bool(e.specialties)),
            ("language", bool(e.languages)),
            ("meeting_mode", bool(e.meeting_modes)),
            ("time_zone", e.utc_offset is not None),
        )
        if filled
    }


def mentor_stated(m: Mentor) -> set[str]:
    """The profile factors the mentor filled in."""
    return {
        f
        for f, filled in (
            ("needs", bool(m.help_offered)),
            ("specialty", bool(m.specialties)),
            ("language", bool(m.languages)),
            ("meeting_mode", bool(m.meeting_modes)),
            ("time_zone", m.utc_offset is not None),
        )
        if filled
    }


def deciding_factors(weights: Weights) -> tuple[str, ...]:
    """The factors a profile must state one of: the weighted substance, else the weighted
    logistics."""
    w = weights.as_dict()
    substance = tuple(f for f in SUBSTANCE if w[f] > 0)
    return substance or tuple(f for f in LOGISTICS if w[f] > 0)


def thin_profiles(
    mentees: Sequence[Mentee],
    mentors: Sequence[Mentor],
    weights: Weights,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Who has too little profile to be matched on more than chance, each with what is
    missing: counts and lists for both sides (mentors only when they have a place to give)."""
    deciding = deciding_factors(weights)
    names = names or {}

    def entry(person_id: str, stated: set[str], words: Mapping[str, str]) -> dict[str, Any] | None:
        if not deciding or any(f in stated for f in deciding):
            return None
        missing = [words[f] for f in (*SUBSTANCE, *LOGISTICS) if f not in stated]
        return {"person_id": person_id, "display_name": names.get(person_id, ""), "missing": missing}

    thin_mentees = [x for e in mentees if (x := entry(e.id, mentee_stated(e), WORDS))]
    thin_mentors = [
        x
        for m in mentors
        if m.capacity > 0 and not m.paused and (x := entry(m.id, mentor_stated(m), MENTOR_WORDS))
    ]
    return {
        "rule": (
            "a mentee states none of: " + ", ".join(WORDS[f] for f in deciding)
            + "; a mentor none of: " + ", ".join(MENTOR_WORDS[f] for f in deciding)
        ),
        "mentees": {"count": len(thin_mentees), "people": thin_mentees},
        "mentors": {"count": len(thin_mentors), "people": thin_mentors},
    }
