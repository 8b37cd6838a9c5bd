"""Bulk import of a roster (CSV, format in `roster.py`) by coordinators and network admins.

`POST /networks/{id}/imports?dry_run=true` reads and checks everything (rows, scope, who
exists), writes nothing and answers with the report at once. Without `dry_run` the import is a
background job: the answer is 202 with the job, and `GET /networks/{id}/imports/{job}` follows
it (rows done, invalid rows with line and reason, events staged and published; the use case
and its pacing are in `importing.py` and `import_jobs.py`). A file that cannot be read as a
whole (not UTF-8, not CSV, a required column missing, too many rows) is refused at once (422).

Each row is applied whole or not at all: a row that fails any check (its own values, the
caller's scope, the program, a clash with an earlier row or with the stored person) is reported
with its line and reason and changes nothing. Applying is idempotent: a person is found by
email, only what differs is written, so importing the same file again reports everyone
unchanged (and finishes an import that was interrupted).

Scope (`people_access.may_register`, as for registration): network admins import anyone into
any institution; institution coordinators people of the institutions they coordinate (into
programs they may enrol into); program coordinators people into the programs they coordinate
(a program is required). Rows outside the scope are invalid rows, the others still apply, and
a row never tells the importer which other institution an email belongs to.

Dry runs stay synchronous: they write nothing, a roster is at most 50,000 rows, and their
CPU work yields to other requests every hundred rows like the job's.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from services.profiles import enrolment, import_jobs, people_access, roster
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.domain import DomainError
from services.profiles.importing import RosterImport
from services.profiles.organisation import Program, _now, _time_ordered_id
from services.profiles.organisation_api import Store as OrganisationStoreDep
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.logging import current_correlation_id
from shared.idempotency import outside_transaction
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["import"])

MAX_BYTES = 20 * 1024 * 1024


class InvalidRow(BaseModel):
    line: int
    email: str | None
    reason: str


class ImportReport(BaseModel):
    dry_run: bool
    rows: int
    created: int  # people
    updated: int
    unchanged: int
    invalid: list[InvalidRow]


class ImportJob(ImportReport):
    """A running or finished import. `status`: running, done, failed (see `error`) or
    interrupted (its process stopped: import the file again, it is idempotent).
    `events_published` reaches `events_staged` once the relay has published them all."""

    id: str
    status: Literal["running", "done", "failed", "interrupted"]
    rows_done: int
    events_staged: int
    events_published: int
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


def row_scope_error(
    row: roster.RosterRow,
    principal: Principal,
    institutions: set[str],
    programs: dict[str, Program | None],
) -> str | None:
    """Why the caller may not import this row, or None (`people_access.may_register`, the
    rule registration and enrolment share)."""
    if row.institution_id not in institutions:
        return f"There is no institution {row.institution_id!r} in this network."
    program = None
    if row.program_id is not None:
        program = programs.get(row.program_id)
        if program is None:
            return f"There is no program {row.program_id!r} in this network."
    try:
        # The route checked the network already; the rule checks it again all the same.
        people_access.may_register(principal, principal.network_id or "", row.institution_id,
                                   program)
        if program is not None:
            enrolment.may_take_part(row.institution_id, program)
    except DomainError as exc:
        return str(exc)
    except HTTPException as exc:
        return str(exc.detail)
    return None


@router.post("/imports", response_model=ImportReport | ImportJob, max_body_size=MAX_BYTES,
             responses={202: {"model": ImportJob, "description": "The import started"}})
@outside_transaction  # starts a background job; the job is idempotent by itself
async def import_roster(
    network_id: str,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    relay: Relay,
    db: Database,
    dry_run: Annotated[bool, Query(description="Check and report; write nothing")] = False,
    effective_on: Annotated[date | None, Query(
        description="The day the roster took effect, when backfilling a past term (people "
                    "registered and enrolled that day); default today")] = None,
) -> ImportReport | ImportJob:
    """Import a roster CSV (the request body, `Content-Type: text/csv`).

    A dry run answers with the report at once (200). A real import answers 202 with the job
    (and its URL in `Location`); follow it with `GET /imports/{id}` until `status` is `done`.
    """
    require_network(principal, network_id)
    if not principal.is_staff:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Coordinators and network admins import rosters.")
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                            f"A roster may be at most {MAX_BYTES // (1024 * 1024)} MB; split it.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            "The roster is not UTF-8 text; export it as CSV UTF-8.") from exc
    try:
        records, lines = await asyncio.to_thread(roster.read, text)
    except roster.RosterError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    now = _now()
    if effective_on is not None:
        if effective_on > now.date():
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                                f"effective_on ({effective_on}) is in the future; a roster can "
                                "only be backfilled to a day that has passed.")
        now = min(now, datetime.combine(effective_on, time(12, 0), UTC))

    async def load_programs(ids: set[str]) -> dict[str, Program | None]:
        return {p: await organisation.program(network_id, p) for p in ids}

    def scope_error(row: roster.RosterRow, institutions: set[str],
                    programs: dict[str, Program | None]) -> str | None:
        return row_scope_error(row, principal, institutions, programs)

    work = RosterImport(
        network_id=network_id, principal=principal, records=records, lines=lines,
        vocab=await people.vocabularies(network_id), now=now,
        import_id=_time_ordered_id("import"), scope_error=scope_error,
    )
    institutions = await organisation.institution_ids(network_id)
    if dry_run:
        outcome = await work.run(people, institutions, load_programs, dry_run=True)
        return ImportReport(dry_run=True, rows=outcome.rows, created=outcome.created,
                            updated=outcome.updated, unchanged=outcome.unchanged,
                            invalid=_sorted(outcome.invalid))
    job = import_jobs.new_job(work, current_correlation_id())
    await import_jobs.ImportJobs(db).create(job)
    import_jobs.start(db, relay, work, people, institutions, load_programs)
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/networks/{network_id}/imports/{job['_id']}"
    return _job_view(job)


@router.get("/imports/{import_id}", response_model=ImportJob)
async def follow_import(
    network_id: str, import_id: str, principal: CurrentPrincipal, db: Database,
) -> ImportJob:
    """An import's progress: rows done, invalid rows so far, events staged and published."""
    job = await import_jobs.ImportJobs(db).find(network_id, import_id)
    if job is None or not may_follow(principal, network_id, job):
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            "No such import in this network, or not one you started.")
    return _job_view(job)


def may_follow(principal: Principal, network_id: str, job: dict[str, Any]) -> bool:
    """Network admins follow every import of their network; others the imports they started
    (the report names the rows of their file)."""
    require_network(principal, network_id)
    return principal.is_network_admin or job["started_by"] == principal.subject


def _sorted(errors: list[roster.RowError]) -> list[InvalidRow]:
    return [InvalidRow(line=e.line, email=e.email, reason=e.reason)
            for e in sorted(errors, key=lambda e: e.line)]


def _job_view(job: dict[str, Any]) -> ImportJob:
    return ImportJob(
        id=job["_id"], **{k: job.get(k) for k in ImportJob.model_fields
                          if k not in ("id", "invalid")},
        invalid=sorted((InvalidRow(**row) for row in job.get("invalid", [])),
                       key=lambda row: row.line),
    )
