"""Profiles persistence: people and their profiles, with their events staged in the same
document write; the vocabularies each network added to the defaults.

Listings page by `_id`; every read of people takes the caller's visibility as a query
(`people_access.Visibility`), so a person outside it is simply never found.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.profiles.domain import Person
from services.profiles.people import Vocabularies, VocabularyKind
from services.profiles.queries import flatten
from shared.events import CloudEvent
from shared.filters import admits
from shared.messaging.outbox import (
    WITHOUT_OUTBOX,
    stage_insert,
    stage_update,
    strip_outbox_fields,
)

T = TypeVar("T")
PEOPLE = "people"
VOCABULARIES = "vocabularies"
OUTBOX_COLLECTIONS = (PEOPLE,)


# An erased person's tombstone stays (an anonymous id other services' counts may refer to), but
# no read of people finds it.
NOT_ERASED: dict[str, Any] = {"erased": {"$ne": True}}


SCAN_THRESHOLD = 200


class DuplicateEmail(Exception):
    """Another person of the network already uses this email."""


async def create_indexes(db: AsyncDatabase) -> None:
    await db[PEOPLE].create_index(
        [("network_id", ASCENDING), ("email", ASCENDING)], unique=True, name="email_per_network"
    )
    # Pages by id of a network, an institution, a program (`page_query`).
    await db[PEOPLE].create_index([("network_id", ASCENDING), ("_id", ASCENDING)])
    await db[PEOPLE].create_index(
        [("network_id", ASCENDING), ("institution_id", ASCENDING), ("_id", ASCENDING)])
    await db[PEOPLE].create_index(
        [("network_id", ASCENDING), ("program_ids", ASCENDING), ("_id", ASCENDING)])
    await db[PEOPLE].create_index([("specialties", ASCENDING)])


def page_query(
    network_id: str,
    visibility: dict[str, Any],
    *,
    after: str | None = None,
    program_id: str | None = None,
    role: str | None = None,
    career_stage: str | None = None,
    specialty: str | None = None,
    help_offered: str | None = None,
    has_capacity: bool | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The query of a page of people, sorted by `_id`.

    Shaped so the common pages ride an index on both stores: a network's people (network
    admins), an institution's (institution coordinators), a program's, each as equalities
    on the leading fields of an index that ends in `_id`, plus the page's `_id` range. The
    tombstones of erased people are not excluded here (a `$ne` clause would leave SecantusDB's
    planner no index to use) but dropped after reading, by `PeopleStore.people`.
    """
    filters: list[dict[str, Any]] = [{"network_id": network_id}, visibility]
    if program_id is not None:
        filters.append({"program_ids": program_id})
    if role is not None:
        filters.append({"roles": role})
    if career_stage is not None:
        filters.append({"career_stage": career_stage})
    if specialty is not None:
        # `specialties` is derived on every write: the mentor's specialty and the mentee's
        # interests together, one indexed field instead of an `$or` the planner would scan.
        filters.append({"specialties": specialty})
    if help_offered is not None:
        filters.append({"mentor.help_offered": help_offered})
    if has_capacity is not None:
        filters.append({"mentor.accepting": True} if has_capacity
                       else {"$nor": [{"mentor.accepting": True}]})
    if name:
        # Substring of the case-folded name; escaped, so a name with ( or . is just text.
        filters.append({"name_search": {"$regex": re.escape(name.casefold())}})
    if after is not None:
        filters.append({"_id": {"$gt": after}})
    return _and(*filters)


_STORES: dict[tuple[type, int], tuple[AsyncDatabase, Any]] = {}


def per_database(store: type[T], db: AsyncDatabase) -> T:
    """One instance of a (stateless) store class per database object."""
    key = (store, id(db))
    found = _STORES.get(key)
    if found is None or found[0] is not db:
        found = _STORES[key] = (db, store(db))
    return found[1]


class VersionConflict(Exception):
    """The profile moved on between reading and writing it (a concurrent edit)."""


def _and(*clauses: dict[str, Any]) -> dict[str, Any]:
    return flatten(*clauses)


