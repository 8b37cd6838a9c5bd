"""Organisation domain rules (pure code): program validation, edits, versions and events."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.profiles.access import may_create_program, may_edit_program
from services.profiles.domain import DomainError
from services.profiles.organisation import (
    Institution,
    Program,
    ProgramType,
    StaleVersion,
    create_program,
    new_institution,
    update_program,
)
from shared.auth import Principal, Role, principal_from_claims


def _program(**overrides) -> Program:
    data = dict(
        network_id="n1",
        institution_id="inst-a",
        name="  Surgery   near-peer ",
        type="near-peer",
        cohort_start=date(2026, 9, 1),
        cohort_end=date(2027, 6, 30),
        enrolment_opens=date(2026, 6, 1),
        enrolment_closes=date(2026, 9, 15),
    )
    return Program(**{**data, **overrides})


def test_create_tidies_the_name_and_announces_the_whole_program():
    program, events = create_program(_program())
    assert program.name == "Surgery near-peer"
    assert program.type is ProgramType.NEAR_PEER
    assert program.version == 1
    assert [e.type for e in events] == ["ProgramCreated"]
    event = events[0]
    assert event.subject == program.id and event.tenantid == "n1"
    assert event.data["institution_id"] == "inst-a"
    assert event.data["cohort_start"] == "2026-09-01"
    assert event.data["max_mentors_per_mentee"] == 1 and event.data["version"] == 1


def test_network_wide_program_has_no_institution():
    program, events = create_program(_program(institution_id=None, cross_institution=True))
    assert program.network_wide
    assert events[0].data["institution_id"] is None


def test_program_ids_sort_by_creation():
    ids = [_program().id for _ in range(50)]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(name="   "), "needs a name"),
        (dict(type="mentoring"), "Unknown program type 'mentoring'; use one of: faculty"),
        (dict(cohort_end=date(2026, 9, 1)), "cohort must end after it starts"),
        (dict(cohort_end=date(2026, 8, 1)), "cohort must end after it starts"),
        (dict(cohort_end=date(2034, 9, 1)), "at most"),
        (dict(enrolment_closes=date(2026, 5, 1)), "close on or after the day it opens"),
        (dict(enrolment_closes=date(2027, 7, 1)), "close by the end of the cohort"),
        (dict(enrolment_opens=date(2025, 6, 1)), "at most 366 days before the cohort starts"),
        (dict(max_mentors_per_mentee=0), "between 1 and 10 mentors, not 0"),
        (dict(max_mentors_per_mentee=11), "not 11"),
        (dict(cadence_days=0), "cadence"),
        (dict(cadence_days=400), "cadence"),
        (dict(reassessment_days=0), "reassessment rhythm"),
        (dict(reassessment_days=367), "not 367"),
        (dict(auto_accept=True, ranked_preferences=True), "not both"),
        (dict(coordinator_emails=("lead at example.org",)), "not an email address"),
        (dict(coordinator_emails=tuple(f"c{n}@example.org" for n in range(21))), "at most 20"),
    ],
)
def test_invalid_programs_are_refused_with_a_readable_reason(overrides, message):
    with pytest.raises(DomainError, match=message):
        create_program(_program(**overrides))


def test_enrolment_may_open_and_close_the_same_day_and_run_into_the_cohort():
    create_program(_program(enrolment_opens=date(2026, 9, 10), enrolment_closes=date(2026, 9, 10)))


def test_update_bumps_the_version_and_names_what_changed():
    program, _ = create_program(_program())
    updated, events = update_program(program, {"cadence_days": 14, "name": "Surgery"}, 1)
    assert updated.version == 2 and updated.cadence_days == 14
    assert updated.created_at == program.created_at
    assert [e.type for e in events] == ["ProgramUpdated"]
    assert events[0].data["changed"] == ["name", "cadence_days"]
    assert events[0].data["version"] == 2


def test_an_edit_that_changes_nothing_keeps_the_version_and_says_nothing():
    program, _ = create_program(_program())
    same, events = update_program(program, {"cadence_days": 30, "name": "Surgery near-peer"}, 1)
    assert same.version == 1 and events == []


def test_an_edit_of_an_old_version_is_stale():
    program, _ = create_program(_program())
    updated, _ = update_program(program, {"cadence_days": 14}, 1)
    with pytest.raises(StaleVersion, match="you edited version 1, it is now at version 2"):
        update_program(updated, {"cadence_days": 7}, 1)


def test_an_edit_is_validated_against_the_whole_program():
    program, _ = create_program(_program())
    with pytest.raises(DomainError, match="cohort must end after it starts"):
        update_program(program, {"cohort_end": date(2026, 1, 1)}, 1)
    with pytest.raises(DomainError, match="cannot be edited: institution_id"):
        update_program(program, {"institution_id": "inst-b"}, 1)


def test_institution_ids_must_be_slugs():
    institution, events = new_institution(Institution(network_id="n1", id="uw-med", name=" UW "))
    assert institution.name == "UW" and events[0].type == "InstitutionCreated"
    with pytest.raises(DomainError, match="not usable"):
        new_institution(Institution(network_id="n1", id="UW Med/1", name="UW"))


def _who(role: Role, network_id: str = "n1", **scope) -> Principal:
    """A caller as a token in the one-role shape describes them (mapped to grants)."""
    return principal_from_claims({"sub": "s", "role": role.value, "network_id": network_id,
                                  "person_id": "s", **scope})


def test_who_may_create_and_edit_which_program():
    program, _ = create_program(_program())
    wide, _ = create_program(_program(institution_id=None))
    allowed = [
        (_who(Role.NETWORK_ADMIN), program),
        (_who(Role.NETWORK_ADMIN), wide),
        (_who(Role.INSTITUTION_COORDINATOR, institution_id="inst-a"), program),
        (_who(Role.PROGRAM_COORDINATOR, institution_id="inst-b", program_ids=[program.id]), program),
    ]
    for principal, target in allowed:
        may_edit_program(principal, target)
    refused = [
        (_who(Role.INSTITUTION_COORDINATOR, institution_id="inst-b"), program, "own institution"),
        (_who(Role.INSTITUTION_COORDINATOR, institution_id="inst-a"), wide, "network admin"),
        (_who(Role.PROGRAM_COORDINATOR, program_ids=["another"]), program, "you coordinate"),
        (_who(Role.MENTEE), program, "not change"),
        (_who(Role.MENTOR), program, "not change"),
        (_who(Role.NETWORK_ADMIN, network_id="n2"), program, "network"),
    ]
    for principal, target, message in refused:
        with pytest.raises(Exception, match=message) as caught:
            may_edit_program(principal, target)
        assert caught.value.status_code == 403
    may_create_program(_who(Role.INSTITUTION_COORDINATOR, institution_id="inst-a"), "n1", "inst-a")
    for principal, institution in [
        (_who(Role.INSTITUTION_COORDINATOR, institution_id="inst-a"), "inst-b"),
        (_who(Role.INSTITUTION_COORDINATOR, institution_id="inst-a"), None),
        (_who(Role.PROGRAM_COORDINATOR, program_ids=["x"]), "inst-a"),
        (_who(Role.MENTOR), "inst-a"),
    ]:
        with pytest.raises(Exception) as caught:
            may_create_program(principal, "n1", institution)
        assert caught.value.status_code == 403


@given(
    name=st.text(max_size=300),
    type=st.one_of(st.sampled_from(list(ProgramType)), st.text(max_size=20)),
    dates=st.lists(st.dates(), min_size=4, max_size=4),
    mentors=st.integers(-5, 50),
    cadence=st.integers(-5, 1000),
)
def test_arbitrary_programs_are_either_valid_or_refused_with_a_domain_error(
    name, type, dates, mentors, cadence
):
    """Nothing a client can send breaks validation with anything but a readable refusal."""
    start, end, opens, closes = dates
    candidate = _program(name=name, type=type, cohort_start=start, cohort_end=end,
                         enrolment_opens=opens, enrolment_closes=closes,
                         max_mentors_per_mentee=mentors, cadence_days=cadence)
    try:
        program, events = create_program(candidate)
    except DomainError as exc:
        assert str(exc)
        return
    assert program.cohort_start < program.cohort_end
    assert program.enrolment_opens <= program.enrolment_closes <= program.cohort_end
    assert 1 <= program.max_mentors_per_mentee and 1 <= program.cadence_days
    assert events[0].data["name"] == program.name


def test_program_options_are_announced_and_emails_tidied():
    program, events = create_program(_program(
        auto_accept=True, reassessment_days=45,
        coordinator_emails=(" Lead@Example.org", "lead@example.org", "b@example.org"),
    ))
    assert program.coordinator_emails == ("lead@example.org", "b@example.org")
    data = events[0].data
    assert data["auto_accept"] is True and data["reassessment_days"] == 45
    assert data["ranked_preferences"] is False
    assert data["coordinator_emails"] == ["lead@example.org", "b@example.org"]
    updated, events = update_program(program, {"coordinator_emails": ("b@example.org",),
                                               "auto_accept": False}, 1)
    assert events[0].data["changed"] == ["auto_accept", "coordinator_emails"]
    same, events = update_program(updated, {"coordinator_emails": ("B@example.org",)}, 2)
    assert events == [] and same.version == 2
