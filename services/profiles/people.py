"""People profiles: mentor and mentee profiles, opt-in identity attributes, vocabularies.

Pure logic, no I/O. A person's profile lives in their person document next to the first-flow
registration fields; `update_profile` returns the new profile and the events that announce it,
so the store writes both in one document write (transactional outbox).

What others may see is decided here too (`public_view`): the opt-in identity attributes are
never part of any view but the person's own. They travel in one event of their own,
`IdentityAttributesChanged`, so that matching can honour an affinity request and analytics can
count in aggregate, while every other consumer ignores one event type.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from services.profiles.domain import CAREER_STAGES, SOURCE, DomainError
from services.profiles.organisation import StaleVersion, _now
from shared.events import CloudEvent, new_event
from shared.events.schemas import (
    IdentityAttributesChanged,
    MentorCapacityChanged,
    MentorPaused,
    ProfileUpdated,
)

MAX_CAPACITY = 50
MAX_MENTORS_WANTED = 10
MAX_GOALS = 10
MAX_LIST = 20
MAX_TERMS = 500
MAX_TEXT = 1000
MEETING_MODES = ("in-person", "virtual")
TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/&()'+-]{0,79}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # BCP 47, such as en, es, pt-BR


class VocabularyKind(StrEnum):
    CAREER_STAGES = "career-stages"
    SPECIALTIES = "specialties"
    HELP_CATEGORIES = "help-categories"


DEFAULT_VOCABULARIES: dict[VocabularyKind, frozenset[str]] = {
    VocabularyKind.CAREER_STAGES: CAREER_STAGES,
    VocabularyKind.SPECIALTIES: frozenset(
        [
            "anesthesiology", "cardiology", "dermatology", "emergency-medicine",
            "family-medicine", "general-surgery", "internal-medicine", "neurology",
            "neurosurgery", "obstetrics-gynecology", "oncology", "ophthalmology",
            "orthopaedic-surgery", "otolaryngology", "pathology", "pediatrics",
            "physical-medicine-rehabilitation", "psychiatry", "public-health", "radiology",
            "urology",
        ]
    ),
    VocabularyKind.HELP_CATEGORIES: frozenset(
        [
            "research", "career-planning", "residency-applications", "clinical-skills",
            "academic-exam-strategy", "wellbeing", "leadership", "networking",
            "work-life-balance",
        ]
    ),
}

_WHAT = {
    VocabularyKind.CAREER_STAGES: "career stage",
    VocabularyKind.SPECIALTIES: "specialty",
    VocabularyKind.HELP_CATEGORIES: "help category",
}


@dataclass(frozen=True)
class Vocabularies:
    """The terms a network accepts: the defaults plus what the network added, less what it
    retired (a retired term can no longer be chosen; see `allowing`)."""

    extensions: dict[VocabularyKind, frozenset[str]] = field(default_factory=dict)
    retired: dict[VocabularyKind, frozenset[str]] = field(default_factory=dict)

    def known(self, kind: VocabularyKind) -> frozenset[str]:
        """Every term the network ever had, retired ones included."""
        return DEFAULT_VOCABULARIES[kind] | self.extensions.get(kind, frozenset())

    def terms(self, kind: VocabularyKind) -> frozenset[str]:
        return self.known(kind) - self.retired.get(kind, frozenset())

    def allowing(self, profile: Profile) -> Vocabularies:
        """These vocabularies for an edit of `profile`: the retired terms it already holds stay
        valid, so retiring a term never stops its holders from editing anything else."""
        held = {
            VocabularyKind.CAREER_STAGES: {profile.career_stage},
            VocabularyKind.SPECIALTIES: {
                *((profile.mentor.specialty,) if profile.mentor and profile.mentor.specialty else ()),
                *(profile.mentee.specialty_interests if profile.mentee else ()),
            },
            VocabularyKind.HELP_CATEGORIES: {
                *(profile.mentor.help_offered if profile.mentor else ()),
                *(profile.mentee.needs if profile.mentee else ()),
                *((g.category for g in profile.mentee.goals) if profile.mentee else ()),
            },
        }
        return replace(self, retired={k: v - held.get(k, set()) for k, v in self.retired.items()})

    def check(self, kind: VocabularyKind, value: str, where: str) -> str:
        allowed = self.terms(kind)
        if value in self.retired.get(kind, frozenset()):
            raise DomainError(
                f"The {_WHAT[kind]} {value!r} in {where} is retired in this network and can no "
                "longer be chosen; pick another."
            )
        if value not in allowed:
            raise DomainError(
                f"Unknown {_WHAT[kind]} {value!r} in {where}; use one of: "
                + ", ".join(sorted(allowed))
                + ". A network admin can add terms to the network's vocabulary."
            )
        return value


def extend_vocabulary(
    kind: VocabularyKind, current: frozenset[str], new_terms: list[str]
) -> tuple[frozenset[str], list[str]]:
    """The network's extension with `new_terms` added, and which of them were really new."""
    cleaned = []
    for term in new_terms:
        term = " ".join(term.split())
        if not TERM.match(term):
            raise DomainError(
                f"{term!r} is not usable as a {_WHAT[kind]}: use 1-80 letters, digits, spaces "
                "or . _ / & ( ) ' + -, starting with a letter or digit."
            )
        cleaned.append(term)
    known = DEFAULT_VOCABULARIES[kind] | current
    added = sorted({t for t in cleaned if t not in known})
    if len(current) + len(added) > MAX_TERMS:
        raise DomainError(f"A network may add at most {MAX_TERMS} terms to each vocabulary.")
    return current | frozenset(added), added


