"""Every router of the web app checks the CSRF token of whatever changes something, and every
page escapes what people typed (autoescaping on for every template)."""

from __future__ import annotations

from pathlib import Path

from services.web import signin
from services.web.context import csrf_protect, templates
from services.web.pages import admin, coordinate, participant, public


def test_every_router_that_serves_a_form_checks_csrf() -> None:
    routers = [signin.router, public.router, *participant.routers, *coordinate.routers,
               *admin.routers]
    unsafe = 0
    for router in routers:
        assert any(d.dependency is csrf_protect for d in router.dependencies), router
        unsafe += sum(1 for r in router.routes if {"POST", "PUT", "PATCH", "DELETE"} & set(r.methods))
    assert unsafe >= 39  # the forms of every area


def test_every_template_is_autoescaped() -> None:
    root = Path(templates.loader.searchpath[0])
    for path in root.rglob("*.html"):
        name = str(path.relative_to(root))
        rendered = templates.from_string("{{ x }}").render(x="<script>")
        assert rendered == "&lt;script&gt;"
        assert templates.autoescape(name) if callable(templates.autoescape) else templates.autoescape
