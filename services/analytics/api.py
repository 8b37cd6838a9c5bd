"""Analytics HTTP API (issue 2 scope: registration counts)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.analytics.store import RegistrationCounts
from shared.auth import CurrentPrincipal, require_network
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}", tags=["reports"])


class Counts(BaseModel):
    mentees_registered: int = 0
    mentors_registered: int = 0


class InstitutionCounts(Counts):
    institution_id: str


class RegistrationReport(BaseModel):
    network_id: str
    total: Counts
    institutions: list[InstitutionCounts]


@router.get("/registrations", response_model=RegistrationReport)
async def registrations(
    network_id: str, principal: CurrentPrincipal, db: Database
) -> RegistrationReport:
    require_network(principal, network_id)
    data = await RegistrationCounts(db).for_network(network_id)
    institutions = [InstitutionCounts(**doc) for doc in data["institutions"]]
    if not principal.is_network_admin:
        # Below network level a caller sees the institutions they coordinate, not the total.
        institutions = [i for i in institutions
                        if principal.coordinates_institution(i.institution_id)]
        total = Counts(
            mentees_registered=sum(i.mentees_registered for i in institutions),
            mentors_registered=sum(i.mentors_registered for i in institutions),
        )
    else:
        total = Counts(**data["network"])
    return RegistrationReport(network_id=network_id, total=total, institutions=institutions)
