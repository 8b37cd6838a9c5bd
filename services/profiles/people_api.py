"""HTTP API of people: list and search within the caller's reach, read one, edit a profile,
and the network's controlled vocabularies.

Profiles are edited with optimistic concurrency like programs: `GET` returns the version as an
`ETag`, and `PATCH` must send it back in `If-Match` (428 without it, 412 when someone else
edited first). Who sees and edits whom: `people_access.py`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.profiles import audit, people_access
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.domain import DomainError
from services.profiles.organisation import StaleVersion
from services.profiles.organisation_api import Cursor, Limit
from services.profiles.organisation_api import Store as OrganisationStoreDep
from services.profiles.people import (
    PersonRef,
    VocabularyKind,
    extend_vocabulary,
    full_view,
    now,
    profile_document,
    profile_from_document,
    public_view,
    update_profile,
)
from services.profiles.store import PeopleStore, VersionConflict
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.pagination import after_id, id_cursor
from shared.preconditions import etag, expected_version
from shared.service import Database, Relay

router = APIRouter(prefix="/networks/{network_id}", tags=["people"])

Term = Annotated[str, Field(min_length=1, max_length=80)]
Terms = Annotated[list[Term], Field(max_length=20)]


class GoalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    category: Term = Field(description="A help category of the network's vocabulary")
    target_date: date | None = None


class MentorPatch(BaseModel):
    """Fields sent replace the stored ones; a section not yet there starts from defaults."""

    model_config = ConfigDict(extra="forbid")

    specialty: Term | None = None
    subspecialty: str | None = Field(default=None, max_length=200)
    help_offered: Terms | None = None
    languages: Annotated[list[Annotated[str, Field(max_length=35)]], Field(max_length=20)] | None = None
    meeting_modes: Annotated[list[Literal["in-person", "virtual"]], Field(max_length=2)] | None = None
    time_zone: str | None = Field(default=None, max_length=64, description="IANA, e.g. Europe/London")
    capacity: int | None = Field(default=None, description="Mentees at once, 0-50")
    paused: bool | None = None
    training_completed: bool | None = None
    do_not_match: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] | None = Field(
        default=None, description="Person ids never to be matched with (evaluated or supervised)"
    )


class MenteePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    specialty_interests: Terms | None = None
    goals: Annotated[list[GoalIn], Field(max_length=10)] | None = None
    needs: Terms | None = Field(default=None, description="Help categories, most important first")
    prefer_same_institution: bool | None = None
    preferred_mode: Literal["in-person", "virtual"] | None = None
    preferred_language: str | None = Field(default=None, max_length=35)
    mentors_wanted: int | None = None
    mentors_for_needs: Terms | None = None


class IdentityPatch(BaseModel):
    """Opt-in; never shown to anyone but the person, never published."""

    model_config = ConfigDict(extra="forbid")

    first_generation: bool | None = None
    under_represented_in_medicine: bool | None = None
    gender: str | None = Field(default=None, max_length=60)
    affinity_matching: bool | None = None


class ProfilePatch(BaseModel):
    """Only what is sent changes. A section sent as null is removed (no longer a mentor, no
    longer a mentee, identity attributes withdrawn)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    career_stage: Term | None = None
    mentor: MentorPatch | None = None
    mentee: MenteePatch | None = None
    identity: IdentityPatch | None = None


class PersonView(BaseModel):
    """A person as the caller may see them: the public part only for other participants."""

    id: str
    network_id: str
    institution_id: str
    program_id: str | None = None
    program_ids: list[str] = Field(default_factory=list)
    role: str | None = None
    roles: list[str] = Field(default_factory=list)
    display_name: str
    email: str | None = None
    career_stage: str
    specialty_interests: list[str] = Field(default_factory=list)
    capacity: int = 0
    mentor: dict[str, Any] | None = None
    mentee: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    version: int | None = None


class PeoplePage(BaseModel):
    items: list[PersonView]
    next_cursor: str | None


class VocabularyOut(BaseModel):
    kind: VocabularyKind
    terms: list[str]
    added_by_network: list[str]


class VocabularyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: Annotated[list[Annotated[str, Field(min_length=1, max_length=80)]], Field(
        min_length=1, max_length=100
    )]


async def _visibility(
    principal: Principal,
    network_id: str,
    organisation: OrganisationStoreDep,
    people: PeopleStore,
) -> people_access.Visibility:
    return await people_access.visibility(principal, network_id, organisation, people)


def _view(principal: Principal, visible: people_access.Visibility, document: dict) -> PersonView:
    own = visible.own(principal, document["_id"])
    if not visible.in_full(principal, document):
        view = public_view(document)
        # Which other programs someone takes part in is theirs to tell: shared ones only.
        view["program_ids"] = [p for p in view["program_ids"] if p in visible.programs]
        return PersonView(**view)
    return PersonView(**full_view(document, own=own))


def _etag(document: dict) -> str:
    return etag(document.get("version", 1))


def _expected_version(if_match: str | None) -> int:
    return expected_version(if_match, "profile", "GET the person first")


