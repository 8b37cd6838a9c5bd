"""The web app's pure form handling: what a profile still lacks, and forms as API bodies."""

from __future__ import annotations

import pytest

from services.web.context import safe_next
from services.web.pages.inbox import preferences_body
from services.web.profile_form import FormProblem, profile_gaps, profile_patch

MENTEE = {"display_name": "Ada", "mentee": {"needs": [], "specialty_interests": []}}
MENTOR = {"display_name": "Grace", "mentor": {"specialty": "cardiology", "help_offered": ["research"],
                                              "time_zone": "Europe/London", "capacity": 2}}


def test_gaps_name_what_matching_needs_in_words() -> None:
    assert profile_gaps(MENTEE) == ["what you need help with", "your specialty interests"]
    assert profile_gaps(MENTOR) == []
    assert profile_gaps({"mentor": {"specialty": None}}) == [
        "your specialty", "what you can help with", "your time zone"]
    assert profile_gaps({"display_name": "staff only"}) == []


def test_patch_has_only_the_sections_the_person_has() -> None:
    form = {"display_name": [" Ada L. "], "needs": ["research", "wellbeing"],
            "specialty_interests": ["cardiology"], "preferred_mode": ["virtual"],
            "prefer_same_institution": ["no"], "mentors_wanted": ["2"],
            "specialty": ["oncology"]}  # a mentor field: ignored for a mentee
    patch = profile_patch(MENTEE, form)
    assert patch == {"display_name": "Ada L.", "mentee": {
        "specialty_interests": ["cardiology"], "needs": ["research", "wellbeing"],
        "preferred_mode": "virtual", "preferred_language": None,
        "prefer_same_institution": False, "mentors_wanted": 2}}


def test_mentor_patch_and_identity_opt_in_and_withdrawal() -> None:
    form = {"specialty": ["cardiology"], "help_offered": ["research"], "languages": ["en, fr;es"],
            "meeting_modes": ["virtual", "teleport"], "time_zone": ["Europe/Paris"],
            "capacity": ["3"], "paused": ["true"], "identity_shared": ["true"],
            "first_generation": ["yes"], "gender": [""], "affinity_matching": ["true"]}
    patch = profile_patch(MENTOR, form)
    assert patch["mentor"] == {"specialty": "cardiology", "help_offered": ["research"],
                               "languages": ["en", "fr", "es"], "meeting_modes": ["virtual"],
                               "time_zone": "Europe/Paris", "capacity": 3, "paused": True}
    assert patch["identity"] == {"first_generation": True, "under_represented_in_medicine": None,
                                 "gender": None, "affinity_matching": True}
    withdrawn = profile_patch({**MENTOR, "identity": {"gender": "f"}}, {"capacity": ["1"]})
    assert withdrawn["identity"] is None


@pytest.mark.parametrize("value", ["many", "51", "-1"])
def test_bad_capacity_names_its_field(value: str) -> None:
    with pytest.raises(FormProblem) as raised:
        profile_patch(MENTOR, {"capacity": [value]})
    assert raised.value.field == "capacity" and "0 to 50" in str(raised.value)


def test_preferences_body_keeps_mandatory_kinds_out_and_reads_ticks() -> None:
    kinds = [{"kind": "welcome", "channels": ["email", "in_app"], "mandatory": True},
             {"kind": "nudge", "channels": ["email", "in_app"], "mandatory": False},
             {"kind": "stalled_pair", "channels": ["email"], "mandatory": False}]
    form = {"channel": ["nudge:in_app"], "time_zone": ["Europe/Paris"], "quiet_start": ["22:00"],
            "quiet_end": ["07:00"], "digest": ["weekly"]}
    assert preferences_body(form, kinds) == {
        "time_zone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:00"},
        "channels": {"nudge": {"email": False, "in_app": True}, "stalled_pair": {"email": False}},
        "digest": "weekly"}
    assert preferences_body({"quiet_start": ["22:00"]}, kinds)["quiet_hours"] is None


@pytest.mark.parametrize("value,expected", [
    ("/mentorships/ms-1", "/mentorships/ms-1"), ("//evil.example", "/"),
    ("https://evil.example/x", "/"), ("/\\evil", "/"), ("", "/"), (None, "/"),
    ("/coordinate/follow-up?x=1", "/coordinate/follow-up?x=1"),
])
def test_only_paths_of_this_app_are_places_to_return_to(value, expected) -> None:
    assert safe_next(value) == expected
