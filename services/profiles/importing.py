"""Applying a roster: the use case behind `POST /imports`, in steps a background job can pace.

The work is the same for a dry run and a real one: read every row, check it (its own values,
the caller's scope, the program, a clash with an earlier row or with the stored person), then
plan who is new, who changes and who stays as they are; a real run writes. Each row is applied
whole or not at all; a row that fails a check is reported with its line and reason.

It is written to share the process with requests: CPU work is done a slice of rows at a time,
yielding to the event loop between slices; new people are inserted in small batches (each a
short write, so the store serves other requests in between), and before each batch the import
waits while the outbox relay is behind (`pace`), so a 50,000-row roster advances at the pace
the platform publishes it instead of piling events up in front of everyone else's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypeVar

from services.profiles import audit, enrolment, people_access, roster
from services.profiles.domain import DomainError, Person, register
from services.profiles.organisation import Program
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
from services.profiles.store import PeopleStore, VersionConflict
from shared.auth import Principal
from shared.events import CloudEvent
from shared.filters import admits
from shared.messaging.outbox import PENDING_FIELD, PENDING_FLAG, stage_insert

BATCH = 250  # new people per insert
SLICE = 100  # rows checked or built between two yields to the event loop

T = TypeVar("T")
ScopeError = Callable[[roster.RosterRow, set[str], dict[str, Program | None]], str | None]


@dataclass
class Outcome:
    """What an import did so far (a job's progress, a dry run's report)."""

    rows: int
    rows_done: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list[roster.RowError] = field(default_factory=list)
    events_staged: int = 0

    def reject(self, errors: Iterable[roster.RowError]) -> None:
        errors = list(errors)
        self.invalid += errors
        self.rows_done += len(errors)


@dataclass
class Written:
    """One batch of written people: whose events the relay has still to publish."""

    person_ids: list[str]
    events: int
    # The newest staging mark among them, when known (created people carry theirs): the
    # relay's sweep position then tells whether they are in the log, with no read of them.
    staged_upto: int | None = None


@dataclass
class Hooks:
    """How a running import reports and paces itself (all optional for a dry run)."""

    pace: Callable[[], Awaitable[None]] | None = None  # waits while the relay is behind
    progress: Callable[[Outcome], Awaitable[None]] | None = None
    written: Callable[[Written], None] | None = None


async def in_slices(items: list[Any], work: Callable[[Any], T], size: int = SLICE) -> list[T]:
    """`work` on each item, yielding to the event loop every `size` items."""
    done: list[T] = []
    for start in range(0, len(items), size):
        done += [work(item) for item in items[start:start + size]]
        await asyncio.sleep(0)
    return done


NOT_YOURS_TO_UPDATE = (
    "This email belongs to someone you cannot update by import (an import does not move people "
    "between institutions either); ask their institution's coordinator.")


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
    # By hand rather than `asdict`, whose deep copies were a quarter of building a person.
    registered = {item.name: getattr(person, item.name) for item in fields(person)}
    registered["specialty_interests"] = list(person.specialty_interests)
    document = {"_id": person.id, **registered, **profile_document(profile),
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


@dataclass
class RosterImport:
    """One import: who runs it, into which network, with which rows (already read)."""

    network_id: str
    principal: Principal
    records: list[dict[str, str]]
    lines: list[int]
    vocab: Vocabularies
    now: datetime
    import_id: str
    scope_error: ScopeError

    async def run(
        self, people: PeopleStore, institutions: set[str],
        load_programs: Callable[[set[str]], Awaitable[dict[str, Program | None]]],
        db: Any = None, *, dry_run: bool, hooks: Hooks | None = None,
    ) -> Outcome:
        """Check every row; unless `dry_run`, write the people (and their audit entries)."""
        hooks = hooks or Hooks()
        outcome = Outcome(rows=len(self.records))
        parsed = await in_slices(list(zip(self.lines, self.records, strict=True)), self._parse)
        rows = [row for row in parsed if isinstance(row, roster.RosterRow)]
        outcome.reject(row for row in parsed if isinstance(row, roster.RowError))
        programs = await load_programs({r.program_id for r in rows if r.program_id})
        in_scope = []
        for row in rows:
            reason = self.scope_error(row, institutions, programs)
            if reason is None:
                in_scope.append(row)
            else:
                outcome.reject([roster.RowError(row.line, reason, row.email)])
        plans, conflicts = roster.plan(in_scope)
        outcome.reject(conflicts)
        existing = await people.by_emails(self.network_id, list(plans))
        new_plans, updates = await self._classify(plans, existing, programs, outcome)
        if hooks.progress:
            await hooks.progress(outcome)
        if dry_run:
            for start in range(0, len(new_plans), SLICE):
                built = self._build(new_plans[start:start + SLICE], programs, outcome)
                outcome.created += len(built)
                outcome.rows_done += sum(len(plan.lines) for plan, _ in built)
                await asyncio.sleep(0)
            outcome.updated = len(updates)
            outcome.rows_done += sum(len(plan.lines) for plan, _, _ in updates)
            return outcome
        for start in range(0, len(new_plans), BATCH):
            await self._create(people, db, new_plans[start:start + BATCH], programs, outcome,
                               hooks)
        for start in range(0, len(updates), BATCH):
            await self._update(people, db, updates[start:start + BATCH], outcome, hooks)
        return outcome

    def _parse(self, item: tuple[int, dict[str, str]]) -> roster.RosterRow | roster.RowError:
        line, record = item
        try:
            return roster.parse_row(line, record, self.vocab)
        except DomainError as exc:
            return roster.RowError(line, str(exc), (record.get("email") or "").strip() or None)

    async def _classify(
        self, plans: dict[str, roster.PersonPlan], existing: dict[str, dict[str, Any]],
        programs: dict[str, Program | None], outcome: Outcome,
    ) -> tuple[list[roster.PersonPlan], list[tuple[roster.PersonPlan, dict, tuple]]]:
        """Who is new and who changes (and how); those who stay as they are are done."""
        new_plans: list[roster.PersonPlan] = []
        updates: list[tuple[roster.PersonPlan, dict, tuple]] = []

        # An import updates only people the importer may already see in full, as a profile
        # edit does: a program coordinator naming their own program must not take over (and
        # then see) anyone in the network whose email they know.
        reach = people_access.staff_reach(self.principal)

        def classify(plan: roster.PersonPlan) -> None:
            document = existing.get(plan.email)
            if document is None:
                new_plans.append(plan)
                return
            try:
                if (document["institution_id"] != plan.institution_id or reach is None
                        or not admits(document, reach)):
                    # One reason for both: neither whether the email is registered elsewhere
                    # nor at which institution is the importer's to learn.
                    raise DomainError(NOT_YOURS_TO_UPDATE)
                change = person_update(document, plan, programs, self.vocab, self.now)
            except DomainError as exc:  # the merged rows break a rule together
                outcome.reject(roster.RowError(line, str(exc), plan.email) for line in plan.lines)
                return
            if change is None:
                outcome.unchanged += 1
                outcome.rows_done += len(plan.lines)
            else:
                updates.append((plan, document, change))

        await in_slices(list(plans.values()), classify)
        return new_plans, updates

    def _build(
        self, plans: list[roster.PersonPlan], programs: dict[str, Program | None],
        outcome: Outcome,
    ) -> list[tuple[roster.PersonPlan, dict[str, Any]]]:
        built = []
        for plan in plans:
            try:
                built.append((plan, new_person(self.network_id, plan, programs, self.vocab,
                                               self.now)))
            except DomainError as exc:  # the merged rows break a rule together
                outcome.reject(roster.RowError(line, str(exc), plan.email) for line in plan.lines)
        return built

    async def _create(self, people, db, plans, programs, outcome: Outcome, hooks: Hooks) -> None:
        """Insert one batch of new people; a person whose email was taken meanwhile is
        reported, not written."""
        built: list[tuple[roster.PersonPlan, dict[str, Any]]] = []
        for start in range(0, len(plans), SLICE):
            built += self._build(plans[start:start + SLICE], programs, outcome)
            await asyncio.sleep(0)
        if hooks.pace:
            await hooks.pace()
        refused = set(await people.add_many([doc for _, doc in built]))
        written = []
        for i, (plan, document) in enumerate(built):
            if i in refused:
                outcome.reject(roster.RowError(
                    line, "Someone registered with this email while the import ran; import "
                    "again to update them.", plan.email) for line in plan.lines)
            else:
                written.append(document)
                outcome.rows_done += len(plan.lines)
        await self._audit(db, "roster.created", written)
        self._written(written, [len(d.get(PENDING_FIELD, ())) for d in written], outcome,
                      hooks, staged_upto=max((d[PENDING_FLAG] for d in written
                                              if d.get(PENDING_FLAG)), default=None))
        outcome.created += len(written)
        if hooks.progress:
            await hooks.progress(outcome)

    async def _update(self, people, db, updates, outcome: Outcome, hooks: Hooks) -> None:
        """Version-guarded writes; someone edited while the import ran is reported."""
        if hooks.pace:
            await hooks.pace()
        applied, counts = [], []
        for plan, document, (fields, events) in updates:
            try:
                await people.update_person(document["network_id"], document["_id"],
                                           document.get("version", 1), fields, events)
            except VersionConflict:
                outcome.reject(roster.RowError(line, "This person was edited while the import "
                                               "ran; import again.", plan.email)
                               for line in plan.lines)
                continue
            applied.append(document)
            counts.append(len(events))
            outcome.rows_done += len(plan.lines)
        await self._audit(db, "roster.updated", applied)
        self._written(applied, counts, outcome, hooks)
        outcome.updated += len(applied)
        if hooks.progress:
            await hooks.progress(outcome)

    def _written(self, documents: list[dict[str, Any]], events: list[int], outcome: Outcome,
                 hooks: Hooks, *, staged_upto: int | None = None) -> None:
        outcome.events_staged += sum(events)
        if hooks.written and documents:
            hooks.written(Written([d["_id"] for d in documents], sum(events), staged_upto))

    async def _audit(self, db: Any, action: str, documents: list[dict[str, Any]]) -> None:
        """One entry per institution for the batch, naming everyone it touched: an entry per
        person would double the writes of a large import."""
        by_institution: dict[str, list[str]] = {}
        for document in documents:
            by_institution.setdefault(document["institution_id"], []).append(document["_id"])
        await audit.record(db, *(
            audit.entry(self.principal, self.network_id, action, "import", self.import_id,
                        institution, ["profile", "enrolments"], people=ids)
            for institution, ids in sorted(by_institution.items())
        ))