@dataclass(frozen=True)
class Goal:
    text: str
    category: str  # a help category
    target_date: date | None = None


@dataclass(frozen=True)
class MentorProfile:
    specialty: str | None = None
    subspecialty: str | None = None  # free text: subspecialties are too many to enumerate
    help_offered: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    meeting_modes: tuple[str, ...] = ()
    time_zone: str | None = None
    capacity: int = 1
    paused: bool = False
    training_completed: bool = False
    do_not_match: tuple[str, ...] = ()  # person ids they evaluate or supervise: a boundary

    @property
    def accepting(self) -> bool:
        return self.capacity > 0 and not self.paused


@dataclass(frozen=True)
class MenteeProfile:
    specialty_interests: tuple[str, ...] = ()
    goals: tuple[Goal, ...] = ()
    needs: tuple[str, ...] = ()  # help categories, most important first
    prefer_same_institution: bool | None = None  # None: no preference
    preferred_mode: str | None = None
    preferred_language: str | None = None
    mentors_wanted: int = 1
    mentors_for_needs: tuple[str, ...] = ()  # which needs the mentors should cover


@dataclass(frozen=True)
class Identity:
    """Opt-in attributes; used for affinity only when `affinity_matching` is asked for."""

    first_generation: bool | None = None
    under_represented_in_medicine: bool | None = None
    gender: str | None = None
    affinity_matching: bool = False


@dataclass(frozen=True)
class Profile:
    display_name: str
    career_stage: str
    mentor: MentorProfile | None = None
    mentee: MenteeProfile | None = None
    identity: Identity | None = None

    @property
    def roles(self) -> list[str]:
        return [r for r in ("mentor", "mentee") if getattr(self, r) is not None]


# ---------------------------------------------------------------- validation


def _text(value: str | None, where: str, limit: int = 200) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(value.split())
    if not cleaned:
        return None
    if len(cleaned) > limit:
        raise DomainError(f"{where} may be at most {limit} characters.")
    return cleaned


def _unique(values: tuple[str, ...] | list[str], where: str) -> tuple[str, ...]:
    if len(values) > MAX_LIST:
        raise DomainError(f"{where} may list at most {MAX_LIST} entries.")
    seen: list[str] = []
    for value in values:
        if value in seen:
            raise DomainError(f"{where} lists {value!r} twice.")
        seen.append(value)
    return tuple(seen)


def _language(value: str, where: str) -> str:
    if not LANGUAGE.match(value):
        raise DomainError(
            f"{value!r} in {where} is not a language code; use codes such as en, es, fr or pt-BR."
        )
    return value


