"""Network admins: their own email wording (template overrides), webhook endpoints, digest rhythm.

Everything is scoped to the network in the URL and refused (403) to any token of another
network or of another role. Templates are validated in the sandbox's child processes (never on
the event loop) and refused when they exceed its limits; webhook URLs must be https and reach
only public internet addresses. The test clock is here too, and answers 404 unless the process
was started with NOTIFICATIONS_TEST_CLOCK=true.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from services.notifications import view
from services.notifications.api import network_admins
from services.notifications.clock import CLOCK
from services.notifications.config import DeliverySettings
from services.notifications.kinds import KINDS
from services.notifications.rendering import MAX_OVERRIDE_CHARS, InvalidTemplate, validate_override
from services.notifications.sandbox import SandboxUnavailable, TemplateSandbox
from services.notifications.webhooks import TargetRefused, resolve
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}", tags=["network settings"])
test_router = APIRouter(prefix="/test", tags=["tests only"], include_in_schema=False)
SETTINGS = DeliverySettings()
_sandbox: TemplateSandbox | None = None

TemplatesAdmin = Annotated[str, network_admins("Only network admins manage message templates.")]
WebhooksAdmin = Annotated[str, network_admins("Only network admins manage webhooks.")]
SettingsAdmin = Annotated[str, network_admins("Only network admins see and change notification settings.")]


def sandbox() -> TemplateSandbox:
    global _sandbox
    if _sandbox is None:
        _sandbox = TemplateSandbox(SETTINGS)
    return _sandbox

_person = {"display_name": "Ada Lovelace", "first_name": "Ada", "email": "ada@example.org",
           "goals": ["Publish a case report"]}
SAMPLE: dict[str, Any] = {
    "kind": "welcome", "mandatory": False, "recipient": _person, "recipient_id": "p1",
    "mentor": _person, "mentee": _person, "people": {"p1": _person, "p2": _person},
    "program": {"name": "Surgery 2026", "cadence_days": 14}, "mentorship_id": "m1",
    "unsubscribe_url": "https://example.org/unsubscribe?token=t", "preferences_url": "https://example.org/p",
    "app_url": "https://example.org", "role": "mentee", "side": "mentee", "need": None,
    "explanation": ["Shares your interest in surgery"], "auto_accept": False, "is_rematch": False,
    "program_id": "prog-1", "mentor_id": "p1", "mentee_id": "p2", "cadence_days": 14,
    "meeting_id": "meet-1", "starts_at": "2026-01-05T10:00:00+00:00", "starts_at_text": "Mon 05 Jan 2026, 10:00 UTC",
    "duration_minutes": 45, "mode": "video", "location": "https://meet.example.org/x", "agenda": "Goals",
    "sequence": 1, "stage": "mentee", "days_silent": 20, "point": 1, "title": "Paper submitted",
    "why": "completed", "meetings": 10, "reason": "completed", "frequency": "daily",
    "stalled": [{"mentor_id": "p1", "mentee_id": "p2", "days_silent": 30}],
    "pending": [{"mentor_id": "p1", "mentee_id": "p2", "days_waiting": 3}],
    "new_registrations": 4, "since_text": "01 Jan 2026", "items": [{"subject": "S", "summary": "T"}],
    "notice": "Your password was changed.", "link": "https://example.org/mentorships/m1",
    "link_url": "https://example.org/sign-in/email?token=t", "expires_at": "2026-01-05T10:15:00+00:00",
    "expires_at_text": "Mon 05 Jan 2026, 10:15 UTC",
}


class TemplateOverride(BaseModel):
    subject: str | None = Field(default=None, max_length=500)
    summary: str | None = Field(default=None, max_length=2000)
    text: str | None = Field(default=None, max_length=MAX_OVERRIDE_CHARS)
    html: str | None = Field(default=None, max_length=MAX_OVERRIDE_CHARS)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"No message kind {kind!r}; known kinds: {', '.join(KINDS)}.")
    return kind


@router.get("/templates")
async def list_overrides(network_id: TemplatesAdmin, db: Database) -> list[dict[str, Any]]:
    return [{"kind": t["kind"], **t["parts"], "updated_at": t["updated_at"]}
            async for t in db[view.TEMPLATES].find({"network_id": network_id})]


@router.put("/templates/{kind}")
async def set_override(network_id: TemplatesAdmin, kind: str, body: TemplateOverride, db: Database) -> dict[str, Any]:
    """Store the network's wording for a kind; each part is optional (absent: the default).
    Refused with 422 when a part does not parse, escapes the sandbox, uses unknown names, or
    takes too long, renders too much or needs too much memory to render."""
    _kind(kind)
    parts = {k: v for k, v in body.model_dump().items() if v}
    if not parts:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            "Give at least one of subject, summary, text or html.")
    try:
        await validate_override(sandbox(), parts, {**SAMPLE, "kind": kind})
    except InvalidTemplate as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"Template not valid: {exc}") from exc
    except SandboxUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "Templates cannot be checked right now; try again shortly.") from exc
    now = datetime.now(UTC)
    await db[view.TEMPLATES].update_one(
        {"_id": f"{network_id}:{kind}"},
        {"$set": {"network_id": network_id, "kind": kind, "parts": parts, "updated_at": now}},
        upsert=True)
    return {"kind": kind, **parts, "updated_at": now}


@router.delete("/templates/{kind}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_override(network_id: TemplatesAdmin, kind: str, db: Database) -> Response:
    _kind(kind)
    result = await db[view.TEMPLATES].delete_one({"_id": f"{network_id}:{kind}"})
    if result.deleted_count == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This network has no override for that kind.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class WebhookIn(BaseModel):
    url: AnyHttpUrl = Field(description="https, on the public internet")
    kinds: list[str] = Field(default_factory=list, description="empty: every announced kind")

    @field_validator("kinds")
    @classmethod
    def _announced(cls, value: list[str]) -> list[str]:
        announced = [k for k, spec in KINDS.items() if spec.webhook]
        for name in value:
            if name not in announced:
                raise ValueError(f"{name!r} is not announced to webhooks; use: {', '.join(announced)}")
        return value


class WebhookOut(BaseModel):
    id: str
    url: str
    kinds: list[str]
    created_at: datetime
    secret: str | None = Field(default=None, description="shown once, when created")


@router.post("/webhooks", status_code=status.HTTP_201_CREATED, response_model=WebhookOut)
async def add_webhook(network_id: WebhooksAdmin, body: WebhookIn, db: Database) -> WebhookOut:
    """Register an endpoint; its signing secret is returned once, here. Refused (422) unless
    it is https and every address its host resolves to is public (checked again at each
    delivery)."""
    if len(str(body.url)) > 2000:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "The webhook URL is longer than 2000 characters.")
    try:
        await resolve(str(body.url), SETTINGS)
    except TargetRefused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    document = {"_id": f"wh-{uuid.uuid4().hex[:12]}", "network_id": network_id, "url": str(body.url),
                "kinds": body.kinds, "secret": secrets.token_urlsafe(32), "created_at": datetime.now(UTC)}
    await db[view.WEBHOOKS].insert_one(document)
    return WebhookOut(id=document["_id"], **{k: document[k] for k in ("url", "kinds", "created_at", "secret")})


@router.get("/webhooks", response_model=list[WebhookOut])
async def list_webhooks(network_id: WebhooksAdmin, db: Database) -> list[WebhookOut]:
    return [WebhookOut(id=w["_id"], url=w["url"], kinds=w["kinds"], created_at=w["created_at"])
            async for w in db[view.WEBHOOKS].find({"network_id": network_id})]


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_webhook(network_id: WebhooksAdmin, webhook_id: str, db: Database) -> Response:
    result = await db[view.WEBHOOKS].delete_one({"_id": webhook_id, "network_id": network_id})
    if result.deleted_count == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This network has no webhook with this id.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class NotificationSettings(BaseModel):
    coordinator_digest: Literal["daily", "weekly", "off"] = "daily"


@router.get("/notification-settings", response_model=NotificationSettings)
async def get_settings(network_id: SettingsAdmin, db: Database) -> NotificationSettings:
    stored = await db[view.NETWORK_SETTINGS].find_one({"_id": network_id}) or {}
    return NotificationSettings(**{k: v for k, v in stored.items() if k != "_id"})


@router.put("/notification-settings", response_model=NotificationSettings)
async def put_settings(network_id: SettingsAdmin, body: NotificationSettings, db: Database) -> NotificationSettings:
    await db[view.NETWORK_SETTINGS].update_one({"_id": network_id}, {"$set": body.model_dump()}, upsert=True)
    return body


class Advance(BaseModel):
    seconds: Annotated[float, Field(ge=0, le=10 * 365 * 86400)]


def _test_clock() -> None:
    if not SETTINGS.notifications_test_clock:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")


@test_router.get("/clock")
async def read_clock() -> dict[str, str]:
    _test_clock()
    return {"now": CLOCK.now().isoformat()}


@test_router.post("/clock/advance")
async def advance_clock(body: Advance) -> dict[str, str]:
    _test_clock()
    return {"now": CLOCK.advance(timedelta(seconds=body.seconds)).isoformat()}
