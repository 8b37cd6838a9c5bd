"""The scoring models (`services.matching.scoring`) built from matching's own pool documents
and mentorships (pure: no I/O).

The field mapping is `services.matching.profile_mapping`'s; this module adds what matching
knows besides the profile: places left, program membership, erasure, pairs already closed or
open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from services.matching.domain import institution_rule
from services.matching.scoring import Constraints, Mentee, Mentor, Program, Weights

from services.matching import profile_mapping


def _identity(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The person's opt-in identity payload as the pool keeps it (empty unless allowed)."""
    return doc.get("identity") or None


def mentor_model(doc: Mapping[str, Any], remaining: int) -> Mentor:
    """A mentor with `remaining` places (capacity less active mentorships and open proposals)."""
    mentor = profile_mapping.mentor_from_profile(
        doc, program_ids=doc.get("mentor_programs") or (), identity=_identity(doc)
    )
    return replace(mentor, capacity=max(0, remaining), paused=mentor.paused or bool(doc.get("erased")))


def mentee_model(
    doc: Mapping[str, Any], program_id: str, wanted: int | None = None
) -> Mentee:
    """A mentee of `program_id` wanting `wanted` more mentors (default: what they asked for)."""
    member = program_id if program_id in (doc.get("mentee_programs") or ()) else ""
    mentee = profile_mapping.mentee_from_profile(doc, program_id=member, identity=_identity(doc))
    return mentee if wanted is None else replace(mentee, mentors_wanted=max(1, wanted))


def weights_of(settings: Mapping[str, Any] | None) -> Weights:
    return Weights(**dict((settings or {}).get("weights") or {}))


def program_model(program: Mapping[str, Any], settings: Mapping[str, Any] | None) -> Program:
    """The program as scoring sees it. Its type is kept as the program names it: scoring picks
    the career-stage rule from it and the explanation names it (a career program is not a
    faculty one)."""
    return Program(
        id=program["_id"],
        type=str(program.get("type") or "near-peer"),
        institution_rule=institution_rule(dict(program)),  # type: ignore[arg-type]
        weights=weights_of(settings),
    )


def constraints_of(
    mentors: Iterable[Mapping[str, Any]], mentorships: Iterable[Mapping[str, Any]]
) -> Constraints:
    """Pairs never to propose: a mentor's do-not-match list (supervisor / evaluator), pairs
    whose mentorship ended or was declined, and pairs already proposed or active (as
    "excluded" where scoring has that set, else as boundaries: never proposed twice)."""
    boundaries: set[tuple[str, str]] = set()
    for mentor in mentors:
        for mentee_id in (mentor.get("mentor_profile") or {}).get("do_not_match") or ():
            boundaries.add((mentee_id, mentor["_id"]))
    ended, declined, open_pairs = set(), set(), set()
    for m in mentorships:
        pair = (m["mentee_id"], m["mentor_id"])
        {"ended": ended, "declined": declined}.get(m["status"], open_pairs).add(pair)
    if "excluded" in Constraints.__dataclass_fields__:  # scoring with a set for open pairs
        return Constraints(frozenset(boundaries), frozenset(ended), frozenset(declined),
                           excluded=frozenset(open_pairs))  # type: ignore[call-arg]
    return Constraints(frozenset(boundaries | open_pairs), frozenset(ended), frozenset(declined))
