"""Settings of the notifications service beyond the shared ones (SMTP, retries, timing, limits)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.secrets import read_secret
from shared.settings import ServiceSettings

UNSUBSCRIBE_SECRET = "UNSUBSCRIBE_SECRET"


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_from: str = "Mentorship <no-reply@mentorship.local>"
    smtp_timeout_seconds: float = 10.0
    smtp_connections: int = 4  # kept open and reused: a connection per message costs more
    # After a failed connection, sends fail at once (and are retried later) for this long
    # instead of each waiting for its own timeout against a server that does not answer.
    smtp_down_seconds: float = 5.0
    # Health detail: how often an idle service checks that the mail server answers.
    smtp_probe_seconds: float = 30.0
    delivery_max_attempts: int = 5
    # Backoff before attempt n+1: base * 2**(n-1), capped.
    delivery_backoff_seconds: float = 30.0
    delivery_backoff_max_seconds: float = 3600.0
    # How often to look for deliveries this process was not told about (recorded by another
    # instance, retries and deferrals falling due); new ones recorded here wake the worker.
    delivery_poll_ms: int = 2000
    # Deliveries claimed at once per channel: on SecantusDB a claim reads every due delivery
    # of the channel whatever the limit, so large claims keep a backlog from costing O(n^2).
    delivery_batch_size: int = 256
    delivery_settle_chunk: int = 64  # outcomes settled per write while a large batch is sent
    delivery_concurrency: int = 16
    delivery_pipelines: int = 2  # email batches in progress at once (claimed one after the other)
    # A claim not renewed for this long belongs to a process that died mid-send. A live
    # worker renews its claims every third of it, however slow the mail server is.
    delivery_claim_seconds: float = 60.0
    # One instance sends at a time; after a crash another takes over when this lease lapses
    # (never longer than the claim above).
    delivery_lease_seconds: float = 15.0
    # A message whose recipient is not known yet (events of another topic still on their way)
    # waits this long between looks, and gives up after the horizon.
    recipient_wait_seconds: float = 5.0
    recipient_wait_horizon_hours: float = 24.0
    delivery_metrics_seconds: float = 15.0  # pending / failed counts per channel, for /metrics

    webhook_timeout_seconds: float = 5.0
    # Webhooks go to the public internet only. Development may allow http (never in
    # production); tests name their own receiver's address here (IPs or CIDRs, comma-separated).
    webhook_allow_http: bool = False
    webhook_allowed_addresses: str = ""

    # Network template overrides render in child processes that are killed past these limits.
    template_processes: int = 2
    template_timeout_seconds: float = 2.0
    template_max_output_chars: int = 200_000
    template_memory_mb: int = 256

    # The web app's public base URL: every link a message carries starts with it.
    app_url: str = "http://127.0.0.1:8000"

    # Time-driven messages.
    scheduler_poll_ms: int = 1000  # jobs are due in hours and days
    job_claim_seconds: float = 60.0
    nudge_grace_days: float = 3.0
    reminder_hours_before: float = 24.0
    recognition_meetings: int = 10  # a mentor is thanked after this many logged meetings
    # Tests only: lets POST /test/clock move this process's clock forward.
    notifications_test_clock: bool = False

    @property
    def allowed_webhook_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(part.strip(), strict=False)
                for part in self.webhook_allowed_addresses.split(",") if part.strip()]

    @property
    def link_base(self) -> str:
        return self.app_url.rstrip("/")


@lru_cache(maxsize=1)
def unsubscribe_secret() -> str:
    """The key that signs unsubscribe links: from UNSUBSCRIBE_SECRET (or _FILE), generated
    into the data dir in development, and required anywhere else (MissingSecret)."""
    service = ServiceSettings(service_name="notifications")
    return read_secret(UNSUBSCRIBE_SECRET, environment=service.environment, data_dir=service.data_dir)
