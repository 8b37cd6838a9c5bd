"""The dashboard: one server-rendered page, its script and the vendored Chart.js.

The page carries no data and needs no session: the coordinator pastes their token, which
stays in the tab (sessionStorage), and the page calls the same report endpoints as any
client, so what it draws is exactly what the API returns. Everything is served from the
service itself; the page loads with no network beyond it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.analytics.measures import MIN_CELL

HERE = Path(__file__).parent
STATIC = HERE / "static"
_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".md": "text/plain"}

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    page = _templates.get_template("dashboard.html").render(min_cell=MIN_CELL)
    return HTMLResponse(page)


@router.get("/dashboard/static/{path:path}", include_in_schema=False)
async def static(path: str) -> FileResponse:
    target = (STATIC / path).resolve()
    if STATIC.resolve() not in target.parents or not target.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
    return FileResponse(target, media_type=_TYPES.get(target.suffix, "application/octet-stream"))
