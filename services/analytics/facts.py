"""What analytics keeps of an event: its payload without free text or contact details.

The store holds these facts so the projection can be rebuilt at start without the broker.
Emails, notes, agendas, goal texts and reasons in words are never kept: no measure needs
them. Names stay only until the person is erased (the erasure removes them from every fact
already stored, and a fact stored later for an erased person never carries them).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from shared.events import CloudEvent
from shared.events.registry import spec_for

# Free text and contact details: dropped from every fact, whatever the type.
DROPPED = (
    "email", "text", "title", "note", "agenda", "location", "topics", "explanation", "reason",
    "specialty_interests", "coordinator_emails",
)
# Personal data a measure needs while the person allows it; removed on erasure.
PERSONAL = ("display_name", "attributes")


# Where `reason` is a code a measure needs rather than words.
REASON_IS_A_CODE = {"MentorshipEnded"}
PLACEHOLDERS = {"email": "erased@invalid", "display_name": "(erased)"}


_KEPT_DROPPED = frozenset(DROPPED) - {"reason"}
_ALL_DROPPED = frozenset(DROPPED)


def to_fact(event: CloudEvent, payload: BaseModel, erased: bool) -> dict[str, Any]:
    dropped = _KEPT_DROPPED if event.type in REASON_IS_A_CODE else _ALL_DROPPED
    if _flat_times(type(payload)) is not None:
        # A flat payload (every mentorship event, the bulk of a year): its validated fields
        # as they are, times as ISO strings, several times cheaper than a JSON-mode dump.
        data = {name: _plain(value) for name, value in payload.__dict__.items()
                if name not in dropped}
    else:
        data = payload.model_dump(mode="json", exclude=set(dropped))
        if isinstance(data.get("mentor"), dict):
            data["mentor"].pop("do_not_match", None)
    data.pop("mentee", None)  # goals and needs in words; no measure uses them
    if erased:
        for name in PERSONAL:
            data.pop(name, None)
    fact: dict[str, Any] = {"_id": event.id, "type": event.type, "data": data}
    if "person_id" in data:
        fact["person_id"] = data["person_id"]
    return fact


def _plain(value: Any) -> Any:
    if isinstance(value, date):  # datetime too: stored as ISO text like a JSON-mode dump
        return value.isoformat()
    if isinstance(value, list | dict):
        return value.copy()
    return value


def payload_of(fact: dict[str, Any]) -> BaseModel | None:
    """The typed payload again; required fields that were dropped get a placeholder.

    Facts were validated when their event was consumed, so flat payloads (every mentorship
    event, the bulk of a year) are rebuilt without validating again: only their times are
    parsed. Loading a year of a big network at start is several times faster that way.
    """
    spec = spec_for(fact["type"])
    if spec is None:
        return None
    data = dict(fact["data"])
    for name, info in spec.model.model_fields.items():
        if name not in data and info.is_required():
            data[name] = PLACEHOLDERS.get(name, "-")
    times = _flat_times(spec.model)
    if times is None:
        return spec.model.model_validate(data)
    for name, parse in times:
        value = data.get(name)
        if isinstance(value, str):
            data[name] = parse(value)
    return spec.model.model_construct(**data)


_FLAT: dict[type, list[tuple[str, Any]] | None] = {}


def _flat_times(model: type[BaseModel]) -> list[tuple[str, Any]] | None:
    """The date/datetime fields of a payload without nested models (None if it has some)."""
    if model not in _FLAT:
        times: list[tuple[str, Any]] | None = []
        for name, info in model.model_fields.items():
            kinds = {info.annotation, *get_args(info.annotation)}
            if any(isinstance(k, type) and issubclass(k, BaseModel) for k in kinds) or any(
                get_origin(k) in (list, dict) and any(
                    isinstance(a, type) and issubclass(a, BaseModel) for a in get_args(k)) for k in kinds
            ):
                times = None
                break
            if datetime in kinds:
                times.append((name, datetime.fromisoformat))
            elif date in kinds:
                times.append((name, date.fromisoformat))
        _FLAT[model] = times
    return _FLAT[model]
