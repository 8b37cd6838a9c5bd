"""Bulk import of a roster (CSV, format in `roster.py`) by coordinators and network admins.

`POST /networks/{id}/imports?dry_run=true` reads and checks everything (rows, scope, who
exists) and writes nothing; without `dry_run` the valid rows are applied. Each row is applied
whole or not at all: a row that fails any check (its own values, the caller's scope, the
program, a clash with an earlier row or with the stored person) is reported with its line and
reason and changes nothing. Applying is idempotent: a person is found by email, only what
differs is written, so importing the same file again reports everyone unchanged.

Scope (`people_access.may_register`, as for registration): network admins import anyone into
any institution; institution coordinators people of the institutions they coordinate (into
programs they may enrol into); program coordinators people into the programs they coordinate
(a program is required). Rows outside the scope are invalid rows, the others still apply, and
a row never tells the importer which other institution an email belongs to.

New people are inserted in batches (`insert_many`, each document carrying its own events:
registration, profile and enrolment), so a roster of thousands is a few writes, not thousands.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel

from services.profiles import audit, enrolment, people_access, roster
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.domain import DomainError, Person, register
from services.profiles.organisation import Program, _now, _time_ordered_id
from services.profiles.organisation_api import Store as OrganisationStoreDep
from services.profiles.people import (
    MenteeProfile,
    MentorProfile,
    PersonRef,
    Profile,
    Vocabularies,
    VocabularyKind,
    profile_document,
    profile_from_document,
    update_profile,
)
from services.profiles.store import VersionConflict
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.events import CloudEvent
from shared.idempotency import outside_transaction
from shared.messaging.outbox import stage_insert
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["import"])

MAX_BYTES = 20 * 1024 * 1024
BATCH = 1000


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


def _ref(document: dict[str, Any]) -> PersonRef:
    return PersonRef(document["_id"], document["network_id"], document["institution_id"],
                     document.get("version", 1))


def _changes(plan: roster.PersonPlan) -> dict[str, Any]:
    return {"display_name": plan.display_name, "career_stage": plan.career_stage,
            **{role: dict(section) for role, section in plan.sections.items()}}


def _enrol_all(
    participant: enrolment.Participant, plan: roster.PersonPlan,
    programs: dict[str, Program | None], now: datetime,
) -> tuple[enrolment.Participant, list[CloudEvent]]:
    events: list[CloudEvent] = []
    active = {(e.program_id, e.role) for e in participant.enrolments if e.status == "active"}
    for program_id, role in plan.enrolments:
        if (program_id, role) in active:
            continue
        participant, new, _ = enrolment.enrol(
            participant, programs[program_id], role, by_self=False, today=now.date(), now=now
        )
        events += new
    return participant, events


def new_person(
    network_id: str, plan: roster.PersonPlan, programs: dict[str, Program | None],
    vocab: Vocabularies, now: datetime,
) -> dict[str, Any]:
    """The document of a person the roster introduces, with every event it causes staged."""
    mentor = plan.sections.get("mentor")
    mentee = plan.sections.get("mentee")
    person = Person(
        network_id=network_id, institution_id=plan.institution_id,
        display_name=plan.display_name, email=plan.email, role=plan.first_role,
        career_stage=plan.career_stage,
        specialty_interests=list((mentee or {}).get("specialty_interests", [])),
        capacity=int((mentor or {}).get("capacity", 1)) if mentor is not None else 0,
        registered_at=now,
    )
    events: list[CloudEvent] = []
    for role in plan.sections:
        _, registered = register(
            replace(person, role=role), vocab.terms(VocabularyKind.CAREER_STAGES),
            vocab.terms(VocabularyKind.SPECIALTIES),
        )
        events += registered
    base = Profile(
        display_name=person.display_name, career_stage=person.career_stage,
        mentor=MentorProfile(capacity=person.capacity) if mentor is not None else None,
        mentee=MenteeProfile(specialty_interests=tuple(person.specialty_interests))
        if mentee is not None else None,
    )
    ref = PersonRef(person.id, network_id, person.institution_id, 1)
    profile, profile_events = update_profile(ref, base, _changes(plan), 1, vocab)
    events += profile_events
    participant, enrolled = _enrol_all(
        enrolment.Participant(person.id, network_id, person.institution_id), plan, programs, now
    )
    events += enrolled
    document = {"_id": person.id, **asdict(person), **profile_document(profile),
                **enrolment.enrolments_document(participant),
                "version": 2 if profile_events else 1, "updated_at": now if profile_events else None}
    document.pop("id")
    document["email"] = plan.email
    document["program_id"] = None
    return stage_insert(document, events)


def person_update(
    document: dict[str, Any], plan: roster.PersonPlan, programs: dict[str, Program | None],
    vocab: Vocabularies, now: datetime,
) -> tuple[dict[str, Any], list[CloudEvent]] | None:
    """The fields to write and the events, or None when the stored person already is what
    the roster says (the import is idempotent)."""
    current = profile_from_document(document)
    profile, events = update_profile(
        _ref(document), current, _changes(plan), document.get("version", 1), vocab
    )
    participant, enrolled = _enrol_all(
        enrolment.participant_from_document(document), plan, programs, now
    )
    if profile == current and not enrolled:
        return None
    fields = enrolment.enrolments_document(participant)
    if profile != current:
        fields |= profile_document(profile) | {"updated_at": now}
    return fields, events + enrolled


@router.post("/imports", response_model=ImportReport)
@outside_transaction  # thousands of people in pipelined batches; idempotent by itself
async def import_roster(
    network_id: str,
    request: Request,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    relay: Relay,
    db: Database,
    dry_run: Annotated[bool, Query(description="Check and report; write nothing")] = False,
    effective_on: Annotated[date | None, Query(
        description="The day the roster took effect, when backfilling a past term (people "
                    "registered and enrolled that day); default today")] = None,
) -> ImportReport:
    """Import a roster CSV (the request body, `Content-Type: text/csv`)."""
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
    vocab = await people.vocabularies(network_id)
    try:
        rows, errors = await asyncio.to_thread(roster.parse, text, vocab)
    except roster.RosterError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    total = len(rows) + len(errors)

    institutions = await organisation.institution_ids(network_id)
    programs = {p: await organisation.program(network_id, p)
                for p in {r.program_id for r in rows if r.program_id}}
    in_scope = []
    for row in rows:
        reason = row_scope_error(row, principal, institutions, programs)
        if reason is None:
            in_scope.append(row)
        else:
            errors.append(roster.RowError(row.line, reason, row.email))
    plans, conflicts = roster.plan(in_scope)
    errors += conflicts

    existing = await people.by_emails(network_id, list(plans))
    now = _now()
    if effective_on is not None:
        if effective_on > now.date():
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                                f"effective_on ({effective_on}) is in the future; a roster can "
                                "only be backfilled to a day that has passed.")
        now = min(now, datetime.combine(effective_on, time(12, 0), UTC))
    new_plans, updates, unchanged = await asyncio.to_thread(
        _classify, plans, existing, programs, vocab, now, errors
    )

    def build(chunk: list[roster.PersonPlan]) -> list[tuple[roster.PersonPlan, dict[str, Any]]]:
        built = []
        for plan in chunk:
            try:
                built.append((plan, new_person(network_id, plan, programs, vocab, now)))
            except DomainError as exc:  # the merged rows break a rule together
                errors.extend(roster.RowError(line, str(exc), plan.email) for line in plan.lines)
        return built

    if dry_run:
        created = []
        for start in range(0, len(new_plans), BATCH):
            created += await asyncio.to_thread(build, new_plans[start:start + BATCH])
    else:
        import_id = _time_ordered_id("import")
        created = await _create(people, new_plans, build, errors)
        updates = await _update(people, updates, errors)
        # One entry per institution and kind of change, naming everyone it touched: an
        # entry per person would double the writes of a large import.
        entries = []
        for action, touched in (
            ("roster.created", [doc for _, doc in created]),
            ("roster.updated", [doc for _, doc, _ in updates]),
        ):
            by_institution: dict[str, list[str]] = {}
            for doc in touched:
                by_institution.setdefault(doc["institution_id"], []).append(doc["_id"])
            entries += [
                audit.entry(principal, network_id, action, "import", import_id, institution,
                            ["profile", "enrolments"], people=ids)
                for institution, ids in sorted(by_institution.items())
            ]
        for start in range(0, len(entries), BATCH):
            await audit.record(db, *entries[start:start + BATCH])
        if created or updates:
            relay.wake()
    return ImportReport(
        dry_run=dry_run, rows=total, created=len(created), updated=len(updates),
        unchanged=unchanged,
        invalid=[InvalidRow(line=e.line, email=e.email, reason=e.reason)
                 for e in sorted(errors, key=lambda e: e.line)],
    )


def _classify(plans, existing, programs, vocab, now, errors):
    """Who is new, who changes (and how), how many stay as they are. Pure CPU: run in a
    thread so a large import does not stall the service's other requests."""
    new_plans, updates, unchanged = [], [], 0
    for email, plan in plans.items():
        document = existing.get(email)
        if document is None:
            new_plans.append(plan)
            continue
        try:
            if document["institution_id"] != plan.institution_id:
                # Never name the other institution: which institution an email belongs to is
                # not the importer's to learn.
                raise DomainError(
                    "This email belongs to someone registered at another institution; an "
                    "import does not move people between institutions."
                )
            change = person_update(document, plan, programs, vocab, now)
        except DomainError as exc:  # the merged rows break a rule together
            errors.extend(roster.RowError(line, str(exc), email) for line in plan.lines)
            continue
        if change is None:
            unchanged += 1
        else:
            updates.append((plan, document, change))
    return new_plans, updates, unchanged


