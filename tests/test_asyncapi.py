"""docs/asyncapi.yaml: current with the code, and an AsyncAPI 3.0.0 document in shape.

The structural checks read the committed file (what people and tools read); the staleness check
compares it with a fresh generation, so when an event type is added without regenerating, the
first test says what to run.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.events import REGISTRY, EventSpec
from shared.events import asyncapi
from shared.events.topics import ALL_TOPICS, DOMAIN_TOPICS, dead_letter_topic
from shared.messaging.outbox import record_headers
from shared.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
REGENERATE = "run python -m shared.events.asyncapi"

# Keys the AsyncAPI 3.0.0 JSON schema allows on each object (besides `x-` extensions).
ALLOWED = {
    "root": {"asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations",
             "components"},
    "info": {"title", "version", "description", "termsOfService", "contact", "license", "tags",
             "externalDocs"},
    "server": {"host", "pathname", "title", "summary", "description", "protocol",
               "protocolVersion", "variables", "security", "tags", "externalDocs", "bindings"},
    "channel": {"address", "messages", "title", "summary", "description", "servers",
                "parameters", "tags", "externalDocs", "bindings"},
    "operation": {"action", "channel", "title", "summary", "description", "security", "tags",
                  "externalDocs", "bindings", "traits", "messages", "reply"},
    "message": {"headers", "payload", "correlationId", "contentType", "name", "title", "summary",
                "description", "tags", "externalDocs", "bindings", "examples", "traits",
                "deprecated"},
    "components": {"schemas", "servers", "channels", "operations", "messages", "securitySchemes",
                   "serverVariables", "parameters", "correlationIds", "replies", "replyAddresses",
                   "externalDocs", "tags", "operationTraits", "messageTraits", "serverBindings",
                   "channelBindings", "operationBindings", "messageBindings"},
    "kafka_message_binding": {"key", "schemaIdLocation", "schemaIdPayloadEncoding",
                              "schemaLookupStrategy", "bindingVersion"},
    "kafka_channel_binding": {"topic", "partitions", "replicas", "topicConfiguration",
                              "bindingVersion"},
}
COMPONENT_KEY = re.compile(r"^[\w\d.\-_]+$")


def _unknown(obj: dict[str, Any], kind: str) -> set[str]:
    return {k for k in obj if not k.startswith("x-")} - ALLOWED[kind]


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are expected, got {ref}"
    node: Any = document
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (at {part!r})"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    assert DOCUMENT.is_file(), f"{DOCUMENT.relative_to(ROOT)} is missing: {REGENERATE}"
    return yaml.safe_load(DOCUMENT.read_text())


@pytest.fixture(scope="module")
def consumers() -> list[asyncapi.Consumer]:
    return asyncapi.discover_consumers()


def test_committed_document_is_current() -> None:
    fresh = asyncapi.render()
    committed = DOCUMENT.read_text() if DOCUMENT.is_file() else ""
    if committed != fresh:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    "docs/asyncapi.yaml (committed)",
                    "docs/asyncapi.yaml (generated)",
                )
            )[:60]
        )
        pytest.fail(f"docs/asyncapi.yaml is stale: {REGENERATE}\n{diff}")


def test_generation_is_deterministic() -> None:
    assert asyncapi.render() == asyncapi.render()


def test_check_flag_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "asyncapi.yaml"
    assert asyncapi.main(["--check", "--output", str(target)]) == 1  # missing
    assert asyncapi.main(["--output", str(target)]) == 0
    assert asyncapi.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("MenteeRegistered", "MenteeSignedUp", 1))
    capsys.readouterr()
    assert asyncapi.main(["--check", "--output", str(target)]) == 1
    assert REGENERATE in capsys.readouterr().err


def test_a_new_event_type_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """The staleness check can fail: registering an event type changes the generated text."""
    base = REGISTRY["MentorRegistered"]
    probe = EventSpec("MentorProbed", 1, base.topic, base.aggregate, base.model)
    before = asyncapi.render()
    monkeypatch.setitem(REGISTRY, probe.name, probe)
    after = asyncapi.render()
    assert after != before
    assert "MentorProbed" in yaml.safe_load(after)["components"]["messages"]


def test_top_level_shape(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert not _unknown(document, "root")
    info = document["info"]
    assert isinstance(info["title"], str) and info["title"]
    assert isinstance(info["version"], str) and info["version"]
    assert not _unknown(info, "info")
    assert set(document["servers"]) >= {"production", "embedded"}
    for name, server in document["servers"].items():
        assert server["protocol"] == "kafka", name
        assert re.fullmatch(r"[\w.\-]+:\d+", server["host"]), name
        assert not _unknown(server, "server"), name
    assert not _unknown(document["components"], "components")
    for section in ("messages", "schemas"):
        for key in document["components"].get(section, {}):
            assert COMPONENT_KEY.match(key), f"components.{section} key {key!r}"


def test_every_registered_event_is_a_message(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    for name, spec in REGISTRY.items():
        assert name in messages, f"event type {name} is not in docs/asyncapi.yaml: {REGENERATE}"
        message = messages[name]
        assert not _unknown(message, "message"), name
        assert message["name"] == name
        assert message["title"] and message["summary"]
        assert message["summary"] in " ".join(spec.description.split())
        assert message["contentType"] == "application/cloudevents+json"
        payload = message["payload"]
        assert payload["properties"]["type"]["const"] == name
        assert payload["properties"]["schemaversion"]["const"] == spec.version
        expected = spec.model.model_json_schema(ref_template=asyncapi.SCHEMA_REF_TEMPLATE)
        expected.pop("$defs", None)
        assert payload["properties"]["data"] == expected, f"{name}: data is not the model schema"
        assert "data" in payload["required"]
        binding = message["bindings"]["kafka"]
        assert not _unknown(binding, "kafka_message_binding"), name
        assert binding["key"]["type"] == "string"
        assert spec.aggregate in binding["key"]["description"]


def test_payload_is_the_cloudevent_envelope(document: dict[str, Any]) -> None:
    from shared.events import CloudEvent

    envelope = set(CloudEvent.model_fields)
    for name in REGISTRY:
        payload = document["components"]["messages"][name]["payload"]
        assert set(payload["properties"]) == envelope, name
        assert set(payload["required"]) <= envelope, name


def test_headers_are_the_ones_the_relay_writes(document: dict[str, Any]) -> None:
    for name, spec in REGISTRY.items():
        written = [h for h, _ in record_headers(asyncapi._sample_event(spec))]
        headers = document["components"]["messages"][name]["headers"]
        assert list(headers["properties"]) == written, name
        assert headers["required"] == written, name
        assert {"ce_id", "ce_type", "correlation_id", "content-type"} <= set(written)
        assert headers["properties"]["ce_type"]["const"] == name


def test_channel_addresses_are_topics(document: dict[str, Any]) -> None:
    topics = set(ALL_TOPICS) | {dead_letter_topic(s) for s in DEFAULT_PORTS}
    addresses = {}
    for cid, channel in document["channels"].items():
        assert not _unknown(channel, "channel"), cid
        assert channel["address"] in topics, f"channel {cid}: {channel['address']} is not a topic"
        assert channel["address"] not in addresses, f"two channels for {channel['address']}"
        addresses[channel["address"]] = cid
        binding = channel["bindings"]["kafka"]
        assert not _unknown(binding, "kafka_channel_binding"), cid
        assert binding["topic"] == channel["address"]
    assert set(ALL_TOPICS) <= set(addresses), "every topic the services create has a channel"
    for name, spec in REGISTRY.items():
        assert spec.topic in ALL_TOPICS, f"{name} is published on {spec.topic}, not created"
        channel = document["channels"][addresses[spec.topic]]
        assert name in channel["messages"], f"{name} missing from channel {spec.topic}"


def test_references_resolve(document: dict[str, Any]) -> None:
    refs = _refs(document)
    assert refs
    for ref in refs:
        _resolve(document, ref)


def test_operations_reference_their_channel(document: dict[str, Any]) -> None:
    assert document["operations"]
    for oid, operation in document["operations"].items():
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", oid), oid
        assert not _unknown(operation, "operation"), oid
        assert operation["action"] in ("send", "receive"), oid
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), oid
        _resolve(document, channel_ref)
        for message in operation.get("messages", []):
            # AsyncAPI 3: an operation's messages are a subset of its channel's messages.
            assert message["$ref"].startswith(channel_ref + "/messages/"), (oid, message)
            _resolve(document, message["$ref"])


def test_each_domain_topic_is_sent_by_the_service_in_its_name(document: dict[str, Any]) -> None:
    for topic in DOMAIN_TOPICS:
        producer = re.fullmatch(r"mentorship\.(\w+)\.v\d+", topic)
        assert producer, topic
        assert producer[1] in DEFAULT_PORTS, f"{topic} names no service"
        senders = [
            op for op in document["operations"].values()
            if op["action"] == "send"
            and _resolve(document, op["channel"]["$ref"])["address"] == topic
        ]
        assert [op["x-service"] for op in senders] == [producer[1]], topic
        published = {n for n, s in REGISTRY.items() if s.topic == topic}
        assert {m["$ref"].rsplit("/", 1)[1] for m in senders[0]["messages"]} == published


def test_consumers_receive_their_subscriptions(
    document: dict[str, Any], consumers: list[asyncapi.Consumer]
) -> None:
    assert consumers, "some service consumes events"
    receives = {
        (op["x-service"], _resolve(document, op["channel"]["$ref"])["address"])
        for op in document["operations"].values()
        if op["action"] == "receive"
    }
    expected = {(c.service, topic) for c in consumers for topic in c.topics}
    assert receives == expected


def test_dead_letter_topics_document_the_dlq_headers(
    document: dict[str, Any], consumers: list[asyncapi.Consumer]
) -> None:
    # The dlq_* header names the consumer really writes, read from its source.
    source = (ROOT / "shared" / "messaging" / "consumer.py").read_text()
    written = set(re.findall(r"""["'](dlq_[a-z_]+)["']""", source))
    assert written, "consumer.py writes dlq_* headers"
    by_address = {c["address"]: c for c in document["channels"].values()}
    for consumer in consumers:
        topic = dead_letter_topic(consumer.service)
        assert topic in by_address, f"no channel for {topic}"
        for ref in by_address[topic]["messages"].values():
            headers = _resolve(document, ref["$ref"])["headers"]
            assert written <= set(headers["properties"]), topic
            assert written <= set(headers["required"]), topic
        senders = [
            op for op in document["operations"].values()
            if op["action"] == "send" and _resolve(document, op["channel"]["$ref"]) is by_address[topic]
        ]
        assert [op["x-service"] for op in senders] == [consumer.service]
