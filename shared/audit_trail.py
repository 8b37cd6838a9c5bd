"""The audit trail every service leaves: denied access and privileged changes.

The audit log lives in the profiles service (`services/profiles/audit.py`, `GET /audit`). Other
services never write to its database: each writes an audit event (`MatchingAuditRecorded`,
...) through its own transactional outbox (a document in `audit_outbox` with the event staged
in it), the relay publishes it on the service's own audit topic (`mentorship.audit.<service>.v1`:
one publisher per topic, as the outbox verifier expects), and profiles' consumer files it in
the log, once per entry id. Profiles' own denials travel the same way, so every service follows one path.

`create_app` records, for every service and without code in the routes:
* every 403, with who was refused (token subject and role), the request (method and path) and
  when;
* every successful request to a route the service declares privileged
  (`ServiceDefinition.audited`: (method, route path) -> action, whose first word is the kind of
  thing changed), such as a template override or a webhook registration, with who, what (the
  route's ids) and when.

Like profiles' own entries, an entry is written right after the response is decided, not in
the same write as the change: a crash between them loses the entry, never the change.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.events import new_event
from shared.events.schemas import AUDIT_EVENTS
from shared.messaging.outbox import stage_insert

AUDIT_OUTBOX = "audit_outbox"
DENIED = "access.denied"


def entry_id() -> str:
    """Ids that sort by time, like profiles' own audit entries."""
    return f"audit-{time.time_ns():016x}-{uuid.uuid4().hex[:8]}"


async def record(
    db: AsyncDatabase,
    *,
    service: str,
    network_id: str,
    actor: str,
    actor_role: str,
    action: str,
    target_type: str,
    target_id: str,
    institution_id: str | None = None,
    fields: list[str] | tuple[str, ...] = (),
) -> None:
    now = datetime.now(UTC)
    payload = AUDIT_EVENTS[service](
        entry_id=entry_id(), network_id=network_id, service=service, actor=actor,
        actor_role=actor_role, action=action, target_type=target_type,
        target_id=target_id[:300], institution_id=institution_id, fields=list(fields), at=now,
    )
    event = new_event(payload, subject=payload.entry_id, tenant_id=network_id,
                      source=f"/services/{service}")
    await db[AUDIT_OUTBOX].insert_one(stage_insert({"_id": payload.entry_id, "at": now}, [event]))


async def after_response(
    request: Any, status_code: int, service: str, audited: dict[tuple[str, str], str],
    route_path: str,
) -> None:
    """Record the request if it was refused (403) or was a privileged change that succeeded."""
    action = None
    if status_code == 403:
        action = DENIED
    elif 200 <= status_code < 300:
        action = audited.get((request.method, route_path))
    if action is None:
        return
    db = getattr(request.app.state, "db", None)
    principal = getattr(request.state, "principal", None)
    if db is None or principal is None:
        return  # no authenticated caller (a 403 needs one: without a token it is a 401)
    params = dict(request.path_params)
    network_id = params.pop("network_id", None) or principal.network_id
    if action == DENIED:
        target_type, target_id = "request", f"{request.method} {request.url.path}"
    else:
        target_type = action.split(".", 1)[0]
        target_id = "/".join(str(v) for v in params.values()) or route_path
    await record(
        db, service=service, network_id=network_id, actor=principal.subject,
        actor_role=principal.role_label,
        action=action, target_type=target_type, target_id=target_id,
        # An entry is scoped to the caller's institution when they coordinate exactly one.
        institution_id=(principal.institution_ids[0] if len(principal.institution_ids) == 1
                        else None),
    )
