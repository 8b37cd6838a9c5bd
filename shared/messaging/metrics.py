"""Prometheus metrics of the event backbone, labelled by service.

Defined once per process at import time: prometheus-client refuses to register a metric twice.
"""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "events_published_total", "Events published by the outbox relay", ["service", "type"]
)
EVENTS_REPUBLISHED = Counter(
    "events_republished_total",
    "Published events the broker lost and the relay scheduled again",
    ["service"],
)
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog",
    "Events written (staged or in the outbox log) and not yet acknowledged by the broker; "
    "reported by the relay holding the lease, 0 on the others",
    ["service"],
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "outbox_oldest_unpublished_seconds",
    "Age of the oldest event written and not yet acknowledged by the broker (0: none)",
    ["service"],
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Events taken from Kafka, by outcome (applied, duplicate, ignored, dead_lettered)",
    ["service", "type", "outcome"],
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Events sent to the dead-letter topic, by type (<undecodable> when the record is not a "
    "CloudEvent, <unknown type> when its type is not registered) and reason",
    ["service", "type", "reason"],
)
HANDLER_ERRORS = Counter(
    "event_handler_errors_total", "Failed attempts to handle an event", ["service", "type"]
)
CONSUMER_LAG = Gauge(
    "consumer_lag", "Records between the consumer position and the log end", ["service", "topic", "partition"]
)
HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"]
)
