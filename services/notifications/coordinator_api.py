"""What coordinators and admins ask of notifications directly from the web app: nudge a pair
that stopped meeting, and preview a template override before saving it.

A nudge by hand is the same `nudge` message the silence rule sends, to both sides, through the
same deliveries (channels, quiet hours and digests of each person apply). Who may send one: the
program's managers (network admins, coordinators of the program or of its institution), judged
from notifications' own view of programs and mentorships. A pair outside that reach is a 404
(as in matching: a 403 would confirm the mentorship exists). At most one nudge by hand per
pair and day: a second click the same day changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from services.notifications import domain, jobs, view
from services.notifications.api import Admin
from services.notifications.api_admin import SAMPLE, TemplateOverride, _kind
from services.notifications.clock import CLOCK
from services.notifications.rendering import InvalidTemplate, render, validate_override
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}", tags=["coordinators"])
NOT_FOUND = "No active mentorship with this id that you follow."


def _manages(principal: Principal, program: dict[str, Any] | None, program_id: str) -> bool:
    return (principal.is_network_admin or principal.coordinates_program(program_id)
            or principal.coordinates_institution((program or {}).get("institution_id")))


@router.post("/mentorships/{mentorship_id}/nudges", status_code=status.HTTP_202_ACCEPTED)
async def nudge_pair(network_id: str, mentorship_id: str, principal: CurrentPrincipal,
                     db: Database) -> dict[str, Any]:
    """Remind both sides to meet (coordinators of the pair's program)."""
    require_network(principal, network_id)
    m = await db[view.MENTORSHIPS].find_one({"_id": mentorship_id, "network_id": network_id})
    if m is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    program = await db[view.PROGRAMS].find_one({"_id": m["program_id"]})
    if not _manages(principal, program, m["program_id"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    if m.get("stage") != view.ACTIVE:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            "This mentorship is not active: there is nobody to nudge.")
    now = CLOCK.now()
    anchor = m.get("last_meeting_at") or m.get("started_at") or now
    facts = {**m, "cadence_days": int(m.get("agreed_cadence_days") or m.get("cadence_days")
                                      or (program or {}).get("cadence_days") or 30)}
    days = max(0, (now - anchor).days)
    plans = [*domain.silence_nudge("mentee", facts, days, []),
             *domain.silence_nudge("mentor", facts, days, [])]
    written = await jobs._write(db, f"nudge-by-hand:{mentorship_id}:{now.date().isoformat()}",
                                network_id, plans, now, mentorship=m)
    return {"status": "queued", "messages": written}


@router.post("/templates/{kind}/preview")
async def preview(network_id: Admin, kind: str, body: TemplateOverride) -> dict[str, str]:
    """The kind rendered with sample data and these parts (absent parts: the default wording);
    422 with the reason when a part would be refused on saving."""
    _kind(kind)
    parts = {k: v for k, v in body.model_dump().items() if v}
    sample = {**SAMPLE, "kind": kind}
    try:
        validate_override(kind, parts, sample)
        rendered = render(kind, sample, parts)
    except InvalidTemplate as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"Template not valid: {exc}") from exc
    return {"subject": rendered.subject, "summary": rendered.summary, "text": rendered.text,
            "html": rendered.html}
