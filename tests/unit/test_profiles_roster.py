"""Roster CSV (pure code): reading, row validation with line numbers, merging rows of one
person, and properties: arbitrary input is refused in words, never with a crash, and a row
that is accepted makes a whole, valid person."""

import csv
from dataclasses import replace
import io
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.profiles.domain import DomainError
from services.profiles.importing import new_person, person_update
from services.profiles.organisation import Program, ProgramType
from services.profiles.people import (
    DEFAULT_VOCABULARIES,
    Vocabularies,
    VocabularyKind,
    profile_from_document,
    validate_profile,
)
from services.profiles.roster import (
    COLUMNS,
    RosterError,
    parse,
    parse_row,
    plan,
    read,
)
from datetime import date

VOCAB = Vocabularies()
NOW = datetime(2026, 7, 1, tzinfo=UTC)
PROGRAM = Program(network_id="n1", institution_id="inst-a", name="P", type=ProgramType.PEER,
                  cohort_start=date(2026, 9, 1), cohort_end=date(2027, 6, 1),
                  enrolment_opens=date(2026, 6, 1), enrolment_closes=date(2026, 9, 1),
                  id="prog-1")


def _text(rows: list[dict[str, str]], columns=COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _row(**cells) -> dict[str, str]:
    return {"email": "kim@example.org", "first_name": "Kim", "last_name": "Park",
            "institution_id": "inst-a", "role": "mentee", "career_stage": "M3", **cells}


def test_header_is_case_insensitive_extra_columns_are_ignored_and_bom_is_fine():
    text = "\ufeffEMAIL,First_Name,last_name,Institution_Id,ROLE,career_stage,Pager\n" \
           "Kim@Example.org,Kim,Park,inst-a,Mentee,M3,555\n\n"
    rows, errors = parse(text, VOCAB)
    assert errors == [] and len(rows) == 1
    assert rows[0].email == "kim@example.org" and rows[0].role == "mentee"
    assert rows[0].line == 2 and rows[0].display_name == "Kim Park"


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("email,first_name\n", r"lacks the required column\(s\): last_name"),
    ("email,email,first_name,last_name,institution_id,role,career_stage\n", "more than once"),
    ("a\x00b", "NUL"),
])
def test_unreadable_files_are_refused_as_a_whole(text, message):
    with pytest.raises(RosterError, match=message):
        read(text)


def test_lines_count_physical_lines_of_quoted_cells():
    text = _text([_row(), _row(email="b@example.org", first_name="Multi\nLine"),
                  _row(email="c", first_name="X")])
    rows, errors = parse(text, VOCAB)
    assert [r.line for r in rows] == [2, 4]
    assert [(e.line, e.email) for e in errors] == [(5, "c")]


@pytest.mark.parametrize("cells, message", [
    ({"email": "nope"}, "not an email address"),
    ({"role": "coach"}, "mentor or mentee"),
    ({"career_stage": "M9"}, "Unknown career stage"),
    ({"specialty_interests": "cardiology;astrology"}, "Unknown specialty 'astrology'"),
    ({"needs": "research;research"}, "twice"),
    ({"mentors_wanted": "two"}, "whole number"),
    ({"mentors_wanted": "11"}, "between 1 and 10"),
    ({"capacity": "2"}, "capacity is for mentors"),
    ({"role": "mentor", "capacity": "51"}, "between 0 and 50"),
    ({"role": "mentor", "training_completed": "maybe"}, "yes or no"),
    ({"role": "mentor", "meeting_modes": "carrier pigeon"}, "Unknown meeting mode"),
    ({"role": "mentor", "languages": "english!"}, "not a language code"),
    ({"last_name": " "}, "last_name is empty"),
    ({"first_name": "x" * 1001}, "longer than 1000"),
])
def test_each_invalid_row_says_why(cells, message):
    with pytest.raises(DomainError, match=message):
        parse_row(2, _row(**cells), VOCAB)