def _mode(value: str, where: str) -> str:
    if value not in MEETING_MODES:
        raise DomainError(
            f"Unknown meeting mode {value!r} in {where}; use one of: {', '.join(MEETING_MODES)}."
        )
    return value


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_time_zone(value: str) -> str:
    try:
        if value not in _time_zones():
            raise ZoneInfoNotFoundError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(
            f"Unknown time zone {value!r}; use an IANA name such as Europe/London or "
            "America/New_York."
        ) from None
    return value


def validate_mentor(mentor: MentorProfile, vocab: Vocabularies, person_id: str) -> MentorProfile:
    specialty = _text(mentor.specialty, "The specialty")
    if specialty is not None:
        vocab.check(VocabularyKind.SPECIALTIES, specialty, "specialty")
    help_offered = _unique(mentor.help_offered, "Help offered")
    for category in help_offered:
        vocab.check(VocabularyKind.HELP_CATEGORIES, category, "help offered")
    languages = _unique([_language(v, "languages") for v in mentor.languages], "Languages")
    modes = _unique([_mode(v, "meeting modes") for v in mentor.meeting_modes], "Meeting modes")
    time_zone = validate_time_zone(mentor.time_zone) if mentor.time_zone else None
    if not 0 <= mentor.capacity <= MAX_CAPACITY:
        raise DomainError(
            f"A mentor's capacity is how many mentees at once, between 0 and {MAX_CAPACITY}, "
            f"not {mentor.capacity}."
        )
    boundaries = _unique(mentor.do_not_match, "Do-not-match")
    if person_id in boundaries:
        raise DomainError("A do-not-match boundary names someone else, not yourself.")
    return replace(
        mentor,
        specialty=specialty,
        subspecialty=_text(mentor.subspecialty, "The subspecialty"),
        help_offered=help_offered,
        languages=languages,
        meeting_modes=modes,
        time_zone=time_zone,
        do_not_match=boundaries,
    )


def validate_mentee(mentee: MenteeProfile, vocab: Vocabularies) -> MenteeProfile:
    interests = _unique(mentee.specialty_interests, "Specialty interests")
    for specialty in interests:
        vocab.check(VocabularyKind.SPECIALTIES, specialty, "specialty interests")
    if len(mentee.goals) > MAX_GOALS:
        raise DomainError(f"A mentee may set at most {MAX_GOALS} goals.")
    goals = []
    for n, goal in enumerate(mentee.goals, start=1):
        text = _text(goal.text, f"Goal {n}", MAX_TEXT)
        if text is None:
            raise DomainError(f"Goal {n} needs a text: what do you want to achieve?")
        vocab.check(VocabularyKind.HELP_CATEGORIES, goal.category, f"the category of goal {n}")
        goals.append(replace(goal, text=text))
    needs = _unique(mentee.needs, "Needs")
    for need in needs:
        vocab.check(VocabularyKind.HELP_CATEGORIES, need, "needs")
    if mentee.preferred_mode is not None:
        _mode(mentee.preferred_mode, "the preferred mode")
    if mentee.preferred_language is not None:
        _language(mentee.preferred_language, "the preferred language")
    if not 1 <= mentee.mentors_wanted <= MAX_MENTORS_WANTED:
        raise DomainError(
            f"A mentee may want between 1 and {MAX_MENTORS_WANTED} mentors, not "
            f"{mentee.mentors_wanted}."
        )
    covered = _unique(mentee.mentors_for_needs, "Mentors for needs")
    missing = [n for n in covered if n not in needs]
    if missing:
        raise DomainError(
            f"Mentors can only be asked for needs you listed; {', '.join(missing)} "
            "is not among your needs."
        )
    if len(covered) > mentee.mentors_wanted:
        raise DomainError(
            f"You want {mentee.mentors_wanted} mentor(s) but ask them to cover {len(covered)} "
            "needs; ask for more mentors or fewer needs."
        )
    return replace(mentee, specialty_interests=interests, goals=tuple(goals), needs=needs,
                   mentors_for_needs=covered)


def validate_identity(identity: Identity) -> Identity:
    return replace(identity, gender=_text(identity.gender, "Gender", 60))


