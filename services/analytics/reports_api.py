"""Report endpoints: every measure as JSON or CSV, per program, institution or network.

`GET /networks/{network_id}/reports/{report}?scope=&id=&from=&to=&format=json|csv`.
For the network scope, section reports also list every chapter side by side with the total.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response

from services.analytics.access import authorise, default_scope, visible_scopes
from services.analytics.live import loaded_projection
from services.analytics.measures import Period, Report, Scope, chapters
from services.analytics.projection import Projection
from shared.auth import CurrentPrincipal, require_network
from shared.csv_safe import write_rows
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}", tags=["reports"])

SECTIONS = ("enrolment", "matching", "engagement", "outcomes", "mentors")
REPORTS = ("summary", *SECTIONS, "series", "stalled", "equity", "mentor-list")
ReportName = Literal[
    "summary", "enrolment", "matching", "engagement", "outcomes", "mentors",
    "series", "stalled", "equity", "mentor-list",
]
MAX_PERIOD_DAYS = 3 * 366
DEFAULT_PERIOD_DAYS = 90
_CACHE: OrderedDict[tuple[Any, ...], Report] = OrderedDict()
_CACHE_SIZE = 64


def period_of(first: date | None, last: date | None) -> Period:
    last = last or datetime.now(UTC).date()
    first = first or last - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if first > last:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"'from' ({first}) must not be after 'to' ({last})."
        )
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, "A period can span at most three years."
        )
    return Period.of_days(first, last)


def report_for(projection: Projection, scope: Scope, period: Period) -> Report:
    """One Report per scope, period and projection state: its parts are computed once."""
    key = (id(projection), projection.version, scope, period)
    report = _CACHE.get(key)
    if report is None:
        report = _CACHE[key] = Report(projection, scope, period)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return report


def _section(report: Report, name: str) -> dict[str, Any]:
    if name == "summary":
        return report.summary()
    if name == "mentors":
        return report.mentor_load()
    return getattr(report, name)()


def _label(projection: Projection, scope: Scope) -> str:
    if scope.kind == "network":
        return "Network total"
    if scope.kind == "institution":
        return projection.institution_names.get((scope.network_id, scope.id or ""), scope.id or "")
    program = projection.programs.get(scope.id or "")
    return program.name if program and program.name else scope.id or ""


def build(projection: Projection, name: str, scope: Scope, period: Period) -> dict[str, Any]:
    report = report_for(projection, scope, period)
    body: dict[str, Any] = {
        "report": name,
        "scope": {"kind": scope.kind, "id": scope.id, "label": _label(projection, scope)},
        "period": {"from": period.start.date().isoformat(),
                   "to": (period.end - timedelta(days=1)).date().isoformat()},
    }
    if name == "series":
        body["weeks"] = report.series()
    elif name == "stalled":
        body["pairs"] = report.stalled()
    elif name == "equity":
        body["cells"] = report.equity()
    elif name == "mentor-list":
        body["mentors"] = report.mentor_rows()
    else:
        body["total"] = _section(report, name)
        if scope.kind == "network":
            body["chapters"] = [
                {"institution_id": i, "label": _label(projection, c),
                 **_section(report_for(projection, c, period), name)}
                for i in chapters(projection, scope.network_id)
                for c in [Scope("institution", scope.network_id, i)]
            ]
    return body


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested measures as dotted columns; lists (names of people) stay out of CSV rows."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = value
    return flat


def to_csv(body: dict[str, Any]) -> str:
    if "weeks" in body:
        rows = body["weeks"]
    elif "pairs" in body:
        rows = body["pairs"]
    elif "cells" in body:
        rows = body["cells"]
    elif "mentors" in body and isinstance(body["mentors"], list):
        rows = body["mentors"]
    else:
        rows = [{"unit": body["scope"]["label"], "institution_id": "", **body["total"]}]
        rows += [{"unit": c["label"], **c} for c in body.get("chapters", [])]
        for row in rows[1:]:
            row.pop("label", None)
    flat = [flatten(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns += [c for c in r if c not in columns]
    return write_rows(columns, flat)


@router.get("/reports/{report}")
async def report(
    network_id: str,
    report: ReportName,
    principal: CurrentPrincipal,
    db: Database,
    scope: Literal["network", "institution", "program"] | None = None,
    id: Annotated[str | None, Query(max_length=100)] = None,  # noqa: A002
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    format: Literal["json", "csv"] = "json",  # noqa: A002
) -> Response:
    """One report for one scope and period (default: the caller's widest scope, 90 days)."""
    require_network(principal, network_id)
    projection = await loaded_projection(db)
    if scope is None:
        chosen = default_scope(principal, network_id)
    elif scope == "network":
        chosen = Scope("network", network_id)
    elif not id:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"A {scope} scope needs its id (?id=...)."
        )
    else:
        chosen = Scope(scope, network_id, id)
    authorise(principal, chosen, projection)
    body = build(projection, report, chosen, period_of(first, last))
    if format == "csv":
        filename = f"{report}-{chosen.kind}-{chosen.id or network_id}.csv"
        return Response(
            to_csv(body), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return Response(_json(body), media_type="application/json")


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@router.get("/report-scopes")
async def report_scopes(network_id: str, principal: CurrentPrincipal, db: Database) -> dict[str, Any]:
    """The scopes the caller may pick, with labels, widest first."""
    require_network(principal, network_id)
    projection = await loaded_projection(db)
    scopes = visible_scopes(principal, network_id, projection, chapters(projection, network_id))
    return {
        "reports": list(REPORTS),
        "scopes": [{"kind": s.kind, "id": s.id, "label": _label(projection, s)} for s in scopes],
    }


@router.get("/recognition")
async def public_recognition(
    network_id: str,
    principal: CurrentPrincipal,
    db: Database,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Highly rated mentors who opted in to being named publicly; any member may read it."""
    require_network(principal, network_id)
    projection = await loaded_projection(db)
    report = report_for(projection, Scope("network", network_id), period_of(first, last))
    return {
        "mentors": [
            {k: r[k] for k in ("mentor_id", "name", "institution_id", "ratings", "rating_mean")}
            for r in report.recognition(public_only=True, limit=100)
        ]
    }