def test_rows_of_one_person_merge_and_contradictions_are_reported():
    rows, _ = parse(_text([
        _row(role="mentor", program_id="prog-1", capacity="2", help_offered="research"),
        _row(role="mentee", program_id="prog-2", needs="research"),
        _row(role="mentor", program_id="prog-3", capacity="2", languages="en"),
        _row(role="mentor", capacity="3"),
        _row(first_name="Kimberly"),
    ]), VOCAB)
    people, errors = plan(rows)
    kim = people["kim@example.org"]
    assert kim.sections == {"mentor": {"capacity": 2, "help_offered": ["research"],
                                       "languages": ["en"]},
                            "mentee": {"needs": ["research"]}}
    assert kim.enrolments == [("prog-1", "mentor"), ("prog-2", "mentee"), ("prog-3", "mentor")]
    assert kim.lines == [2, 3, 4]
    assert [(e.line, e.reason) for e in errors] == [
        (5, "capacity differs from line 2 for the same email."),
        (6, "name differs from line 2 for the same email."),
    ]


def test_a_new_person_and_a_reimport_that_changes_nothing():
    rows, _ = parse(_text([_row(program_id="prog-1", needs="research;wellbeing",
                                mentors_wanted="2")]), VOCAB)
    people, _ = plan(rows)
    document = new_person("n1", people["kim@example.org"], {"prog-1": PROGRAM}, VOCAB, NOW)
    events = [e["type"] for e in document["_pending_events"]]
    assert events == ["MenteeRegistered", "ProfileUpdated", "PersonEnrolled"]
    assert document["program_ids"] == ["prog-1"] and document["version"] == 2
    assert document["mentee"]["needs"] == ["research", "wellbeing"]
    stored = {k: v for k, v in document.items() if not k.startswith("_pending")}
    stored.pop("_outbox_pending")
    assert person_update(stored, people["kim@example.org"], {"prog-1": PROGRAM}, VOCAB, NOW) is None


# ---------------------------------------------------------------- properties

cell = st.text(max_size=40)
terms = {kind: sorted(DEFAULT_VOCABULARIES[kind]) for kind in VocabularyKind}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_is_read_or_refused_in_words(text):
    try:
        rows, errors = parse(text, VOCAB)
    except RosterError as exc:
        assert str(exc)
        return
    assert all(e.reason and e.line >= 2 for e in errors)
    assert len({r.line for r in rows} | {e.line for e in errors}) == len(rows) + len(errors)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(COLUMNS), st.one_of(
    cell,
    st.sampled_from(["mentor", "mentee", "M2", "PGY-1", "inst-a", "a@b.org", "2", "yes",
                     "research;wellbeing", "cardiology", "en;es", "virtual", "Europe/London"]),
)))
def test_any_row_is_a_whole_valid_person_or_refused_in_words(cells):
    record = _row() | cells  # a valid row with arbitrary cells put over it
    try:
        row = parse_row(2, record, VOCAB)
    except DomainError as exc:
        assert str(exc)
        return
    people, errors = plan([row])
    assert errors == []
    # The API checked the program exists before (row_scope_error); here it does.
    programs = ({row.program_id: replace(PROGRAM, id=row.program_id, institution_id=None)}
                if row.program_id else {})
    document = new_person("n1", people[row.email], programs, VOCAB, NOW)
    # A whole record: every field a reader needs, and a profile that validates again.
    for name in ("email", "display_name", "career_stage", "institution_id", "roles", "version"):
        assert document[name] not in (None, "", [])
    profile = profile_from_document(document)
    assert validate_profile(profile, VOCAB, document["_id"]) == profile
    assert profile.roles == [row.role]


@settings(max_examples=150, deadline=None)
@given(
    role=st.sampled_from(["mentor", "mentee"]),
    stage=st.sampled_from(terms[VocabularyKind.CAREER_STAGES]),
    chosen=st.lists(st.sampled_from(terms[VocabularyKind.HELP_CATEGORIES]), unique=True,
                    max_size=4),
    specialties=st.lists(st.sampled_from(terms[VocabularyKind.SPECIALTIES]), unique=True,
                         max_size=3),
    first=st.text(st.characters(categories=["L"]), min_size=1, max_size=20),
)
def test_valid_rows_survive_the_csv_round_trip(role, stage, chosen, specialties, first):
    cells = {"role": role, "career_stage": stage, "first_name": first}
    if role == "mentor":
        cells |= {"help_offered": ";".join(chosen), "specialty": specialties[0] if specialties else ""}
    else:
        cells |= {"needs": ";".join(chosen), "specialty_interests": ";".join(specialties)}
    rows, errors = parse(_text([_row(**cells)]), VOCAB)
    assert errors == [], errors
    section = rows[0].section
    assert section.get("help_offered" if role == "mentor" else "needs", []) == chosen
