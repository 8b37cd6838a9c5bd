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
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Events in the outbox not yet published", ["service"])
EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Events taken from Kafka, by outcome (applied, duplicate, ignored, dead_lettered)",
    ["service", "type", "outcome"],
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
