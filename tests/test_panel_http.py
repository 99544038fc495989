"""The panel over HTTP, as a browser or an attacker would talk to it: the real app (bot/web.py
with the panel mounted), a real SQLite state, a clock the tests move. Logins, sessions, forged,
cross-site and replayed posts, hostile article text, and inputs that must never be a 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
import yarl

from bot.commands import Commands
from bot.config import Config, DatabaseConfig, PanelConfig, StoreConfig
from bot.panel.auth import Access
from bot.panel.routes import COOKIE, SECURITY_HEADERS, PanelParts, add_panel
from bot.routing import RoutingDefaults
from bot.state import State
from bot.store import FileOutcome, FileStamp
from bot.subscriptions import Subscription, SubscriptionSource
from bot.web import HttpServer, create_app
from tests.builders import make_article
from tests.conftest import FakeClock

PASSWORD = "correct horse battery"
HOSTILE_TITLE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Panel:
    url: str
    state: State
    clock: FakeClock
    woken: list[int]

    def client(self) -> aiohttp.ClientSession:
        # unsafe: keep cookies for an IP address (127.0.0.1)
        return aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Sec-Fetch-Site": "same-origin"}
        )

    async def token(self, client: aiohttp.ClientSession, path: str) -> str:
        async with client.get(f"{self.url}{path}") as page:
            found = _TOKEN.search(await page.text())
        assert found is not None, f"no form token on {path}"
        return found.group(1)

    async def login(self, client: aiohttp.ClientSession) -> None:
        token = await self.token(client, "/panel/login")
        async with client.post(
            f"{self.url}/panel/login", data={"csrf": token, "password": PASSWORD},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 303, await answer.text()


async def _start(
    tmp_path: Path, access: Access | str, panel_config: PanelConfig | None = None
) -> tuple[Panel, HttpServer]:
    clock = FakeClock()
    state = await State.open(tmp_path / "state.db", clock)
    config = Config(
        store=StoreConfig(path=tmp_path / "store"),
        database=DatabaseConfig(path=tmp_path / "state.db"),
        panel=panel_config or PanelConfig(enabled=True),
    )
    commands = Commands(state, RoutingDefaults(min_quality=40.0), clock)
    woken: list[int] = []
    app = create_app()
    add_panel(
        app, PanelParts(config, state, commands, clock, lambda: woken.append(1)), access
    )
    server = await HttpServer.start(app, "127.0.0.1", 0)
    return Panel(f"http://127.0.0.1:{server.port}", state, clock, woken), server


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[Panel]:
    started, server = await _start(tmp_path, Access(PASSWORD, None))
    try:
        yield started
    finally:
        await server.aclose()
        await started.state.aclose()


async def _subscription(state: State, channel: str = "C1") -> Subscription:
    stored, _ = await state.add_subscription(
        Subscription(id=0, platform="slack", channel=channel, topics=("AI",),
                     source=SubscriptionSource.CLI)
    )
    return stored


def _assert_headers(answer: aiohttp.ClientResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, name
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "unsafe-inline" not in policy  # no script at all
    assert "frame-ancestors 'none'" in policy


async def test_every_panel_answer_carries_the_security_headers(panel: Panel) -> None:
    async with panel.client() as client:
        for path in ("/panel/login", "/panel/", "/panel/nowhere", "/panel/static/panel.css"):
            async with client.get(f"{panel.url}{path}", allow_redirects=False) as answer:
                _assert_headers(answer)
        await panel.login(client)
        for path in ("/panel/", "/panel/store", "/panel/deliveries", "/panel/subscriptions",
                     "/panel/nowhere", "/panel/article?key=nothing"):
            async with client.get(f"{panel.url}{path}") as answer:
                assert answer.status in (200, 404), path
                _assert_headers(answer)


async def test_no_session_before_login_and_none_for_a_wrong_password(panel: Panel) -> None:
    async with panel.client() as client:
        async with client.get(f"{panel.url}/panel/", allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/panel/login"
        async with client.get(f"{panel.url}/panel/login") as answer:
            assert COOKIE not in answer.cookies  # the login form opens no session
        token = await panel.token(client, "/panel/login")
        async with client.post(
            f"{panel.url}/panel/login", data={"csrf": token, "password": "wrong password"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 401
            assert COOKIE not in answer.cookies
            assert "Wrong password." in await answer.text()
        async with client.get(f"{panel.url}/panel/", allow_redirects=False) as answer:
            assert answer.status == 303  # still logged out


async def test_a_login_sets_an_httponly_strict_cookie_for_the_panel_only(panel: Panel) -> None:
    async with panel.client() as client:
        token = await panel.token(client, "/panel/login")
        async with client.post(
            f"{panel.url}/panel/login", data={"csrf": token, "password": PASSWORD},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 303
            cookie = answer.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert cookie["path"] == "/panel"
            assert not cookie["secure"]  # plain HTTP, and not told TLS is in front
            assert len(cookie.value) >= 40
        async with client.get(f"{panel.url}/panel/") as home:
            assert home.status == 200 and "Parked subscriptions" in await home.text()


async def test_the_cookie_is_secure_behind_tls(tmp_path: Path) -> None:
    started, server = await _start(
        tmp_path, Access(PASSWORD, None), PanelConfig(enabled=True, behind_tls=True)
    )
    try:
        async with started.client() as client:
            token = await started.token(client, "/panel/login")
            async with client.post(
                f"{started.url}/panel/login", data={"csrf": token, "password": PASSWORD},
                allow_redirects=False,
            ) as answer:
                assert answer.cookies[COOKIE]["secure"]
    finally:
        await server.aclose()
        await started.state.aclose()


async def test_wrong_passwords_are_rate_limited_then_allowed_again(panel: Panel) -> None:
    async with panel.client() as client:
        for _ in range(5):
            token = await panel.token(client, "/panel/login")
            async with client.post(
                f"{panel.url}/panel/login", data={"csrf": token, "password": "guess"},
            ) as answer:
                assert answer.status == 401
        token = await panel.token(client, "/panel/login")
        async with client.post(  # even the right password is not looked at now
            f"{panel.url}/panel/login", data={"csrf": token, "password": PASSWORD},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 429
            assert int(answer.headers["Retry-After"]) > 0
            assert COOKIE not in answer.cookies
        panel.clock.advance(15 * 60)
        await panel.login(client)


async def test_a_login_post_without_its_form_token_is_refused(panel: Panel) -> None:
    async with panel.client() as client, client.post(
        f"{panel.url}/panel/login", data={"password": PASSWORD}, allow_redirects=False
    ) as answer:
        assert answer.status == 403 and COOKIE not in answer.cookies
    async with panel.client() as client:
        token = await panel.token(client, "/panel/login")
        for status in (303, 403):  # a login form's token is good once
            async with client.post(
                f"{panel.url}/panel/login", data={"csrf": token, "password": PASSWORD},
                allow_redirects=False,
            ) as answer:
                assert answer.status == status


async def test_forged_posts_are_refused_and_change_nothing(panel: Panel) -> None:
    sub = await _subscription(panel.state)
    remove = f"{panel.url}/panel/subscriptions/{sub.id}/remove"
    async with panel.client() as client, panel.client() as other:
        await panel.login(client)
        await panel.login(other)
        # No token; a made-up one; one that another session was given.
        for data in ({}, {"csrf": "1.abc.def"}, {"csrf": await panel.token(other, "/panel/")}):
            async with client.post(remove, data=data, allow_redirects=False) as answer:
                assert answer.status == 403
                assert "nothing was changed" in await answer.text()
        # A genuine token, but sent from another site.
        token = await panel.token(client, "/panel/subscriptions")
        async with client.post(
            remove, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 403
        async with client.post(
            remove, data={"csrf": token}, headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 403
    async with (
        panel.client() as stranger,  # no session at all
        stranger.post(remove, data={"csrf": token}, allow_redirects=False) as answer,
    ):
        assert answer.status == 403
    assert await panel.state.subscription(sub.id) == sub


async def test_a_replayed_post_changes_nothing_a_second_time(panel: Panel) -> None:
    sub = await _subscription(panel.state)
    async with panel.client() as client:
        await panel.login(client)
        pause = {"platform": "slack", "channel": "C1",
                 "csrf": await panel.token(client, "/panel/subscriptions")}
        async with client.post(f"{panel.url}/panel/channels/pause", data=pause) as answer:
            assert answer.status == 200 and "Paused slack:C1" in await answer.text()
        assert (await panel.state.subscription(sub.id)).is_parked  # type: ignore[union-attr]
        resume = {"platform": "slack", "channel": "C1",
                  "csrf": await panel.token(client, "/panel/")}
        async with client.post(f"{panel.url}/panel/channels/resume", data=resume) as answer:
            assert "Resumed slack:C1" in await answer.text()
        assert panel.woken  # the scheduler was told to look at once
        async with client.post(
            f"{panel.url}/panel/channels/pause", data=pause, allow_redirects=False
        ) as answer:
            assert answer.status == 403
    assert not (await panel.state.subscription(sub.id)).is_parked  # type: ignore[union-attr]


async def test_after_logout_the_old_cookie_opens_nothing(panel: Panel) -> None:
    sub = await _subscription(panel.state)
    async with panel.client() as client:
        await panel.login(client)
        cookie = client.cookie_jar.filter_cookies(yarl.URL(panel.url + "/panel/"))[COOKIE].value
        token = await panel.token(client, "/panel/subscriptions")
        logout = await panel.token(client, "/panel/")
        async with client.post(f"{panel.url}/panel/logout", data={"csrf": logout}) as answer:
            assert "Log in" in await answer.text()
    async with aiohttp.ClientSession(cookies={COOKIE: cookie}) as replay:
        async with replay.post(
            f"{panel.url}/panel/subscriptions/{sub.id}/remove", data={"csrf": token},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 403
        async with replay.get(f"{panel.url}/panel/", allow_redirects=False) as answer:
            assert answer.status == 303
    assert await panel.state.subscription(sub.id) is not None


async def test_hostile_article_text_is_shown_as_text(panel: Panel) -> None:
    hostile = make_article(
        key="https://evil.example/x", web_url="javascript:alert(1)", title=HOSTILE_TITLE,
        excerpt='"><svg onload=alert(1)>', topics=("<b>AI</b>",), quality=90.0,
    )
    await panel.state.record_files(
        [FileOutcome("<i>evil</i>.md", FileStamp(1, 1), article=hostile),
         FileOutcome("bad<script>.md", FileStamp(1, 2), error="<script>alert(3)</script>")]
    )
    async with panel.client() as client:
        await panel.login(client)
        for path, shows in (
            ("/panel/store", "&lt;script&gt;window.pwned=1&lt;/script&gt;"),
            ("/panel/article?key=https://evil.example/x", "&lt;script&gt;window.pwned=1"),
            ("/panel/", "&lt;script&gt;alert(3)&lt;/script&gt;"),
        ):
            async with client.get(f"{panel.url}{path}") as answer:
                page = await answer.text()
            assert answer.status == 200, path
            assert shows in page, path  # shown, as text
            assert "<script" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
            assert "<svg onload" not in page and "<b>AI" not in page and "<i>evil" not in page
            assert 'href="javascript:' not in page


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/panel/deliveries?from=2026-02-31", None),
        ("GET", "/panel/deliveries?from=yesterday&to=9999999-01-01", None),
        ("GET", "/panel/deliveries?target=nowhere&state=lost&before=-1", None),
        ("GET", "/panel/deliveries?before=" + "9" * 400, None),
        ("GET", "/panel/article?key=" + "x" * 5000, None),
        ("GET", "/panel/article", None),
        ("GET", "/panel/store?topic=%00%ff" + "a" * 300, None),
        ("GET", "/panel/subscriptions/99999999999/edit", None),
        ("GET", "/panel/subscriptions/1e3/edit", None),
        ("POST", "/panel/subscriptions", b"platform=slack&channel=C1&min_quality=nan"),
        ("POST", "/panel/subscriptions", b"platform=slack&channel=C1&backfill=1e999"),
        ("POST", "/panel/subscriptions", b"platform=slack&channel=C1&timezone=Mars/Base"),
        ("POST", "/panel/subscriptions", b"platform=%ff%fe&channel=" + b"x" * 3000),
        ("POST", "/panel/subscriptions", b"platform=slack&platform=discord"),
        ("POST", "/panel/subscriptions", b"\xff\xfe\x00"),
        ("POST", "/panel/subscriptions/12/remove", b"a=1"),
        ("POST", "/panel/channels/pause", b"platform=nowhere&channel="),
        ("POST", "/panel/login", b"password=" + b"x" * 70000),
    ],
)
async def test_no_input_is_answered_with_a_500(
    panel: Panel, method: str, path: str, body: bytes | None
) -> None:
    async with panel.client() as client:
        await panel.login(client)
        data = body
        if body is not None and method == "POST" and b"\xff\xfe\x00" not in body:
            token = await panel.token(client, "/panel/subscriptions/new")
            data = body + b"&csrf=" + token.encode()
        async with client.request(
            method, f"{panel.url}{path}", data=data, allow_redirects=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"} if data else None,
        ) as answer:
            assert answer.status < 500, (path, answer.status, await answer.text())
            _assert_headers(answer)


async def test_subscriptions_are_added_edited_paused_and_removed_through_the_forms(
    panel: Panel,
) -> None:
    async with panel.client() as client:
        await panel.login(client)
        token = await panel.token(client, "/panel/subscriptions/new")
        form = {"csrf": token, "platform": "slack", "channel": "C9", "topics": "AI, Robots",
                "min_quality": "", "mode": "daily", "digest_at": "7:30",
                "timezone": "Europe/Berlin", "quiet_hours": "22:00-07:00", "mention": "S0614TZR7"}
        async with client.post(f"{panel.url}/panel/subscriptions", data=form) as answer:
            page = await answer.text()
            assert answer.status == 200 and "Added subscription" in page
        [sub] = await panel.state.subscriptions("slack", "C9")
        assert sub.topics == ("AI", "Robots") and sub.source is SubscriptionSource.PANEL
        assert str(sub.mode) == "daily" and sub.timezone == "Europe/Berlin"
        assert sub.digest_at.strftime("%H:%M") == "07:30" and sub.mention == "S0614TZR7"

        bad = dict(form, csrf=await panel.token(client, "/panel/subscriptions/new"),
                   channel="C10", backfill="5000", timezone="Mars/Base")
        async with client.post(f"{panel.url}/panel/subscriptions", data=bad) as answer:
            page = await answer.text()
            assert answer.status == 400
            assert "a whole number from 0 to 1000" in page and "Mars/Base" in page
        assert not await panel.state.subscriptions("slack", "C10")

        edit = dict(form, csrf=await panel.token(client, f"/panel/subscriptions/{sub.id}/edit"),
                    topics="AI", mode="instant", min_quality="75")
        async with client.post(f"{panel.url}/panel/subscriptions/{sub.id}", data=edit) as answer:
            assert "Updated subscription" in await answer.text()
        [edited] = await panel.state.subscriptions("slack", "C9")
        assert edited.topics == ("AI",) and edited.min_quality == 75.0

        remove = {"csrf": await panel.token(client, "/panel/subscriptions")}
        async with client.post(
            f"{panel.url}/panel/subscriptions/{edited.id}/remove", data=remove
        ) as answer:
            assert f"Removed subscription {edited.id}" in await answer.text()
        assert not await panel.state.subscriptions("slack", "C9")


async def test_a_config_subscription_is_not_edited_or_removed_from_the_panel(
    panel: Panel,
) -> None:
    stored, _ = await panel.state.add_subscription(
        Subscription(id=0, platform="slack", channel="C1", source=SubscriptionSource.CONFIG)
    )
    async with panel.client() as client:
        await panel.login(client)
        async with client.get(f"{panel.url}/panel/subscriptions") as answer:
            assert f"/panel/subscriptions/{stored.id}/remove" not in await answer.text()
        remove = {"csrf": await panel.token(client, "/panel/subscriptions")}
        async with client.post(
            f"{panel.url}/panel/subscriptions/{stored.id}/remove", data=remove
        ) as answer:
            assert "the config file owns it" in await answer.text()
    assert await panel.state.subscription(stored.id) == replace(stored)


async def test_without_a_password_the_panel_says_why_and_serves_nothing(
    tmp_path: Path,
) -> None:
    started, server = await _start(tmp_path, "the panel is off: it needs a password")
    try:
        async with aiohttp.ClientSession() as client:
            for path in ("/panel/", "/panel/login", "/panel/store"):
                async with client.get(f"{started.url}{path}") as answer:
                    assert answer.status == 503
                    assert "needs a password" in await answer.text()
                    _assert_headers(answer)
    finally:
        await server.aclose()
        await started.state.aclose()


async def test_a_trusted_proxy_header_logs_in_and_its_absence_does_not(tmp_path: Path) -> None:
    started, server = await _start(tmp_path, Access(None, "X-Forwarded-User"))
    try:
        async with started.client() as client:
            async with client.get(f"{started.url}/panel/", allow_redirects=False) as answer:
                assert answer.status == 303
            async with client.get(
                f"{started.url}/panel/", headers={"X-Forwarded-User": "ana"}
            ) as answer:
                assert answer.status == 200
            token = await started.token(client, "/panel/login")
            async with client.post(  # no password login when the proxy is the way in
                f"{started.url}/panel/login", data={"csrf": token, "password": "anything"},
                allow_redirects=False,
            ) as answer:
                assert answer.status in (303, 403)
    finally:
        await server.aclose()
        await started.state.aclose()
