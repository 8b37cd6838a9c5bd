"""The CloudEvents envelope and the registry: what consumers can trust about a record."""

import json
from datetime import UTC, datetime

import pytest

from shared.events import REGISTRY, EventRejected, decode_event, new_event
from shared.events.schemas import MenteeRegistered
from shared.events.topics import ALL_TOPICS
from shared.logging import bind_correlation_id
from tests.support import mentee_registered


def test_new_event_fills_the_cloudevents_attributes_and_extensions():
    bind_correlation_id("corr-1")
    event = new_event(mentee_registered(registered_at=datetime(2026, 1, 2, tzinfo=UTC), email="ada@example.org"), subject="p1", tenant_id="n1", source="/services/profiles")
    document = json.loads(event.to_bytes())
    assert document["specversion"] == "1.0"
    assert document["type"] == "MenteeRegistered"
    assert document["subject"] == "p1"
    assert document["tenantid"] == "n1"
    assert document["correlationid"] == "corr-1"
    assert document["schemaversion"] == 1
    assert document["data"]["email"] == "ada@example.org"


def test_a_record_round_trips_to_the_typed_payload():
    event = new_event(mentee_registered(registered_at=datetime(2026, 1, 2, tzinfo=UTC)), subject="p1", tenant_id="n1", source="/s")
    decoded, payload = decode_event(event.to_bytes())
    assert decoded.id == event.id
    assert isinstance(payload, MenteeRegistered)
    assert payload.registered_at == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "MenteeRegistered"}', "not a valid CloudEvent"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(EventRejected, match=reason):
        decode_event(raw)


def test_unknown_type_and_invalid_payload_and_future_version_are_rejected():
    event = new_event(mentee_registered(registered_at=datetime(2026, 1, 2, tzinfo=UTC)), subject="p1", tenant_id="n1", source="/s")
    unknown = event.model_copy(update={"type": "MenteeTeleported"})
    with pytest.raises(EventRejected, match="unknown event type 'MenteeTeleported'"):
        decode_event(unknown.to_bytes())
    broken = event.model_copy(update={"data": {**event.data, "email": None}})
    with pytest.raises(EventRejected, match="invalid MenteeRegistered payload: email"):
        decode_event(broken.to_bytes())
    future = event.model_copy(update={"schemaversion": 99})
    with pytest.raises(EventRejected, match="schema version 99 is newer"):
        decode_event(future.to_bytes())


def test_every_registered_event_is_past_tense_and_travels_on_a_topic_the_services_create():
    assert REGISTRY, "the registry should not be empty"
    for name, spec in REGISTRY.items():
        assert name[0].isupper() and name.endswith(("ed", "Set", "Sent", "Read", "Withdrawn")), name
        assert spec.topic in ALL_TOPICS
        assert spec.description
