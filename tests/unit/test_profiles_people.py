"""People profiles (pure code): vocabularies, profile validation, edits, events and views."""

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.profiles.domain import DomainError, Person, register
from services.profiles.organisation import StaleVersion
from services.profiles.people import (
    DEFAULT_VOCABULARIES,
    Identity,
    MenteeProfile,
    MentorProfile,
    PersonRef,
    Profile,
    Vocabularies,
    VocabularyKind,
    extend_vocabulary,
    full_view,
    profile_document,
    profile_from_document,
    public_view,
    update_profile,
    validate_time_zone,
)

VOCAB = Vocabularies()
REF = PersonRef(id="p1", network_id="n1", institution_id="inst-a", version=1)


def _mentor_profile(**mentor) -> Profile:
    return Profile(display_name="Ada Lovelace", career_stage="faculty-professor",
                   mentor=MentorProfile(**mentor))


def _mentee_profile(**mentee) -> Profile:
    return Profile(display_name="Grace Hopper", career_stage="M2", mentee=MenteeProfile(**mentee))


def _document(profile: Profile, **overrides) -> dict:
    return {
        "_id": "p1", "network_id": "n1", "institution_id": "inst-a", "program_id": "prog-1",
        "program_ids": ["prog-1"], "role": "mentor" if profile.mentor else "mentee",
        "email": "p1@example.org", "registered_at": datetime.now(UTC), "version": 1,
        **profile_document(profile), **overrides,
    }


def test_default_vocabularies_cover_the_issue():
    help_ = DEFAULT_VOCABULARIES[VocabularyKind.HELP_CATEGORIES]
    assert {"research", "career-planning", "residency-applications", "wellbeing",
            "work-life-balance"} <= help_
    assert {"M1", "PGY-3", "fellow", "practising-physician"} <= VOCAB.terms(
        VocabularyKind.CAREER_STAGES)


def test_unknown_term_lists_the_allowed_values():
    with pytest.raises(DomainError) as error:
        update_profile(REF, _mentor_profile(), {"mentor": {"help_offered": ["astrology"]}}, 1,
                       VOCAB)
    message = str(error.value)
    assert "Unknown help category 'astrology'" in message
    assert "career-planning" in message and "wellbeing" in message


def test_a_network_extension_is_accepted_after_it_is_added():
    extension, added = extend_vocabulary(VocabularyKind.SPECIALTIES, frozenset(),
                                         ["global-surgery", "  global-surgery ", "pediatrics"])
    assert added == ["global-surgery"]  # defaults and repeats are not added again
    vocab = Vocabularies({VocabularyKind.SPECIALTIES: extension})
    profile, _ = update_profile(REF, _mentor_profile(), {"mentor": {"specialty": "global-surgery"}},
                                1, vocab)
    assert profile.mentor.specialty == "global-surgery"
    with pytest.raises(DomainError):
        update_profile(REF, _mentor_profile(), {"mentor": {"specialty": "global-surgery"}}, 1,
                       VOCAB)


def test_unusable_vocabulary_terms_are_refused():
    with pytest.raises(DomainError, match="not usable"):
        extend_vocabulary(VocabularyKind.HELP_CATEGORIES, frozenset(), ["$where"])


def test_registration_uses_the_network_vocabulary():
    person = Person(network_id="n1", institution_id="i1", display_name="A B", email="a@b.org",
                    role="mentee", career_stage="MS5", specialty_interests=["surgery-x"])
    with pytest.raises(DomainError, match="Unknown career stage"):
        register(person)
    stages = VOCAB.terms(VocabularyKind.CAREER_STAGES) | {"MS5"}
    with pytest.raises(DomainError, match="Unknown specialty 'surgery-x'"):
        register(person, stages, VOCAB.terms(VocabularyKind.SPECIALTIES))
    register(person, stages, VOCAB.terms(VocabularyKind.SPECIALTIES) | {"surgery-x"})


def test_time_zones_are_iana_names():
    assert validate_time_zone("Europe/London") == "Europe/London"
    for bad in ("Mars/Olympus", "../../etc/passwd", "utc+2", ""):
        with pytest.raises(DomainError, match="Unknown time zone"):
            validate_time_zone(bad)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mentor": {"capacity": 51}}, "between 0 and 50"),
        ({"mentor": {"capacity": -1}}, "between 0 and 50"),
        ({"mentor": {"languages": ["english!"]}}, "not a language code"),
        ({"mentor": {"meeting_modes": ["carrier-pigeon"]}}, "Unknown meeting mode"),
        ({"mentor": {"do_not_match": ["p1"]}}, "not yourself"),
        ({"mentor": {"help_offered": ["research", "research"]}}, "twice"),
        ({"mentor": {"capacity": None}}, "cannot be emptied"),
        ({"mentor": {"bogus": 1}}, "cannot be edited"),
        ({"career_stage": "M9"}, "Unknown career stage 'M9'"),
        ({"display_name": "   "}, "needs a name"),
        ({"mentor": None}, "stay a mentor, a mentee or both"),
    ],
)
def test_mentor_rules(changes, message):
    with pytest.raises(DomainError, match=message):
        update_profile(REF, _mentor_profile(), changes, 1, VOCAB)


@pytest.mark.parametrize(
    ("mentee", "message"),
    [
        ({"goals": [{"text": " ", "category": "research"}]}, "Goal 1 needs a text"),
        ({"goals": [{"text": "Publish", "category": "fame"}]}, "category of goal 1"),
        ({"needs": ["research"], "mentors_for_needs": ["wellbeing"]}, "not among your needs"),
        ({"needs": ["research", "wellbeing"], "mentors_for_needs": ["research", "wellbeing"]},
         "ask for more mentors"),
        ({"mentors_wanted": 0}, "between 1 and 10"),
        ({"preferred_mode": "telepathy"}, "Unknown meeting mode"),
        ({"specialty_interests": ["basket-weaving"]}, "Unknown specialty"),
    ],
)
def test_mentee_rules(mentee, message):
    with pytest.raises(DomainError, match=message):
        update_profile(REF, _mentee_profile(), {"mentee": mentee}, 1, VOCAB)


