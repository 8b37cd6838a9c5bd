"""A network admin's journey in Chromium: institutions and chapters, vocabularies (add and
retire terms), grants, webhooks, a template override with its preview, a failed delivery
retried, and the audit log of what they did."""

from __future__ import annotations

import pytest

from tests.e2e.web.conftest import check_page, sign_in_local
from tests.support import eventually

# A journey is several pages and services; on a loaded machine it needs more than 300 s.
pytestmark = pytest.mark.timeout(900)


async def test_network_admin_runs_the_network(world, page, mailbox):
    program = await world.program()
    admin = await world.person("mentee", "Nia Admin", program, needs=["research"], specialty_interests=["cardiology"])
    await world.grant(admin, "network_admin")
    colleague = await world.person("mentor", "Dr Colm Colleague", program, career_stage="PGY-5")
    colleague_email = await world.email_of(colleague)
    bounced = "bounce-" + colleague_email
    mailbox.refuse[bounced] = "always"
    r = await world.http.post(world.url("profiles", "/mentees"), headers=world.admin, json={
        "institution_id": "inst-a", "display_name": "Bo Bounce", "email": bounced, "career_stage": "M1"})
    assert r.status_code == 201, r.text

    await sign_in_local(page, world.network, "Nia Admin", next_path="/admin/institutions")
    await page.fill("#name", "Chapter West")
    await page.fill("#id", "chapter-west")
    await page.select_option("#kind", "chapter")
    await page.click("button:has-text('Add')")
    await page.wait_for_selector("text=Chapter West is added.")
    assert "chapter-west" in await page.inner_text("#institutions")
    await check_page(page, "admin-institutions")

    await page.click("nav >> text=Vocabularies")
    await page.fill("#add-specialties", "global-health")
    await page.locator("#h-specialties + ul + form button, section:has(#h-specialties) button:has-text('Add')").last.click()
    await page.wait_for_selector("text=Added: global-health.")
    assert "global-health" in await page.inner_text("#terms-specialties")
    await page.click("button:has-text('Retire wellbeing')")
    await page.wait_for_selector("text=is retired")
    assert "wellbeing" not in await page.inner_text("#terms-help-categories")
    await check_page(page, "admin-vocabularies")

    await page.click("nav >> text=Grants")
    await page.fill("#email", colleague_email)
    await page.select_option("#role", "program_coordinator")
    await page.select_option("#program_id", program)
    await page.click("button:has-text('Grant')")
    await page.wait_for_selector("text=now holds the grant")
    grants = await page.inner_text("#grants")
    assert "program coordinator" in grants
    await check_page(page, "admin-grants")
    held = await world.call("GET", "profiles", f"/grants?person_id={colleague}")
    assert [(g["role"], g["program_id"]) for g in held["items"]] == [("program_coordinator", program)]
    await page.locator("#grants button:has-text('Revoke program coordinator')").first.click()
    await page.wait_for_selector("text=The grant is revoked")
    held = await world.call("GET", "profiles", f"/grants?person_id={colleague}")
    assert held["items"] == []

    await page.click("nav >> text=Webhooks")
    await page.fill("#url", "https://hooks.example.org/mentorship")
    await page.check("input[name=kinds][value=milestone]")
    await page.click("button:has-text('Register')")
    await page.wait_for_selector("#webhook-secret")
    assert len(await page.inner_text("#webhook-secret")) >= 20
    await check_page(page, "admin-webhooks")
    await page.click("button:has-text('Remove https://hooks.example.org/mentorship')")
    await page.wait_for_selector("text=The webhook is removed.")
    assert await world.call("GET", "notifications", "/webhooks") == []

    await page.click("nav >> text=Templates")
    await page.select_option("#kind", "welcome")
    await page.click("button:has-text('Edit this kind')")
    await page.fill("#subject", "Welcome aboard, {{ recipient.first_name }}")
    await page.click("button:has-text('Preview')")
    await page.wait_for_selector("#preview")
    assert "Welcome aboard, Ada" in await page.inner_text("#preview")
    await check_page(page, "admin-templates")
    await page.click("button:has-text('Save')")
    await page.wait_for_selector("text=The welcome template is saved.")
    overrides = await world.call("GET", "notifications", "/templates")
    assert [(o["kind"], o["subject"]) for o in overrides] == [("welcome", "Welcome aboard, {{ recipient.first_name }}")]

    async def failed():
        return await world.call("GET", "notifications", "/deliveries", params={"status": "failed"})
    await eventually(failed, lambda d: any(x["to"] == bounced for x in d), timeout=90,
                     what="the bounced welcome to fail")
    mailbox.refuse.pop(bounced)
    await page.click("nav >> text=Deliveries")
    assert bounced in await page.inner_text("#deliveries")
    await check_page(page, "admin-deliveries")
    await page.click(f"button:has-text('Retry welcome to {bounced}')")
    await page.wait_for_selector("text=The delivery is queued again.")
    await eventually(lambda: mailbox.to(bounced), bool, timeout=60, what="the retried welcome")

    await page.click("nav >> text=Audit log")
    log = await page.inner_text("#audit")
    for action in ("institution.created", "vocabulary.retired", "grant.added"):
        assert action in log, action
    await check_page(page, "admin-audit")