def validate_profile(profile: Profile, vocab: Vocabularies, person_id: str) -> Profile:
    name = _text(profile.display_name, "A name")
    if name is None:
        raise DomainError("A person needs a name.")
    vocab.check(VocabularyKind.CAREER_STAGES, profile.career_stage, "career stage")
    return replace(
        profile,
        display_name=name,
        mentor=validate_mentor(profile.mentor, vocab, person_id) if profile.mentor else None,
        mentee=validate_mentee(profile.mentee, vocab) if profile.mentee else None,
        identity=validate_identity(profile.identity) if profile.identity else None,
    )


# ---------------------------------------------------------------- edits

SECTIONS = {"mentor": MentorProfile, "mentee": MenteeProfile, "identity": Identity}
TOP_LEVEL = ("display_name", "career_stage")


def _merge(section_type: type, current: Any, changes: dict[str, Any]) -> Any:
    declared = {f.name: f for f in fields(section_type)}
    unknown = set(changes) - set(declared)
    if unknown:
        raise DomainError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    cleared = sorted(n for n, v in changes.items() if v is None and declared[n].default is not None)
    if cleared:
        raise DomainError(f"These fields cannot be emptied, only changed: {', '.join(cleared)}.")
    values = {name: _typed(name, value, declared[name].type) for name, value in changes.items()}
    return replace(current if current is not None else section_type(), **values)


def _wrong(name: str, expected: str) -> DomainError:
    return DomainError(f"{name} must be {expected}.")


def _typed(name: str, value: Any, annotation: Any) -> Any:
    """The value in the field's type, or DomainError: the domain never trusts its caller's types."""
    annotation = str(annotation)
    if value is None:
        return None
    if annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise _wrong(name, "true or false")
        return value
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(name, "a whole number")
        return value
    if annotation.startswith("str"):
        if not isinstance(value, str):
            raise _wrong(name, "text")
        return value
    if annotation == "tuple[str, ...]":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _wrong(name, "a list of texts")
        return tuple(value)
    if annotation == "tuple[Goal, ...]":
        if not isinstance(value, list | tuple):
            raise _wrong(name, "a list of goals")
        return tuple(_goal(n, g) for n, g in enumerate(value, start=1))
    raise _wrong(name, annotation)  # pragma: no cover - a field type this code does not know


def _goal(n: int, value: Any) -> Goal:
    if isinstance(value, Goal):
        return value
    if not isinstance(value, dict) or set(value) - {"text", "category", "target_date"}:
        raise DomainError(f"Goal {n} must have a text, a category and optionally a target date.")
    text, category = value.get("text"), value.get("category")
    target = value.get("target_date")
    if not isinstance(text, str) or not isinstance(category, str):
        raise DomainError(f"Goal {n} needs a text and a category (a help category).")
    if isinstance(target, str):
        try:
            target = date.fromisoformat(target)
        except ValueError:
            raise DomainError(f"The target date of goal {n} is not a date (YYYY-MM-DD).") from None
    if target is not None and (isinstance(target, datetime) or not isinstance(target, date)):
        raise DomainError(f"The target date of goal {n} is not a date (YYYY-MM-DD).")
    return Goal(text=text, category=category, target_date=target)


def apply_changes(current: Profile, changes: dict[str, Any]) -> Profile:
    """The profile with a partial edit applied: sections merge field by field; a section sent
    as null is removed (no longer a mentor, no longer a mentee, identity withdrawn)."""
    unknown = set(changes) - set(TOP_LEVEL) - set(SECTIONS)
    if unknown:
        raise DomainError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    profile = current
    for name in TOP_LEVEL:
        if name in changes:
            if not isinstance(changes[name], str):
                raise DomainError(f"{name} must be text; it cannot be emptied, only changed.")
            profile = replace(profile, **{name: changes[name]})
    for name, section_type in SECTIONS.items():
        if name not in changes:
            continue
        value = changes[name]
        if value is not None and not isinstance(value, dict):
            raise DomainError(f"{name} must be an object of its fields, or null to remove it.")
        merged = None if value is None else _merge(section_type, getattr(current, name), value)
        profile = replace(profile, **{name: merged})
    return profile


@dataclass(frozen=True)
class PersonRef:
    """What an edit needs to know of the person besides the profile."""

    id: str
    network_id: str
    institution_id: str
    version: int


