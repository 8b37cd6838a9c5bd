"""Prometheus metrics of the notifications service (process-wide, registered once)."""

from prometheus_client import Counter, Gauge

DELIVERIES = Gauge(
    "notification_deliveries",
    "Deliveries waiting (pending) or given up (failed), per channel; refreshed periodically",
    ["channel", "status"],
)
SETTLED = Counter(
    "notification_deliveries_settled_total",
    "Delivery attempts settled, per channel and outcome (sent, retry, failed, ...)",
    ["channel", "outcome"],
)
SMTP_REACHABLE = Gauge(
    "notification_smtp_reachable",
    "1 when the mail server answered the last connection or probe, 0 when it did not",
)
