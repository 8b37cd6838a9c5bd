"""HTTP API of a network's organisation: its institutions (or chapters) and programs.

Programs are edited with optimistic concurrency: `GET` returns the version as an `ETag`, and
`PATCH` must send it back in `If-Match` (428 without it, 412 when someone else edited first),
so two coordinators never silently overwrite each other. Who may do what: `access.py`.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from pydantic import BaseModel, ConfigDict, Field

from services.profiles import access, audit
from services.profiles.domain import DomainError
from services.profiles.organisation import (
    Institution,
    InstitutionKind,
    Program,
    ProgramType,
    StaleVersion,
    create_program,
    new_institution,
    update_program,
)
from services.profiles.organisation_store import (
    AlreadyExists,
    OrganisationStore,
    VersionConflict,
)
from shared.auth import CurrentPrincipal
from shared.pagination import after_id, id_cursor
from shared.preconditions import etag, expected_version
from shared.service import Database, Relay

DbDep = Database

router = APIRouter(prefix="/networks/{network_id}", tags=["organisation"])


async def organisation_store(db: Database) -> OrganisationStore:
    return OrganisationStore.of(db)


Store = Annotated[OrganisationStore, Depends(organisation_store)]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


class InstitutionIn(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="Stable id tokens refer to")
    name: str = Field(min_length=1, max_length=200)
    kind: InstitutionKind = InstitutionKind.INSTITUTION


class InstitutionOut(BaseModel):
    id: str
    network_id: str
    name: str
    kind: InstitutionKind
    created_at: datetime


class InstitutionPage(BaseModel):
    items: list[InstitutionOut]
    next_cursor: str | None


class _ProgramFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: ProgramType
    cohort_start: date
    cohort_end: date
    enrolment_opens: date
    enrolment_closes: date
    cross_institution: bool = False
    max_mentors_per_mentee: int = Field(default=1, ge=1)
    cadence_days: int = Field(default=30, ge=1, description="Expected days between meetings")
    requires_approval: bool = False
    auto_accept: bool = Field(
        default=False, description="Proposals become mentorships without asking either side"
    )
    reassessment_days: int = Field(default=90, ge=1, description="Check-in / feedback rhythm")
    ranked_preferences: bool = Field(
        default=False, description="Both sides hand in ranked lists of each other"
    )
    coordinator_emails: list[Annotated[str, Field(max_length=254)]] = Field(
        default_factory=list, max_length=20, description="Who receives the program's digests"
    )
    min_mentor_stage: str | None = Field(
        default=None, max_length=60,
        description="Self-registration as a mentor needs at least this career stage; omit for "
                    "the default of the program's type",
    )
    max_mentor_capacity: int = Field(
        default=5, ge=1, le=50,
        description="Mentees at once a mentor may set for themselves here; more needs a "
                    "coordinator's approval",
    )


class ProgramIn(_ProgramFields):
    institution_id: str | None = Field(
        default=None, max_length=64, description="Omit for a network-wide program"
    )


class ProgramPatch(BaseModel):
    """Only the fields sent change; the institution cannot (that would be another program)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: ProgramType | None = None
    cohort_start: date | None = None
    cohort_end: date | None = None
    enrolment_opens: date | None = None
    enrolment_closes: date | None = None
    cross_institution: bool | None = None
    max_mentors_per_mentee: int | None = Field(default=None, ge=1)
    cadence_days: int | None = Field(default=None, ge=1)
    requires_approval: bool | None = None
    auto_accept: bool | None = None
    reassessment_days: int | None = Field(default=None, ge=1)
    ranked_preferences: bool | None = None
    coordinator_emails: list[Annotated[str, Field(max_length=254)]] | None = Field(
        default=None, max_length=20
    )
    min_mentor_stage: str | None = Field(default=None, max_length=60)
    max_mentor_capacity: int | None = Field(default=None, ge=1, le=50)


class ProgramOut(ProgramIn):
    model_config = ConfigDict(extra="ignore")

    id: str
    network_id: str
    version: int
    created_at: datetime
    updated_at: datetime


class ProgramPage(BaseModel):
    items: list[ProgramOut]
    next_cursor: str | None


def _program_out(program: Program) -> ProgramOut:
    return ProgramOut.model_validate(asdict(program))


def _etag(program: Program) -> str:
    return etag(program.version)


def _expected_version(if_match: str | None) -> int:
    return expected_version(if_match, "program", "GET the program first")


@router.post(
    "/institutions", status_code=status.HTTP_201_CREATED, response_model=InstitutionOut
)
async def add_institution(
    network_id: str, body: InstitutionIn, principal: CurrentPrincipal, store: Store, relay: Relay,
    db: DbDep,
) -> InstitutionOut:
    access.may_manage_institutions(principal, network_id)
    try:
        institution, events = new_institution(
            Institution(network_id=network_id, id=body.id, name=body.name, kind=body.kind)
        )
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    try:
        await store.add_institution(institution, events)
    except AlreadyExists as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"This network already has an institution {body.id!r}."
        ) from exc
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, "institution.created",
                                       "institution", institution.id, institution.id))
    return InstitutionOut(**asdict(institution))


