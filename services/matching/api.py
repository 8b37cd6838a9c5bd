"""Matching HTTP API (issue 2 scope: read the candidate pool)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from services.matching.store import PoolStore
from services.matching import access
from shared.auth import CurrentPrincipal, require_network
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}", tags=["pool"])


class PoolEntryOut(BaseModel):
    person_id: str
    institution_id: str
    program_id: str | None
    role: str
    display_name: str
    career_stage: str
    capacity: int | None = None
    paused: bool = False
    profile_version: int | None = None


@router.get("/pool/{role}", response_model=list[PoolEntryOut])
async def list_pool(
    network_id: str, role: Literal["mentors", "mentees"], principal: CurrentPrincipal, db: Database
) -> list[PoolEntryOut]:
    """The candidates the caller sees in full in profiles too (access.pool_visible)."""
    require_network(principal, network_id)
    if not principal.is_staff:
        return []
    entries = await PoolStore(db).list(network_id, role.removesuffix("s"))
    return [PoolEntryOut(**e) for e in entries if access.pool_visible(principal, e)]
