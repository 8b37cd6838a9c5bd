"""Who may run matching for a program and who may see and change which mentorships: grants
and membership, never one global role (docs/access-model.md). Tenancy is a security boundary.

Programs (settings, runs, preferences, suggestions, hand proposals): the program's managers
run them: network admins, coordinators of the program, and coordinators of the institution
the program belongs to (a network-wide program belongs to the network: its coordinators and
the network admins). A program the caller cannot reach is 403 (its id is in the URL).

The candidate pool: the same people profiles shows each caller in full: network admins
everyone, institution coordinators their institutions' people, program coordinators the
people enrolled in their programs; participants nobody.

Mentorships: a query added to every read, so a mentorship outside the caller's reach is not
found (404, never 403: a 403 would confirm the id exists). A caller sees the union of:
mentorships of programs they coordinate, mentorships touching an institution they coordinate
(either person, or the program), and their own (as either side).

Acting for a participant (accepting or declining for a side, recording steps of the pair) is
the pair's own, or the program's managers': an institution coordinator who merely sees a
mentorship because one side is theirs does not act in it.
"""

from __future__ import annotations

from typing import Any

from shared.auth import Principal, forbidden, require_network

NOBODY = {"_id": {"$in": []}}


def manages_program(principal: Principal, program_id: str, program_institution: str | None) -> bool:
    """Network admin, coordinator of the program, or of the institution it belongs to."""
    return (principal.is_network_admin or principal.coordinates_program(program_id)
            or principal.coordinates_institution(program_institution))


def may_manage_program(principal: Principal, program: dict[str, Any], *, read: bool = False) -> None:
    """403 unless the caller manages this program (reading asks the same)."""
    require_network(principal, program["network_id"])
    if manages_program(principal, program["_id"], program.get("institution_id")):
        return
    if principal.institution_ids:
        raise forbidden("You can only run matching for programs of your own institution.")
    if principal.program_ids:
        raise forbidden("You can only run matching for the programs you coordinate.")
    raise forbidden("Only coordinators can run matching for a program.")


def pool_visible(principal: Principal, entry: dict[str, Any]) -> bool:
    """Does the caller see this candidate of the pool (the same reach as in profiles)?"""
    if principal.is_network_admin:
        return True
    if principal.coordinates_institution(entry.get("institution_id")):
        return True
    programs = {*(entry.get("mentor_programs") or []), *(entry.get("mentee_programs") or [])}
    return any(principal.coordinates_program(p) for p in programs)


def mentorship_scope(principal: Principal, network_id: str) -> dict[str, Any]:
    """The query a caller's mentorship reads are limited to."""
    require_network(principal, network_id)
    if principal.is_network_admin:
        return {}
    reach: list[dict[str, Any]] = []
    if principal.program_ids:
        reach.append({"program_id": {"$in": list(principal.program_ids)}})
    for field in ("program_institution_id", "mentor_institution_id", "mentee_institution_id"):
        if principal.institution_ids:
            reach.append({field: {"$in": list(principal.institution_ids)}})
    if principal.person_id is not None:
        reach += [{"mentor_id": principal.person_id}, {"mentee_id": principal.person_id}]
    return {"$or": reach} if reach else NOBODY


def in_pair(principal: Principal, doc: dict[str, Any]) -> bool:
    return principal.is_person and principal.person_id is not None and principal.person_id in (
        doc["mentor_id"], doc["mentee_id"])


def acts_for_pair(principal: Principal, doc: dict[str, Any]) -> bool:
    """May the caller act for either side of this mentorship (the program's managers)?"""
    return manages_program(principal, doc["program_id"], doc.get("program_institution_id"))


def is_coordinator(principal: Principal) -> bool:
    """Holds any grant (used where a staff-only view of something is meant)."""
    return principal.is_staff
