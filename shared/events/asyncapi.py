"""The AsyncAPI 3.0.0 document of the platform's events, generated from the code.

Everything in `docs/asyncapi.yaml` comes from one place or another in the code, so the document
cannot drift from what runs:

* one message per registered event type (`shared.events.REGISTRY`): its payload is the
  CloudEvent envelope (`CloudEvent`) with `data` = the payload model's JSON schema, its headers
  are the Kafka headers the outbox relay writes (`record_headers`), its key is the aggregate id;
* one channel per topic (`shared.events.topics`), listing the event types published on it, and
  one dead-letter channel per consuming service (`dead_letter_topic`);
* a `send` operation per domain topic for the service named in the topic
  (`mentorship.<service>.v<n>`), a `receive` operation per topic a service subscribes to (its
  `DEFINITION` in `services/<name>/app.py`) and a `send` operation per dead-letter topic.

`python -m shared.events.asyncapi` rewrites the file; `--check` exits 1 when the committed file
differs from what the code generates now (tests/test_asyncapi.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from shared.events import REGISTRY, CloudEvent, EventSpec
from shared.events.topics import DOMAIN_TOPICS, dead_letter_topic
from shared.settings import DEFAULT_PORTS, ServiceSettings

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/cloudevents+json"
KAFKA_BINDING_VERSION = "0.4.0"
SCHEMA_REF_TEMPLATE = "#/components/schemas/{model}"
DEAD_LETTER_MESSAGE = "DeadLetteredRecord"
# Where the production-shaped stack (docker-compose.yml) has its broker.
PRODUCTION_BOOTSTRAP = "kafka:9092"
DOMAIN_TOPIC = re.compile(r"^mentorship\.(?P<service>[a-z][a-z0-9_]*)\.v(?P<version>[0-9]+)$")

_ROOT = Path(__file__).resolve().parents[2]
REPO_ROOT = _ROOT if (_ROOT / "pyproject.toml").is_file() else Path.cwd()
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "asyncapi.yaml"
REGENERATE_COMMAND = "python -m shared.events.asyncapi"

# What each Kafka header of a published event means. The names come from the relay
# (`record_headers`); a header it starts writing must be described here before the
# document can be generated.
EVENT_HEADERS: dict[str, dict[str, Any]] = {
    "content-type": {
        "type": "string",
        "const": CONTENT_TYPE,
        "description": "Media type of the record value: a structured-mode CloudEvent.",
    },
    "ce_id": {
        "type": "string",
        "minLength": 1,
        "description": "The event id (the envelope's `id`), for deduplication without parsing.",
    },
    "ce_type": {
        "type": "string",
        "minLength": 1,
        "description": "The event type (the envelope's `type`), for routing without parsing.",
    },
    "correlation_id": {
        "type": "string",
        "minLength": 1,
        "description": "The correlation id (the envelope's `correlationid`) of the request or "
        "event that caused this one.",
    },
}

# Headers the consumer adds when it moves a record to its dead-letter topic
# (`EventConsumer._dead_letter`); the original record's headers come first, unchanged.
DEAD_LETTER_HEADERS: dict[str, dict[str, Any]] = {
    "dlq_reason": {
        "type": "string",
        "description": "Why the record could not be processed (not a CloudEvent, unknown or "
        "invalid payload, or the handler kept failing).",
    },
    "dlq_original_topic": {"type": "string", "description": "Topic the record was read from."},
    "dlq_original_partition": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Partition the record was read from (decimal).",
    },
    "dlq_original_offset": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Offset of the record in that partition (decimal).",
    },
    "dlq_service": {"type": "string", "description": "The consuming service that gave up."},
    "dlq_failed_at": {
        "type": "string",
        "format": "date-time",
        "description": "When it gave up (ISO 8601, UTC).",
    },
}


@dataclass(frozen=True)
class Consumer:
    """What one service consumes: its subscribed topics and the event types it handles."""

    service: str
    topics: tuple[str, ...]
    handled: frozenset[str]


def discover_consumers(services: Sequence[str] = tuple(DEFAULT_PORTS)) -> list[Consumer]:
    """The consuming services, from each `services.<name>.app.DEFINITION`.

    A service without a `DEFINITION` (the web app, which only calls the others' HTTP
    APIs) neither consumes nor publishes events, so it has no place in the document.
    """
    consumers = []
    for name in sorted(services):
        definition = getattr(importlib.import_module(f"services.{name}.app"), "DEFINITION", None)
        if definition is None or not definition.subscriptions:
            continue
        handled = frozenset(definition.handlers()) if definition.handlers else frozenset()
        consumers.append(Consumer(name, tuple(definition.subscriptions), handled))
    return consumers


def producer_of(topic: str) -> str:
    """The service that publishes on a domain topic, from its name `mentorship.<service>.v<n>`."""
    match = DOMAIN_TOPIC.match(topic)
    if match is None:
        raise ValueError(f"{topic!r} is not named mentorship.<service>.v<n>")
    return match["service"]


def channel_id(topic: str) -> str:
    """A channel key made of the address: `mentorship.profiles.v1` -> `profiles-v1`."""
    return topic.removeprefix("mentorship.").replace(".", "-")


def title_of(name: str) -> str:
    """`MenteeRegistered` -> `Mentee registered`."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|[0-9]|$)|[A-Z]?[a-z0-9]+|[A-Z]+", name)
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else name


