"""A coordinator's pages: programs (every option), roster import with its dry run, people,
enrolment requests, matching (weights, runs reviewed by name, edits, publishing, matching by
hand), follow-up and the reports.

What a coordinator may see and change is decided by the services from the person's grants;
these pages only show what the services answer (a 403 becomes a page that says why).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.web.backend import ApiError, Backend
from services.web.context import SignedIn, Visitor, csrf_protect, flash, redirect, render
from services.web.pages.common import form_of, net, one, programs, q

router = APIRouter(prefix="/coordinate", dependencies=[Depends(csrf_protect)])

PROGRAM_TYPES = ("faculty", "peer", "near-peer", "research", "specialty-specific",
                 "leadership", "career")
FLAGS = ("cross_institution", "requires_approval", "auto_accept", "ranked_preferences")
NUMBERS = ("max_mentors_per_mentee", "cadence_days", "reassessment_days")
DATES = ("cohort_start", "cohort_end", "enrolment_opens", "enrolment_closes")
FACTORS = ("needs", "specialty", "career_stage", "institution", "language", "meeting_mode",
           "time_zone", "affinity", "training")
FACTOR_NAMES = {"needs": "Needs offered", "specialty": "Specialty", "career_stage": "Career stage",
                "institution": "Institution rule", "language": "Language",
                "meeting_mode": "Meeting mode", "time_zone": "Time-zone overlap",
                "affinity": "Opt-in affinity", "training": "Mentor training"}


async def institutions(who: Visitor) -> list[dict[str, Any]]:
    page = await who.api.get("profiles", f"{net(who)}/institutions", params={"limit": 100})
    return page["items"]


def program_fields(form: dict[str, list[str]], *, creating: bool) -> dict[str, Any]:
    """The program form as the API's fields (every option; unchecked boxes are false)."""
    body: dict[str, Any] = {"name": one(form, "name"), "type": one(form, "type")}
    for name in DATES:
        body[name] = one(form, name) or None
    for name in NUMBERS:
        raw = one(form, name)
        body[name] = int(raw) if raw.isdigit() else raw or None
    for name in FLAGS:
        body[name] = one(form, name) == "true"
    body["coordinator_emails"] = [e.strip() for e in one(form, "coordinator_emails").replace(
        "\n", ",").split(",") if e.strip()]
    if creating:
        body["institution_id"] = one(form, "institution_id") or None
    return {k: v for k, v in body.items() if v is not None}


@router.get("/programs")
async def programs_page(who: SignedIn) -> Response:
    everything, places = await asyncio.gather(programs(who), institutions(who))
    return await render(who, "coordinate/programs.html", {
        "title": "Programs", "programs": sorted(everything.values(), key=lambda p: p["name"]),
        "institutions": places, "types": PROGRAM_TYPES, "errors": {}, "new": {},
    })


