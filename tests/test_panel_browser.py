"""The panel in a real browser (Debian's headless Chromium, driven by Playwright) against a real
newsbot run: the app wiring, a store folder, SQLite, and the fake Discord that the real
discord.py posts to. An operator logs in (after a wrong password), adds a subscription, drops an
article file into the store and finds it in the delivery log with the message id Discord
gave, finds a channel Discord refused parked with its reason and retries it, and opens a
hostile article, whose title shows as text and runs nothing.

Chromium is Debian's (`/usr/bin/chromium`; `.ci/run` installs it); without it these tests are
skipped, unless NEWSBOT_REQUIRE_BROWSER=1 (CI), where they fail. With NEWSBOT_SCREENSHOTS=1 they
write the README's screenshots to docs/panel/."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import RunningBot, run_bot
from bot.config import load_config
from tests.conftest import REPO, FakeClock, RunningClock
from tests.fakes.discord_server import FakeDiscord, patch_discord_py
from tests.test_discord_e2e import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REQUIRE_BROWSER = "NEWSBOT_REQUIRE_BROWSER"
SCREENSHOTS = REPO / "docs" / "panel"
PASSWORD = "a panel password for tests"
CHANNEL = 1_210_000_000_000_002_001
REFUSED = 1_210_000_000_000_002_002
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> Hostile'


def _missing_browser() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture
def browser_needed() -> None:
    why = _missing_browser()
    if why is None:
        return
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but {why}")
    pytest.skip(f"browser tests skipped: {why}")


async def shot(page: Any, name: str) -> None:
    if os.environ.get("NEWSBOT_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


class Bot:
    """`newsbot run` in this event loop, with the HTTP server and the panel on."""

    def __init__(self, fake: FakeDiscord, tmp_path: Path, clock: FakeClock) -> None:
        self.store = Store(tmp_path / "store", clock)
        config = tmp_path / "newsbot.toml"
        config.write_text(
            '[store]\npath = "store"\nrescan_interval_s = 0.2\nwatch = false\n'
            '[database]\npath = "state.db"\n'
            f"[discord]\napi_base_url = {json.dumps(fake.base_url)}\ncommands = false\n"
            "[http]\nenabled = true\nport = 0\n[panel]\nenabled = true\n"
            f'[[subscriptions]]\nplatform = "discord"\nchannel = "{REFUSED}"\n'
            'topics = ["AI"]\n',
            encoding="utf-8",
        )
        self.config = load_config(config)
        self.environ = {"DISCORD_TOKEN": fake.bot_token, "NEWSBOT_PANEL_PASSWORD": PASSWORD}
        self.clock = clock
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> str:
        ready: asyncio.Future[RunningBot] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(run_bot(
            self.config, once=False, out=io.StringIO(), clock=self.clock, stop=self.stop,
            environ=self.environ, on_ready=ready.set_result,
        ))
        await asyncio.wait({self.task, ready}, return_when=asyncio.FIRST_COMPLETED, timeout=20)
        assert ready.done(), "the bot did not start"
        return f"http://127.0.0.1:{ready.result().http_port}"

    async def finish(self) -> None:
        self.stop.set()
        if self.task is not None:
            assert await asyncio.wait_for(self.task, 15.0) == 0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_channel(CHANNEL)
        server.add_channel(REFUSED)
        server.forbid_channel(REFUSED)  # 403 Missing Permissions: the bot parks the channel
        with patch_discord_py(server):
            yield server


@pytest.fixture
async def page(browser_needed: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1200, "height": 800})
        opened = await context.new_page()
        opened.set_default_timeout(15_000)
        dialogs: list[str] = []
        opened.on("dialog", lambda dialog: dialogs.append(dialog.message))
        opened.dialogs = dialogs
        try:
            yield opened
        finally:
            await browser.close()


async def until(check: Callable[[], Awaitable[bool]], reload: Callable[[], Awaitable[Any]],
                what: str, timeout_s: float = 15.0) -> None:
    """Reload a page until it shows what the bot did (each look is a real page load)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await reload()
    except TimeoutError:
        raise AssertionError(f"the panel never showed {what}") from None


