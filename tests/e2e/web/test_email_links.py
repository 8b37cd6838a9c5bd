"""Every link in every email the platform sends opens the right page of the web app: the
messages of one mentorship's start (welcome, proposal, introduction, meeting) and a sign-in
link are taken from the test SMTP server, and each link is followed in the browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.web.conftest import sign_in_local
from tests.e2e.web.test_participant import MENTOR_PROFILE, email_text
from tests.support import eventually

LINK = re.compile(r"https?://[^\s\"'<>)\]]+")

# A journey is several pages and services; on a loaded machine it needs more than 300 s.
pytestmark = pytest.mark.timeout(900)


async def test_every_link_in_every_email_opens_its_page(world, page, mailbox, web, platform):
    program = await world.program()
    mentor = await world.person("mentor", "Dr Lin Links", program, career_stage="PGY-2", **MENTOR_PROFILE)
    mentee = await world.person("mentee", "Mo Mail", program, needs=["research"], specialty_interests=["cardiology"])
    address = await world.email_of(mentee)
    mid = await world.mentorship(program, mentee, mentor, days_ago=1)
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    await world.call("POST", "matching", f"/mentorships/{mid}/meetings", json={
        "starts_at": starts, "duration_minutes": 30, "mode": "video"})
    await page.goto(f"/sign-in?network={world.network}")
    await page.fill("#email", address)
    await page.click("text=Email me a sign-in link")

    def links_by_mail():
        found = {}
        for message in mailbox.to(address):
            found[message["Subject"]] = sorted(set(LINK.findall(email_text(message))))
        return found
    mails = await eventually(lambda: links_by_mail(), lambda m: len(m) >= 5 and any(
        any("/sign-in/email?token=" in link for link in links) for links in m.values()),
        timeout=90, what="welcome, proposal, introduction, meeting and sign-in emails")

    app = platform.env("notifications")["APP_URL"].rstrip("/")  # the public address links use
    everything = {link for links in mails.values() for link in links}
    ours = {web + link[len(app):] for link in everything if link.startswith(app)}
    others = {link for link in everything - ours
              if any(link.startswith(platform.url(s)) for s in ("profiles", "matching", "notifications", "analytics"))}
    assert not others, f"links to a service instead of the web app: {sorted(others)}"
    for subject, links in mails.items():
        assert any(link.startswith(app) for link in links), f"{subject!r} links nowhere in the app: {links}"
    paths = {link[len(web):].split("?")[0] for link in ours}
    assert f"/mentorships/{mid}" in paths and "/sign-in/email" in paths, paths

    sign_in_links = sorted(link for link in ours if "/sign-in/email" in link)
    await sign_in_local(page, world.network, "Mo Mail")
    for link in sorted(ours - set(sign_in_links)):
        response = await page.goto(link)
        assert response.status == 200, (link, response.status)
        heading = await page.inner_text("h1")
        assert heading not in ("Not found", "Not allowed", "That did not work"), (link, heading)
        if "/mentorships/" in link:
            assert heading == "Mentorship with Dr Lin Links", link
        if "/unsubscribe" in link:
            assert await page.locator("button:has-text('Unsubscribe')").count() == 1, link
    await page.click("text=Sign out")
    await page.goto(sign_in_links[-1])
    await page.click("button:has-text('Continue')")
    await page.wait_for_selector("h1:has-text('Welcome')")
