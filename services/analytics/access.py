"""Who may see which report scope: by grant, the same boundaries as profiles, a security
boundary. A person holding several grants sees what any of them allows.

* Only people of the network: another network's token, a service token and the platform
  operator get 403 on every report of this network.
* Participants see no reports (only the public recognition list).
* A program coordinator: the programs they coordinate.
* An institution coordinator: the institutions they coordinate, and their programs.
* A network admin: the network, every chapter and every program.
"""

from __future__ import annotations

from fastapi import HTTPException, status

from services.analytics.measures import Scope
from services.analytics.projection import Projection
from shared.auth import Principal, require_network


def _forbidden(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


def default_scope(principal: Principal, network_id: str) -> Scope:
    """The caller's widest scope: the network, else an institution, else a program."""
    if principal.is_network_admin:
        return Scope("network", network_id)
    if principal.institution_ids:
        return Scope("institution", network_id, principal.institution_ids[0])
    if principal.program_ids:
        return Scope("program", network_id, principal.program_ids[0])
    raise _forbidden("Reports are for coordinators and network admins.")


def authorise(principal: Principal, scope: Scope, projection: Projection) -> None:
    """403 unless the caller may see this scope; 404 for a program of another network."""
    require_network(principal, scope.network_id)
    if not principal.is_staff:
        raise _forbidden("Reports are for coordinators and network admins.")
    program = projection.programs.get(scope.id or "") if scope.kind == "program" else None
    if program is not None and program.network_id != scope.network_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No program {scope.id} in this network.")
    if principal.is_network_admin:
        return
    if scope.kind == "institution" and principal.coordinates_institution(scope.id):
        return
    if scope.kind == "program" and (
        principal.coordinates_program(scope.id)
        or (program is not None and principal.coordinates_institution(program.institution_id))
    ):
        return
    if principal.institution_ids:
        raise _forbidden("You can see reports of your own institution and its programs only.")
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
