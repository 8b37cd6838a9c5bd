"""Small helpers the page modules share: names of people, forms, paths."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from fastapi import Request

from services.web.backend import ApiError
from services.web.context import Visitor


def q(value: str) -> str:
    """A path segment, escaped."""
    return quote(str(value), safe="")


def net(who: Visitor) -> str:
    return f"/networks/{q(who.network_id or '')}"


async def form_of(request: Request) -> dict[str, list[str]]:
    """The posted form, every field as a list of its values (strings only)."""
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


def one(form: dict[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name) or [default]
    return values[0].strip()


async def person(who: Visitor, person_id: str) -> dict[str, Any] | None:
    try:
        return await who.api.get("profiles", f"{net(who)}/people/{q(person_id)}")
    except ApiError as exc:
        if exc.status in (403, 404):
            return None
        raise


async def names(who: Visitor, ids: Iterable[str | None]) -> dict[str, str]:
    """Display names of the people the caller may see; others stay 'someone'."""
    wanted = sorted({i for i in ids if i})
    found = await asyncio.gather(*(person(who, i) for i in wanted))
    return {i: (p or {}).get("display_name") or "someone" for i, p in zip(wanted, found, strict=True)}


async def programs(who: Visitor) -> dict[str, dict[str, Any]]:
    """The network's programs by id (every signed-in person may read them)."""
    out: dict[str, dict[str, Any]] = {}
    cursor = None
    for _ in range(20):
        page = await who.api.get("profiles", f"{net(who)}/programs",
                                 params={"limit": 100, "cursor": cursor})
        out.update({p["id"]: p for p in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return out