def _summary(spec: EventSpec) -> tuple[str, str | None]:
    """First paragraph of the payload model's docstring, and the whole text when longer."""
    text = spec.description
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    summary = paragraphs[0] if paragraphs else spec.name
    return summary, ("\n\n".join(paragraphs) if len(paragraphs) > 1 else None)


def _sample_event(spec: EventSpec) -> CloudEvent:
    return CloudEvent(
        source="/asyncapi",
        type=spec.name,
        subject="subject",
        time=datetime(2000, 1, 1, tzinfo=UTC),
        tenantid="tenant",
        correlationid="correlation",
        schemaversion=spec.version,
        data={},
    )


def event_header_names(spec: EventSpec) -> list[str]:
    """The Kafka headers the outbox relay writes for an event of this type."""
    from shared.messaging.outbox import record_headers

    return [name for name, _ in record_headers(_sample_event(spec))]


def _headers_schema(spec: EventSpec) -> dict[str, Any]:
    names = event_header_names(spec)
    undocumented = [n for n in names if n not in EVENT_HEADERS]
    if undocumented:
        raise ValueError(
            f"record_headers() writes {undocumented}, which EVENT_HEADERS in {__name__} does not "
            "describe yet"
        )
    properties = {name: dict(EVENT_HEADERS[name]) for name in names}
    if "ce_type" in properties:
        properties["ce_type"]["const"] = spec.name
    return {
        "type": "object",
        "description": "Kafka record headers written by the outbox relay.",
        "properties": properties,
        "required": names,
    }


class _Schemas:
    """Payload JSON schemas, with nested model definitions hoisted to components.schemas."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def payload(self, spec: EventSpec) -> dict[str, Any]:
        schema = spec.model.model_json_schema(ref_template=SCHEMA_REF_TEMPLATE)
        for name, definition in schema.pop("$defs", {}).items():
            if self.components.setdefault(name, definition) != definition:
                raise ValueError(f"two different models define the JSON schema {name!r}")
        return schema


def envelope_schema(spec: EventSpec, data_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvent envelope's JSON schema, specialised to one event type."""
    schema = CloudEvent.model_json_schema()
    schema.pop("$defs", None)
    properties = schema["properties"]
    schema["title"] = f"{spec.name} CloudEvent"
    schema["description"] = (
        f"CloudEvents 1.0 envelope (structured JSON) carrying a {spec.name} payload in `data`."
    )
    properties["type"] = {**properties["type"], "const": spec.name}
    properties["subject"] = {
        **properties["subject"],
        "description": f"The {spec.aggregate} id; also the Kafka record key.",
    }
    properties["schemaversion"] = {
        **properties["schemaversion"],
        "const": spec.version,
        "description": f"Version of the `data` schema. Consumers reject versions above "
        f"{spec.version}.",
    }
    properties["tenantid"] = {**properties["tenantid"], "description": "The network id."}
    properties["data"] = dict(data_schema)
    return schema


def _message(spec: EventSpec, schemas: _Schemas) -> dict[str, Any]:
    summary, description = _summary(spec)
    message: dict[str, Any] = {
        "name": spec.name,
        "title": title_of(spec.name),
        "summary": summary,
    }
    if description:
        message["description"] = description
    message.update(
        {
            "contentType": CONTENT_TYPE,
            "headers": _headers_schema(spec),
            "payload": envelope_schema(spec, schemas.payload(spec)),
            "correlationId": {
                "description": "Correlation id of the request or event that caused this event.",
                "location": "$message.header#/correlation_id",
            },
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "minLength": 1,
                        "description": f"The {spec.aggregate} id (the CloudEvent `subject`): "
                        f"one {spec.aggregate}'s events stay in order in one partition.",
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
            "tags": [{"name": producer_of(spec.topic)}],
            "x-schema-version": spec.version,
            "x-aggregate": spec.aggregate,
        }
    )
    return message


