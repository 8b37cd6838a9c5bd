"""The profile form, pure: what a person still has to fill in, and the form as a profile patch.

No I/O: the page reads the profile and vocabularies, this turns the posted fields into the
`PATCH /people/{id}/profile` body profiles expects (only the sections the person has), and
profiles validates it against the network's vocabularies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MODES = ("in-person", "virtual")


def profile_gaps(person: Mapping[str, Any]) -> list[str]:
    """What is missing for matching to work well, in words (empty: complete)."""
    gaps = []
    mentee = person.get("mentee")
    mentor = person.get("mentor")
    if mentee is not None:
        if not mentee.get("needs"):
            gaps.append("what you need help with")
        if not mentee.get("specialty_interests"):
            gaps.append("your specialty interests")
    if mentor is not None:
        if not mentor.get("specialty"):
            gaps.append("your specialty")
        if not mentor.get("help_offered"):
            gaps.append("what you can help with")
        if not mentor.get("time_zone"):
            gaps.append("your time zone")
    return gaps


def _list(form: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [v.strip() for v in form.get(name, []) if v.strip()]


def _one(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def _flag(form: Mapping[str, Sequence[str]], name: str) -> bool:
    return _one(form, name) == "true"


def _tri(form: Mapping[str, Sequence[str]], name: str) -> bool | None:
    value = _one(form, name)
    return {"yes": True, "no": False}.get(value)


def _languages(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]


class FormProblem(ValueError):
    """A field the form itself can tell is wrong (name, message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _int(form: Mapping[str, Sequence[str]], name: str, low: int, high: int, what: str) -> int:
    raw = _one(form, name)
    try:
        value = int(raw)
    except ValueError:
        raise FormProblem(name, f"Enter {what} as a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise FormProblem(name, f"Enter {what} from {low} to {high}.")
    return value


def profile_patch(person: Mapping[str, Any], form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The PATCH body for the sections this person has; FormProblem for a bad number."""
    patch: dict[str, Any] = {}
    name = _one(form, "display_name")
    if name:
        patch["display_name"] = name
    if person.get("mentee") is not None:
        mode = _one(form, "preferred_mode")
        patch["mentee"] = {
            "specialty_interests": _list(form, "specialty_interests"),
            "needs": _list(form, "needs"),
            "preferred_mode": mode if mode in MODES else None,
            "preferred_language": _one(form, "preferred_language") or None,
            "prefer_same_institution": _tri(form, "prefer_same_institution"),
            "mentors_wanted": _int(form, "mentors_wanted", 1, 10, "how many mentors you want"),
        }
    if person.get("mentor") is not None:
        patch["mentor"] = {
            "specialty": _one(form, "specialty") or None,
            "help_offered": _list(form, "help_offered"),
            "languages": _languages(_one(form, "languages")),
            "meeting_modes": [m for m in _list(form, "meeting_modes") if m in MODES],
            "time_zone": _one(form, "time_zone") or None,
            "capacity": _int(form, "capacity", 0, 50, "how many mentees you can take"),
            "paused": _flag(form, "paused"),
        }
    if _flag(form, "identity_shared"):
        patch["identity"] = {
            "first_generation": _tri(form, "first_generation"),
            "under_represented_in_medicine": _tri(form, "under_represented_in_medicine"),
            "gender": _one(form, "gender") or None,
            "affinity_matching": _flag(form, "affinity_matching"),
        }
    elif person.get("identity"):
        patch["identity"] = None  # withdrawn: the person unticked sharing
    return patch


def shown_after_error(person: Mapping[str, Any], form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The person as the form had them when saving failed, so nothing typed is lost."""
    shown = dict(person)
    shown["display_name"] = _one(form, "display_name") or person.get("display_name")
    if person.get("mentee") is not None:
        shown["mentee"] = {
            **person["mentee"],
            "needs": _list(form, "needs"),
            "specialty_interests": _list(form, "specialty_interests"),
            "preferred_mode": _one(form, "preferred_mode") or None,
            "preferred_language": _one(form, "preferred_language"),
            "prefer_same_institution": _tri(form, "prefer_same_institution"),
            "mentors_wanted": _one(form, "mentors_wanted"),
        }
    if person.get("mentor") is not None:
        shown["mentor"] = {
            **person["mentor"],
            "specialty": _one(form, "specialty") or None,
            "help_offered": _list(form, "help_offered"),
            "languages": _languages(_one(form, "languages")),
            "meeting_modes": _list(form, "meeting_modes"),
            "time_zone": _one(form, "time_zone") or None,
            "capacity": _one(form, "capacity"),
            "paused": _flag(form, "paused"),
        }
    if _flag(form, "identity_shared"):
        shown["identity"] = {
            "first_generation": _tri(form, "first_generation"),
            "under_represented_in_medicine": _tri(form, "under_represented_in_medicine"),
            "gender": _one(form, "gender"), "affinity_matching": _flag(form, "affinity_matching"),
        }
    return shown
