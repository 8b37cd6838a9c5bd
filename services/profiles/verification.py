"""Facts others rely on are verified, never self-asserted. Pure logic, no I/O.

A person's career stage, whether they completed mentor training, and a mentor capacity above
what their programs let mentors set for themselves decide who mentors whom: a student who
calls herself a professor would be proposed as a faculty mentor. (The institution is set only
by whoever registers or imports the person: coordinators.) So when people edit their own
profile, these facts are split off the edit into a change request; the rest of the edit applies
at once. A coordinator who may edit the person approves the request (the facts then change,
announced like any profile edit) or declines it with a reason. Coordinators and network admins
editing someone's profile set the facts directly.

Because a fact only ever changes by a coordinator's hand, every value profiles stores and
publishes (`ProfileUpdated`, `MentorCapacityChanged`) is a verified one: matching's pool, fed
by those events, never sees an unapproved value. A request's values travel only in the change
request events, which matching does not read.

A request lives in the person document (`change_requests`), so a request, its decision, the
profile change and their events are one document write. A newer request supersedes a pending
one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.profiles.domain import SOURCE, DomainError
from services.profiles.organisation import DEFAULT_MENTOR_CAPACITY_LIMIT, Program, _time_ordered_id
from services.profiles.people import (
    MentorProfile,
    PersonRef,
    Profile,
    Vocabularies,
    apply_changes,
    validate_profile,
)
from shared.events import CloudEvent, new_event
from shared.events.schemas import ProfileChangeDecided, ProfileChangeRequested
from shared.text import clean_text

PENDING, APPROVED, DECLINED, SUPERSEDED = "pending", "approved", "declined", "superseded"
FACTS = ("career_stage", "mentor.training_completed", "mentor.capacity")
MAX_REASON = 500


class NotPending(DomainError):
    """Only a pending request can be decided."""


@dataclass(frozen=True)
class ChangeRequest:
    id: str
    changes: dict[str, Any]  # in the shape of a profile edit: {"mentor": {"capacity": 8}}
    status: str
    requested_at: datetime
    requested_by: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str = ""

    @property
    def fields(self) -> list[str]:
        return fact_names(self.changes)


def fact_names(changes: dict[str, Any]) -> list[str]:
    names = [n for n in ("career_stage",) if n in changes]
    names += [f"mentor.{n}" for n in (changes.get("mentor") or {})]
    return names


def self_capacity_limit(mentor_programs: list[Program]) -> int:
    """The most mentees a mentor may set for themselves: the smallest limit among the programs
    they mentor in (or asked to), or the platform's default when they mentor in none."""
    limits = [p.max_mentor_capacity for p in mentor_programs]
    return min(limits) if limits else DEFAULT_MENTOR_CAPACITY_LIMIT


def split(current: Profile, changes: dict[str, Any], capacity_limit: int
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A person's own edit as (what they may change alone, the facts that need approval).

    A fact sent with its current value is no change and stays in the first part; lowering a
    capacity is always the person's own choice; raising it is too, up to `capacity_limit`
    (or what a coordinator already set, if more)."""
    direct = copy.deepcopy(changes)
    facts: dict[str, Any] = {}
    if "career_stage" in direct and direct["career_stage"] != current.career_stage:
        facts["career_stage"] = direct.pop("career_stage")
    mentor = direct.get("mentor")
    if isinstance(mentor, dict):
        now = current.mentor or MentorProfile(capacity=0)
        wanted: dict[str, Any] = {}
        if "training_completed" in mentor and mentor["training_completed"] != now.training_completed:
            wanted["training_completed"] = mentor.pop("training_completed")
        capacity = mentor.get("capacity")
        if (isinstance(capacity, int) and not isinstance(capacity, bool)
                and capacity > max(now.capacity, capacity_limit)):
            wanted["capacity"] = mentor.pop("capacity")
        if wanted:
            facts["mentor"] = wanted
    return direct, facts


def request_change(
    person: PersonRef, after_direct: Profile, facts: dict[str, Any], pending: list[ChangeRequest],
    vocab: Vocabularies, *, by: str, now: datetime,
) -> tuple[ChangeRequest, list[ChangeRequest], list[CloudEvent]]:
    """A new pending request (checked now, so a wrong value is refused at once, not at
    approval), the person's requests with earlier pending ones superseded, and its event."""
    validate_profile(apply_changes(after_direct, facts), vocab, person.id)
    request = ChangeRequest(
        id=_time_ordered_id("chg"), changes=facts, status=PENDING, requested_at=now,
        requested_by=by,
    )
    requests = [replace(r, status=SUPERSEDED, decided_at=now) if r.status == PENDING else r
                for r in pending]
    event = new_event(
        ProfileChangeRequested(
            request_id=request.id, person_id=person.id, network_id=person.network_id,
            institution_id=person.institution_id, fields=request.fields, requested_at=now,
        ),
        subject=person.id, tenant_id=person.network_id, source=SOURCE,
    )
    return request, [*requests, request], [event]


def decide(
    person: PersonRef, requests: list[ChangeRequest], request_id: str, *, approve: bool,
    reason: str, by: str, now: datetime,
) -> tuple[ChangeRequest, list[ChangeRequest], list[CloudEvent]]:
    """Approve or decline a pending request; the caller applies an approved one's changes."""
    current = next((r for r in requests if r.id == request_id), None)
    if current is None:
        raise NotPending("There is no such change request for this person.")
    if current.status != PENDING:
        raise NotPending(f"This change request was already decided: it is {current.status}.")
    reason = clean_text(reason)
    if len(reason) > MAX_REASON:
        raise DomainError(f"A reason may be at most {MAX_REASON} characters.")
    decided = replace(current, status=APPROVED if approve else DECLINED, decided_at=now,
                      decided_by=by, reason="" if approve else reason)
    event = new_event(
        ProfileChangeDecided(
            request_id=decided.id, person_id=person.id, network_id=person.network_id,
            institution_id=person.institution_id, fields=decided.fields, approved=approve,
            reason=decided.reason, decided_by=by, decided_at=now,
        ),
        subject=person.id, tenant_id=person.network_id, source=SOURCE,
    )
    return decided, [decided if r.id == request_id else r for r in requests], [event]


def requests_from_document(document: dict[str, Any]) -> list[ChangeRequest]:
    return [ChangeRequest(**r) for r in document.get("change_requests") or []]


def requests_document(requests: list[ChangeRequest]) -> list[dict[str, Any]]:
    return [dict(r.__dict__) for r in requests]
