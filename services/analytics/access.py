"""Who may see which report scope. The same boundaries as profiles, and a security boundary.

* A token of another network: 403 on every report of this network.
* Mentors and mentees see no reports (only the public recognition list).
* A program coordinator: the programs in their token, nothing wider.
* An institution coordinator: their institution, and the programs of their institution.
* A network admin (or an internal service): the network, every chapter and every program.
"""

from __future__ import annotations

from fastapi import HTTPException, status

from services.analytics.measures import Scope
from services.analytics.projection import Projection
from shared.auth import Principal, Role, require_network

COORDINATORS = (Role.NETWORK_ADMIN, Role.SERVICE, Role.INSTITUTION_COORDINATOR, Role.PROGRAM_COORDINATOR)


def _forbidden(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


def default_scope(principal: Principal, network_id: str) -> Scope:
    if principal.role == Role.INSTITUTION_COORDINATOR and principal.institution_id:
        return Scope("institution", network_id, principal.institution_id)
    if principal.role == Role.PROGRAM_COORDINATOR:
        if not principal.program_ids:
            raise _forbidden("Your token lists no programs to report on.")
        return Scope("program", network_id, principal.program_ids[0])
    return Scope("network", network_id)


def authorise(principal: Principal, scope: Scope, projection: Projection) -> None:
    """403 unless the caller may see this scope; 404 for a program of another network."""
    require_network(principal, scope.network_id)
    if principal.role not in COORDINATORS:
        raise _forbidden("Reports are for coordinators and network admins.")
    program = projection.programs.get(scope.id or "") if scope.kind == "program" else None
    if program is not None and program.network_id != scope.network_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No program {scope.id} in this network.")
    if principal.role in (Role.NETWORK_ADMIN, Role.SERVICE):
        return
    if principal.role == Role.INSTITUTION_COORDINATOR:
        if scope.kind == "institution" and scope.id == principal.institution_id:
            return
        if scope.kind == "program" and program is not None and program.institution_id == principal.institution_id:
            return
        raise _forbidden("You can see reports of your own institution and its programs only.")
    if scope.kind == "program" and scope.id in principal.program_ids:
        return
    raise _forbidden("You can see reports of the programs you coordinate only.")


def visible_scopes(principal: Principal, network_id: str, projection: Projection, chapters: list[str]) -> list[Scope]:
    """The scopes the dashboard offers this caller."""
    candidates = [Scope("network", network_id)]
    candidates += [Scope("institution", network_id, i) for i in chapters]
    programs = sorted(p for p, prog in projection.programs.items() if prog.network_id == network_id)
    programs += [p for p in principal.program_ids if p not in programs]
    candidates += [Scope("program", network_id, p) for p in programs]
    allowed = []
    for scope in candidates:
        try:
            authorise(principal, scope, projection)
        except HTTPException:
            continue
        allowed.append(scope)
    return allowed