@pytest.mark.timeout(120)
async def test_an_operator_drives_the_panel_through_what_the_bot_really_did(
    fake: FakeDiscord, tmp_path: Path, page: Any
) -> None:
    from playwright.async_api import expect

    bot = Bot(fake, tmp_path, RunningClock())
    bot.store.add("already-there", "An AI story the first scan recorded", quality=95)
    bot.store.add("hostile", HOSTILE, quality=120)
    bot.store.add("robots", "A robotics story", topics=("Robotics",), quality=64)
    bot.store.add("unscored", "An AI story nobody scored", quality=None)  # type: ignore[arg-type]
    (bot.store.root / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    base = await bot.start()
    try:
        # Log in: a wrong password first.
        await page.goto(f"{base}/panel/")
        await expect(page).to_have_url(f"{base}/panel/login")
        await shot(page, "login")
        await page.fill("input[name=password]", "not the password")
        await page.click("form.login button")
        await expect(page.locator(".flash.problem")).to_have_text("Wrong password.")
        assert not await page.context.cookies()  # no session for a wrong password
        await page.fill("input[name=password]", PASSWORD)
        await page.click("form.login button")
        await expect(page.locator("h1")).to_have_text("newsbot")

        # Add a subscription through the form.
        await page.click("nav >> text=Subscriptions")
        await page.click("text=Add a subscription")
        await page.select_option("select[name=platform]", "discord")
        await page.fill("input[name=channel]", str(CHANNEL))
        await page.fill("input[name=topics]", "AI")
        await page.fill("input[name=min_quality]", "50")
        await shot(page, "add-subscription")
        await page.click("form.subscription button")
        await expect(page.locator(".flash.ok")).to_contain_text("Added subscription")
        await expect(page.locator("table.subs")).to_contain_text(str(CHANNEL))

        # Drop a file in the store: Discord receives it, and the log shows the same message.
        bot.store.add("dropped", "Dropped into the store for the browser", quality=80)
        [message] = await fake.wait_for_message(CHANNEL, timeout=15)
        sent_row = page.locator("table.log tr", has_text=str(CHANNEL)).filter(has_text="sent")

        async def logged() -> bool:
            return await sent_row.count() == 1

        await page.goto(f"{base}/panel/deliveries?target=discord:{CHANNEL}")
        await until(logged, page.reload, "the delivery as sent")
        await expect(sent_row).to_contain_text("Dropped into the store for the browser")
        await expect(sent_row).to_contain_text(str(message["id"]))
        await shot(page, "deliveries")

        # The channel Discord refused is parked, with the reason; retry it once allowed.
        parked = page.locator("table.parked tr", has_text=str(REFUSED))

        async def is_parked() -> bool:
            return await parked.count() == 1

        await page.goto(f"{base}/panel/")
        await until(is_parked, page.reload, "the refused channel as parked")
        await expect(parked).to_contain_text("50013")
        await shot(page, "home")
        fake.allow_channel(REFUSED)
        await parked.locator("button", has_text="Retry").click()
        await expect(page.locator(".flash.ok")).to_contain_text(f"Resumed discord:{REFUSED}")
        [retried] = await fake.wait_for_message(REFUSED, timeout=15)
        await expect(page.locator("table.parked")).to_have_count(0)
        retried_row = page.locator("table.log tr", has_text=str(retried["id"]))

        async def retried_logged() -> bool:
            return await retried_row.count() == 1

        await page.goto(f"{base}/panel/deliveries?target=discord:{REFUSED}&state=sent")
        await until(retried_logged, page.reload, "the retried delivery as sent")

        await page.goto(f"{base}/panel/subscriptions")
        await shot(page, "subscriptions")

        # A hostile title renders inert, in the store and on its article page.
        await page.goto(f"{base}/panel/store")
        await expect(page.locator("svg.histogram rect.bar").first).to_be_attached()
        await expect(page.locator("main")).to_contain_text("An AI story nobody scored")
        await expect(page.locator("main")).to_contain_text("broken.md")
        await shot(page, "store")
        await page.get_by_role("link", name=HOSTILE).first.click()
        await expect(page.locator("h1")).to_have_text(HOSTILE)
        await expect(page.locator(".preview.discord .d-title")).to_contain_text("<script>")
        await expect(page.locator(".preview.slack")).to_contain_text("<script>")
        await shot(page, "article")
        assert await page.locator("script").count() == 0
        assert await page.locator("main img").count() == 0
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert page.dialogs == []
    finally:
        await bot.finish()