def update_profile(
    person: PersonRef,
    current: Profile,
    changes: dict[str, Any],
    expected_version: int,
    vocab: Vocabularies,
) -> tuple[Profile, list[CloudEvent]]:
    """Apply an edit to the version the caller read; no event when nothing others may see changed.

    `ProfileUpdated` carries the public and matching-relevant state, never identity attributes;
    those go in `IdentityAttributesChanged` only (attributes empty when withdrawn).
    """
    if expected_version != person.version:
        raise StaleVersion(
            f"This profile has changed since you read it (you edited version {expected_version}, "
            f"it is now at version {person.version}). Read it again and reapply your change."
        )
    candidate = validate_profile(apply_changes(current, changes), vocab.allowing(current), person.id)
    if not candidate.roles:
        raise DomainError("A person must stay a mentor, a mentee or both.")
    changed = [
        name for name in (*TOP_LEVEL, *SECTIONS)
        if getattr(candidate, name) != getattr(current, name)
    ]
    if not changed:
        return current, []
    version = person.version + 1
    now = _now()
    events: list[CloudEvent] = []
    announced = [name for name in changed if name != "identity"]
    if announced:
        events.append(_event(ProfileUpdated(
            person_id=person.id,
            network_id=person.network_id,
            institution_id=person.institution_id,
            display_name=candidate.display_name,
            career_stage=candidate.career_stage,
            roles=candidate.roles,
            mentor=_plain(candidate.mentor),
            mentee=_plain(candidate.mentee),
            changed=announced,
            version=version,
            updated_at=now,
        ), person))
    before, after = current.mentor, candidate.mentor
    if after is not None and (before is None or before.capacity != after.capacity):
        events.append(_event(MentorCapacityChanged(
            person_id=person.id,
            network_id=person.network_id,
            capacity=after.capacity,
            previous_capacity=before.capacity if before else None,
            version=version,
            changed_at=now,
        ), person))
    if after is not None and (before is None or before.paused != after.paused) and (
        before is not None or after.paused
    ):
        events.append(_event(MentorPaused(
            person_id=person.id,
            network_id=person.network_id,
            paused=after.paused,
            version=version,
            changed_at=now,
        ), person))
    if "identity" in changed:
        events.append(_event(IdentityAttributesChanged(
            person_id=person.id,
            network_id=person.network_id,
            institution_id=person.institution_id,
            attributes=identity_attributes(candidate.identity),
            use_for_matching=bool(candidate.identity and candidate.identity.affinity_matching),
            version=version,
            changed_at=now,
        ), person))
    return candidate, events


def identity_attributes(identity: Identity | None) -> dict[str, str]:
    """The attributes the person chose to give, as text (`true`/`false` for yes/no answers);
    an unanswered one is left out rather than published as unknown."""
    if identity is None:
        return {}
    values = asdict(identity)
    values.pop("affinity_matching")
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in values.items()
        if value is not None
    }


def _event(payload: Any, person: PersonRef) -> CloudEvent:
    return new_event(payload, subject=person.id, tenant_id=person.network_id, source=SOURCE)


def _plain(section: Any) -> dict[str, Any] | None:
    """The section as plain data (lists, goals as dicts). By hand rather than `asdict`, whose
    deep copies were a third of a roster import's CPU."""
    if section is None:
        return None
    values = {}
    for item in fields(section):
        value = getattr(section, item.name)
        if isinstance(value, tuple):
            value = [
                {"text": v.text, "category": v.category, "target_date": v.target_date}
                if isinstance(v, Goal) else v
                for v in value
            ]
        values[item.name] = value
    return values


# ---------------------------------------------------------------- documents and views


def profile_document(profile: Profile) -> dict[str, Any]:
    """The fields the person document stores for the profile (queries use their paths)."""
    mentor, mentee = _plain(profile.mentor), _plain(profile.mentee)
    if mentor is not None:
        mentor["accepting"] = profile.mentor.accepting
    if mentee is not None:
        for goal in mentee["goals"]:
            if goal["target_date"] is not None:
                goal["target_date"] = goal["target_date"].isoformat()
    return {
        "display_name": profile.display_name,
        "name_search": profile.display_name.casefold(),
        "career_stage": profile.career_stage,
        "roles": profile.roles,
        "specialties": sorted(
            ({profile.mentor.specialty} if profile.mentor and profile.mentor.specialty else set())
            | set(profile.mentee.specialty_interests if profile.mentee else ())
        ),
        "mentor": mentor,
        "mentee": mentee,
        "identity": _plain(profile.identity),
        # First-flow fields, kept in step for readers of the registration shape.
        "capacity": profile.mentor.capacity if profile.mentor else 0,
        "specialty_interests": list(profile.mentee.specialty_interests) if profile.mentee else [],
    }


