"""Settings of sign-in and sessions (profiles only), read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OidcProvider(BaseModel):
    """A network's identity provider (one per network)."""

    issuer: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: str = ""  # used by the web app's code exchange, not by verification


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    # Access tokens are short so that a revoked grant or session ends soon without services
    # asking anyone: a revoked grant lives at most this long.
    access_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    session_ttl_hours: float = Field(default=12, gt=0, le=24 * 30)
    # {"<network id>": {"issuer": ..., "client_id": ..., "client_secret": ...}}
    oidc_providers: dict[str, OidcProvider] = Field(default_factory=dict)
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # The web app's public base URL: the email sign-in link points there.
    app_url: str = "http://127.0.0.1:8000"
    # Pick a person and act as them: the embedded default only (`make up` sets it).
    local_sign_in: bool = False
    email_link_minutes: int = Field(default=15, ge=1, le=60)
    # Requests for a sign-in link per email and per client address in a 15-minute window.
    email_link_per_email: int = Field(default=5, ge=1)
    email_link_per_ip: int = Field(default=30, ge=1)
    # Peers whose X-Forwarded-For names the real client (the web app calls server to server).
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])


@lru_cache
def identity_settings() -> IdentitySettings:
    return IdentitySettings()
