"""What the web app reads from its environment.

Endpoints of the four services default to their local ports (following `PROFILES_PORT` and
friends when `make up` was told to move them), so the same code runs on a laptop and on a
cluster where PROFILES_URL etc. name the services.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings


def _local(service: str) -> str:
    port = os.environ.get(f"{service.upper()}_PORT") or DEFAULT_PORTS[service]
    return f"http://127.0.0.1:{port}"


class OidcProvider(BaseModel):
    """One network's identity provider (OIDC_PROVIDERS is a JSON object network -> this)."""

    issuer: str
    client_id: str
    client_secret: str = ""
    scope: str = "openid email profile"


class WebSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    service_name: str = "web"
    profiles_url: str = Field(default_factory=lambda: _local("profiles"))
    matching_url: str = Field(default_factory=lambda: _local("matching"))
    notifications_url: str = Field(default_factory=lambda: _local("notifications"))
    analytics_url: str = Field(default_factory=lambda: _local("analytics"))
    # The public base URL of this app: redirect URIs, and the origin links in messages use.
    app_url: str = "http://127.0.0.1:8000"
    oidc_providers: dict[str, OidcProvider] = Field(default_factory=dict)
    # The network the sign-in page offers first (people of other networks type theirs).
    default_network: str = "demo"
    backend_timeout_seconds: float = 15.0
    # Refresh the access token this long before it expires.
    refresh_margin_seconds: int = 30
    # A signed-in session ends after this long without a request (the refresh token lives
    # SESSION_TTL_HOURS at profiles; whichever ends first ends the session).
    session_idle_hours: float = 12.0

    @property
    def secure_cookies(self) -> bool:
        """Cookies are Secure everywhere except local development over plain HTTP."""
        return not self.is_development
