"""Settings of the notifications service beyond the shared ones (SMTP, retries, timing)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_from: str = "Mentorship <no-reply@mentorship.local>"
    smtp_timeout_seconds: float = 10.0
    smtp_connections: int = 4  # kept open and reused: a connection per message costs more
    delivery_max_attempts: int = 5
    # Backoff before attempt n+1: base * 2**(n-1), capped.
    delivery_backoff_seconds: float = 30.0
    delivery_backoff_max_seconds: float = 3600.0
    delivery_poll_ms: int = 200
    delivery_batch_size: int = 64
    delivery_concurrency: int = 16
    delivery_pipelines: int = 2  # batches in progress at once (claimed one after the other)
    # A batch still in flight after this was interrupted mid-send (the process died).
    delivery_claim_seconds: float = 60.0
    # One instance sends at a time; after a crash another takes over when this lease lapses
    # (never longer than the claim above).
    delivery_lease_seconds: float = 15.0
    # A message whose recipient is not known yet (events of another topic still on their way)
    # waits this long between looks, and gives up after the horizon.
    recipient_wait_seconds: float = 5.0
    recipient_wait_horizon_hours: float = 24.0
    webhook_timeout_seconds: float = 5.0
    public_base_url: str = "http://127.0.0.1:8003"
    app_url: str = "http://127.0.0.1:8000"
    # Signs unsubscribe links; set a long random value in production.
    unsubscribe_secret: str = "local-development-unsubscribe-secret"

    # Time-driven messages.
    scheduler_poll_ms: int = 500
    job_claim_seconds: float = 60.0
    nudge_grace_days: float = 3.0
    reminder_hours_before: float = 24.0
    recognition_meetings: int = 10  # a mentor is thanked after this many logged meetings
    # Tests only: lets POST /test/clock move this process's clock forward.
    notifications_test_clock: bool = False
