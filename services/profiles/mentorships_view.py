"""Profiles' own view of who is paired with whom, from matching's events alone.

Two reads need it: `GET /me` lists a person's open mentorships, and a participant may see the
public part of the people they are (or were) paired with and nobody else (docs/access-model.md).
Each mentorship event carries the pair, so any of them creates the entry; the stage only moves
forward (proposed < active < closed), so events may arrive in any order or twice.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import CloudEvent
from shared.messaging.consumer import Handler, UnitOfWork

PAIRS = "mentorship_pairs"
PROPOSED, ACTIVE, CLOSED = 1, 2, 3
STAGE = {"MatchProposed": PROPOSED, "MatchAccepted": PROPOSED, "MentorshipStarted": ACTIVE,
         "AgreementRecorded": ACTIVE, "MeetingScheduled": ACTIVE, "MeetingLogged": ACTIVE,
         "GoalSet": ACTIVE, "GoalProgressUpdated": ACTIVE, "MilestoneAchieved": ACTIVE,
         "FeedbackSubmitted": ACTIVE, "MatchDeclined": CLOSED, "MentorshipEnded": CLOSED}


async def create_indexes(db: AsyncDatabase) -> None:
    await db[PAIRS].create_index([("mentor_id", ASCENDING)])
    await db[PAIRS].create_index([("mentee_id", ASCENDING)])


async def on_mentorship_event(event: CloudEvent, payload: BaseModel, uow: UnitOfWork) -> None:
    p: Any = payload
    uow.add(PAIRS, UpdateOne(
        {"_id": p.mentorship_id},
        {"$setOnInsert": {"network_id": p.network_id, "program_id": p.program_id,
                          "mentor_id": p.mentor_id, "mentee_id": p.mentee_id},
         "$max": {"stage": STAGE[event.type]}},
        upsert=True,
    ))


def handlers() -> dict[str, Handler]:
    return {name: on_mentorship_event for name in STAGE}


async def partners(db: AsyncDatabase, network_id: str, person_id: str) -> list[str]:
    """Everyone this person was ever paired with (proposed, active or closed)."""
    found: set[str] = set()
    for mine, theirs in (("mentor_id", "mentee_id"), ("mentee_id", "mentor_id")):
        async for doc in db[PAIRS].find({mine: person_id, "network_id": network_id},
                                        {theirs: 1}):
            found.add(doc[theirs])
    return sorted(found)


async def open_mentorships(db: AsyncDatabase, network_id: str, person_id: str) -> list[str]:
    """Ids of the person's mentorships that are proposed or active."""
    found: set[str] = set()
    for side in ("mentor_id", "mentee_id"):
        async for doc in db[PAIRS].find({side: person_id, "network_id": network_id},
                                        {"stage": 1}):
            if doc.get("stage", PROPOSED) < CLOSED:
                found.add(doc["_id"])
    return sorted(found)
