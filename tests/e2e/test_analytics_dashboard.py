"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

A synthetic network (three chapters, half a year) is published to the broker; once the
running analytics service reports what the domain computes from the same events, a
coordinator opens /dashboard, signs in with a token, and the page must draw every chart with
the numbers the API returns and list the stalled pairs. The screenshot goes to
test-artifacts/dashboard.png (and to docs/dashboard.png with UPDATE_DOCS_SCREENSHOT=1).
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from services.analytics.measures import Period, Report, Scope
from services.analytics.projection import Projection
from services.analytics.synthetic import network as synthetic_network
from tests.e2e.test_analytics_reports import api, platform, publish  # noqa: F401 (fixtures)
from tests.support import eventually

CHROMIUM = "/usr/bin/chromium"
FROM, TO = "2026-01-05", "2026-07-19"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it)")


@pytest.fixture
async def synthetic(api, platform):
    network = f"net-{uuid.uuid4().hex[:6]}"
    scenario = synthetic_network(240, days=196, chapters=3, seed=11, network_id=network)
    await publish(platform.servers.kafka_bootstrap, scenario)
    projection = Projection()
    for name, payload in scenario.events:
        projection.apply(name, payload)
    want = Report(projection, Scope("network", network), Period.of_days(date(2026, 1, 5), date(2026, 7, 19))).summary()

    async def total():
        r = await api.http.get(f"{platform.url('analytics')}/networks/{network}/reports/summary",
                               params={"from": FROM, "to": TO}, headers=api.auth(network))
        return r.json().get("total")

    await eventually(total, lambda got: got == want, timeout=90, what="every synthetic event applied")
    return network


async def report(api, platform, network, name):
    r = await api.http.get(f"{platform.url('analytics')}/networks/{network}/reports/{name}",
                           params={"scope": "network", "from": FROM, "to": TO}, headers=api.auth(network))
    return r.json()


async def test_dashboard_draws_the_numbers_the_api_returns(api, platform, synthetic, tmp_path):
    network = synthetic
    summary = await report(api, platform, network, "summary")
    series = await report(api, platform, network, "series")
    stalled = await report(api, platform, network, "stalled")
    t = summary["total"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{platform.url('analytics')}/dashboard?from={FROM}&to={TO}")
            await page.fill("#token", api.token("network_admin", network))
            await page.click("#signin-form button[type=submit]")
            await page.wait_for_selector("body[data-ready=true]", timeout=30_000)

            drawn = await page.evaluate("""() => Object.fromEntries(
                Object.entries(window.dashboard.charts).map(([id, c]) => [id, c.data.datasets.map(d => d.data)]))""")
            m, g, o, load = t["matching"], t["engagement"], t["outcomes"], t["mentors"]
            assert drawn["chart-funnel"] == [[m["mentees_eligible"], m["proposals"], m["proposals_accepted"], m["mentees_matched"]]]
            assert drawn["chart-status"] == [[g["active"], g["stalled"], g["never_met"]]]
            assert drawn["chart-trend"][0] == [w["meetings"] for w in series["weeks"]]
            assert drawn["chart-trend"][1] == [w["open_mentorships"] for w in series["weeks"]]
            dist = o["satisfaction"]
            assert drawn["chart-satisfaction"] == [
                [dist["mentee"]["distribution"][k] for k in "12345"],
                [dist["mentor"]["distribution"][k] for k in "12345"],
            ]
            assert drawn["chart-load"] == [[load["load_distribution"][k] for k in ("0", "1", "2", "3+")]]
            assert sum(w["meetings"] for w in series["weeks"]) == g["meetings"] > 0

            # The charts really painted: every canvas has non-blank pixels.
            for chart_id in drawn:
                painted = await page.evaluate("""(id) => {
                    const c = document.getElementById(id);
                    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
                    return n; }""", chart_id)
                assert painted > 500, chart_id

            # Every pair to follow up is listed, worst first, and the KPIs carry the API's figures.
            rows = await page.locator("#stalled tr").count()
            assert rows == len(stalled["pairs"]) + 1 and stalled["pairs"]
            first = await page.locator("#stalled tr").nth(1).inner_text()
            assert str(stalled["pairs"][0]["days_without_meeting"]) in first
            kpis = await page.inner_text("#kpis")
            assert f"{m['match_rate_pct']}%" in kpis and str(g["mentorships_open"]) in kpis
            chapters = await page.locator("#chapters tr").count()
            assert chapters == len(summary["chapters"]) + 2  # header, chapters, total

            out = ROOT / "test-artifacts"
            out.mkdir(exist_ok=True)
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            shutil.copy(tmp_path / "dashboard.png", out / "dashboard.png")
            if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
                shutil.copy(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")
            assert (tmp_path / "dashboard.png").stat().st_size > 20_000
        finally:
            await browser.close()


async def test_dashboard_refuses_a_bad_token_and_narrows_a_coordinator(api, platform, synthetic):
    network = synthetic
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{platform.url('analytics')}/dashboard")
            await page.fill("#token", "not-a-token")
            await page.click("#signin-form button[type=submit]")
            await page.wait_for_selector("#signin-error:not([hidden])")
            assert "token" in (await page.inner_text("#signin-error")).lower()

            program = f"{network}-c1-p0"
            await page.fill("#token", api.token("program_coordinator", network, program_ids=[program]))
            await page.click("#signin-form button[type=submit]")
            await page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            options = await page.locator("#scope option").all_inner_texts()
            assert len(options) == 1 and options[0].startswith("Program:")
        finally:
            await browser.close()
