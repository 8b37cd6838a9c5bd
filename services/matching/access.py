"""Who may run matching for a program and who may see and change which mentorships (the
contract's tenancy, as in profiles). Tenancy is a security boundary.

Programs (settings, runs, preferences, suggestions, hand proposals):
* network admins and services: every program of the network;
* institution coordinators: programs of their institution; they may read (not run) programs
  that span institutions and are listed in their token;
* program coordinators: the programs in their token's `program_ids`;
* mentors and mentees: only their own preferences and suggestions (checked by the route).
A program the caller cannot reach is 403 (its id is in the URL; the message says why).

Mentorships: a query added to every read, so a mentorship outside the caller's reach is not
found (404, never 403: a 403 would confirm the id exists):
* institution coordinators: mentorships of programs of their institution or with either
  person at their institution; program coordinators: of their programs; mentors and mentees:
  their own (as either side).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from shared.auth import Principal, Role, require_network

MANAGERS = (Role.NETWORK_ADMIN, Role.SERVICE)
COORDINATORS = (Role.INSTITUTION_COORDINATOR, Role.PROGRAM_COORDINATOR)
NOBODY = {"_id": {"$in": []}}


def is_coordinator(principal: Principal) -> bool:
    return principal.role in MANAGERS or principal.role in COORDINATORS


def may_manage_program(principal: Principal, program: dict[str, Any], *, read: bool = False) -> None:
    """403 unless the caller coordinates this program (or, with `read`, may look at it)."""
    require_network(principal, program["network_id"])
    if principal.role in MANAGERS:
        return
    if principal.role == Role.INSTITUTION_COORDINATOR:
        own = program.get("institution_id") is not None and program["institution_id"] == principal.institution_id
        spanning = program.get("institution_id") is None or program.get("cross_institution")
        if own or (read and spanning and program["_id"] in principal.program_ids):
            return
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You can only run matching for programs of your own institution.")
    if principal.role == Role.PROGRAM_COORDINATOR:
        if program["_id"] in principal.program_ids:
            return
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You can only run matching for the programs you coordinate.")
    raise HTTPException(status.HTTP_403_FORBIDDEN, "Only coordinators can run matching for a program.")


def mentorship_scope(principal: Principal, network_id: str) -> dict[str, Any]:
    """The query a caller's mentorship reads are limited to."""
    require_network(principal, network_id)
    if principal.role in MANAGERS:
        return {}
    if principal.role == Role.INSTITUTION_COORDINATOR:
        inst = principal.institution_id
        if inst is None:
            return NOBODY
        return {"$or": [{"program_institution_id": inst}, {"mentor_institution_id": inst},
                        {"mentee_institution_id": inst}]}
    if principal.role == Role.PROGRAM_COORDINATOR:
        return {"program_id": {"$in": list(principal.program_ids)}}
    if principal.person_id is None:
        return NOBODY
    return {"$or": [{"mentor_id": principal.person_id}, {"mentee_id": principal.person_id}]}


def in_pair(principal: Principal, doc: dict[str, Any]) -> bool:
    return principal.person_id is not None and principal.person_id in (doc["mentor_id"], doc["mentee_id"])
