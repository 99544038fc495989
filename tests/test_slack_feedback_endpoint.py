"""`POST /slack/events` and `/slack/actions` (HTTP mode, learning from reactions): held to the
same signature, age and replay checks as `/slack/commands`; a signed reaction event reaches
the handler, an unsigned or forged one never does. A real socket, a clock moved by hand."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.platforms.slack_commands import request_check
from bot.web import HttpServer, create_app
from tests.conftest import FakeClock
from tests.fakes.slack_server import slack_signature

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def signed(body: bytes, clock: FakeClock, secret: str = SECRET) -> dict[str, str]:
    ts = int(clock.time())
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": slack_signature(secret, ts, body),
        "Content-Type": "application/json",
    }


async def test_events_and_actions_are_verified_then_handled(clock: FakeClock) -> None:
    events: list[Mapping[str, Any]] = []
    actions: list[Mapping[str, Any]] = []
    handled = asyncio.Event()

    async def on_event(payload: Mapping[str, Any]) -> None:
        events.append(payload)
        handled.set()

    async def on_action(payload: Mapping[str, Any]) -> None:
        actions.append(payload)
        handled.set()

    async def answer(form: Mapping[str, str]) -> dict[str, Any]:
        return {"text": "unused"}

    app = create_app(
        slash_answer=answer, verify_request=request_check(SECRET, clock),
        slack_events=on_event, slack_actions=on_action,
    )
    server = await HttpServer.start(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.port}/slack"
    reaction = json.dumps({
        "type": "event_callback", "event_id": "Ev1",
        "event": {"type": "reaction_added", "user": "U1", "reaction": "-1",
                  "item": {"type": "message", "channel": "C1", "ts": "1.2"}},
    }).encode()
    try:
        async with aiohttp.ClientSession() as http:
            # Unsigned, forged, or stale: 401, and nothing reaches the handler.
            async with http.post(f"{base}/events", data=reaction) as r:
                assert r.status == 401
            async with http.post(f"{base}/events", data=reaction,
                                 headers=signed(reaction, clock, "another-secret")) as r:
                assert r.status == 401
            stale = signed(reaction, clock)
            clock.advance(301)
            async with http.post(f"{base}/events", data=reaction, headers=stale) as r:
                assert r.status == 401
            assert events == []

            challenge = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
            async with http.post(f"{base}/events", data=challenge,
                                 headers=signed(challenge, clock)) as r:
                assert r.status == 200 and await r.json() == {"challenge": "c-123"}

            headers = signed(reaction, clock)
            async with http.post(f"{base}/events", data=reaction, headers=headers) as r:
                assert r.status == 200
            await asyncio.wait_for(handled.wait(), 5)
            assert [e["event"]["reaction"] for e in events] == ["-1"]
            # The same signed request again is a replay.
            async with http.post(f"{base}/events", data=reaction, headers=headers) as r:
                assert r.status == 401

            handled.clear()
            press = {"type": "block_actions", "actions": [{"action_id": "newsbot:tune:undo:1"}]}
            body = urllib.parse.urlencode({"payload": json.dumps(press)}).encode()
            form_headers = {**signed(body, clock),
                            "Content-Type": "application/x-www-form-urlencoded"}
            async with http.post(f"{base}/actions", data=body, headers=form_headers) as r:
                assert r.status == 200
            await asyncio.wait_for(handled.wait(), 5)
            assert actions == [press]
    finally:
        await server.aclose()
