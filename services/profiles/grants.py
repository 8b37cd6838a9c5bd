"""Staff grants: who may give (and take back) which role, and the events that announce it.

Pure logic, no I/O. A grant is one staff role over one scope (`shared.auth.Grant`):

* a network admin grants and revokes any role in their network;
* an institution coordinator grants and revokes, within their institution, institution
  coordinator of that institution and program coordinator of its programs (not of a
  network-wide program, which belongs to the network);
* the platform operator grants network admin only (the first admin of a network, or a new
  one when a network lost its last): the operator never reaches the network's people;
* nobody else grants anything, and nobody grants to themselves what they could not grant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.profiles.domain import SOURCE, DomainError
from shared.auth import Grant, GrantRole, Principal
from shared.events import CloudEvent, new_event
from shared.events.schemas import GrantAdded, GrantRevoked


class GrantForbidden(DomainError):
    """The caller may not give or take back this grant (a 403)."""


@dataclass(frozen=True)
class GrantRecord:
    id: str
    network_id: str
    person_id: str
    grant: Grant
    granted_at: datetime
    granted_by: str | None  # person id of who granted; None: the platform operator
    revoked_at: datetime | None = None


def new_id() -> str:
    return f"grant-{uuid.uuid4().hex}"


def active_key(network_id: str, person_id: str, grant: Grant) -> str:
    """Unique among active grants: one person holds one role over one scope once."""
    scope = grant.institution_id or grant.program_id or "-"
    return f"{network_id}/{person_id}/{grant.role.value}/{scope}"


def may_manage(principal: Principal, network_id: str, grant: Grant,
               program_institution: str | None = None) -> None:
    """GrantForbidden unless the caller may give or revoke `grant` in this network.

    `program_institution` is the institution of the program a program-coordinator grant
    names (None for a network-wide program)."""
    if principal.is_operator:
        if grant.role == GrantRole.NETWORK_ADMIN:
            return
        raise GrantForbidden("The platform operator appoints network admins only; they appoint "
                             "coordinators.")
    if not principal.is_person or principal.network_id != network_id:
        raise GrantForbidden("Your token does not give access to this network.")
    if principal.is_network_admin:
        return
    if grant.role == GrantRole.INSTITUTION_COORDINATOR and principal.coordinates_institution(
        grant.institution_id
    ):
        return
    if grant.role == GrantRole.PROGRAM_COORDINATOR and principal.coordinates_institution(
        program_institution
    ):
        return
    if grant.role == GrantRole.NETWORK_ADMIN:
        raise GrantForbidden("Only a network admin appoints network admins.")
    raise GrantForbidden("You can appoint coordinators of your own institution and its programs "
                         "only; a network admin appoints the others.")


def _ref(record: GrantRecord, by: str | None) -> dict[str, object]:
    return {"grant_id": record.id, "network_id": record.network_id,
            "person_id": record.person_id, "role": record.grant.role.value,
            "institution_id": record.grant.institution_id, "program_id": record.grant.program_id,
            "by_person_id": by}


def added(record: GrantRecord, email: str | None, display_name: str | None) -> list[CloudEvent]:
    payload = GrantAdded(**_ref(record, record.granted_by), granted_at=record.granted_at,
                         email=email, display_name=display_name)
    return [new_event(payload, subject=record.person_id, tenant_id=record.network_id,
                      source=SOURCE)]


def revoked(record: GrantRecord, by: str | None, at: datetime) -> list[CloudEvent]:
    payload = GrantRevoked(**_ref(record, by), revoked_at=at)
    return [new_event(payload, subject=record.person_id, tenant_id=record.network_id,
                      source=SOURCE)]
