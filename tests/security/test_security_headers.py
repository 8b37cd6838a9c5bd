"""Security headers on every response, and a dashboard that needs no inline script or style.

A hospital's review asks for them: no content sniffing, no referrer (links carry tokens), no
framing (clickjacking), HSTS over https, no caching of personal data, and a strict CSP on the
one HTML application, which only works if that page has no inline script or style.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.e2e.conftest import BACKENDS as SERVICES  # the web app: tests/e2e/web



@pytest.mark.parametrize("service", SERVICES)
async def test_every_response_carries_the_headers(api, service, network_id):
    base = api.platform.url(service)
    for response in (
        await api.http.get(f"{base}/healthz"),
        await api.http.get(f"{base}/networks/{network_id}/nothing-here", headers=api.auth(network_id)),
        await api.http.get(f"{base}/openapi.json"),
    ):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in headers  # plain http here
    behind_tls = await api.http.get(f"{base}/healthz", headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_the_dashboard_allows_its_own_scripts_and_styles_only(api):
    r = await api.http.get(f"{api.platform.url('analytics')}/dashboard")
    policy = dict(p.strip().split(" ", 1) for p in r.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert "unsafe-inline" not in r.headers["content-security-policy"]

    class Inline(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            names = dict(attrs)
            if tag == "style" or (tag == "script" and "src" not in names):
                self.found.append(tag)
            self.found += [n for n in names if n == "style" or n.startswith("on")]

    page = Inline()
    page.feed(r.text)
    assert page.found == []
