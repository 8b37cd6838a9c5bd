"""Who may read and change the organisation of a network. Tenancy is a security boundary.

* A token of another network gets 403 on every route of this network, reads included. The
  network id is in the URL, so a 404 would hide nothing that the caller does not already
  know, while a 403 tells an integrator the real problem (wrong token), and it matches the
  people routes (`require_network`).
* Inside the network every role may read institutions and programs: mentors and mentees need
  to see what they can join. Changing them is what the role limits:
  - network admins (and internal services) manage everything, network-wide programs included;
  - institution coordinators create and edit programs of the institution in their token only;
  - program coordinators edit only the programs listed in their token's `program_ids`, and
    create none (the program they would coordinate does not exist yet);
  - mentors and mentees change nothing.
"""

from __future__ import annotations

from fastapi import HTTPException, status

from services.profiles.organisation import Program
from shared.auth import Principal, Role, require_network

MANAGERS = (Role.NETWORK_ADMIN, Role.SERVICE)


def _forbidden(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


def may_read(principal: Principal, network_id: str) -> None:
    require_network(principal, network_id)


def may_manage_institutions(principal: Principal, network_id: str) -> None:
    require_network(principal, network_id)
    if principal.role not in MANAGERS:
        raise _forbidden("Only a network admin can add institutions or chapters to the network.")


def may_create_program(principal: Principal, network_id: str, institution_id: str | None) -> None:
    require_network(principal, network_id)
    if principal.role in MANAGERS:
        return
    if principal.role == Role.INSTITUTION_COORDINATOR:
        if institution_id is None:
            raise _forbidden("Only a network admin can create a network-wide program.")
        if institution_id != principal.institution_id:
            raise _forbidden("You can only create programs of your own institution.")
        return
    if principal.role == Role.PROGRAM_COORDINATOR:
        raise _forbidden(
            "Program coordinators edit the programs they coordinate; ask an institution "
            "coordinator or a network admin to create a new one."
        )
    raise _forbidden("Mentors and mentees can read programs but not create them.")


def may_edit_program(principal: Principal, program: Program) -> None:
    require_network(principal, program.network_id)
    if principal.role in MANAGERS:
        return
    if principal.role == Role.INSTITUTION_COORDINATOR:
        if program.network_wide:
            raise _forbidden("Only a network admin can edit a network-wide program.")
        if program.institution_id != principal.institution_id:
            raise _forbidden("You can only edit programs of your own institution.")
        return
    if principal.role == Role.PROGRAM_COORDINATOR:
        if program.id not in principal.program_ids:
            raise _forbidden("You can only edit the programs you coordinate.")
        return
    raise _forbidden("Mentors and mentees can read programs but not change them.")
