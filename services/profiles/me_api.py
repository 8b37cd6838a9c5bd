"""`GET /me`: who the signed-in person is, what they hold, where they take part.

One call gives the web app everything its menus need: the person's own profile (all of it,
identity attributes included), the grants of the token in hand (what every service will
allow for the next minutes), the enrolments with program names, and the ids of their open
mentorships (proposed or active), from profiles' own view of matching's events
(`mentorships_view.py`), so no second service is asked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel
from fastapi.encoders import jsonable_encoder

from services.profiles import enrolment, mentorships_view
from services.profiles.identity_store import IdentityStore
from services.profiles.organisation_store import OrganisationStore
from services.profiles.people import full_view
from shared.auth import CurrentPrincipal, forbidden
from shared.service import Database

router = APIRouter(tags=["me"])


class MyEnrolment(BaseModel):
    program_id: str
    program_name: str | None
    role: str
    status: str


class Me(BaseModel):
    person: dict[str, Any]
    network_id: str
    grants: list[dict[str, str]]
    enrolments: list[MyEnrolment]
    open_mentorship_ids: list[str]


@router.get("/me", response_model=Me)
async def me(principal: CurrentPrincipal, db: Database) -> Me:
    if not principal.is_person or principal.person_id is None or principal.network_id is None:
        raise forbidden("`/me` is for a signed-in person; this token names no person.")
    network_id = principal.network_id
    document = await IdentityStore(db).person(network_id, principal.person_id)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            "This person is no longer part of the network.")
    enrolments: list[MyEnrolment] = []
    if "institution_id" in document:  # a participant (staff members have no profile)
        person = jsonable_encoder(full_view(document, own=True))
        organisation = OrganisationStore(db)
        names: dict[str, str | None] = {}
        for e in enrolment.participant_from_document(document).enrolments:
            if e.program_id not in names:
                program = await organisation.program(network_id, e.program_id)
                names[e.program_id] = program.name if program else None
            enrolments.append(MyEnrolment(program_id=e.program_id,
                                          program_name=names[e.program_id], role=e.role,
                                          status=e.status))
    else:
        person = {"id": document["_id"], "network_id": network_id,
                  "display_name": document.get("display_name"), "email": document.get("email"),
                  "staff": True}
    return Me(
        person=person, network_id=network_id,
        grants=[g.claim() for g in principal.grants],
        enrolments=enrolments,
        open_mentorship_ids=await mentorships_view.open_mentorships(
            db, network_id, principal.person_id),
    )
