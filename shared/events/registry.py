"""The registry of event types: one pydantic payload model per past-tense event name.

Every event the platform publishes is declared here (via `event_type`), with the topic it
travels on and its schema version, so consumers can validate what they receive and
`docs/asyncapi.yaml` can be generated from one source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True)
class EventSpec:
    """What the platform knows about one event type."""

    name: str
    version: int
    topic: str
    aggregate: str
    model: type[BaseModel]

    @property
    def description(self) -> str:
        return (self.model.__doc__ or self.name).strip()


REGISTRY: dict[str, EventSpec] = {}


def event_type(
    name: str, *, topic: str, aggregate: str, version: int = 1
) -> Callable[[type[BaseModel]], type[BaseModel]]:
    """Class decorator that registers a payload model under its past-tense event name."""

    def register(model: type[BaseModel]) -> type[BaseModel]:
        if name in REGISTRY and REGISTRY[name].model is not model:
            raise ValueError(f"event type {name} is registered twice")
        REGISTRY[name] = EventSpec(name, version, topic, aggregate, model)
        model.__event_type__ = name  # type: ignore[attr-defined]
        return model

    return register


def spec_for(name: str) -> EventSpec | None:
    return REGISTRY.get(name)


def spec_of(payload: BaseModel) -> EventSpec:
    name = getattr(type(payload), "__event_type__", None)
    if name is None:
        raise TypeError(f"{type(payload).__name__} is not a registered event payload")
    return REGISTRY[name]
