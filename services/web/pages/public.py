"""Pages anyone may open without signing in: the unsubscribe landing of an email link."""

from __future__ import annotations

import re
from html import unescape

from fastapi import APIRouter, Depends, Request, Response

from services.web.context import AnyVisitor, csrf_protect, render

router = APIRouter(dependencies=[Depends(csrf_protect)])
ONE_CLICK = "List-Unsubscribe=One-Click"


def _said(html: str) -> str:
    """The sentence notifications answered with (its page's paragraph), as plain text."""
    found = re.search(r"<p>(.*?)</p>", html, re.S)
    return unescape(re.sub(r"<[^>]+>", "", found[1])).strip() if found else ""


@router.get("/unsubscribe")
async def unsubscribe_page(who: AnyVisitor, token: str = "") -> Response:
    """A button, not an immediate unsubscribe: link scanners that open every link in an
    email must not change anyone's preferences."""
    return await render(who, "unsubscribe.html", {"title": "Unsubscribe", "token": token})


async def _forward(who, token: str) -> tuple[int, str]:
    response = await who.backend.request("POST", "notifications", "/unsubscribe",
                                         params={"token": token})
    if response.status_code >= 400:
        try:
            return response.status_code, response.json().get("detail", "")
        except ValueError:
            return response.status_code, ""
    try:
        body = response.json()
        return 200, str(body.get("detail") or body.get("message") or "")
    except ValueError:
        return 200, _said(response.text)


@router.post("/unsubscribe")
async def unsubscribe(request: Request, who: AnyVisitor, token: str = "") -> Response:
    form = await request.form()
    token = token or str(form.get("token") or "")
    status, said = await _forward(who, token)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded") \
            and form.get("List-Unsubscribe") == "One-Click" and "csrf_token" not in form:
        return Response(status_code=200 if status == 200 else 400)
    if status != 200:
        return await render(who, "unsubscribe.html", {
            "title": "Unsubscribe", "token": "",
            "error": "This unsubscribe link is not valid (it may have been cut or altered). "
                     "Sign in and change your notification preferences instead.",
        }, status_code=400)
    return await render(who, "unsubscribe.html", {"title": "Unsubscribed", "done": True,
                                                  "said": said})
