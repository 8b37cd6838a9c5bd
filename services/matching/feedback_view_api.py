"""Feedback for the people who run a program: each check-in's rating, whether it works and the
comment, by mentorship, with the pair's names.

Only the program's managers read it (network admins, coordinators of the program or of the
institution it belongs to): a participant, even of the pair, gets 403 here (their own
feedback is theirs to give, not a report to read). Private meeting notes are never part of
it: they belong to the pair alone and are not even read by this route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pymongo import DESCENDING

from services.matching.store import MENTORSHIPS, PoolStore
from shared.auth import CurrentPrincipal, Principal, forbidden, require_network
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}", tags=["feedback"])
FIELDS = ("side", "satisfaction", "working", "recommend", "comment", "submitted_at", "feedback_id")


def managed(principal: Principal) -> dict[str, Any] | None:
    """The mentorships whose program the caller manages (None: every one of the network)."""
    if principal.is_network_admin:
        return None
    reach: list[dict[str, Any]] = []
    if principal.program_ids:
        reach.append({"program_id": {"$in": list(principal.program_ids)}})
    if principal.institution_ids:
        reach.append({"program_institution_id": {"$in": list(principal.institution_ids)}})
    return {"$or": reach}


@router.get("/feedback")
async def program_feedback(
    network_id: str, principal: CurrentPrincipal, db: Database,
    program_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Newest first: one item per check-in of the mentorships the caller manages."""
    require_network(principal, network_id)
    if not principal.is_staff:
        raise forbidden("Feedback reports are for the coordinators of a program.")
    query: dict[str, Any] = {"network_id": network_id, "feedback.0": {"$exists": True}}
    reach = managed(principal)
    if reach is not None:
        if not reach["$or"]:
            return {"items": []}
        query.update(reach)
    if program_id:
        query["program_id"] = program_id
    projection = {"feedback": 1, "program_id": 1, "mentor_id": 1, "mentee_id": 1, "status": 1}
    items: list[dict[str, Any]] = []
    async for doc in db[MENTORSHIPS].find(query, projection).sort("_id", DESCENDING).limit(limit):
        for record in doc.get("feedback") or []:
            items.append({"mentorship_id": doc["_id"], "program_id": doc["program_id"],
                          "mentor_id": doc["mentor_id"], "mentee_id": doc["mentee_id"],
                          "status": doc.get("status"), **{k: record.get(k) for k in FIELDS}})
    items.sort(key=lambda i: str(i.get("submitted_at") or ""), reverse=True)
    items = items[:limit]
    pool = PoolStore(db)
    names: dict[str, str] = {}
    for person_id in {i[k] for i in items for k in ("mentor_id", "mentee_id")}:
        entry = await pool.get(network_id, person_id)
        names[person_id] = (entry or {}).get("display_name") or ""
    for item in items:
        item["mentor_name"] = names.get(item["mentor_id"]) or None
        item["mentee_name"] = names.get(item["mentee_id"]) or None
        item["by_name"] = item[f"{item['side']}_name"] if item.get("side") in ("mentor", "mentee") else None
    return {"items": items}
