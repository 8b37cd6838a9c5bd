"""Who may see and change which people, and the one rule every enrolment goes through.
Tenancy is a security boundary; the whole model is in docs/access-model.md.

Every read of people goes through `visibility`, a query the store adds to its own, so list,
search and get share one rule and a person outside it is not found (404, never 403: a 403
would confirm that the id exists). A caller's reach is the union of what each of their grants
and their own participation give:

* network admin: everyone in the network, in full;
* institution coordinator: the people of the institutions they coordinate, in full;
* program coordinator: the people enrolled in the programs they coordinate, in full;
* anyone: themselves in full, and the public part of the people they are or were paired with
  in a mentorship (proposed, active or ended). Sharing a program is not enough: a mentee of a
  network-wide program does not browse its hundreds of people; matching's suggestions are
  how a mentee meets the mentors a program offers them.

Only the person themselves ever sees their opt-in identity attributes. Service tokens and the
platform operator reach nobody (`require_network`).

Edits: the person themselves, and staff for the people they see in full; identity attributes
only by the person themselves.

Enrolments: registration into a program, `POST .../enrolments`, approvals, declines,
withdrawals and roster import all ask `may_enrol` (and registration and import `may_register`),
so no path reaches further than another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, status
from pymongo.asynchronous.database import AsyncDatabase

from services.profiles import mentorships_view
from services.profiles.organisation import Program
from shared.auth import Principal, forbidden, require_network
from shared.filters import admits

NOBODY: dict[str, Any] = {"_id": {"$in": []}}


@dataclass(frozen=True)
class Visibility:
    query: dict[str, Any]  # added to every people query of the caller
    staff: dict[str, Any] | None  # who the caller sees in full through grants (None: nobody)
    programs: tuple[str, ...] = ()  # the caller's own programs: of others' they may see these

    def own(self, principal: Principal, person_id: str) -> bool:
        return principal.is_self(person_id)

    def in_full(self, principal: Principal, document: dict[str, Any]) -> bool:
        """Everything of the person (identity aside) or only their public part?"""
        return self.own(principal, document["_id"]) or (
            self.staff is not None and admits(document, self.staff))

    @property
    def staff_query(self) -> dict[str, Any]:
        return NOBODY if self.staff is None else self.staff


def _any_of(values: tuple[str, ...] | list[str]) -> Any:
    """Equality for one value (the store's planner rides an index on it), `$in` for several."""
    return values[0] if len(values) == 1 else {"$in": list(values)}


def staff_reach(principal: Principal) -> dict[str, Any] | None:
    """The people the caller's grants reach (a query), or None when they hold none."""
    if principal.is_network_admin:
        return {}
    reach: list[dict[str, Any]] = []
    if principal.institution_ids:
        reach.append({"institution_id": _any_of(principal.institution_ids)})
    if principal.program_ids:
        reach.append({"program_ids": _any_of(principal.program_ids)})
    if not reach:
        return None
    return reach[0] if len(reach) == 1 else {"$or": reach}


async def visibility(principal: Principal, network_id: str, organisation: Any,
                     people: Any) -> Visibility:
    """The caller's reach among the people of the network (403 outside the network)."""
    require_network(principal, network_id)
    staff = staff_reach(principal)
    if staff == {}:
        return Visibility({}, staff={})
    mine: list[str] = []
    programs: list[str] = []
    if principal.person_id is not None:
        db: AsyncDatabase = people.database
        mine = [principal.person_id,
                *await mentorships_view.partners(db, network_id, principal.person_id)]
        me = await people.find(network_id, principal.person_id, {})
        programs = list((me or {}).get("program_ids") or [])
    reach = [c for c in (staff, {"_id": _any_of(mine)} if mine else None) if c is not None]
    branches = [b for c in reach for b in (c["$or"] if set(c) == {"$or"} else [c])]
    query = NOBODY if not branches else branches[0] if len(branches) == 1 else {"$or": branches}
    return Visibility(query, staff=staff, programs=tuple(programs))


def may_edit(principal: Principal, visible: Visibility, document: dict[str, Any],
             changes: dict) -> None:
    """The caller can see the person (checked by finding them); may they change the profile?"""
    own = visible.own(principal, document["_id"])
    if "identity" in changes and not own:
        raise forbidden(
            "Identity attributes are opt-in: only the person themselves can set or withdraw them.")
    if own or visible.in_full(principal, document):
        return
    raise forbidden("Mentors and mentees can edit their own profile only.")


def may_enrol(principal: Principal, program: Program, person_institution: str) -> None:
    """May the caller enrol someone of `person_institution` into `program` for them, or
    approve, decline or withdraw their enrolment there? The one rule of every such path.

    Network admins: anyone anywhere. Program coordinators: into the programs they coordinate.
    Institution coordinators: into their institution's programs, and their own institution's
    people into programs that span institutions."""
    require_network(principal, program.network_id)
    if principal.is_network_admin or principal.coordinates_program(program.id):
        return
    if principal.coordinates_institution(program.institution_id):
        return
    spanning = program.network_wide or program.cross_institution
    if spanning and principal.coordinates_institution(person_institution):
        return
    raise forbidden("You do not manage enrolment in this program.")


def may_register(principal: Principal, network_id: str, institution_id: str,
                 program: Program | None) -> None:
    """May the caller register (or import) a person of `institution_id`, into `program`
    when given? Institution coordinators register at their institutions; program
    coordinators only into a program they coordinate; the enrolment then obeys `may_enrol`."""
    require_network(principal, network_id)
    if principal.is_network_admin or principal.coordinates_institution(institution_id):
        pass
    elif program is not None and principal.coordinates_program(program.id):
        pass
    elif principal.program_ids and program is None and not principal.institution_ids:
        raise forbidden("Program coordinators register people into a program they coordinate: "
                        "give its program_id.")
    elif principal.is_staff:
        raise forbidden("You can only register people at your own institution, or into a "
                        "program you coordinate.")
    else:
        raise forbidden("Only coordinators and network admins can register people.")
    if program is not None:
        may_enrol(principal, program, institution_id)


def not_found(message: str = "No such person in this network, or not one you can see.") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, message)
