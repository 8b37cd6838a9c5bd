"""The service's health detail: the outside mail server and the delivery backlog.

Not part of `/readyz`: a mail server that is down must not take the service out of rotation
(the feed, webhooks and everything else keep working, and emails wait to be retried). Here an
operator sees it: whether the mail server answered the last connection or probe, and how many
deliveries wait or failed per channel (also on /metrics).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from services.notifications.deliveries import DeliveryStore
from services.notifications.kinds import EMAIL, IN_APP, WEBHOOK
from services.notifications.smtp import SmtpHealth
from shared.service import Database

SMTP_HEALTH = SmtpHealth()  # shared by this process's SMTP sender
router = APIRouter(tags=["operations"])


@router.get("/healthz/detail")
async def health_detail(db: Database) -> dict[str, Any]:
    detail: dict[str, Any] = {"status": "alive", "service": "notifications", "smtp": SMTP_HEALTH.as_dict()}
    try:
        counts = await asyncio.wait_for(
            DeliveryStore(db).counts((IN_APP, WEBHOOK, EMAIL), ("pending", "failed")), 5)
        detail["deliveries"] = {c: {s: n for (ch, s), n in counts.items() if ch == c}
                                for c in (IN_APP, WEBHOOK, EMAIL)}
    except Exception as exc:
        detail["deliveries"] = {"error": f"the store did not answer: {type(exc).__name__}"}
    return detail