def _dead_letter_message() -> dict[str, Any]:
    original = {name: dict(schema) for name, schema in EVENT_HEADERS.items()}
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead-lettered record",
        "summary": "A record its consumer could not process, copied unchanged with the reason.",
        "description": "Value, key and headers are the original record's; the `dlq_*` headers "
        "say why and where it came from. The value is usually one of the platform's "
        "CloudEvents, but it may be anything: an unreadable value is one reason to be here.",
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "description": "The original record's headers followed by the consumer's `dlq_*` "
            "headers.",
            "properties": {**original, **DEAD_LETTER_HEADERS},
            "required": list(DEAD_LETTER_HEADERS),
        },
        "payload": {
            "description": "The original record value, byte for byte (not validated).",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The original record key (the aggregate id), if it had one.",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _ref(*parts: str) -> dict[str, str]:
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return {"$ref": "#/" + "/".join(escaped)}


def _project_version() -> str:
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        return tomllib.loads(pyproject.read_text())["project"]["version"]
    return metadata.version("mentorship-platform")


def build_document(
    registry: Mapping[str, EventSpec] | None = None,
    consumers: Sequence[Consumer] | None = None,
) -> dict[str, Any]:
    """The AsyncAPI document as plain data (what `render` dumps to YAML)."""
    registry = REGISTRY if registry is None else registry
    consumers = discover_consumers() if consumers is None else consumers
    specs = [registry[name] for name in sorted(registry)]
    partitions = ServiceSettings.model_fields["kafka_topic_partitions"].default
    embedded_bootstrap = ServiceSettings.model_fields["kafka_bootstrap_servers"].default

    schemas = _Schemas()
    messages = {spec.name: _message(spec, schemas) for spec in specs}
    by_topic: dict[str, list[str]] = {topic: [] for topic in DOMAIN_TOPICS}
    for spec in specs:
        by_topic.setdefault(spec.topic, []).append(spec.name)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in sorted(by_topic):
        cid, producer = channel_id(topic), producer_of(topic)
        names = by_topic[topic]
        channels[cid] = {
            "address": topic,
            "title": f"{producer} events",
            "description": f"Events published by the {producer} service, keyed by aggregate id.",
            "messages": {name: _ref("components", "messages", name) for name in names},
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "partitions": partitions,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"{producer}-sends-{cid}"] = {
            "action": "send",
            "channel": _ref("channels", cid),
            "title": f"{producer} publishes on {topic}",
            "summary": "Published by the outbox relay (acks=all), in the order the events were "
            "staged.",
            "messages": [_ref("channels", cid, "messages", name) for name in names],
            "x-service": producer,
        }

    for consumer in sorted(consumers, key=lambda c: c.service):
        for topic in sorted(consumer.topics):
            cid = channel_id(topic)
            if cid not in channels:
                raise ValueError(f"{consumer.service} subscribes to {topic}, which is not a topic")
            handled = [name for name in by_topic.get(topic, []) if name in consumer.handled]
            operations[f"{consumer.service}-receives-{cid}"] = {
                "action": "receive",
                "channel": _ref("channels", cid),
                "title": f"{consumer.service} consumes {topic}",
                "summary": f"Consumer group `{consumer.service}`. Handled types are applied once "
                "(inbox); other types are skipped; records that cannot be processed go to "
                f"{dead_letter_topic(consumer.service)}.",
                "messages": [_ref("channels", cid, "messages", name) for name in handled],
                "x-service": consumer.service,
            }
        dlq = dead_letter_topic(consumer.service)
        cid = channel_id(dlq)
        channels[cid] = {
            "address": dlq,
            "title": f"{consumer.service} dead letters",
            "description": f"Records the {consumer.service} service could not process, with "
            "the reason in `dlq_*` headers. Nothing consumes it: it is for operators.",
            "messages": {DEAD_LETTER_MESSAGE: _ref("components", "messages", DEAD_LETTER_MESSAGE)},
            "bindings": {
                "kafka": {
                    "topic": dlq,
                    "partitions": partitions,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"{consumer.service}-sends-{cid}"] = {
            "action": "send",
            "channel": _ref("channels", cid),
            "title": f"{consumer.service} dead-letters to {dlq}",
            "messages": [_ref("channels", cid, "messages", DEAD_LETTER_MESSAGE)],
            "x-service": consumer.service,
        }

    if consumers:
        messages[DEAD_LETTER_MESSAGE] = _dead_letter_message()

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Mentorship platform events",
            "version": _project_version(),
            "description": "Domain events the services exchange over Kafka as CloudEvents 1.0 "
            "(structured JSON). Generated from shared/events by `"
            + REGENERATE_COMMAND
            + "`: do not edit by hand.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "production": {
                "host": PRODUCTION_BOOTSTRAP,
                "protocol": "kafka",
                "title": "Apache Kafka",
                "description": "Apache Kafka in KRaft mode (docker-compose.yml); elsewhere "
                "whatever KAFKA_BOOTSTRAP_SERVERS points to.",
            },
            "embedded": {
                "host": embedded_bootstrap,
                "protocol": "kafka",
                "title": "noida-db",
                "description": "The embedded Kafka-protocol broker `mentorship up` starts when "
                "KAFKA_BOOTSTRAP_SERVERS is not set (not crash-durable: the outbox verifier "
                "republishes what it loses).",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            **({"schemas": dict(sorted(schemas.components.items()))} if schemas.components else {}),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block-style YAML without anchors, so equal sub-documents are written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: Mapping[str, Any] | None = None) -> str:
    document = build_document() if document is None else document
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE_COMMAND, description="Generate the AsyncAPI document of the events."
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: %(default)s")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the file differs from the code"
    )
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text() if args.output.is_file() else None
    if args.check:
        if current != text:
            state = "is missing" if current is None else "is stale"
            print(f"{args.output} {state}: run {REGENERATE_COMMAND}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
