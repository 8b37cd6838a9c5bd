"""A person's rights over their data: export it all (JSON), and have it erased.

Erasure removes every personal field of the person document and keeps an anonymous tombstone
(id, network, institution, when): other services' anonymous counts may still name the id, and
the tombstone is how this service knows the id was erased rather than never existed. The
tombstone's email is replaced by a marker, so the address is free to register again.
`PersonErased` is staged in the same write; every other service honours it.

Who: export by the person themselves, network admins, and institution coordinators for people
of the institutions they coordinate (identity attributes only in the person's own export, as everywhere); erasure by
the person themselves or a network admin. The audit log keeps that it happened, never what was
erased (it holds field names, not values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status

from services.profiles import audit, enrolment, people_access
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.domain import SOURCE
from services.profiles.enrolment_api import NOT_FOUND, UNSET, change_person
from services.profiles.organisation import _now
from services.profiles.organisation_api import Store as OrganisationStoreDep
from shared.auth import CurrentPrincipal, Principal
from shared.events import CloudEvent, new_event
from shared.events.schemas import PersonErased
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["privacy"])

# Everything a person document may hold besides its identity, its tenancy and the outbox.
PERSONAL = (
    "display_name", "name_search", "career_stage", "mentor", "mentee", "identity",
    "specialty_interests", "specialties", "capacity", "enrolments", "program_ids", "program_id",
    "role", "roles", "registered_at", "updated_at",
)
INTERNAL = ("name_search",)


def erasure(document: dict[str, Any], now: datetime) -> tuple[dict[str, Any], list[str],
                                                           list[CloudEvent]]:
    """The tombstone's fields, the fields to remove, and the event: pure, for the store."""
    fields = {"erased": True, "erased_at": now, "email": f"erased:{document['_id']}"}
    unset = [name for name in PERSONAL if name in document]
    payload = PersonErased(
        person_id=document["_id"],
        network_id=document["network_id"],
        institution_id=document["institution_id"],
        erased_at=now,
    )
    event = new_event(payload, subject=document["_id"], tenant_id=document["network_id"],
                      source=SOURCE)
    return fields, unset, [event]


def export_document(document: dict[str, Any], *, own: bool) -> dict[str, Any]:
    """Everything stored about the person, as plain JSON-able data."""
    data = {k: v for k, v in document.items() if k not in INTERNAL and k != "_id"}
    data = {"id": document["_id"], **data}
    if not own:
        data.pop("identity", None)
    data["enrolments"] = [
        {**e.__dict__} for e in enrolment.participant_from_document(document).enrolments
    ]
    return data


def _own(principal: Principal, person_id: str) -> bool:
    return principal.is_self(person_id)


@router.get("/people/{person_id}/export")
async def export(
    network_id: str,
    person_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    db: Database,
) -> dict[str, Any]:
    """All data held about the person here, with the audit trail of changes to it."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    own = _own(principal, person_id)
    if not own and not (principal.is_network_admin or principal.institution_ids):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Only the person, a network admin or an institution coordinator can export a "
            "person's data.",
        )
    document = await people.find(network_id, person_id, visible.query)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    if not own and not (principal.is_network_admin
                        or principal.coordinates_institution(document["institution_id"])):
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    trail = [
        {k: v for k, v in entry.items() if k not in ("_id", "people")} | {"id": entry["_id"]}
        for entry in await audit.about(db, network_id, person_id)
    ]
    await audit.record(db, audit.entry(principal, network_id, "person.exported", "person",
                                       person_id, document["institution_id"]))
    return {
        "exported_at": _now(),
        "person": export_document(document, own=own),
        "audit": trail,
    }


@router.delete("/people/{person_id}", status_code=status.HTTP_204_NO_CONTENT)
async def erase(
    network_id: str,
    person_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    relay: Relay,
    db: Database,
) -> Response:
    """Erase the person's personal data (the person themselves or a network admin)."""
    visible = await people_access.visibility(principal, network_id, organisation, people)
    if not _own(principal, person_id) and not principal.is_network_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Only the person themselves or a network admin can erase a person.",
        )
    async def change(document: dict[str, Any]):
        fields, names, events = erasure(document, _now())
        return {**fields, UNSET: names}, events, names

    document, unset = await change_person(people, network_id, person_id, visible.query, change)
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, "person.erased", "person",
                                       person_id, document["institution_id"], unset))
    return Response(status_code=status.HTTP_204_NO_CONTENT)

