"""A participant's pages: home, profile, programs, finding a mentor, their data.

The mentorship page (`mentorship.py`) and the notification pages (`inbox.py`) are the rest
of the participant's area; `routers` lists all three.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from services.web.backend import ApiError
from services.web.context import SignedIn, csrf_protect, flash, redirect, render
from services.web.pages import inbox, mentorship
from services.web.pages.common import form_of, names, net, one, programs, q
from services.web.pages.participant_zones import COMMON_TIME_ZONES
from services.web.profile_form import FormProblem, profile_gaps, profile_patch, shown_after_error

router = APIRouter(dependencies=[Depends(csrf_protect)])



def my_side(mentorship: dict[str, Any], person_id: str) -> str:
    return "mentor" if mentorship.get("mentor_id") == person_id else "mentee"


def other_side(mentorship: dict[str, Any], person_id: str) -> str:
    return mentorship["mentee_id"] if my_side(mentorship, person_id) == "mentor" else mentorship["mentor_id"]


async def my_mentorships(who) -> list[dict[str, Any]]:
    page = await who.api.get("matching", f"{net(who)}/mentorships",
                             params={"person_id": who.person_id, "limit": 200})
    return page["items"]


@router.get("/")
async def home(who: SignedIn) -> Response:
    me, mentorships, feed = await asyncio.gather(
        who.me(), my_mentorships(who),
        who.api.get("notifications", "/me/notifications", params={"limit": 1}),
    )
    people = await names(who, (other_side(m, who.person_id) for m in mentorships))
    for m in mentorships:
        m["side"] = my_side(m, who.person_id)
        m["other_name"] = people.get(other_side(m, who.person_id), "someone")
        m["waiting_for_me"] = m["status"] == "proposed" and not (m.get("accepted_by") or {}).get(m["side"])
    return await render(who, "participant/home.html", {
        "title": "Home",
        "gaps": profile_gaps(me.get("person") or {}),
        "to_answer": [m for m in mentorships if m["waiting_for_me"]],
        "waiting": [m for m in mentorships if m["status"] == "proposed" and not m["waiting_for_me"]],
        "active": [m for m in mentorships if m["status"] == "active"],
        "closed": [m for m in mentorships if m["status"] in ("ended", "declined")][:5],
        "unread": feed.get("unread_count", 0),
        "grants": me.get("grants") or [],
        "enrolments": me.get("enrolments") or [],
    })


# ------------------------------------------------------------------ profile


async def _vocabularies(who) -> dict[str, list[str]]:
    kinds = ("career-stages", "specialties", "help-categories")
    found = await asyncio.gather(*(who.api.get("profiles", f"{net(who)}/vocabularies/{k}")
                                   for k in kinds))
    return {k.replace("-", "_"): v["terms"] for k, v in zip(kinds, found, strict=True)}


async def _profile(who) -> tuple[dict[str, Any], str]:
    response = await who.api.raw("GET", "profiles", f"{net(who)}/people/{q(who.person_id)}")
    from services.web.backend import Backend
    Backend.check(response)
    return response.json(), response.headers.get("ETag", "")


@router.get("/profile")
async def profile_page(who: SignedIn, first: str = "") -> Response:
    (person, version), vocab = await asyncio.gather(_profile(who), _vocabularies(who))
    return await render(who, "participant/profile.html", {
        "title": "My profile", "person": person, "version": version, "vocab": vocab,
        "zones": COMMON_TIME_ZONES, "first": first == "1", "gaps": profile_gaps(person),
        "errors": {},
    })


@router.post("/profile")
async def save_profile(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    (person, version), vocab = await asyncio.gather(_profile(who), _vocabularies(who))
    context = {"title": "My profile", "person": person, "version": version, "vocab": vocab,
               "zones": COMMON_TIME_ZONES, "first": False, "gaps": profile_gaps(person),
               "errors": {}, "posted": form}
    try:
        patch = profile_patch(person, form)
        await who.api.call("PATCH", "profiles", f"{net(who)}/people/{q(who.person_id)}/profile",
                           json=patch, headers={"If-Match": one(form, "version") or version})
    except FormProblem as exc:
        context["person"] = shown_after_error(person, form)
        context["errors"] = {exc.field: str(exc)}
        context["error"] = str(exc)
        return await render(who, "participant/profile.html", context, status_code=422)
    except ApiError as exc:
        if exc.status not in (409, 412, 422):
            raise
        if exc.status != 412:
            context["person"] = shown_after_error(person, form)
        context["errors"] = exc.field_errors()
        context["error"] = (exc.detail if exc.status != 412 else
                            "Your profile changed elsewhere meanwhile: the form now shows the "
                            "latest version; make your change again.")
        return await render(who, "participant/profile.html", context, status_code=exc.status)
    await who.me(fresh=True)  # the home page's "complete your profile" reads the cached `/me`
    await flash(who, "Your profile is saved.")
    return redirect(request, "/profile")


# ------------------------------------------------------------------ programs


def _open(program: dict[str, Any], today: date) -> bool:
    return program["enrolment_opens"] <= today.isoformat() <= program["enrolment_closes"]


@router.get("/programs")
async def programs_page(who: SignedIn) -> Response:
    everything, mine = await asyncio.gather(
        programs(who),
        who.api.get("profiles", f"{net(who)}/people/{q(who.person_id)}/enrolments"),
    )
    today = datetime.now(UTC).date()
    for e in mine:
        e["program_name"] = everything.get(e["program_id"], {}).get("name", e["program_id"])
    taken = {(e["program_id"]) for e in mine if e["status"] in ("active", "requested")}
    joinable = [p for p in everything.values() if _open(p, today) and p["id"] not in taken]
    return await render(who, "participant/programs.html", {
        "title": "My programs", "mine": mine, "joinable": sorted(joinable, key=lambda p: p["name"]),
        "pending": [e for e in mine if e["status"] == "requested"],
    })


@router.post("/programs/{program_id}/join")
async def join_program(request: Request, program_id: str, who: SignedIn) -> Response:
    form = await form_of(request)
    role = one(form, "role", "mentee")
    done = await who.api.post("profiles", f"{net(who)}/programs/{q(program_id)}/enrolments",
                              json={"person_id": who.person_id, "role": role})
    if done["status"] == "requested":
        await flash(who, "Your request to join is waiting for a coordinator's approval.")
    else:
        await flash(who, f"You joined the program as a {role}.")
    return redirect(request, "/programs")


# ------------------------------------------------------------------ find a mentor


@router.get("/find-a-mentor")
async def find_a_mentor(who: SignedIn, program: str = "") -> Response:
    everything, mine = await asyncio.gather(
        programs(who),
        who.api.get("profiles", f"{net(who)}/people/{q(who.person_id)}/enrolments"),
    )
    as_mentee = [e["program_id"] for e in mine if e["role"] == "mentee" and e["status"] == "active"]
    choices = [(p, everything.get(p, {}).get("name", p)) for p in as_mentee]
    chosen = program if program in as_mentee else (as_mentee[0] if as_mentee else "")
    suggestions: list[dict[str, Any]] = []
    problem = ""
    open_in_program: list[dict[str, Any]] = []
    if chosen:
        try:
            suggestions, mentorships = await asyncio.gather(
                who.api.get("matching", f"{net(who)}/programs/{q(chosen)}/mentees/"
                            f"{q(who.person_id)}/suggestions", params={"k": 5}),
                my_mentorships(who),
            )
            open_in_program = [m for m in mentorships if m["program_id"] == chosen
                               and m["status"] in ("proposed", "active")]
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            problem = exc.detail
    return await render(who, "participant/find.html", {
        "title": "Find a mentor", "choices": choices, "chosen": chosen,
        "suggestions": suggestions, "problem": problem, "open": open_in_program,
    })


@router.post("/find-a-mentor/request")
async def request_mentor(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    program = one(form, "program_id")
    created = await who.api.post(
        "matching", f"{net(who)}/programs/{q(program)}/proposals",
        json={"mentee_id": who.person_id, "mentor_id": one(form, "mentor_id")},
    )
    await flash(who, "Your request is sent: the mentor is asked to accept.")
    return redirect(request, f"/mentorships/{q(created['mentorship_id'])}")


# ------------------------------------------------------------------ my data


@router.get("/my-data")
async def my_data(who: SignedIn) -> Response:
    return await render(who, "participant/my_data.html", {"title": "My data", "errors": {}})


@router.get("/my-data/export")
async def export(who: SignedIn) -> Response:
    response = await who.api.raw("GET", "profiles", f"{net(who)}/people/{q(who.person_id)}/export")
    from services.web.backend import Backend
    Backend.check(response)
    return Response(response.content, media_type="application/json", headers={
        "Content-Disposition": 'attachment; filename="my-mentorship-data.json"'})


@router.post("/my-data/erase")
async def erase(request: Request, who: SignedIn) -> Response:
    form = await form_of(request)
    if one(form, "confirm").lower() != "erase":
        return await render(who, "participant/my_data.html", {
            "title": "My data", "errors": {"confirm": "Type the word erase to confirm."},
            "error": "Nothing was erased: the confirmation word was not typed."},
            status_code=422)
    await who.api.call("DELETE", "profiles", f"{net(who)}/people/{q(who.person_id)}")
    await who.backend.request("POST", "profiles", "/auth/sign-out",
                              json={"refresh_token": who.session.refresh_token})
    await who.end_session()
    return await render(who, "participant/erased.html", {"title": "Account erased"})


routers = [router, mentorship.router, inbox.router]
