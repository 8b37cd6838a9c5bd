"""HTTP API of matching a program: settings, runs (draft -> edit -> publish), ranked
preferences, suggestions and hand proposals (MATCHING-API.md).

A run is recorded with what it read (inputs), how (parameters), what it found (proposals with
their explanations) and how long it took. Nothing is proposed until a coordinator publishes
the draft; edits and hand proposals are re-checked against every hard constraint (409 with
the reason), and publishing checks the draft once more against the pool as it is then.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.matching import access, lifecycle, runs
from services.matching.pool_models import mentee_model, mentor_model, weights_of
from services.matching.scoring import Constraints
from services.matching.store import (
    MENTORSHIPS,
    MentorshipStore,
    Places,
    PoolStore,
    PreferenceStore,
    ProgramStore,
    RunStore,
)
from services.matching.suggestions import suggest
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.events import new_event
from shared.events.schemas import MatchingRunPublished
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}/programs/{program_id}", tags=["matching runs"])

FACTORS = tuple(weights_of(None).as_dict())


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Annotated[float, Field(ge=0, le=1000)]] = Field(default_factory=dict)
    fair: bool = False
    institution_cap: int | None = Field(default=None, ge=0)
    top_k: int = Field(default=30, ge=1, le=1000)


class SettingsOut(SettingsIn):
    program_id: str
    program: dict[str, Any] = Field(default_factory=dict, description="Matching's view of the program (from events)")


PROGRAM_VIEW = ("version", "type", "institution_id", "cross_institution", "max_mentors_per_mentee", "auto_accept",
                "ranked_preferences", "reassessment_days", "cadence_days")


def _view(program: dict[str, Any]) -> dict[str, Any]:
    return {k: program.get(k) for k in PROGRAM_VIEW}


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["min-cost-flow", "deferred-acceptance"] = "min-cost-flow"


class Proposal(BaseModel):
    mentee_id: str
    mentor_id: str
    need: str | None = None
    score: float
    explanation: list[str]


class RunOut(BaseModel):
    run_id: str
    program_id: str
    status: str
    algorithm: str
    parameters: dict[str, Any]
    timings_ms: dict[str, float]
    mentees_eligible: int
    mentees_matched: int
    total_score: float
    proposals: list[Proposal] = Field(default_factory=list)
    stable: bool | None = None
    solver: str | None = None
    created_by: str
    created_at: Any
    published_at: Any = None
    mentorship_ids: list[str] = Field(default_factory=list)


class RunSummary(BaseModel):
    run_id: str
    program_id: str
    status: str
    algorithm: str
    mentees_eligible: int
    mentees_matched: int
    total_score: float
    created_at: Any
    published_at: Any = None


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mentee_id: str = Field(min_length=1)
    mentor_id: str = Field(min_length=1)
    need: str | None = None


class ProposalIn(PairIn):
    at: datetime | None = Field(default=None, description="When it was proposed (backfilling history)")


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime | None = Field(default=None, description="When it was published (backfilling history)")


class RunPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remove: list[PairIn] = Field(default_factory=list, max_length=1000)
    add: list[PairIn] = Field(default_factory=list, max_length=1000)


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ranked: list[Annotated[str, Field(min_length=1)]] = Field(max_length=200)


class SuggestionOut(BaseModel):
    mentor_id: str
    display_name: str
    score: float
    explanation: list[str]


async def program_or_404(db: Any, network_id: str, program_id: str) -> dict[str, Any]:
    program = await ProgramStore(db).get(network_id, program_id)
    if program is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Matching knows no program {program_id} in this network (yet).")
    return program


async def gather(db: Any, network_id: str, program: dict[str, Any]) -> runs.Inputs:
    pool = PoolStore(db)
    mentors, mentees, mentorships, prefs = await asyncio.gather(
        pool.members(network_id, program["_id"], "mentor"),
        pool.members(network_id, program["_id"], "mentee"),
        MentorshipStore(db).of_network(network_id),
        PreferenceStore(db).of_program(program["_id"]),
    )
    return runs.Inputs(program, program.get("matching_settings") or {}, mentors, mentees, mentorships, prefs)


def _run_out(run: dict[str, Any]) -> RunOut:
    return RunOut(run_id=run["_id"], **{k: v for k, v in run.items() if k in RunOut.model_fields})


@router.put("/matching-settings", response_model=SettingsOut)
async def put_settings(network_id: str, program_id: str, body: SettingsIn, principal: CurrentPrincipal, db: Database) -> SettingsOut:
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program)
    unknown = sorted(set(body.weights) - set(FACTORS))
    if unknown:
        raise HTTPException(422, f"Unknown factors {', '.join(unknown)}; the factors are {', '.join(FACTORS)}.")
    try:
        weights_of(body.model_dump())
    except ValueError as exc:
        raise HTTPException(422, f"Invalid weights: {exc}.") from exc
    await ProgramStore(db).set_settings(program_id, body.model_dump())
    return SettingsOut(program_id=program_id, program=_view(program), **body.model_dump())


@router.get("/matching-settings", response_model=SettingsOut)
async def get_settings(network_id: str, program_id: str, principal: CurrentPrincipal, db: Database) -> SettingsOut:
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program, read=True)
    stored = {**runs.DEFAULT_SETTINGS, **(program.get("matching_settings") or {})}
    return SettingsOut(program_id=program_id, program=_view(program), **stored)


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=RunOut)
async def create_run(network_id: str, program_id: str, body: RunIn, principal: CurrentPrincipal, db: Database) -> RunOut:
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program)
    inputs = await gather(db, network_id, program)
    if body.algorithm == "deferred-acceptance" and not program.get("ranked_preferences"):
        raise HTTPException(409, "This program does not collect ranked preferences; use min-cost-flow, "
                                 "or turn on ranked_preferences for the program first.")
    result = await asyncio.to_thread(runs.run, inputs, body.algorithm)
    run = {"_id": f"run-{uuid.uuid4().hex}", "network_id": network_id, "program_id": program_id,
           "status": "draft", "created_by": principal.subject, "created_at": lifecycle.now(), **result}
    await RunStore(db).add(run)
    return _run_out(run)


@router.get("/runs", response_model=list[RunSummary])
async def list_runs(network_id: str, program_id: str, principal: CurrentPrincipal, db: Database) -> list[RunSummary]:
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program, read=True)
    return [RunSummary(run_id=r["_id"], **{k: v for k, v in r.items() if k in RunSummary.model_fields})
            for r in await RunStore(db).list(program_id)]


async def _run_or_404(db: Any, program_id: str, run_id: str) -> dict[str, Any]:
    run = await RunStore(db).get(program_id, run_id)
    if run is None:
        raise HTTPException(404, f"This program has no run {run_id}.")
    return run


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(network_id: str, program_id: str, run_id: str, principal: CurrentPrincipal, db: Database) -> RunOut:
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program, read=True)
    return _run_out(await _run_or_404(db, program_id, run_id))


@router.patch("/runs/{run_id}", response_model=RunOut)
async def edit_run(network_id: str, program_id: str, run_id: str, body: RunPatch, principal: CurrentPrincipal, db: Database) -> RunOut:
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program)
    run = await _run_or_404(db, program_id, run_id)
    if run["status"] != "draft":
        raise HTTPException(409, f"This run is {run['status']}; only a draft can be edited.")
    removing = {(p.mentee_id, p.mentor_id) for p in body.remove}
    kept = [p for p in run["proposals"] if (p["mentee_id"], p["mentor_id"]) not in removing]
    missing = removing - {(p["mentee_id"], p["mentor_id"]) for p in run["proposals"]}
    if missing:
        raise HTTPException(409, f"The run does not propose {', '.join(f'{e} with {m}' for e, m in sorted(missing))}.")
    inputs = await gather(db, network_id, program)
    for pair in body.add:
        try:
            kept.append(runs.check_pair(inputs, pair.mentee_id, pair.mentor_id, pair.need, kept))
        except runs.PairRejected as exc:
            raise HTTPException(409, f"Cannot add {pair.mentee_id} with {pair.mentor_id}: {exc}") from exc
    fields = {**runs.totals(kept), "edited_by": principal.subject, "edited_at": lifecycle.now()}
    if not await RunStore(db).replace_draft(run, kept, fields):
        raise HTTPException(409, "The run was published or edited by someone else meanwhile; read it again.")
    return _run_out({**run, **fields, "proposals": kept})


async def create_mentorships(
    db: Any, relay: Any, network_id: str, program: dict[str, Any], inputs: runs.Inputs,
    proposals: list[dict[str, Any]], run_id: str | None, ids: list[str], at: datetime,
) -> list[dict[str, Any]]:
    """New mentorships for checked proposals, with MatchProposed; when the program
    auto-accepts, each starts at once if the mentor's place can be reserved (else it waits
    as a proposal like any other)."""
    pool = {d["_id"]: d for d in (*inputs.mentors, *inputs.mentees)}
    created = []
    places = Places(db)
    limit = int(program.get("max_mentors_per_mentee") or 1)
    for mid, p in zip(ids, proposals, strict=True):
        doc, events = lifecycle.proposal(
            mentorship_id=mid, network_id=network_id, program=program, mentor=pool[p["mentor_id"]],
            mentee=pool[p["mentee_id"]], score=p["score"], explanation=p["explanation"], need=p.get("need"),
            run_id=run_id, is_rematch=runs.is_rematch(p["mentee_id"], program["_id"], inputs.mentorships), at=at,
        )
        if program.get("auto_accept"):
            capacity = int(pool[p["mentor_id"]].get("capacity") or 0)
            if await places.take(doc, capacity, limit) is None:
                lifecycle.auto_start(doc, events)
        created.append((doc, events))
    refused = await MentorshipStore(db).insert(created)
    for doc, _ in created:
        if doc["_id"] in refused and doc["status"] == "active":
            await places.give_back(doc)
    relay.wake()
    return [doc for doc, _ in created if doc["_id"] not in refused]


def _when(at: datetime | None, what: str) -> datetime:
    try:
        return lifecycle.when(at, None, lifecycle.now(), what)
    except lifecycle.LifecycleError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def _proposal_id(run_id: str, proposal: dict[str, Any]) -> str:
    """The same id each time a publish of this run is attempted, so a resumed publish
    creates each mentorship once."""
    name = f"{run_id}/{proposal['mentee_id']}/{proposal['mentor_id']}"
    return f"ms-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}"


@router.post("/runs/{run_id}/publish", response_model=RunOut)
async def publish_run(network_id: str, program_id: str, run_id: str, principal: CurrentPrincipal, db: Database,
                      relay: Relay, body: PublishIn | None = None) -> RunOut:
    at = _when((body or PublishIn()).at, "publishing")
    program = await program_or_404(db, network_id, program_id)
    access.may_manage_program(principal, program)
    run = await _run_or_404(db, program_id, run_id)
    if run["status"] == "published":
        raise HTTPException(409, "This run is already published.")
    inputs = await gather(db, network_id, program)
    if run["status"] == "draft":
        # The pool moved on since the draft (someone paused, a proposal was accepted): check
        # every pair again, as the coordinator would have had to.
        problems, checked = [], []
        for p in run["proposals"]:
            try:
                checked.append(runs.check_pair(inputs, p["mentee_id"], p["mentor_id"], p.get("need"), checked))
            except runs.PairRejected as exc:
                problems.append(f"{p['mentee_id']} with {p['mentor_id']}: {exc}")
        if problems:
            raise HTTPException(409, "The pool changed since this draft; edit these pairs out first: " + "; ".join(problems))
    run = await RunStore(db).start_publishing(run_id)
    if run is None:
        raise HTTPException(409, "This run is already published.")
    proposals = run["proposals"]
    ids = [_proposal_id(run_id, p) for p in proposals]
    await create_mentorships(db, relay, network_id, program, inputs, proposals, run_id, ids, at)
    # What exists now: this publish's, or a cut-short earlier one's; not a pair that a
    # concurrent hand proposal opened first.
    existing = {d["_id"] async for d in db[MENTORSHIPS].find({"_id": {"$in": ids}}, {"_id": 1})}
    ids = [i for i in ids if i in existing]
    payload = MatchingRunPublished(
        run_id=run_id, network_id=network_id, program_id=program_id, algorithm=run["algorithm"],
        proposals=len(proposals), mentees_eligible=run["mentees_eligible"], mentees_matched=run["mentees_matched"],
        total_score=run["total_score"], published_by=principal.subject, published_at=at,
    )
    event = new_event(payload, subject=run_id, tenant_id=network_id, source=lifecycle.SOURCE, at=at)
    fields = {"published_at": at, "published_by": principal.subject, "mentorship_ids": ids}
    await RunStore(db).published(run_id, fields, [event])
    relay.wake()
    return _run_out({**run, **fields, "status": "published"})


def _may_act_for(principal: Principal, person_id: str, program: dict[str, Any]) -> None:
    """The person themselves (the route then checks they take part in the program), or a
    manager of the program."""
    require_network(principal, program["network_id"])
    if principal.is_self(person_id):
        return
    access.may_manage_program(principal, program)


@router.put("/preferences/{person_id}", status_code=status.HTTP_200_OK)
async def put_preferences(network_id: str, program_id: str, person_id: str, body: PreferencesIn,
                          principal: CurrentPrincipal, db: Database) -> dict[str, Any]:
    program = await program_or_404(db, network_id, program_id)
    _may_act_for(principal, person_id, program)
    person = await PoolStore(db).get(network_id, person_id)
    roles = [r for r in ("mentee", "mentor") if person and program_id in (person.get(f"{r}_programs") or [])]
    if not roles:
        raise HTTPException(404, f"{person_id} is not a participant of this program.")
    role = roles[0]
    other = "mentor" if role == "mentee" else "mentee"
    members = {d["_id"] for d in await PoolStore(db).members(network_id, program_id, other)}
    unknown = [p for p in body.ranked if p not in members]
    if unknown:
        raise HTTPException(422, f"Not {other}s of this program: {', '.join(unknown)}.")
    ranked = list(dict.fromkeys(body.ranked))
    await PreferenceStore(db).put(program_id, person_id, role, ranked)
    return {"program_id": program_id, "person_id": person_id, "role": role, "ranked": ranked}


@router.get("/mentees/{person_id}/suggestions", response_model=list[SuggestionOut])
async def suggestions(network_id: str, program_id: str, person_id: str, principal: CurrentPrincipal, db: Database,
                      k: Annotated[int, Query(ge=1, le=100)] = 10) -> list[SuggestionOut]:
    program = await program_or_404(db, network_id, program_id)
    _may_act_for(principal, person_id, program)
    inputs = await gather(db, network_id, program)
    mentee_doc = next((e for e in inputs.mentees if e["_id"] == person_id), None)
    if mentee_doc is None:
        raise HTTPException(404, f"{person_id} is not a mentee of this program.")
    mentee = mentee_model(mentee_doc, program_id, max(1, inputs.wanted.get(person_id, 0)))
    mentors = inputs.mentor_models()
    constraints: Constraints = inputs.constraints
    names = {m["_id"]: m.get("display_name", "") for m in inputs.mentors}
    best = suggest(mentee, mentors, inputs.model_program, constraints, k)
    return [SuggestionOut(mentor_id=e.mentor_id, display_name=names.get(e.mentor_id, ""), score=round(e.score, 1),
                          explanation=runs.public_lines(e)) for e in best]


@router.post("/proposals", status_code=status.HTTP_201_CREATED)
async def hand_proposal(network_id: str, program_id: str, body: ProposalIn, principal: CurrentPrincipal, db: Database,
                        relay: Relay) -> dict[str, Any]:
    """A coordinator's hand match, or a mentee picking one of their suggestions."""
    from services.matching.lifecycle_api import mentorship_out

    at = _when(body.at, "the proposal")
    program = await program_or_404(db, network_id, program_id)
    if principal.is_self(body.mentor_id) and not principal.is_self(body.mentee_id):
        raise HTTPException(403, "Mentees pick their mentors; a mentor cannot propose themselves.")
    _may_act_for(principal, body.mentee_id, program)
    inputs = await gather(db, network_id, program)
    try:
        proposal = runs.check_pair(inputs, body.mentee_id, body.mentor_id, body.need)
    except runs.PairRejected as exc:
        raise HTTPException(409, str(exc)) from exc
    mid = lifecycle.new_id("ms")
    created = await create_mentorships(db, relay, network_id, program, inputs, [proposal], None, [mid], at)
    if not created:
        raise HTTPException(409, "This pair was just proposed by someone else; it already has an open mentorship.")
    return mentorship_out(created[0], principal)
