"""The web app's foundation in Chromium: sign-in (local picker, emailed link), the session
cookie, CSRF, the content security policy, escaping of user text, navigation by roles and
sign-out revoking the session at profiles."""

from __future__ import annotations

import asyncio
import json
import re

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from services.web.sessions import key_of
from shared.events.registry import spec_for
import pytest

from tests.e2e.web.conftest import check_page, sign_in_local
from tests.support import eventually

XSS = "<script>alert(1)</script>"

# A journey is several pages and services; on a loaded machine it needs more than 300 s.
pytestmark = pytest.mark.timeout(900)


async def test_local_sign_in_escapes_names_and_guards_the_session(world, page, context, platform):
    program = await world.program()
    mentee = await world.person("mentee", XSS, program)
    dialogs = []
    page.on("dialog", lambda d: dialogs.append(d.message))

    first = await page.goto("/")
    assert re.search(r"/sign-in\?next=%2F$", page.url), page.url
    csp = first.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "style-src 'self'" in csp
    assert first.headers["x-frame-options"] == "DENY" and first.headers["referrer-policy"] == "no-referrer"
    await page.goto(f"/sign-in?network={world.network}")
    await check_page(page, "sign-in")

    await sign_in_local(page, world.network, XSS)
    # First visit with an incomplete profile: the profile page, the name shown as text.
    assert page.url.endswith("/profile?first=1"), page.url
    assert await page.input_value("#display_name") == XSS
    assert XSS in await page.inner_text("header")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in await page.content()
    assert not dialogs

    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["mentorship_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert not session["secure"]  # development over plain HTTP; Secure everywhere else
    storage = await page.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
    assert "eyJ" not in storage and "token" not in storage.lower(), storage  # no token for scripts
    assert "token" not in page.url

    # A post without the session's CSRF token is refused, with or without a wrong header.
    refused = await page.request.post("/profile", form={"display_name": "Mallory"})
    assert refused.status == 403 and "did not come from this site" in await refused.text()
    refused = await page.request.post("/profile", form={"display_name": "Mallory"},
                                      headers={"X-CSRF-Token": "guess"})
    assert refused.status == 403
    assert await page.input_value("#display_name") == XSS

    # Sign-out revokes the session at profiles, not only in the browser.
    mongo = AsyncMongoClient(platform.servers.mongodb_uri)
    try:
        stored = await mongo["mentorship_web"]["sessions"].find_one({"_id": key_of(session["value"])})
        assert stored and stored["person_id"] == mentee
        assert stored["access_token"] not in storage and stored["refresh_token"] not in storage
        await page.click("text=Sign out")
        await page.wait_for_url("**/sign-in")
        assert await mongo["mentorship_web"]["sessions"].find_one({"_id": stored["_id"]}) is None
    finally:
        await mongo.close()
    refresh = await page.request.post(f"{platform.url('profiles')}/auth/refresh",
                                      data=json.dumps({"refresh_token": stored["refresh_token"]}),
                                      headers={"content-type": "application/json"})
    assert refresh.status == 401
    await page.goto("/profile")
    assert "/sign-in?next=%2Fprofile" in page.url
    assert not page.csp_errors


async def test_navigation_shows_every_role_a_person_holds(world, page):
    program = await world.program()
    resident = await world.person("mentee", "Rosa Resident", program)
    await world.grant(resident, "program_coordinator", program_id=program)
    await world.grant(resident, "network_admin")
    student = await world.person("mentee", "Sam Student", program)
    await world.edit(student, {"mentee": {"needs": ["research"], "specialty_interests": ["cardiology"]}})

    await sign_in_local(page, world.network, "Sam Student")
    assert page.url.rstrip("/").endswith(page.url.split("/")[2])  # complete profile: home
    headings = await page.locator("nav.areas h2").all_inner_texts()
    assert headings == ["MY MENTORING"] or headings == ["My mentoring"]
    await page.click("text=Sign out")

    await sign_in_local(page, world.network, "Rosa Resident", next_path="/")
    await page.goto("/")
    headings = [h.lower() for h in await page.locator("nav.areas h2").all_inner_texts()]
    assert headings == ["my mentoring", "coordinate", "network admin"]
    roles = await page.inner_text("#roles-heading + ul")
    assert "Program coordinator" in roles and "Network admin" in roles and "Mentee" in roles
    await check_page(page, "home-staff")


async def _sign_in_link(bootstrap: str, person_id: str) -> str:
    """The link profiles announced for this person (what the email carries)."""
    consumer = AIOKafkaConsumer(spec_for("SignInLinkRequested").topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        async def find():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:  # other tests put malformed records on the topic on purpose
                        event = json.loads(record.value)
                    except ValueError:
                        continue
                    if event.get("type") == "SignInLinkRequested" and event["data"]["person_id"] == person_id:
                        return event["data"]["link_url"]
            return None
        found = []
        async def probe():
            link = await find()
            if link:
                found.append(link)
            return found
        await eventually(probe, bool, timeout=60, what="the sign-in link event")
        return found[0]
    finally:
        await consumer.stop()


async def test_email_link_signs_in_once(world, page, platform, web):
    program = await world.program()
    person = await world.person("mentee", "Erin Email", program,
                                needs=["research"], specialty_interests=["cardiology"])
    email = await world.email_of(person)
    await page.goto(f"/sign-in?network={world.network}")
    await page.fill("#email", email)
    await page.click("text=Email me a sign-in link")
    await page.wait_for_selector("text=a sign-in link is on its way")

    link = await _sign_in_link(platform.servers.kafka_bootstrap, person)
    assert link.startswith(f"{web}/sign-in/email?token=")
    await page.goto(link)
    await check_page(page, "sign-in-email")
    await page.click("button:has-text('Continue')")
    await page.wait_for_selector("h1:has-text('Welcome')")
    assert "Erin Email" in await page.inner_text("h1")

    await page.click("text=Sign out")
    await page.goto(link)
    await page.click("button:has-text('Continue')")
    await page.wait_for_selector("text=expired or was already used")


async def test_oidc_sign_in_through_the_networks_identity_provider(identity_providers, platform, page, web,
                                                                  api):
    import uuid

    import httpx

    from tests.e2e.identity_flows import Identity
    from tests.e2e.web.world import World

    network = identity_providers.networks["a"]
    await Identity(api).identity_provider_network(identity_providers)
    async with httpx.AsyncClient(timeout=30) as http:
        world = World(platform, http, network=network)
        await world.institution()
        program = await world.program(f"OIDC program {uuid.uuid4().hex[:4]}")
        person = await world.person("mentee", "Ines Idp", program, needs=["research"],
                                    specialty_interests=["cardiology"])
        email = await world.email_of(person)
        sub = f"sub-{uuid.uuid4().hex[:8]}"
        issuer = identity_providers.issuer("a")
        (await http.put(f"{issuer}/users/{sub}", json={"email": email, "email_verified": True})).raise_for_status()
        stranger = f"sub-{uuid.uuid4().hex[:8]}"
        (await http.put(f"{issuer}/users/{stranger}", json={"email": "nobody@example.org",
                                                           "email_verified": True})).raise_for_status()

    await page.goto(f"/sign-in?network={network}")
    await page.click("text=Sign in with your institution")
    await page.wait_for_url(f"{issuer}/**")
    assert "code_challenge=" in page.url and "nonce=" in page.url and "state=" in page.url
    await page.fill("input[name=sub][type=text]", sub)
    await page.click("button:has-text('Authorize')")
    await page.wait_for_url(f"{web}/")
    assert "Ines Idp" in await page.inner_text("h1")
    cookies = {c["name"] for c in await page.context.cookies()}
    assert "mentorship_session" in cookies and "mentorship_oidc" not in cookies

    # Someone the network does not know is refused with a clear page.
    await page.click("text=Sign out")
    await page.goto(f"/sign-in?network={network}")
    await page.click("text=Sign in with your institution")
    await page.fill("input[name=sub][type=text]", stranger)
    await page.click("button:has-text('Authorize')")
    await page.wait_for_selector("h1:has-text('Sign-in refused')")
    await check_page(page, "sign-in-refused")
    # A callback this browser did not start (no attempt cookie, or a forged state) is refused.
    await page.goto("/sign-in/oidc/callback?code=forged&state=forged")
    assert "was not started here" in await page.inner_text("main")


async def test_sign_in_link_limits_count_each_browser_not_the_web_app(world, web):
    """Profiles limits sign-in links per client address (30 in 15 minutes). Every request
    reaches it from the web app, so the web app names the browser's address: one browser
    asking too often is refused, another browser is not."""
    import httpx

    async def browser(address: str) -> tuple[httpx.AsyncClient, str]:
        # The test client stands in for a proxy the web app trusts (uvicorn's default: loopback).
        client = httpx.AsyncClient(base_url=web, timeout=60,
                                   headers={"X-Forwarded-For": address})
        page = await client.get(f"/sign-in?network={world.network}")
        return client, re.search(r'name="csrf-token" content="([^"]+)"', page.text)[1]

    async def ask(client: httpx.AsyncClient, csrf: str, n: int) -> int:
        response = await client.post("/sign-in/email-link", data={
            "network": world.network, "email": f"nobody-{n}@example.org", "csrf_token": csrf})
        return response.status_code

    eager, eager_csrf = await browser("203.0.113.7")
    other, other_csrf = await browser("198.51.100.9")
    try:
        statuses = [await ask(eager, eager_csrf, n) for n in range(31)]
        assert statuses[:30] == [303] * 30 and statuses[30] == 429, statuses
        assert await ask(other, other_csrf, 99) == 303
    finally:
        await eager.aclose()
        await other.aclose()
