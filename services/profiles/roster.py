"""Roster import: the CSV an institution's roster export gives, read and planned. Pure, no I/O.

Format (UTF-8, a BOM as Excel writes it is fine; a header row names the columns, in any order
and any case; columns not listed here are ignored, as roster exports carry many more):

| column              | required | meaning                                                     |
|---------------------|----------|-------------------------------------------------------------|
| email               | yes      | identifies the person in the network                        |
| first_name          | yes      |                                                             |
| last_name           | yes      | display name is "first_name last_name"                      |
| institution_id      | yes      | the institution the person belongs to                       |
| role                | yes      | mentor or mentee                                            |
| career_stage        | yes      | a term of the network's career-stage vocabulary (M3, PGY-2) |
| program_id          | no       | enrol the person in this program in this role               |
| specialty           | no       | mentor: their specialty (vocabulary)                        |
| subspecialty        | no       | mentor: free text                                           |
| help_offered        | no       | mentor: help categories, separated by `;`                   |
| capacity            | no       | mentor: mentees at once (0-50; default 1)                   |
| training_completed  | no       | mentor: yes/no                                              |
| languages           | no       | mentor: language codes, `;`-separated (en;es)               |
| meeting_modes       | no       | mentor: in-person;virtual                                   |
| time_zone           | no       | mentor: IANA name (America/Chicago)                         |
| specialty_interests | no       | mentee: specialties, `;`-separated                          |
| needs               | no       | mentee: help categories, most important first               |
| mentors_wanted      | no       | mentee: 1-10                                                |
| preferred_language  | no       | mentee: language code                                       |
| preferred_mode      | no       | mentee: in-person or virtual                                |

One row is one person in one role (and program): a resident who mentors students and is
mentored by faculty has two rows with the same email. An empty cell means "not given": an
import adds and changes, it never clears a field. Re-importing the same file changes nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from services.profiles.domain import DomainError, normalise_email
from services.profiles.organisation import EMAIL
from services.profiles.people import (
    MenteeProfile,
    MentorProfile,
    Profile,
    Vocabularies,
    validate_profile,
)

REQUIRED = ("email", "first_name", "last_name", "institution_id", "role", "career_stage")
MENTOR_COLUMNS = ("specialty", "subspecialty", "help_offered", "capacity", "training_completed",
                  "languages", "meeting_modes", "time_zone")
MENTEE_COLUMNS = ("specialty_interests", "needs", "mentors_wanted", "preferred_language",
                  "preferred_mode")
COLUMNS = (*REQUIRED, "program_id", *MENTOR_COLUMNS, *MENTEE_COLUMNS)
LISTS = ("help_offered", "languages", "meeting_modes", "specialty_interests", "needs")
INTEGERS = ("capacity", "mentors_wanted")
MAX_ROWS = 50_000
MAX_CELL = 1000
YES, NO = ("yes", "y", "true", "1"), ("no", "n", "false", "0")


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str
    email: str | None = None


@dataclass(frozen=True)
class RosterRow:
    """One valid row: who, where, in which role and program, and the role's profile fields
    that the row gives (only those: empty cells are not part of it)."""

    line: int
    email: str
    display_name: str
    institution_id: str
    role: str
    career_stage: str
    program_id: str | None
    section: dict[str, Any] = field(default_factory=dict)


class RosterError(DomainError):
    """The file as a whole cannot be read (not CSV, no header, a required column missing)."""


def read(text: str) -> tuple[list[dict[str, str]], list[int]]:
    """The records of the file (column names lower-cased) and the line each one ends on."""
    if "\x00" in text:
        raise RosterError("This is not a CSV file (it contains NUL bytes).")
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise RosterError("The file is empty; the first row must name the columns.")
        names = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise RosterError(
                "The header row lacks the required column(s): " + ", ".join(missing)
                + ". Required: " + ", ".join(REQUIRED) + "."
            )
        duplicated = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
        if duplicated:
            raise RosterError(f"The header row names {', '.join(duplicated)} more than once.")
        records, lines = [], []
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank lines, as spreadsheets leave at the end
            if len(records) >= MAX_ROWS:
                raise RosterError(f"An import may have at most {MAX_ROWS} rows; split the file.")
            records.append({
                name: (values[i] if i < len(values) else "")
                for i, name in enumerate(names) if name in COLUMNS
            } | {"__extra__": str(len(values) > len(names))})
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise RosterError(f"The file is not valid CSV (line {reader.line_num}): {exc}.") from None
    return records, lines


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(";") if v.strip()]


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DomainError(f"{name} must be a whole number, not {value!r}.") from None


def _yes_no(name: str, value: str) -> bool:
    if value.lower() in YES:
        return True
    if value.lower() in NO:
        return False
    raise DomainError(f"{name} must be yes or no, not {value!r}.")


def _cells(record: dict[str, str], columns: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in columns:
        raw = " ".join((record.get(name) or "").split())
        if not raw:
            continue
        if name in LISTS:
            values[name] = _list(raw)
        elif name in INTEGERS:
            values[name] = _integer(name, raw)
        elif name == "training_completed":
            values[name] = _yes_no(name, raw)
        else:
            values[name] = raw
    return values


def parse_row(line: int, record: dict[str, str], vocab: Vocabularies) -> RosterRow:
    """A valid row, or DomainError with the first reason it is not (for a person to fix)."""
    if record.get("__extra__") == "True":
        raise DomainError("The row has more cells than the header has columns (a stray comma?).")
    too_long = [n for n, v in record.items() if len(v) > MAX_CELL]
    if too_long:
        raise DomainError(f"{too_long[0]} is longer than {MAX_CELL} characters.")
    for name in REQUIRED:
        if not (record.get(name) or "").strip():
            raise DomainError(f"{name} is empty; it is required.")
    email = normalise_email(record["email"])
    if not EMAIL.match(email) or len(email) > 254:
        raise DomainError(f"{record['email'].strip()!r} is not an email address.")
    role = record["role"].strip().lower()
    if role not in ("mentor", "mentee"):
        raise DomainError(f"role is mentor or mentee, not {record['role'].strip()!r}.")
    other = MENTEE_COLUMNS if role == "mentor" else MENTOR_COLUMNS
    stray = [n for n in other if (record.get(n) or "").strip()]
    if stray:
        raise DomainError(
            f"{stray[0]} is for {'mentees' if role == 'mentor' else 'mentors'}; this row is "
            f"a {role}. Put the other role on a row of its own."
        )
    section = _cells(record, MENTOR_COLUMNS if role == "mentor" else MENTEE_COLUMNS)
    display_name = " ".join(f"{record['first_name']} {record['last_name']}".split())
    career_stage = record["career_stage"].strip()
    institution_id = record["institution_id"].strip()
    # The same validation as a profile edit: the row's section on defaults must be valid.
    kind = MentorProfile if role == "mentor" else MenteeProfile
    try:
        typed = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
        candidate = kind(**typed)
    except TypeError as exc:  # pragma: no cover - columns are the section's fields
        raise DomainError(str(exc)) from None
    validate_profile(
        Profile(display_name=display_name, career_stage=career_stage,
                **{role: candidate}),
        vocab,
        person_id="",
    )
    program_id = (record.get("program_id") or "").strip() or None
    return RosterRow(line=line, email=email, display_name=display_name,
                     institution_id=institution_id, role=role, career_stage=career_stage,
                     program_id=program_id, section=section)


def parse(text: str, vocab: Vocabularies) -> tuple[list[RosterRow], list[RowError]]:
    """Every valid row and every invalid row's line and reason (RosterError if the file as a
    whole is unreadable)."""
    records, lines = read(text)
    rows: list[RosterRow] = []
    errors: list[RowError] = []
    for line, record in zip(lines, records, strict=True):
        try:
            rows.append(parse_row(line, record, vocab))
        except DomainError as exc:
            email = (record.get("email") or "").strip() or None
            errors.append(RowError(line, str(exc), email))
    return rows, errors


@dataclass
class PersonPlan:
    """All valid rows of one email, merged: what the person should be after the import."""

    email: str
    display_name: str
    institution_id: str
    career_stage: str
    first_role: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrolments: list[tuple[str, str]] = field(default_factory=list)  # (program, role)
    lines: list[int] = field(default_factory=list)


def plan(rows: list[RosterRow]) -> tuple[dict[str, PersonPlan], list[RowError]]:
    """Group rows by person; a later row that contradicts an earlier one is invalid."""
    people: dict[str, PersonPlan] = {}
    errors: list[RowError] = []
    for row in rows:
        current = people.get(row.email)
        if current is None:
            people[row.email] = PersonPlan(
                email=row.email, display_name=row.display_name,
                institution_id=row.institution_id, career_stage=row.career_stage,
                first_role=row.role, sections={row.role: dict(row.section)},
                enrolments=[(row.program_id, row.role)] if row.program_id else [],
                lines=[row.line],
            )
            continue
        first = current.lines[0]
        clash = next(
            (name for name, mine, theirs in (
                ("name", row.display_name, current.display_name),
                ("institution_id", row.institution_id, current.institution_id),
                ("career_stage", row.career_stage, current.career_stage),
            ) if mine != theirs),
            None,
        )
        section = current.sections.get(row.role, {})
        if clash is None:
            clash = next(
                (k for k, v in row.section.items() if k in section and section[k] != v), None
            )
        if clash is not None:
            errors.append(RowError(
                row.line, f"{clash} differs from line {first} for the same email.", row.email
            ))
            continue
        current.sections[row.role] = {**section, **row.section}
        if row.program_id and (row.program_id, row.role) not in current.enrolments:
            current.enrolments.append((row.program_id, row.role))
        current.lines.append(row.line)
    return people, errors
