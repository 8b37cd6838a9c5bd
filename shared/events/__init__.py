"""Event envelope (CloudEvents 1.0, structured JSON) and the versioned registry of payloads."""

from shared.events.envelope import CloudEvent, EventRejected, decode_event, new_event
from shared.events import schemas  # noqa: F401  (registers every payload model)
from shared.events.registry import REGISTRY, EventSpec, event_type, spec_for

__all__ = [
    "REGISTRY",
    "CloudEvent",
    "EventRejected",
    "EventSpec",
    "decode_event",
    "event_type",
    "new_event",
    "spec_for",
]