NOT_FOUND = "No such person in this network, or not one you can see."


@router.get(
    "/people", response_model=PeoplePage, response_model_exclude_unset=True
)
async def list_people(
    network_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    program: Annotated[str | None, Query(max_length=100, description="Program id")] = None,
    role: Annotated[Literal["mentor", "mentee"] | None, Query()] = None,
    career_stage: Annotated[str | None, Query(max_length=80)] = None,
    specialty: Annotated[
        str | None, Query(max_length=80, description="A mentor's specialty or a mentee's interest")
    ] = None,
    help_offered: Annotated[str | None, Query(max_length=80)] = None,
    has_capacity: Annotated[
        bool | None, Query(description="true: mentors with capacity > 0 who are not paused")
    ] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=100, description="Part of the name, any case")
    ] = None,
) -> PeoplePage:
    visible = await _visibility(principal, network_id, organisation, people)
    found = await people.people(
        network_id,
        visible.query,
        limit=limit,
        after=after_id(cursor),
        program_id=program,
        role=role,
        career_stage=career_stage,
        specialty=specialty,
        help_offered=help_offered,
        has_capacity=has_capacity,
        name=q.strip() if q else None,
    )
    return PeoplePage(
        items=[_view(principal, visible, d) for d in found],
        next_cursor=id_cursor(found[-1]["_id"]) if len(found) == limit else None,
    )


@router.get(
    "/people/{person_id}", response_model=PersonView, response_model_exclude_unset=True
)
async def get_person(
    network_id: str,
    person_id: str,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    response: Response,
) -> PersonView:
    visible = await _visibility(principal, network_id, organisation, people)
    document = await people.find(network_id, person_id, visible.query)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    view = _view(principal, visible, document)
    if view.email is not None:  # only those who may edit get the version to edit
        response.headers["ETag"] = _etag(document)
    return view


@router.patch(
    "/people/{person_id}/profile", response_model=PersonView, response_model_exclude_unset=True
)
async def edit_profile(
    network_id: str,
    person_id: str,
    body: ProfilePatch,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
    organisation: OrganisationStoreDep,
    relay: Relay,
    response: Response,
    db: Database,
    if_match: Annotated[str | None, Header()] = None,
) -> PersonView:
    visible = await _visibility(principal, network_id, organisation, people)
    document = await people.find(network_id, person_id, visible.query)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    changes = body.model_dump(exclude_unset=True)
    people_access.may_edit(principal, visible, document, changes)
    expected = _expected_version(if_match)
    person = PersonRef(
        id=document["_id"],
        network_id=network_id,
        institution_id=document["institution_id"],
        version=document.get("version", 1),
    )
    try:
        profile, events = update_profile(
            person,
            profile_from_document(document),
            changes,
            expected,
            await people.vocabularies(network_id),
        )
    except StaleVersion as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, str(exc)) from exc
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    if profile != profile_from_document(document):
        stored = profile_document(profile)
        try:
            await people.replace_profile(
                network_id, person_id, person.version, stored, now(), events
            )
        except VersionConflict as exc:
            raise HTTPException(
                status.HTTP_412_PRECONDITION_FAILED,
                "Someone else edited this profile at the same moment; read it again and "
                "reapply your change.",
            ) from exc
        if events:
            relay.wake()
        changed = [n for n in ("display_name", "career_stage", "mentor", "mentee", "identity")
                   if stored.get(n) != document.get(n)]
        await audit.record(db, audit.entry(principal, network_id, "profile.updated", "person",
                                           person_id, document["institution_id"], changed))
        document = await people.find(network_id, person_id, {})
    response.headers["ETag"] = _etag(document)
    return _view(principal, visible, document)


# ---------------------------------------------------------------- vocabularies


@router.get("/vocabularies/{kind}", response_model=VocabularyOut)
async def get_vocabulary(
    network_id: str, kind: VocabularyKind, principal: CurrentPrincipal, people: PeopleStoreDep
) -> VocabularyOut:
    require_network(principal, network_id)
    vocab = await people.vocabularies(network_id)
    return VocabularyOut(
        kind=kind,
        terms=sorted(vocab.terms(kind)),
        added_by_network=sorted(vocab.extensions.get(kind, frozenset())),
    )


@router.post("/vocabularies/{kind}", response_model=VocabularyOut)
async def extend(
    network_id: str,
    kind: VocabularyKind,
    body: VocabularyIn,
    principal: CurrentPrincipal,
    people: PeopleStoreDep,
) -> VocabularyOut:
    """Add terms to the network's vocabulary (network admins); terms already known are kept."""
    require_network(principal, network_id)
    if not principal.is_network_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Only a network admin can extend the network's vocabularies."
        )
    vocab = await people.vocabularies(network_id)
    try:
        _, added = extend_vocabulary(kind, vocab.extensions.get(kind, frozenset()), body.terms)
    except DomainError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    await people.add_terms(network_id, kind, added)
    return await get_vocabulary(network_id, kind, principal, people)