def profile_from_document(document: dict[str, Any]) -> Profile:
    """The profile of a stored person; people registered before profiles get one from their
    registration (role, capacity, specialty interests)."""
    mentor = document.get("mentor")
    mentee = document.get("mentee")
    role = document.get("role")
    if mentor is None and mentee is None:
        if role == "mentor":
            mentor = {"capacity": document.get("capacity", 1)}
        else:
            mentee = {"specialty_interests": document.get("specialty_interests", [])}
    identity = document.get("identity")
    return Profile(
        display_name=document["display_name"],
        career_stage=document["career_stage"],
        mentor=_section(MentorProfile, mentor),
        mentee=_section(MenteeProfile, mentee),
        identity=_section(Identity, identity),
    )


def _section(section_type: type, values: dict[str, Any] | None) -> Any:
    if values is None:
        return None
    known = {f.name for f in fields(section_type)}
    values = {k: v for k, v in values.items() if k in known}
    if section_type is MenteeProfile and "goals" in values:
        values["goals"] = tuple(
            Goal(text=g["text"], category=g["category"],
                 target_date=date.fromisoformat(g["target_date"]) if g.get("target_date") else None)
            for g in values["goals"]
        )
    return section_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


PUBLIC_MENTOR = ("specialty", "subspecialty", "help_offered", "languages", "meeting_modes",
                 "time_zone", "accepting")
PUBLIC_MENTEE = ("specialty_interests",)


def full_view(document: dict[str, Any], *, own: bool) -> dict[str, Any]:
    """Everything stored of the person, for coordinators and admins; identity only when `own`."""
    profile = profile_from_document(document)
    view = {
        "id": document["_id"],
        "network_id": document["network_id"],
        "institution_id": document["institution_id"],
        "program_id": document.get("program_id"),
        "program_ids": document.get("program_ids") or _programs(document),
        "role": document.get("role"),
        "email": document["email"],
        "registered_at": document["registered_at"],
        "version": document.get("version", 1),
        **{k: v for k, v in profile_document(profile).items() if k != "name_search"},
    }
    if not own:
        view.pop("identity")
    return view


def public_view(document: dict[str, Any]) -> dict[str, Any]:
    """What another participant of a shared program may see: no email, goals, boundaries,
    capacity details or identity attributes."""
    profile = profile_from_document(document)
    stored = profile_document(profile)
    return {
        "id": document["_id"],
        "network_id": document["network_id"],
        "institution_id": document["institution_id"],
        "program_ids": document.get("program_ids") or _programs(document),
        "display_name": profile.display_name,
        "career_stage": profile.career_stage,
        "roles": profile.roles,
        "mentor": {k: stored["mentor"][k] for k in PUBLIC_MENTOR} if stored["mentor"] else None,
        "mentee": {k: stored["mentee"][k] for k in PUBLIC_MENTEE} if stored["mentee"] else None,
    }


def _programs(document: dict[str, Any]) -> list[str]:
    return [document["program_id"]] if document.get("program_id") else []


def registration_fields(role: str, capacity: int, specialty_interests: list[str],
                        program_id: str | None, display_name: str) -> dict[str, Any]:
    """Profile fields a first-flow registration stores, so people are listable at once."""
    profile = Profile(
        display_name=display_name,
        career_stage="",
        mentor=MentorProfile(capacity=capacity) if role == "mentor" else None,
        mentee=MenteeProfile(specialty_interests=tuple(specialty_interests))
        if role == "mentee" else None,
    )
    stored = profile_document(profile)
    stored.pop("career_stage")
    stored.pop("display_name")
    stored.pop("capacity")
    stored.pop("specialty_interests")
    return {**stored, "program_ids": [program_id] if program_id else [], "updated_at": None}


def now() -> datetime:
    return _now()