@router.get("/institutions", response_model=InstitutionPage)
async def list_institutions(
    network_id: str, principal: CurrentPrincipal, store: Store, limit: Limit = 50,
    cursor: Cursor = None,
) -> InstitutionPage:
    access.may_read(principal, network_id)
    found = await store.institutions(network_id, limit=limit, after=after_id(cursor))
    return InstitutionPage(
        items=[InstitutionOut(**asdict(i)) for i in found],
        next_cursor=id_cursor(found[-1].id) if len(found) == limit else None,
    )


@router.post("/programs", status_code=status.HTTP_201_CREATED, response_model=ProgramOut)
async def add_program(
    network_id: str,
    body: ProgramIn,
    principal: CurrentPrincipal,
    store: Store,
    relay: Relay,
    request: Request,
    response: Response,
    db: DbDep,
) -> ProgramOut:
    access.may_create_program(principal, network_id, body.institution_id)
    if body.institution_id is not None and not await store.institution(
        network_id, body.institution_id
    ):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"There is no institution {body.institution_id!r} in this network; a network "
            f"admin adds it first (POST /networks/{network_id}/institutions).",
        )
    try:
        fields = body.model_dump()
        fields["coordinator_emails"] = tuple(fields["coordinator_emails"])
        program, events = create_program(Program(network_id=network_id, **fields))
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    await store.add_program(program, events)
    relay.wake()
    await audit.record(db, audit.entry(principal, network_id, "program.created", "program",
                                       program.id, program.institution_id))
    response.headers["ETag"] = _etag(program)
    response.headers["Location"] = str(request.url_for("get_program", network_id=network_id,
                                                       program_id=program.id).path)
    return _program_out(program)


@router.get("/programs", response_model=ProgramPage)
async def list_programs(
    network_id: str,
    principal: CurrentPrincipal,
    store: Store,
    limit: Limit = 20,
    cursor: Cursor = None,
    institution_id: Annotated[str | None, Query(max_length=64)] = None,
    network_wide: Annotated[
        bool | None, Query(description="true: only network-wide programs; false: none of them")
    ] = None,
    type: Annotated[ProgramType | None, Query(description="Program type")] = None,  # noqa: A002
) -> ProgramPage:
    access.may_read(principal, network_id)
    found = await store.programs(
        network_id,
        limit=limit,
        after=after_id(cursor),
        institution_id=institution_id,
        network_wide=network_wide,
        program_type=type,
    )
    return ProgramPage(
        items=[_program_out(p) for p in found],
        next_cursor=id_cursor(found[-1].id) if len(found) == limit else None,
    )


async def _existing(store: OrganisationStore, network_id: str, program_id: str) -> Program:
    program = await store.program(network_id, program_id)
    if program is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such program in this network.")
    return program


@router.get("/programs/{program_id}", response_model=ProgramOut)
async def get_program(
    network_id: str, program_id: str, principal: CurrentPrincipal, store: Store,
    response: Response,
) -> ProgramOut:
    access.may_read(principal, network_id)
    program = await _existing(store, network_id, program_id)
    response.headers["ETag"] = _etag(program)
    return _program_out(program)


@router.patch("/programs/{program_id}", response_model=ProgramOut)
async def edit_program(
    network_id: str,
    program_id: str,
    body: ProgramPatch,
    principal: CurrentPrincipal,
    store: Store,
    relay: Relay,
    response: Response,
    db: DbDep,
    if_match: Annotated[str | None, Header()] = None,
) -> ProgramOut:
    access.may_read(principal, network_id)
    current = await _existing(store, network_id, program_id)
    access.may_edit_program(principal, current)
    expected = _expected_version(if_match)
    changes = body.model_dump(exclude_unset=True)
    # min_mentor_stage null: back to the default of the program's type.
    cleared = sorted(name for name, value in changes.items()
                     if value is None and name != "min_mentor_stage")
    if cleared:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"These fields cannot be emptied, only changed: {', '.join(cleared)}.",
        )
    if "coordinator_emails" in changes:
        changes["coordinator_emails"] = tuple(changes["coordinator_emails"])
    try:
        updated, events = update_program(current, changes, expected)
    except StaleVersion as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from exc
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    if events:
        try:
            await store.replace_program(updated, current.version, events)
        except VersionConflict as exc:
            raise HTTPException(
                status.HTTP_412_PRECONDITION_FAILED,
                "Someone else edited this program at the same moment; read it again and "
                "reapply your change.",
            ) from exc
        relay.wake()
        await audit.record(db, audit.entry(principal, network_id, "program.updated", "program",
                                           program_id, updated.institution_id,
                                           events[0].data["changed"]))
    response.headers["ETag"] = _etag(updated)
    return _program_out(updated)
