"""CloudEvents 1.0 envelope in structured JSON mode.

Extension attributes must be lower-case alphanumerics, hence `tenantid`, `correlationid` and
`schemaversion`. The record key is the subject (the aggregate id) so one entity's events stay
in order within a partition.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from shared.events.registry import spec_for, spec_of
from shared.logging import current_correlation_id


class CloudEvent(BaseModel):
    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    tenantid: str = Field(min_length=1)
    correlationid: str = Field(min_length=1)
    schemaversion: int = Field(ge=1)
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def payload(self) -> BaseModel:
        """The typed payload; raises EventRejected when the type or data is not valid."""
        spec = spec_for(self.type)
        if spec is None:
            raise EventRejected(f"unknown event type {self.type!r}")
        if self.schemaversion > spec.version:
            raise EventRejected(
                f"{self.type} schema version {self.schemaversion} is newer than the "
                f"supported version {spec.version}"
            )
        try:
            return spec.model.model_validate(self.data)
        except ValidationError as exc:
            raise EventRejected(f"invalid {self.type} payload: {_errors(exc)}") from exc


class EventRejected(Exception):
    """An event that can never be processed: it goes to the dead-letter topic with this reason."""


def new_event(
    payload: BaseModel,
    *,
    subject: str,
    tenant_id: str,
    source: str,
    correlation_id: str | None = None,
    at: datetime | None = None,
) -> CloudEvent:
    spec = spec_of(payload)
    return CloudEvent(
        source=source,
        type=spec.name,
        subject=subject,
        time=at or datetime.now(UTC),
        tenantid=tenant_id,
        correlationid=correlation_id or current_correlation_id() or str(uuid.uuid4()),
        schemaversion=spec.version,
        data=payload.model_dump(mode="json"),
    )


def decode_event(raw: bytes | None) -> tuple[CloudEvent, BaseModel]:
    """Parse and validate a record value; EventRejected says why when it cannot be used."""
    if not raw:
        raise EventRejected("empty record value")
    try:  # the usual case in one pass of pydantic's own JSON parser
        envelope = CloudEvent.model_validate_json(raw)
    except ValidationError:
        pass  # the slower path below says exactly what is wrong
    else:
        return envelope, envelope.payload()
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventRejected(f"record value is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EventRejected("record value is not a JSON object")
    try:
        envelope = CloudEvent.model_validate(document)
    except ValidationError as exc:
        raise EventRejected(f"not a valid CloudEvent: {_errors(exc)}") from exc
    return envelope, envelope.payload()


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    )
