"""Domain rules of the first flow, in each service (pure code, no I/O)."""

import pytest

from services.analytics.domain import registration_increments, scope_id
from services.matching.domain import pool_entry
from services.notifications.domain import deliveries, on_registered
from services.profiles.domain import DomainError, Person, register
from shared.events.schemas import MentorRegistered
from tests.support import mentee_registered


def _person(**overrides) -> Person:
    data = dict(
        network_id="n1",
        institution_id="i1",
        display_name="Grace Hopper",
        email="  Grace@Example.ORG ",
        role="mentee",
        career_stage="PGY-2",
    )
    return Person(**{**data, **overrides})


def test_register_mentee_normalises_email_and_announces_it():
    person, events = register(_person())
    assert person.email == "grace@example.org"
    assert [e.type for e in events] == ["MenteeRegistered"]
    assert events[0].subject == person.id
    assert events[0].tenantid == "n1"


def test_register_mentor_announces_capacity():
    _, events = register(_person(role="mentor", career_stage="faculty-professor", capacity=3))
    assert events[0].type == "MentorRegistered"
    assert events[0].data["capacity"] == 3


def test_unknown_career_stage_is_refused_with_the_allowed_values():
    with pytest.raises(DomainError, match="Unknown career stage 'M9'.*PGY-1"):
        register(_person(career_stage="M9"))


def test_matching_pool_entry_keeps_role_and_capacity():
    assert pool_entry(mentee_registered())["role"] == "mentee"
    mentor = pool_entry(MentorRegistered(**mentee_registered().model_dump(), capacity=2))
    assert (mentor["role"], mentor["capacity"]) == ("mentor", 2)


def test_welcome_is_keyed_by_event_recipient_and_channel():
    _, events = register(_person())
    payload = mentee_registered(display_name="Grace Hopper")
    planned = deliveries(events[0].id, payload.network_id, on_registered(payload, "mentee"),
                         created_at=events[0].time, event_time=events[0].time)
    assert sorted(d["_id"] for d in planned) == sorted(
        f"{events[0].id}:p1:{channel}" for channel in {d["channel"] for d in planned})
    assert {d["kind"] for d in planned} == {"welcome"}


def test_registration_counts_in_network_and_institution():
    increments = registration_increments(MentorRegistered(**mentee_registered().model_dump(), capacity=1))
    assert [(scope_id(s), inc) for s, inc in increments] == [
        ("network:n1", {"mentors_registered": 1}),
        ("institution:n1:i1", {"mentors_registered": 1}),
    ]