async def _create(people, new_plans, build, errors):
    """Insert new people in batches, building the next batch (in a thread) while the store
    writes the previous one: the two cores do both at once. A person whose email was taken
    meanwhile is reported, not written."""

    async def insert(batch):
        refused = set(await people.add_many([doc for _, doc in batch]))
        for i, (plan, _) in enumerate(batch):
            if i in refused:
                errors.extend(roster.RowError(
                    line, "Someone registered with this email while the import ran; import "
                    "again to update them.", plan.email) for line in plan.lines)
        return [item for i, item in enumerate(batch) if i not in refused]

    written, pending = [], None
    for start in range(0, len(new_plans), BATCH):
        batch = await asyncio.to_thread(build, new_plans[start:start + BATCH])
        if pending is not None:
            written += await pending
        pending = asyncio.create_task(insert(batch))
    if pending is not None:
        written += await pending
    return written


async def _update(people, updates, errors):
    """Version-guarded writes; someone who was edited while the import ran is reported."""
    applied = []
    for plan, document, (fields, events) in updates:
        try:
            await people.update_person(document["network_id"], document["_id"],
                                       document.get("version", 1), fields, events)
        except VersionConflict:
            errors.extend(roster.RowError(line, "This person was edited while the import ran; "
                                          "import again.", plan.email) for line in plan.lines)
            continue
        applied.append((plan, document, (fields, events)))
    return applied
