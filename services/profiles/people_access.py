"""Who may see and change which people. Tenancy is a security boundary.

Every read of people goes through `visibility`, a query the store adds to its own, so list,
search and get share one rule and a person outside it is not found (404, never 403: a 403
would confirm that the id exists):

* network admins and internal services: everyone in the network;
* institution coordinators: people of their institution, plus people of any program in their
  token's `program_ids` that spans institutions (cross-institution or network-wide);
* program coordinators: people of their programs at their institution, plus people of those
  of their programs that span institutions;
* mentors and mentees: themselves, and the public part of people who share a program with
  them (programs taken from their own person record, not from the token).

Only the person themselves ever sees their opt-in identity attributes.

Edits: the person themselves, network admins, and coordinators for people they can see;
identity attributes only by the person themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, status

from services.profiles.organisation_store import OrganisationStore
from services.profiles.store import PeopleStore
from shared.auth import Principal, Role, require_network

MANAGERS = (Role.NETWORK_ADMIN, Role.SERVICE)
COORDINATORS = (Role.INSTITUTION_COORDINATOR, Role.PROGRAM_COORDINATOR)
NOBODY = {"_id": {"$in": []}}


@dataclass(frozen=True)
class Visibility:
    query: dict[str, Any]  # added to every people query of the caller
    public_only: bool  # mentors and mentees: others' public part only
    programs: tuple[str, ...] = ()  # a participant's own programs: all of others' they may see

    def own(self, principal: Principal, person_id: str) -> bool:
        return principal.person_id is not None and principal.person_id == person_id


async def _spanning(
    principal: Principal, network_id: str, organisation: OrganisationStore
) -> tuple[list[str], list[str]]:
    """The token's programs that exist in this network, and those of them spanning institutions."""
    mine, spanning = [], []
    for program_id in dict.fromkeys(principal.program_ids):
        program = await organisation.program(network_id, program_id)
        if program is None:
            continue
        mine.append(program.id)
        if program.network_wide or program.cross_institution:
            spanning.append(program.id)
    return mine, spanning


async def visibility(
    principal: Principal,
    network_id: str,
    organisation: OrganisationStore,
    people: PeopleStore,
) -> Visibility:
    require_network(principal, network_id)
    if principal.role in MANAGERS:
        return Visibility({}, public_only=False)
    if principal.role in COORDINATORS:
        mine, spanning = await _spanning(principal, network_id, organisation)
        reach: list[dict[str, Any]] = []
        if spanning:
            reach.append({"program_ids": {"$in": spanning}})
        if principal.institution_id is not None:
            if principal.role == Role.INSTITUTION_COORDINATOR:
                reach.append({"institution_id": principal.institution_id})
            elif mine:
                reach.append(
                    {"institution_id": principal.institution_id, "program_ids": {"$in": mine}}
                )
        return Visibility({"$or": reach} if reach else NOBODY, public_only=False)
    if principal.person_id is None:
        return Visibility(NOBODY, public_only=True)
    me = await people.find(network_id, principal.person_id, {})
    programs = (me or {}).get("program_ids") or []
    reach = [{"_id": principal.person_id}]
    if programs:
        reach.append({"program_ids": {"$in": programs}})
    return Visibility({"$or": reach}, public_only=True, programs=tuple(programs))


def may_edit(principal: Principal, visible: Visibility, person_id: str, changes: dict) -> None:
    """The caller can see the person (checked by finding them); may they change the profile?"""
    own = visible.own(principal, person_id)
    if "identity" in changes and not own:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Identity attributes are opt-in: only the person themselves can set or withdraw them.",
        )
    if own or principal.role in MANAGERS or principal.role in COORDINATORS:
        return
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        "Mentors and mentees can edit their own profile only.",
    )
