"""Settings of the notifications service beyond the shared ones (SMTP, delivery retries)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_from: str = "Mentorship <no-reply@mentorship.local>"
    smtp_timeout_seconds: float = 10.0
    delivery_max_attempts: int = 5
    # Backoff before attempt n+1: base * 2**(n-1), capped.
    delivery_backoff_seconds: float = 30.0
    delivery_backoff_max_seconds: float = 3600.0
    delivery_poll_ms: int = 200
    # A claim older than this was interrupted mid-send (the process died).
    delivery_claim_seconds: float = 60.0
    public_base_url: str = "http://127.0.0.1:8003"