def test_a_mentee_network_of_mentors_for_prioritised_needs():
    changes = {"mentee": {
        "goals": [{"text": " Match into  surgery ", "category": "residency-applications",
                   "target_date": date(2027, 9, 1)}],
        "needs": ["residency-applications", "research", "wellbeing"],
        "mentors_wanted": 2, "mentors_for_needs": ["residency-applications", "research"],
        "prefer_same_institution": False, "preferred_mode": "virtual",
        "preferred_language": "es",
    }}
    profile, events = update_profile(REF, _mentee_profile(), changes, 1, VOCAB)
    assert profile.mentee.goals[0].text == "Match into surgery"
    assert profile.mentee.needs[0] == "residency-applications"  # priority order kept
    assert [e.type for e in events] == ["ProfileUpdated"]
    assert events[0].data["mentee"]["goals"][0]["target_date"] == "2027-09-01"
    assert events[0].data["changed"] == ["mentee"] and events[0].data["version"] == 2


def test_stale_version_is_refused():
    with pytest.raises(StaleVersion, match="version 3"):
        update_profile(REF, _mentor_profile(), {"career_stage": "fellow"}, 3, VOCAB)


def test_capacity_and_pause_have_their_own_events():
    _, events = update_profile(REF, _mentor_profile(capacity=2),
                               {"mentor": {"capacity": 4, "paused": True}}, 1, VOCAB)
    assert [e.type for e in events] == ["ProfileUpdated", "MentorCapacityChanged", "MentorPaused"]
    assert events[1].data["capacity"] == 4 and events[1].data["previous_capacity"] == 2
    assert events[2].data["paused"] is True
    assert all(e.subject == "p1" and e.tenantid == "n1" for e in events)
    _, resumed = update_profile(REF, _mentor_profile(paused=True), {"mentor": {"paused": False}},
                                1, VOCAB)
    assert [e.type for e in resumed] == ["ProfileUpdated", "MentorPaused"]
    assert resumed[1].data["paused"] is False


def test_no_change_no_event():
    current = _mentor_profile(capacity=2)
    profile, events = update_profile(REF, current, {"mentor": {"capacity": 2}}, 1, VOCAB)
    assert profile == current and events == []


def test_identity_attributes_travel_only_in_their_own_event():
    identity = {"first_generation": True, "gender": "woman", "affinity_matching": True}
    profile, events = update_profile(REF, _mentee_profile(), {"identity": identity}, 1, VOCAB)
    assert profile.identity == Identity(first_generation=True, gender="woman",
                                        affinity_matching=True)
    assert [e.type for e in events] == ["IdentityAttributesChanged"]
    assert events[0].data["attributes"] == {"first_generation": "true", "gender": "woman"}
    assert events[0].data["use_for_matching"] is True
    _, events = update_profile(REF, profile, {"career_stage": "M3"}, 1, VOCAB)
    assert [e.type for e in events] == ["ProfileUpdated"]
    assert "identity" not in events[0].data and "woman" not in str(events[0].data)
    withdrawn, events = update_profile(REF, profile, {"identity": None}, 1, VOCAB)
    assert withdrawn.identity is None
    assert [e.type for e in events] == ["IdentityAttributesChanged"]
    assert events[0].data["attributes"] == {} and events[0].data["use_for_matching"] is False


def test_views_show_identity_only_to_the_person():
    profile = Profile(display_name="Ada", career_stage="fellow",
                      mentor=MentorProfile(capacity=2, do_not_match=("p9",), time_zone="UTC"),
                      identity=Identity(gender="woman"))
    document = _document(profile)
    assert full_view(document, own=True)["identity"]["gender"] == "woman"
    assert "identity" not in full_view(document, own=False)
    public = public_view(document)
    assert "identity" not in public and "email" not in public
    assert set(public["mentor"]) == {"specialty", "subspecialty", "help_offered", "languages",
                                     "meeting_modes", "time_zone", "accepting"}
    assert "woman" not in str(public) and "p9" not in str(public)


def test_documents_round_trip_and_first_flow_people_get_a_profile():
    profile = _mentee_profile(goals=(), needs=("research",))
    assert profile_from_document(_document(profile)) == profile
    legacy = {"display_name": "Old", "career_stage": "PGY-1", "role": "mentor", "capacity": 3}
    assert profile_from_document(legacy).mentor == MentorProfile(capacity=3)


def test_a_person_can_mentor_and_be_mentored():
    profile, _ = update_profile(REF, _mentee_profile(), {"mentor": {"capacity": 1}}, 1, VOCAB)
    assert profile.roles == ["mentor", "mentee"]


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.text(max_size=30),
                    st.lists(st.text(max_size=20), max_size=4))


@settings(max_examples=200, deadline=None)
@given(
    section=st.sampled_from(["mentor", "mentee", "identity"]),
    values=st.dictionaries(
        st.sampled_from(["specialty", "capacity", "languages", "time_zone", "needs", "goals",
                         "mentors_wanted", "gender", "paused", "meeting_modes", "help_offered",
                         "mentors_for_needs", "first_generation"]),
        _values, max_size=4),
)
def test_arbitrary_edits_either_apply_or_raise_domain_error(section, values):
    current = _mentor_profile()
    try:
        profile, _ = update_profile(REF, current, {section: values}, 1, VOCAB)
    except DomainError:
        return
    assert profile_from_document(_document(profile)) == profile
