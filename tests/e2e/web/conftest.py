"""The web app on the session's shared platform, in one Chromium for the whole session.

The web tests live under tests/e2e so they share the e2e session `platform` (and its SMTP
Mailbox) instead of starting a second one: the web service is added to that platform the
first time a web test needs it. Each test gets a fresh browser context (its own cookies).

Helpers: `shoot` saves a page at 375 px and 1280 px into test-artifacts/, `accessible`
fails on any serious or critical axe-core violation, `sign_in_local` uses the local sign-in
picker of the sign-in page.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.e2e.web.world import World

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 375, "height": 800}

if not Path(CHROMIUM).exists():  # pragma: no cover - make test installs it
    pytest.skip("needs Debian's chromium (make test installs it)", allow_module_level=True)


@pytest.fixture(scope="session")
def web(platform) -> str:
    """The web app's URL, started on the shared platform once."""
    if "web" not in platform.procs:
        platform.start("web")
    return platform.url("web")


@pytest.fixture
async def world(platform, web) -> AsyncIterator[World]:
    """A fresh network of this test's own, built through the APIs."""
    async with httpx.AsyncClient(timeout=30) as http:
        built = World(platform, http)
        await built.institution()
        yield built


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser, web: str) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=WIDE, base_url=web, accept_downloads=True)
    # Generous: the suite shares two cores with the platform (and, here, with other suites).
    ctx.set_default_timeout(60_000)
    ctx.set_default_navigation_timeout(60_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    page = await context.new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: page.csp_errors.append(msg.text)  # type: ignore[attr-defined]
            if "Content Security Policy" in msg.text else None)
    yield page


async def shoot(page: Page, name: str) -> None:
    """The page as it is now, at phone width and at desktop width."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("375", NARROW), ("1280", WIDE)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"web-{name}-{label}.png"), full_page=True)
    # At 375 px nothing may overflow sideways (the page must not need horizontal scrolling).
    await page.set_viewport_size(NARROW)
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    await page.set_viewport_size(WIDE)
    assert overflow <= 1, f"{name}: {overflow}px wider than a 375 px phone"


async def accessible(page: Page, name: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    if bad:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"web-{name}-failed.html").write_text(await page.content())
    detail = "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n.get("target")) for n in v["nodes"][:3]) for v in bad)
    assert not bad, f"{name}: {detail}"


async def check_page(page: Page, name: str) -> None:
    """Screenshots at both widths and the accessibility check: every key page gets both."""
    await accessible(page, name)
    await shoot(page, name)
    assert not page.csp_errors, page.csp_errors  # type: ignore[attr-defined]


async def sign_in_local(page: Page, network: str, display_name: str, next_path: str = "") -> None:
    """The sign-in page's local picker (development platforms only)."""
    await page.goto(f"/sign-in?network={network}" + (f"&next={next_path}" if next_path else ""))
    await page.select_option("#person_id", label=await _label(page, display_name))
    await page.click("text=Sign in as this person")
    await page.wait_for_load_state("domcontentloaded")


async def _label(page: Page, display_name: str) -> str:
    options = await page.locator("#person_id option").all_inner_texts()
    found = [o for o in options if o.startswith(display_name)]
    assert found, f"{display_name} is not offered by the local sign-in ({len(options)} people)"
    return found[0]


def unique(prefix: str = "net") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def tab_to(page: Page, selector: str, limit: int = 300) -> None:
    """Press Tab until the element matching `selector` has the focus (keyboard only)."""
    target = page.locator(selector).first
    await target.wait_for(state="attached")
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")