def _vocabulary_key(network_id: str, kind: VocabularyKind) -> str:
    return f"{network_id}/{kind.value}"


class PeopleStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._people = db[PEOPLE]
        self._vocabularies = db[VOCABULARIES]
        self.database = db

    @classmethod
    def of(cls, db: AsyncDatabase) -> PeopleStore:
        """The store of a database, made once (building its collection objects on every
        request cost about as much as reading a person)."""
        return per_database(cls, db)

    async def add(
        self, person: Person, events: list[CloudEvent], profile: dict[str, Any] | None = None
    ) -> None:
        document = {"_id": person.id, **asdict(person), **(profile or {})}
        document.pop("id")
        try:
            await self._people.insert_one(stage_insert(document, events))
        except DuplicateKeyError as exc:
            raise DuplicateEmail(person.email) from exc

    async def get(self, network_id: str, person_id: str) -> dict[str, Any] | None:
        return await self._people.find_one({"_id": person_id, "network_id": network_id}, WITHOUT_OUTBOX)

    async def find(
        self, network_id: str, person_id: str, visibility: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The person, only when the caller's visibility reaches them: a point lookup by id,
        then the visibility checked on the document (see `queries`)."""
        document = await self._people.find_one({"_id": person_id}, WITHOUT_OUTBOX)
        if (
            document is None
            or document.get("network_id") != network_id
            or document.get("erased") is True
            or not admits(document, visibility)
        ):
            return None
        return document

    async def people(
        self,
        network_id: str,
        visibility: dict[str, Any],
        *,
        limit: int,
        after: str | None,
        program_id: str | None = None,
        role: str | None = None,
        career_stage: str | None = None,
        specialty: str | None = None,
        help_offered: str | None = None,
        has_capacity: bool | None = None,
        name: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the people the caller can see, by id, and the id to continue after
        (None on the last page). A page may hold fewer than `limit` people: erased people's
        tombstones are dropped after reading (see `page_query`)."""
        query = page_query(network_id, visibility, after=after, program_id=program_id,
                           role=role, career_stage=career_stage, specialty=specialty,
                           help_offered=help_offered, has_capacity=has_capacity, name=name)
        cursor = self._people.find(query).sort("_id", ASCENDING).limit(limit)
        found = [doc async for doc in cursor]
        people = [strip_outbox_fields(doc) for doc in found if doc.get("erased") is not True]
        return people, found[-1]["_id"] if len(found) == limit else None

    async def enrolled(
        self,
        network_id: str,
        program_id: str,
        visibility: dict[str, Any],
        status: str | None,
        *,
        limit: int,
        after: str | None,
    ) -> list[dict[str, Any]]:
        """People with an enrolment in the program (in `status` when given), by id."""
        match: dict[str, Any] = {"program_id": program_id}
        if status is not None:
            match["status"] = status
        filters = [{"network_id": network_id}, NOT_ERASED, visibility,
                   {"enrolments": {"$elemMatch": match}}]
        if after is not None:
            filters.append({"_id": {"$gt": after}})
        cursor = self._people.find(_and(*filters)).sort("_id", ASCENDING).limit(limit)
        return [strip_outbox_fields(doc) async for doc in cursor]

    async def with_change_requests(
        self,
        network_id: str,
        visibility: dict[str, Any],
        status: str | None,
        *,
        limit: int,
        after: str | None,
    ) -> list[dict[str, Any]]:
        """People with a change request (in `status` when given), by id."""
        match: dict[str, Any] = {"$exists": True, "$ne": []}
        wanted = {"change_requests": {"$elemMatch": {"status": status}}} if status else {
            "change_requests": match}
        filters = [{"network_id": network_id}, NOT_ERASED, visibility, wanted]
        if after is not None:
            filters.append({"_id": {"$gt": after}})
        cursor = self._people.find(_and(*filters)).sort("_id", ASCENDING).limit(limit)
        return [strip_outbox_fields(doc) async for doc in cursor]

    async def replace_profile(
        self,
        network_id: str,
        person_id: str,
        previous_version: int,
        profile: dict[str, Any],
        updated_at: datetime,
        events: list[CloudEvent],
    ) -> None:
        """Write the new profile only if nobody wrote since `previous_version` was read."""
        update = {"$set": {**profile, "version": previous_version + 1, "updated_at": updated_at}}
        result = await self._people.update_one(
            {"_id": person_id, "network_id": network_id, "version": previous_version},
            stage_update(update, events),
        )
        if result.matched_count == 0:
            raise VersionConflict(person_id)

    async def update_person(
        self,
        network_id: str,
        person_id: str,
        previous_version: int,
        fields: dict[str, Any],
        events: list[CloudEvent],
        unset: list[str] | None = None,
    ) -> None:
        """Write fields of the person (and their events) only if nobody wrote since
        `previous_version` was read: enrolments, withdrawal and erasure use it like edits."""
        update: dict[str, Any] = {"$set": {**fields, "version": previous_version + 1}}
        if unset:
            update["$unset"] = {name: "" for name in unset}
        result = await self._people.update_one(
            {"_id": person_id, "network_id": network_id, "version": previous_version},
            stage_update(update, events),
        )
        if result.matched_count == 0:
            raise VersionConflict(person_id)

    async def by_emails(self, network_id: str, emails: list[str]) -> dict[str, dict[str, Any]]:
        """People of the network by email (erased people have no email left to find).

        A few are point lookups on the (network, email) index; many are one pass over the
        network's people: on SecantusDB an `$in` of 1,000 emails costs seconds, a pass over
        20,000 documents about two."""
        found: dict[str, dict[str, Any]] = {}
        if len(emails) <= SCAN_THRESHOLD:
            for email in emails:
                document = await self._people.find_one({"network_id": network_id, "email": email})
                if document is not None:
                    found[email] = strip_outbox_fields(document)
            return found
        wanted = set(emails)
        async for document in self._people.find({"network_id": network_id}):
            if document.get("email") in wanted:
                found[document["email"]] = strip_outbox_fields(document)
        return found

    async def add_many(self, documents: list[dict[str, Any]]) -> list[int]:
        """Insert new people (events staged in each); the indexes of those refused because
        their email was taken meanwhile."""
        if not documents:
            return []
        try:
            await self._people.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            refused = [e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000]
            if len(refused) != len(exc.details.get("writeErrors", [])):
                raise
            return refused
        return []

    async def vocabularies(self, network_id: str) -> Vocabularies:
        extensions: dict[VocabularyKind, frozenset[str]] = {}
        retired: dict[VocabularyKind, frozenset[str]] = {}
        cursor = self._vocabularies.find({"network_id": network_id})
        async for document in cursor:
            kind = VocabularyKind(document["kind"])
            extensions[kind] = frozenset(document.get("terms", []))
            retired[kind] = frozenset(document.get("retired", []))
        return Vocabularies(extensions, retired)

    async def retire_terms(self, network_id: str, kind: VocabularyKind, terms: list[str],
                           retire: bool = True) -> None:
        """Mark terms retired (or, with retire=False, in use again)."""
        key = {"_id": _vocabulary_key(network_id, kind)}
        change = ({"$addToSet": {"retired": {"$each": terms}}} if retire
                  else {"$pullAll": {"retired": terms}})
        update = {"$setOnInsert": {"network_id": network_id, "kind": kind.value}, **change}
        try:
            await self._vocabularies.update_one(key, update, upsert=True)
        except DuplicateKeyError:  # raced with a first extension: the document exists now
            await self._vocabularies.update_one(key, update)

    async def add_terms(self, network_id: str, kind: VocabularyKind, terms: list[str]) -> None:
        if not terms:
            return
        update = {
            "$setOnInsert": {"network_id": network_id, "kind": kind.value},
            "$addToSet": {"terms": {"$each": terms}},
        }
        key = {"_id": _vocabulary_key(network_id, kind)}
        try:
            await self._vocabularies.update_one(key, update, upsert=True)
        except DuplicateKeyError:  # two first extensions raced: the document exists now
            await self._vocabularies.update_one(key, update)
