"""A participant's journeys in Chromium, one test each: completing the profile, programs,
finding a mentor (by keyboard alone) and answering proposals, the life of a mentorship,
notifications and preferences with the unsubscribe landing, and their own data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

import pytest

from tests.e2e.web.conftest import check_page, sign_in_local, tab_to
from tests.support import eventually

MENTOR_PROFILE = {"specialty": "cardiology", "help_offered": ["research", "career-planning"],
                  "languages": ["en"], "meeting_modes": ["virtual"], "time_zone": "Europe/London"}

# A journey is several pages and services; on a loaded machine it needs more than 300 s.
pytestmark = pytest.mark.timeout(900)


async def test_first_visit_completes_the_profile_with_opt_in_identity(world, page):
    program = await world.program()
    mentee = await world.person("mentee", "Ada Mentee", program)
    await sign_in_local(page, world.network, "Ada Mentee")
    assert page.url.endswith("/profile?first=1")
    explained = await page.inner_text("#identity-explained")
    assert "Only you can see them" in explained and "never names them" in explained

    # A wrong value is refused next to its field, and what was ticked is kept.
    await page.check("input[name=needs][value=research]")
    await page.fill("#mentors_wanted", "20")
    await page.click("button:has-text('Save my profile')")
    assert "1 to 10" in await page.inner_text("#mentors_wanted-error")
    assert await page.get_attribute("#mentors_wanted", "aria-invalid") == "true"
    assert "mentors_wanted-error" in await page.get_attribute("#mentors_wanted", "aria-describedby")
    assert await page.is_checked("input[name=needs][value=research]")
    await check_page(page, "profile-error")

    await page.check("input[name=needs][value=career-planning]")
    await page.check("input[name=specialty_interests][value=cardiology]")
    await page.select_option("#preferred_mode", "virtual")
    await page.fill("#preferred_language", "en")
    await page.fill("#mentors_wanted", "1")
    await page.check("#identity_shared")
    await page.select_option("#first_generation", "yes")
    await page.check("#affinity_matching")
    await page.click("button:has-text('Save my profile')")
    await page.wait_for_selector("text=Your profile is saved.")
    await check_page(page, "profile")

    own = await world.http.get(world.url("profiles", f"/people/{mentee}"), headers=world.as_(mentee))
    stored = own.json()
    assert sorted(stored["mentee"]["needs"]) == ["career-planning", "research"]
    assert stored["mentee"]["specialty_interests"] == ["cardiology"]
    assert stored["mentee"]["preferred_mode"] == "virtual"
    assert stored["identity"]["first_generation"] is True and stored["identity"]["affinity_matching"]
    seen_by_admin = (await world.call("GET", "profiles", f"/people/{mentee}"))
    assert "identity" not in seen_by_admin or seen_by_admin["identity"] is None
    await page.goto("/")
    assert "Complete your profile" not in await page.inner_text("main")


async def test_programs_join_an_open_one_and_see_a_pending_approval(world, page):
    first = await world.program("Near-peer 2026")
    approval = await world.program("Faculty mentoring", type="faculty", requires_approval=True)
    await world.program("Wellbeing circle", type="peer")
    await world.program("Closed last year", enrolment_opens="2025-01-01", enrolment_closes="2025-02-01",
                        cohort_start="2025-01-01", cohort_end="2025-12-01")
    await world.person("mentee", "Pat Programs", first, needs=["research"], specialty_interests=["cardiology"])
    await sign_in_local(page, world.network, "Pat Programs")
    await page.click("nav >> text=My programs")
    open_now = await page.inner_text("#open-heading + ul")
    assert "Faculty mentoring" in open_now and "Wellbeing circle" in open_now
    assert "Closed last year" not in open_now and "Near-peer 2026" not in open_now

    await page.click("button:has-text('Join Wellbeing circle')")
    await page.wait_for_selector("text=You joined the program as a mentee.")
    await page.click("button:has-text('Join Faculty mentoring')")
    await page.wait_for_selector("text=waiting for a coordinator's approval")
    pending = await page.inner_text("#pending-heading + ul")
    assert "Faculty mentoring" in pending
    mine = await page.inner_text("#mine-heading + div")
    assert "Wellbeing circle" in mine and "requested" in mine
    await check_page(page, "programs")
    requests = await world.call("GET", "profiles", f"/programs/{approval}/enrolments?status=requested")
    assert [r["display_name"] for r in requests["items"]] == ["Pat Programs"]


async def test_find_a_mentor_by_keyboard_and_answer_proposals(world, page, browser, web):
    program = await world.program()
    await world.person("mentor", "Dr Grace Cardio", program, career_stage="PGY-2", **MENTOR_PROFILE)
    await world.person("mentor", "Dr Omar Onco", program, career_stage="PGY-2",
                       specialty="oncology", help_offered=["wellbeing"], time_zone="UTC")
    mentee = await world.person("mentee", "Kim Keyboard", program)
    other = await world.person("mentee", "Lee Later", program, needs=["research"])

    # The mentee, keyboard only: sign in, complete the profile, find and ask a mentor.
    await page.goto(f"/sign-in?network={world.network}")
    await tab_to(page, "#person_id")
    for _ in range(20):
        if (await page.evaluate("() => document.activeElement.selectedOptions[0].text")).startswith("Kim"):
            break
        await page.keyboard.press("ArrowDown")
    await tab_to(page, "button:has-text('Sign in as this person')")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/profile?first=1")
    await tab_to(page, "input[name=needs][value=research]")
    await page.keyboard.press("Space")
    await tab_to(page, "input[name=specialty_interests][value=cardiology]")
    await page.keyboard.press("Space")
    await tab_to(page, "button:has-text('Save my profile')")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=Your profile is saved.")

    await world.suggestions(program, mentee, 2)
    await tab_to(page, "nav >> text=Find a mentor")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h3:has-text('Dr Grace Cardio')")
    first = page.locator("ol.cards > li").first
    assert "Dr Grace Cardio" in await first.inner_text()  # the best fit first
    reasons = await first.locator("ul.reasons li").all_inner_texts()
    assert reasons and any("research" in r for r in reasons), reasons
    await check_page(page, "find-a-mentor")
    await tab_to(page, "button:has-text('Ask Dr Grace Cardio to mentor me')")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=Your request is sent")
    mentorship_url = page.url
    assert "/mentorships/ms-" in mentorship_url
    if await page.locator("button:has-text('Accept')").count():
        await tab_to(page, "button:has-text('Accept')")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("text=You accepted")

    # A second proposal to the same mentor, from a coordinator, for the mentor to decline.
    grace = next(s for s in await world.suggestions(program, other, 1) if s["display_name"] == "Dr Grace Cardio")
    declined = await world.call("POST", "matching", f"/programs/{program}/proposals",
                                json={"mentee_id": other, "mentor_id": grace["mentor_id"]})

    mentor_context = await browser.new_context(base_url=web, viewport={"width": 1280, "height": 900})
    try:
        mentor_page = await mentor_context.new_page()
        mentor_page.csp_errors = []
        await sign_in_local(mentor_page, world.network, "Dr Grace Cardio")
        await mentor_page.goto("/")
        attention = await mentor_page.inner_text("#attention-heading + ul")
        assert "Kim Keyboard" in attention and "Lee Later" in attention
        await mentor_page.click("text=Answer the proposal: Kim Keyboard as your mentee")
        await check_page(mentor_page, "proposal")
        reasons = await mentor_page.locator("ul.reasons li").all_inner_texts()
        assert reasons
        await mentor_page.click("button:has-text('Accept')")
        await mentor_page.wait_for_selector(".badge:has-text('active')")

        await mentor_page.goto(f"/mentorships/{declined['mentorship_id']}")
        await mentor_page.fill("#reason", "No room this term, sorry")
        await mentor_page.click("button:has-text('Decline')")
        await mentor_page.wait_for_selector("text=You declined this proposal.")
        assert "Declined by the mentor" in await mentor_page.inner_text("main")
    finally:
        await mentor_context.close()
    stored = await world.call("GET", "matching", f"/mentorships/{declined['mentorship_id']}")
    assert stored["status"] == "declined" and stored["decline_reason"] == "No room this term, sorry"
    await page.goto(mentorship_url)
    assert "active" in await page.inner_text(".lede")


async def test_my_mentorship_from_agreement_to_rematch(world, page):
    program = await world.program()
    mentor = await world.person("mentor", "Dr Mira Mentor", program, career_stage="PGY-2", **MENTOR_PROFILE)
    mentee = await world.person("mentee", "Noor Mentee", program, needs=["research"],
                                specialty_interests=["cardiology"])
    mid = await world.mentorship(program, mentee, mentor)
    await sign_in_local(page, world.network, "Noor Mentee")
    await page.click(f"a[href='/mentorships/{mid}']")
    await page.wait_for_selector("h1:has-text('Mentorship with Dr Mira Mentor')")

    # Agreement (htmx: only its section is replaced).
    await page.fill("#cadence_days", "14")
    await page.select_option("#channel", "video")
    await page.fill("#expectations", "Reply within two days\nCome with an agenda")
    await page.click("button:has-text('Save the agreement')")
    await page.wait_for_selector("#agreement >> text=The agreement is saved.")
    assert "14 days" in await page.inner_text("#agreement")

    # Schedule a meeting, then its calendar file.
    await page.click("summary:has-text('Schedule a meeting')")
    await page.fill("#starts_at", "2031-03-04T15:30")
    await page.fill("#agenda", "Research question")
    await page.click("button:has-text('Schedule')")
    await page.wait_for_selector("#meetings >> text=The meeting is scheduled.")
    async with page.expect_download() as info:
        await page.click("text=Add to my calendar (.ics)")
    download = await info.value
    calendar = Calendar.from_ical(open(await download.path(), "rb").read())
    event = next(c for c in calendar.walk() if c.name == "VEVENT")
    assert event.decoded("dtstart").isoformat() == "2031-03-04T15:30:00+00:00"
    assert "Dr Mira Mentor" in str(event.get("summary")) and str(event.get("description")) == "Research question"

    # Log a meeting with private notes.
    await page.click("summary:has-text('Log a meeting that took place')")
    held = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    await page.fill("#held_at", held)
    await page.fill("#topics", "research question, timeline")
    await page.fill("#private_notes", "Felt unsure about the stats")
    await page.click("button:has-text('Log the meeting')")
    await page.wait_for_selector("#meetings >> text=The meeting is logged.")
    assert "Felt unsure about the stats" in await page.inner_text("#meetings")
    as_coordinator = await world.call("GET", "matching", f"/mentorships/{mid}/meetings")
    assert all("private_notes" not in m or not m["private_notes"] for m in as_coordinator)

    # A SMART goal, its progress and a milestone.
    await page.click("summary:has-text('Set a SMART goal')")
    await page.fill("#text", "Submit a case report by June")
    await page.select_option("#category", "research")
    await page.fill("#target_date", "2031-06-30")
    await page.click("button:has-text('Set the goal')")
    await page.wait_for_selector("#goals >> text=The goal is set.")
    await page.fill("#goals input[name=progress]", "60")
    await page.click("button:has-text('Update progress')")
    await page.wait_for_selector("#goals >> text=The progress is recorded.")
    assert "60%" in await page.inner_text("#goals")
    await page.click("summary:has-text('Record a milestone')")
    await page.fill("#title", "First draft written")
    await page.click("button:has-text('Record the milestone')")
    await page.wait_for_selector("#goals >> text=First draft written")

    # Feedback 1-5 with a comment.
    await page.check("input[name=satisfaction][value='5']")
    await page.fill("#comment", "Very helpful <b>so far</b>")
    await page.click("button:has-text('Send feedback')")
    await page.wait_for_selector("#feedback >> text=your feedback is recorded")
    await check_page(page, "mentorship")
    stored = await world.call("GET", "matching", f"/mentorships/{mid}")
    assert stored["agreement"]["cadence_days"] == 14 and stored["feedback_count"] == 1
    assert stored["goals"][0]["progress"] == 60 and stored["milestones"][0]["title"] == "First draft written"

    # End it, asking for a rematch.
    await page.select_option("select[name=reason]", "no_fit")
    await page.check("#rematch")
    await page.click("button:has-text('End the mentorship')")
    await page.wait_for_selector("text=back in the program's matching")
    stored = await world.call("GET", "matching", f"/mentorships/{mid}")
    assert stored["status"] == "ended" and stored["end_reason"] == "no_fit" and stored["rematch"] is True


def email_text(message) -> str:
    """Headers and every decoded text part of an email (links as a reader's client shows them)."""
    parts = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            parts.append(part.get_content())
    return "\n".join(parts)


async def test_notifications_feed_preferences_and_unsubscribe(world, page, mailbox):
    program = await world.program()
    mentor = await world.person("mentor", "Dr Fay Feed", program, career_stage="PGY-2", **MENTOR_PROFILE)
    mentee = await world.person("mentee", "Uma Unread", program, needs=["research"],
                                specialty_interests=["cardiology"])
    email = await world.email_of(mentee)
    await world.call("POST", "matching", f"/programs/{program}/proposals",
                     json={"mentee_id": mentee, "mentor_id": mentor}) if await world.suggestions(
        program, mentee, 1) else None

    async def feed():
        r = await world.http.get(f"{world.platform.url('notifications')}/me/notifications",
                                 headers=world.as_(mentee))
        return r.json()
    await eventually(feed, lambda f: f["unread_count"] >= 2, timeout=60, what="welcome and proposal in the feed")
    proposal_mail = await eventually(
        lambda: [m for m in mailbox.to(email) if "unsubscribe" in m.as_string().lower()],
        bool, timeout=60, what="an email with an unsubscribe link")

    await sign_in_local(page, world.network, "Uma Unread")
    await page.click("nav >> text=Notifications")
    before = int(await page.get_attribute("#unread", "data-unread"))
    assert before >= 2
    await check_page(page, "notifications")
    await page.locator("button:has-text('Mark as read')").first.click()
    await page.wait_for_selector(f"#unread[data-unread='{before - 1}']")

    await page.click("text=Preferences")
    await page.uncheck("#ch-nudge-email")
    await page.select_option("#time_zone", "Europe/Paris")
    await page.fill("#quiet_start", "22:00")
    await page.fill("#quiet_end", "07:00")
    await page.select_option("#digest", "daily")
    await page.click("button:has-text('Save preferences')")
    await page.wait_for_selector("text=Your notification preferences are saved.")
    await check_page(page, "preferences")
    prefs = (await world.http.get(f"{world.platform.url('notifications')}/me/preferences",
                                  headers=world.as_(mentee))).json()
    assert prefs["channels"]["nudge"]["email"] is False and prefs["channels"]["nudge"]["in_app"] is True
    assert prefs["time_zone"] == "Europe/Paris" and prefs["digest"] == "daily"
    assert prefs["quiet_hours"]["start"].startswith("22:00")

    # The unsubscribe link of a real email, opened without being signed in.
    token = re.search(r"unsubscribe\?token=([A-Za-z0-9_.%\-]+)", email_text(proposal_mail[0]))[1]
    await page.click("text=Sign out")
    await page.goto(f"/unsubscribe?token={token}")
    await check_page(page, "unsubscribe")
    await page.click("button:has-text('Unsubscribe')")
    await page.wait_for_selector("h1:has-text('Unsubscribed')")
    prefs = (await world.http.get(f"{world.platform.url('notifications')}/me/preferences",
                                  headers=world.as_(mentee))).json()
    assert any(switches.get("email") is False for kind, switches in prefs["channels"].items()
               if kind != "nudge")
    await page.goto("/unsubscribe?token=forged-token-value")
    await page.click("button:has-text('Unsubscribe')")
    await page.wait_for_selector("text=This unsubscribe link is not valid")


async def test_my_data_export_and_erase_after_confirmation(world, page):
    program = await world.program()
    person = await world.person("mentee", "Dana Data", program, needs=["research"],
                                specialty_interests=["cardiology"])
    await sign_in_local(page, world.network, "Dana Data")
    await page.click("nav >> text=My data")
    await check_page(page, "my-data")
    async with page.expect_download() as info:
        await page.click("a:has-text('Download my data')")
    exported = json.loads(open(await (await info.value).path()).read())
    assert "Dana Data" in json.dumps(exported) and person in json.dumps(exported)

    await page.fill("#confirm", "yes please")
    await page.click("button:has-text('Erase my account')")
    assert await page.get_attribute("#confirm", "aria-invalid") == "true"
    assert "Type the word erase" in await page.inner_text("#confirm-error")
    gone = await world.http.get(world.url("profiles", f"/people/{person}"), headers=world.admin)
    assert gone.status_code == 200  # nothing erased yet

    await page.fill("#confirm", "erase")
    await page.click("button:has-text('Erase my account')")
    await page.wait_for_selector("h1:has-text('Your account is erased')")
    gone = await world.http.get(world.url("profiles", f"/people/{person}"), headers=world.admin)
    assert gone.status_code == 404
    await page.goto("/my-data")
    assert "/sign-in" in page.url