@router.post("/programs")
async def create_program(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    body = program_fields(form, creating=True)
    try:
        created = await who.api.post("profiles", f"{net(who)}/programs", json=body)
    except ApiError as exc:
        if exc.status not in (403, 409, 422):
            raise
        everything, places = await asyncio.gather(programs(who), institutions(who))
        return await render(who, "coordinate/programs.html", {
            "title": "Programs", "programs": sorted(everything.values(), key=lambda p: p["name"]),
            "institutions": places, "types": PROGRAM_TYPES, "errors": exc.field_errors(),
            "error": exc.detail, "new": body}, status_code=exc.status)
    await flash(who, f"The program {created['name']} is created.")
    return redirect(request, f"/coordinate/programs/{q(created['id'])}")


async def _program(who: Visitor, program_id: str) -> tuple[dict[str, Any], str]:
    response = await who.api.raw("GET", "profiles", f"{net(who)}/programs/{q(program_id)}")
    Backend.check(response)
    return response.json(), response.headers.get("ETag", "")


@router.get("/programs/{program_id}")
async def program_page(who: SignedIn, program_id: str) -> Response:
    program, version = await _program(who, program_id)
    return await render(who, "coordinate/program.html", {
        "title": program["name"], "p": program, "version": version, "types": PROGRAM_TYPES,
        "errors": {}})


@router.post("/programs/{program_id}")
async def edit_program(request: Request, who: SignedIn, program_id: str) -> Response:
    form = await form_of(request)
    body = program_fields(form, creating=False)
    try:
        await who.api.call("PATCH", "profiles", f"{net(who)}/programs/{q(program_id)}", json=body,
                           headers={"If-Match": one(form, "version")})
    except ApiError as exc:
        if exc.status not in (403, 409, 412, 422):
            raise
        program, version = await _program(who, program_id)
        shown = program if exc.status == 412 else {**program, **body}
        return await render(who, "coordinate/program.html", {
            "title": program["name"], "p": shown, "version": version, "types": PROGRAM_TYPES,
            "errors": exc.field_errors(), "error": exc.detail if exc.status != 412 else
            "Someone else changed this program meanwhile: the form shows their version now; "
            "make your change again."}, status_code=exc.status)
    await flash(who, "The program is saved.")
    return redirect(request, f"/coordinate/programs/{q(program_id)}")


# ------------------------------------------------------------------ enrolment requests


@router.get("/programs/{program_id}/requests")
async def requests_page(who: SignedIn, program_id: str) -> Response:
    program, _ = await _program(who, program_id)
    page = await who.api.get("profiles", f"{net(who)}/programs/{q(program_id)}/enrolments",
                             params={"status": "requested", "limit": 100})
    return await render(who, "coordinate/requests.html", {
        "title": f"Requests to join {program['name']}", "p": program, "requests": page["items"]})


@router.post("/programs/{program_id}/requests/{enrolment_id}")
async def decide(request: Request, who: SignedIn, program_id: str, enrolment_id: str) -> Response:
    form = await form_of(request)
    decision = one(form, "decision")
    base = f"{net(who)}/programs/{q(program_id)}/enrolments/{q(enrolment_id)}"
    if decision == "approve":
        await who.api.post("profiles", f"{base}/approve")
        await flash(who, "Approved: the person is enrolled.")
    else:
        await who.api.post("profiles", f"{base}/decline", json={"reason": one(form, "reason")})
        await flash(who, "Declined.")
    return redirect(request, f"/coordinate/programs/{q(program_id)}/requests")


# ------------------------------------------------------------------ roster


@router.get("/roster")
async def roster_page(who: SignedIn) -> Response:
    return await render(who, "coordinate/roster.html", {"title": "Roster import", "errors": {}})


@router.post("/roster")
async def roster_upload(request: Request, who: SignedIn) -> Response:
    form = await request.form()
    upload = form.get("file")
    text = str(form.get("csv") or "")
    if upload is not None and not isinstance(upload, str):
        text = (await upload.read()).decode("utf-8", "replace")
    apply = form.get("apply") == "true"
    context: dict[str, Any] = {"title": "Roster import", "errors": {}}
    if not text.strip():
        context["errors"] = {"file": "Choose a CSV file to upload."}
        return await render(who, "coordinate/roster.html", context, status_code=422)
    try:
        report = await who.api.post("profiles", f"{net(who)}/imports",
                                    params={"dry_run": "false" if apply else "true"},
                                    headers={"Content-Type": "text/csv"},
                                    content=text.encode())
    except ApiError as exc:
        if exc.status not in (403, 413, 422):
            raise
        context["errors"] = {"file": exc.detail}
        return await render(who, "coordinate/roster.html", context, status_code=exc.status)
    context.update(report=report, csv=text, applied=apply)
    return await render(who, "coordinate/roster.html", context)


# ------------------------------------------------------------------ people


@router.get("/people")
async def people_page(who: SignedIn, search: Annotated[str, Query(alias="q")] = "",
                      program: str = "", role: str = "",
                      career_stage: str = "", specialty: str = "", has_capacity: str = "",
                      cursor: str = "") -> Response:
    params = {"limit": 50, "q": search or None, "program": program or None, "role": role or None,
              "career_stage": career_stage or None, "specialty": specialty or None,
              "has_capacity": "true" if has_capacity == "true" else None,
              "cursor": cursor or None}
    page, everything = await asyncio.gather(
        who.api.get("profiles", f"{net(who)}/people", params=params), programs(who))
    for person in page["items"]:
        person["program_names"] = [everything.get(p, {}).get("name", p)
                                   for p in person.get("program_ids") or []]
    next_url = None
    if page.get("next_cursor"):
        kept = {k: v for k, v in params.items() if v and k not in ("cursor", "limit")}
        kept["cursor"] = page["next_cursor"]
        next_url = "/coordinate/people?" + urlencode({("q" if k == "q" else k): v
                                                       for k, v in kept.items()})
    return await render(who, "coordinate/people.html", {
        "title": "People", "page": page, "programs": everything, "next_url": next_url,
        "filters": {"q": search, "program": program, "role": role, "career_stage": career_stage,
                    "specialty": specialty, "has_capacity": has_capacity}})


# ------------------------------------------------------------------ matching


async def program_people(who: Visitor, program_id: str) -> dict[str, dict[str, Any]]:
    """The program's people the coordinator can see, by id (names for drafts and selects)."""
    out: dict[str, dict[str, Any]] = {}
    cursor = None
    for _ in range(50):
        page = await who.api.get("profiles", f"{net(who)}/people", params={
            "program": program_id, "limit": 100, "cursor": cursor})
        out.update({p["id"]: p for p in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return out


def _options(people: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(p["id"], p["display_name"]) for p in people]


async def _matching_context(who: Visitor, program_id: str) -> dict[str, Any]:
    base = f"{net(who)}/programs/{q(program_id)}"
    (program, _), settings, runs, people = await asyncio.gather(
        _program(who, program_id), who.api.get("matching", f"{base}/matching-settings"),
        who.api.get("matching", f"{base}/runs"), program_people(who, program_id))
    weights = {f: settings["weights"].get(f, None) for f in FACTORS}
    mentees = sorted((p for p in people.values() if p.get("mentee") is not None),
                     key=lambda p: p["display_name"])
    mentors = sorted((p for p in people.values() if p.get("mentor") is not None),
                     key=lambda p: p["display_name"])
    return {"title": f"Matching: {program['name']}", "p": program, "settings": settings,
            "weights": weights, "factor_names": FACTOR_NAMES, "runs": runs,
            "mentee_options": _options(mentees), "mentor_options": _options(mentors), "errors": {}}


@router.get("/programs/{program_id}/matching")
async def matching_page(who: SignedIn, program_id: str) -> Response:
    return await render(who, "coordinate/matching.html", await _matching_context(who, program_id))


@router.post("/programs/{program_id}/matching/settings")
async def save_weights(request: Request, who: SignedIn, program_id: str) -> Response:
    form = await form_of(request)
    weights = {}
    for factor in FACTORS:
        raw = one(form, f"w_{factor}")
        if raw:
            try:
                weights[factor] = float(raw)
            except ValueError:
                raise ApiError(422, f"{FACTOR_NAMES[factor]}: enter a number.") from None
    cap = one(form, "institution_cap")
    body = {"weights": weights, "fair": one(form, "fair") == "true",
            "institution_cap": int(cap) if cap.isdigit() else None,
            "top_k": int(one(form, "top_k", "30") or 30)}
    await who.api.call("PUT", "matching",
                       f"{net(who)}/programs/{q(program_id)}/matching-settings", json=body)
    await flash(who, "The matching weights are saved.")
    return redirect(request, f"/coordinate/programs/{q(program_id)}/matching")


@router.post("/programs/{program_id}/matching/runs")
async def start_run(request: Request, who: SignedIn, program_id: str) -> Response:
    form = await form_of(request)
    run = await who.api.post("matching", f"{net(who)}/programs/{q(program_id)}/runs",
                             json={"algorithm": one(form, "algorithm", "min-cost-flow")})
    await flash(who, "The draft is ready: review it, then publish.")
    return redirect(request, f"/coordinate/programs/{q(program_id)}/runs/{q(run['run_id'])}")


@router.post("/programs/{program_id}/matching/hand")
async def hand_match(request: Request, who: SignedIn, program_id: str) -> Response:
    form = await form_of(request)
    created = await who.api.post("matching", f"{net(who)}/programs/{q(program_id)}/proposals",
                                 json={"mentee_id": one(form, "mentee_id"),
                                       "mentor_id": one(form, "mentor_id")})
    await flash(who, "The pair is proposed to both of them.")
    return redirect(request, f"/mentorships/{q(created['mentorship_id'])}")


@router.get("/programs/{program_id}/runs/{run_id}")
async def run_page(who: SignedIn, program_id: str, run_id: str) -> Response:
    base = f"{net(who)}/programs/{q(program_id)}"
    (program, _), run, people = await asyncio.gather(
        _program(who, program_id), who.api.get("matching", f"{base}/runs/{q(run_id)}"),
        program_people(who, program_id))
    name = {pid: p["display_name"] for pid, p in people.items()}
    for pair in run["proposals"]:
        pair["mentee_name"] = name.get(pair["mentee_id"], pair["mentee_id"])
        pair["mentor_name"] = name.get(pair["mentor_id"], pair["mentor_id"])
    mentees = sorted((p for p in people.values() if p.get("mentee") is not None),
                     key=lambda p: p["display_name"])
    mentors = sorted((p for p in people.values() if p.get("mentor") is not None),
                     key=lambda p: p["display_name"])
    return await render(who, "coordinate/run.html", {
        "title": f"Matching run of {program['name']}", "p": program, "run": run,
        "mentee_options": _options(mentees), "mentor_options": _options(mentors)})


@router.post("/programs/{program_id}/runs/{run_id}")
async def edit_run(request: Request, who: SignedIn, program_id: str, run_id: str) -> Response:
    form = await form_of(request)
    base = f"{net(who)}/programs/{q(program_id)}/runs/{q(run_id)}"
    action = one(form, "action")
    if action == "publish":
        await who.api.post("matching", f"{base}/publish", json={})
        await flash(who, "Published: every pair is proposed to both people.")
    else:
        pair = {"mentee_id": one(form, "mentee_id"), "mentor_id": one(form, "mentor_id")}
        body = {"remove": [pair]} if action == "remove" else {"add": [pair]}
        await who.api.call("PATCH", "matching", base, json=body)
        await flash(who, "The pair is removed from the draft." if action == "remove"
                    else "The pair is added to the draft.")
    return redirect(request, f"/coordinate/programs/{q(program_id)}/runs/{q(run_id)}")


# ------------------------------------------------------------------ follow-up


def _period(start: str, end: str) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=89)
    except ValueError:
        raise ApiError(422, "Enter the dates as YYYY-MM-DD.") from None
    return first.isoformat(), last.isoformat()


@router.get("/follow-up")
async def follow_up(who: SignedIn, scope: str = "") -> Response:
    first, last = _period("", "")
    params = {"from": first, "to": last, **_scope_params(scope)}
    stalled, feedback = await asyncio.gather(
        who.api.get("analytics", f"{net(who)}/reports/stalled", params=params),
        _feedback(who),
    )
    return await render(who, "coordinate/follow_up.html", {
        "title": "Follow-up", "pairs": stalled.get("pairs", []), "feedback": feedback})


async def _feedback(who: Visitor) -> list[dict[str, Any]] | None:
    """Feedback ratings and comments of the mentorships the coordinator follows (None when
    matching does not offer them)."""
    try:
        page = await who.api.get("matching", f"{net(who)}/feedback", params={"limit": 100})
    except ApiError as exc:
        if exc.status in (404, 405):
            return None
        raise
    return page["items"]


@router.post("/follow-up/nudge")
async def nudge(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    await who.api.post("notifications",
                       f"{net(who)}/mentorships/{q(one(form, 'mentorship_id'))}/nudges", json={})
    await flash(who, "A nudge is on its way to both of them.")
    return redirect(request, "/coordinate/follow-up")


# ------------------------------------------------------------------ reports


def json_island(data: Any) -> str:
    """JSON safe inside a <script type="application/json"> element (no `</script>`, no
    markup): the page's script reads it; nothing is executed."""
    text = json.dumps(data, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _scope_params(scope: str) -> dict[str, str]:
    kind, _, ident = scope.partition(":")
    if kind not in ("network", "institution", "program"):
        return {}
    return {"scope": kind, **({"id": ident} if ident else {})}


@router.get("/reports")
async def reports(who: SignedIn, scope: str = "", start: str = "", end: str = "") -> Response:
    first, last = _period(start, end)
    scopes = (await who.api.get("analytics", f"{net(who)}/report-scopes"))["scopes"]
    if not scopes:
        raise ApiError(403, "Your roles give access to no report.")
    chosen = scope or f"{scopes[0]['kind']}:{scopes[0].get('id') or ''}"
    params = {"from": first, "to": last, **_scope_params(chosen)}
    names = ("summary", "series", "stalled", "equity")
    summary, series, stalled, equity = await asyncio.gather(
        *(who.api.get("analytics", f"{net(who)}/reports/{n}", params=params) for n in names))
    data = {"summary": summary, "series": series}
    options = [(f"{s['kind']}:{s.get('id') or ''}",
                "Whole network" if s["kind"] == "network" else f"{s['kind'].capitalize()}: {s['label']}")
               for s in scopes]
    return await render(who, "coordinate/reports.html", {
        "title": "Reports", "scopes": options, "chosen": chosen, "start": first, "end": last,
        "summary": summary, "t": summary["total"], "stalled": stalled.get("pairs", []),
        "equity": equity.get("cells", []), "chart_data": json_island(data),
        "csv_query": "&".join(f"{k}={q(v)}" for k, v in params.items())})


@router.get("/reports/{report}.csv")
async def report_csv(request: Request, who: SignedIn, report: str) -> Response:
    """The analytics CSV, fetched with the session (the browser never holds a token)."""
    params = {k: v for k, v in request.query_params.items() if k in ("scope", "id", "from", "to")}
    params["format"] = "csv"
    response = await who.api.raw("GET", "analytics", f"{net(who)}/reports/{q(report)}",
                                 params=params)
    Backend.check(response)
    return Response(response.content, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{report}-report.csv"'})


routers = [router]
