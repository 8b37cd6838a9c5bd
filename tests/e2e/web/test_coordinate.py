"""A coordinator's journeys in Chromium, one test each: programs with every option, the roster
(dry run, import, people, enrolment requests), matching (weights, a draft by name, edits,
publishing, a hand match), follow-up (nudges, feedback) and the reports with their CSV.

The coordinator is an institution coordinator of the test network's institution, signed in
with the local picker; what they may do is the services' decision from that grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.web.conftest import check_page, sign_in_local
from tests.e2e.web.world import today
from tests.support import eventually

MENTOR = {"specialty": "cardiology", "help_offered": ["research"], "languages": ["en"],
          "meeting_modes": ["virtual"], "time_zone": "Europe/London"}

# A journey is several pages and services; on a loaded machine it needs more than 300 s.
pytestmark = pytest.mark.timeout(900)


async def coordinator(world, name: str = "Cora Coordinator") -> str:
    person = await world.person("mentor", name, career_stage="PGY-3")
    await world.grant(person, "institution_coordinator", institution_id="inst-a")
    return person


async def test_programs_create_and_edit_every_option(world, page):
    await coordinator(world)
    await sign_in_local(page, world.network, "Cora Coordinator", next_path="/coordinate/programs")
    await page.click("summary:has-text('Create a program')")
    await page.select_option("#institution_id", "inst-a")
    await page.fill("#name", "Surgery pathway")
    await page.select_option("#type", "specialty-specific")
    await page.fill("#cohort_start", today(30))
    await page.fill("#cohort_end", today(10))  # ends before it starts: refused with the reason
    await page.fill("#enrolment_opens", today(-1))
    await page.fill("#enrolment_closes", today(20))
    await page.click("button:has-text('Create the program')")
    assert "must end after it starts" in await page.inner_text("#form-error")
    await page.fill("#cohort_end", today(400))
    await page.fill("#cadence_days", "21")
    await page.fill("#reassessment_days", "60")
    await page.fill("#max_mentors_per_mentee", "2")
    for flag in ("#cross_institution", "#requires_approval", "#ranked_preferences"):
        await page.check(flag)
    await page.fill("#coordinator_emails", "cora@example.org, lead@example.org")
    await page.click("button:has-text('Create the program')")
    await page.wait_for_selector("text=The program Surgery pathway is created.")
    program_id = page.url.rsplit("/", 1)[1]
    await check_page(page, "coordinate-program")

    await page.fill("#name", "Surgery pathway 2027")
    await page.uncheck("#requires_approval")
    await page.check("#auto_accept")
    await page.fill("#cadence_days", "14")
    await page.click("button:has-text('Save the program')")
    # Two options that exclude each other: the service's reason is shown, the form is kept.
    assert "not both" in await page.inner_text("#form-error")
    assert await page.input_value("#name") == "Surgery pathway 2027"
    await page.uncheck("#ranked_preferences")
    await page.click("button:has-text('Save the program')")
    await page.wait_for_selector("text=The program is saved.")
    stored = await world.call("GET", "profiles", f"/programs/{program_id}")
    assert stored["name"] == "Surgery pathway 2027" and stored["type"] == "specialty-specific"
    assert (stored["cadence_days"], stored["reassessment_days"], stored["max_mentors_per_mentee"]) == (14, 60, 2)
    assert stored["cross_institution"] and not stored["ranked_preferences"] and stored["auto_accept"]
    assert not stored["requires_approval"] and stored["version"] == 2
    assert stored["coordinator_emails"] == ["cora@example.org", "lead@example.org"]
    await page.click("nav a[href='/coordinate/programs']")
    assert "Surgery pathway 2027" in await page.inner_text("main table")
    await check_page(page, "coordinate-programs")


async def test_roster_dry_run_import_people_and_requests(world, page, tmp_path):
    await coordinator(world)
    program = await world.program("Faculty circle", type="faculty", requires_approval=True)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "email,first_name,last_name,institution_id,role,career_stage,program_id,needs\n"
        f"rae@example.org,Rae,Roster,inst-a,mentee,M3,{program},research\n"
        "bad@example.org,Bad,Row,inst-a,mentee,M99,,\n"
        f"ian@example.org,Ian,Import,inst-a,mentor,PGY-4,{program},\n")
    requester = await world.person("mentee", "Quinn Request", career_stage="M1")
    decliner = await world.person("mentee", "Dee Declined", career_stage="M1")
    for person in (requester, decliner):
        r = await world.http.post(world.url("profiles", f"/programs/{program}/enrolments"),
                                  json={"person_id": person, "role": "mentee"}, headers=world.as_(person))
        assert r.status_code == 201 and r.json()["status"] == "requested", r.text

    await sign_in_local(page, world.network, "Cora Coordinator", next_path="/coordinate/roster")
    await page.set_input_files("#file", str(roster))
    await page.click("button:has-text('Check the roster')")
    await page.wait_for_selector("text=Dry run: nothing is written yet")
    assert await page.inner_text("#rows") == "3" and await page.inner_text("#created") == "2"
    errors = await page.inner_text("#row-errors")
    assert "3" in errors.split("\n")[1] and "M99" in errors  # the bad row, by its line number
    await check_page(page, "coordinate-roster")
    none_yet = await world.call("GET", "profiles", "/people?q=Roster")
    assert none_yet["items"] == []
    await page.click("button:has-text('Import the valid rows')")
    await page.wait_for_selector("h2:has-text('Imported')")
    assert await page.inner_text("#created") == "2"

    await page.click("nav >> text=People")
    await page.fill("#q", "roster")
    await page.click("button:has-text('Search')")
    rows = await page.locator("#people tbody tr").all_inner_texts()
    assert len(rows) == 1 and "Rae Roster" in rows[0] and "Faculty circle" in rows[0]
    await page.fill("#q", "")
    await page.select_option("#role", "mentor")
    await page.select_option("#program", program)
    await page.click("button:has-text('Search')")
    names = [r.split("\t")[0] for r in await page.locator("#people tbody tr").all_inner_texts()]
    assert names == ["Ian Import"]
    await check_page(page, "coordinate-people")

    await page.goto(f"/coordinate/programs/{program}/requests")
    await check_page(page, "coordinate-requests")
    await page.click("button:has-text('Approve Quinn Request')")
    await page.wait_for_selector("text=Approved: the person is enrolled.")
    await page.fill("#reason-1", "The circle is full this year")
    await page.get_by_role("button", name="Decline", exact=True).click()
    await page.wait_for_selector("text=No request is waiting.")
    statuses = {e["person_id"]: (e["status"], e["reason"]) for e in (await world.call(
        "GET", "profiles", f"/programs/{program}/enrolments"))["items"] if e["person_id"] in (requester, decliner)}
    assert statuses == {requester: ("active", ""), decliner: ("declined", "The circle is full this year")}


async def test_matching_weights_draft_by_name_edits_publish_and_hand_match(world, page):
    await coordinator(world)
    program = await world.program()
    mentors = {name: await world.person("mentor", name, program, career_stage="PGY-2", capacity=1, **MENTOR)
               for name in ("Dr Ada Heart", "Dr Ben Beat")}
    paused = await world.person("mentor", "Dr Pam Paused", program, career_stage="PGY-2", paused=True, **MENTOR)
    mentees = {name: await world.person("mentee", name, program, needs=["research"],
                                        specialty_interests=["cardiology"])
               for name in ("Eve Early", "Fin First")}
    late = await world.person("mentee", "Gus Hand", program, needs=["research"])
    await world.suggestions(program, late, 2)

    await sign_in_local(page, world.network, "Cora Coordinator",
                        next_path=f"/coordinate/programs/{program}/matching")
    await page.fill("#w_needs", "8")
    await page.fill("#w_language", "0")
    await page.check("#fair")
    await page.click("button:has-text('Save the weights')")
    await page.wait_for_selector("text=The matching weights are saved.")
    settings = await world.call("GET", "matching", f"/programs/{program}/matching-settings")
    assert settings["weights"]["needs"] == 8 and settings["weights"]["language"] == 0 and settings["fair"]
    await check_page(page, "coordinate-matching")

    await page.click("button:has-text('Run a draft')")
    await page.wait_for_selector("text=The draft is ready")
    pairs = await page.locator("#pairs tbody tr").all_inner_texts()
    assert len(pairs) == 2, pairs
    for row in pairs:  # names, not ids, with a score and reasons in words
        assert any(n in row for n in mentees) and any(n in row for n in mentors) and "research" in row
    await check_page(page, "coordinate-run")
    first = pairs[0]
    mentee_name = next(n for n in (*mentees, "Gus Hand") if n in first)
    mentor_name = next(n for n in mentors if n in first)
    await page.click(f"button:has-text('Remove {mentee_name} with {mentor_name}')")
    await page.wait_for_selector("text=The pair is removed from the draft.")
    assert len(await page.locator("#pairs tbody tr").all_inner_texts()) == 1
    # A paused mentor breaks a hard constraint: refused with the reason.
    await page.select_option("#mentee_id", label=mentee_name)
    await page.select_option("#mentor_id", label="Dr Pam Paused")
    await page.click("button:has-text('Add the pair')")
    await page.wait_for_selector("text=Cannot add")
    assert "paused" in (await page.inner_text("main")).lower()
    await page.go_back()
    await page.reload()
    await page.select_option("#mentee_id", label=mentee_name)
    await page.select_option("#mentor_id", label=mentor_name)
    await page.click("button:has-text('Add the pair')")
    await page.wait_for_selector("text=The pair is added to the draft.")
    await page.click("button:has-text('Publish: propose every pair')")
    await page.wait_for_selector(".badge:has-text('published')")
    run_id = page.url.rsplit("/", 1)[1]
    run = await world.call("GET", "matching", f"/programs/{program}/runs/{run_id}")
    assert run["status"] == "published" and len(run["mentorship_ids"]) == 2

    await page.goto(f"/coordinate/programs/{program}/matching")
    await page.select_option("#mentee_id", label="Gus Hand")
    await page.select_option("#mentor_id", label="Dr Pam Paused")
    await page.click("button:has-text('Propose this pair')")
    assert "paused" in (await page.inner_text("main")).lower()
    assert paused


async def test_follow_up_nudges_a_silent_pair_and_shows_feedback(world, page):
    await coordinator(world)
    program = await world.program(cadence_days=7)
    mentor = await world.person("mentor", "Dr Sia Silent", program, career_stage="PGY-2", **MENTOR)
    mentee = await world.person("mentee", "Tom Quiet", program, needs=["research"])
    mid = await world.mentorship(program, mentee, mentor, days_ago=40)
    r = await world.http.post(world.url("matching", f"/mentorships/{mid}/feedback"), headers=world.as_(mentee),
                              json={"satisfaction": 2, "working": False, "comment": "Hard to find a time <i>at all</i>"})
    assert r.status_code == 201, r.text
    held = (datetime.now(UTC) - timedelta(days=39)).isoformat()
    r = await world.http.post(world.url("matching", f"/mentorships/{mid}/meetings/log"), headers=world.as_(mentee),
                              json={"held_at": held, "duration_minutes": 20, "mode": "video",
                                    "private_notes": "PRIVATE-TO-THE-PAIR"})
    assert r.status_code == 201, r.text

    async def stalled():
        return await world.call("GET", "analytics", "/reports/stalled",
                                params={"from": today(-89), "to": today()})
    await eventually(stalled, lambda s: any(p["mentorship_id"] == mid for p in s["pairs"]), timeout=90,
                     what="analytics to count the pair as stalled")

    await sign_in_local(page, world.network, "Cora Coordinator", next_path="/coordinate/follow-up")
    table = await page.inner_text("#stalled")
    assert "Dr Sia Silent" in table and "Tom Quiet" in table and "stalled" in table
    feedback = await page.inner_text("#feedback")
    assert "Hard to find a time <i>at all</i>" in feedback and "2/5" in feedback
    assert "PRIVATE-TO-THE-PAIR" not in await page.content()
    await check_page(page, "coordinate-follow-up")
    await page.click("button:has-text('Nudge Dr Sia Silent and Tom Quiet')")
    await page.wait_for_selector("text=A nudge is on its way to both of them.")

    async def nudged():
        r = await world.http.get(f"{world.platform.url('notifications')}/me/notifications",
                                 headers=world.as_(mentee))
        return [n for n in r.json()["items"] if n["kind"] == "nudge"]
    await eventually(nudged, bool, timeout=60, what="the nudge in the mentee's feed")


async def test_reports_inside_the_app_and_their_csv(world, page):
    await coordinator(world)
    program = await world.program()
    mentor = await world.person("mentor", "Dr Rita Report", program, career_stage="PGY-2", **MENTOR)
    mentee = await world.person("mentee", "Ola Open", program, needs=["research"])
    await world.mentorship(program, mentee, mentor, days_ago=10)

    async def summary():
        return await world.call("GET", "analytics", "/reports/summary", params={
            "scope": "institution", "id": "inst-a", "from": today(-89), "to": today()})
    await eventually(summary, lambda s: s["total"]["engagement"]["mentorships_open"] == 1, timeout=90,
                     what="analytics to count the mentorship")

    await sign_in_local(page, world.network, "Cora Coordinator", next_path="/coordinate/reports")
    await page.wait_for_selector("body[data-charts-ready=true]")
    kpis = await page.inner_text("#kpis")
    assert "Open mentorships" in kpis
    drawn = await page.evaluate("() => window.reportCharts.funnel.data.datasets[0].data")
    want = (await summary())["total"]["matching"]
    assert drawn == [want["mentees_eligible"], want["proposals"], want["proposals_accepted"], want["mentees_matched"]]
    await check_page(page, "coordinate-reports")
    async with page.expect_download() as info:
        await page.click("#csv")
    csv_text = open(await (await info.value).path()).read()
    assert csv_text.splitlines()[0].startswith("unit") and "St Elsewhere" in csv_text
