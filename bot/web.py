"""The HTTP face: `/healthz`, `/readyz`, `/metrics` and Slack's endpoints: slash commands
(`/slack/commands`), events (`/slack/events`: reactions, for learning from them) and button
presses (`/slack/actions`), each held to the same signature check.

`POST /slack/commands` trusts nothing it has not verified: the Slack adapter's request check
(the signature over the raw body, its age, and that it is not a replay) runs before the form is
even parsed; anything else is a 401 and changes nothing. No request, however malformed, is
answered 500. The server keeps to `HttpLimits`: a head or body that does not arrive in time
drops the connection, and beyond a number of open connections a new one is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import ConfigError
from bot.connection_cap import CappedTCPSite
from bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bot.rejections import Rejection, RejectionLog

log = logging.getLogger(__name__)

SlashAnswer = Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]
# An Events API callback, and an interactive payload (a button press): handled after the answer.
EventHandler = Callable[[Mapping[str, Any]], Awaitable[object]]
# Why this raw body with these headers is not really from Slack; None when it is. (The Slack
# adapter decides.)
RequestCheck = Callable[[bytes, Mapping[str, str]], Rejection | None]


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check, with why it fails (shown in `/readyz`'s `reasons`)."""

    ok: bool
    reason: str = ""


ReadinessCheck = Callable[[], Awaitable[Mapping[str, bool | Check]]]
MetricsText = Callable[[], Awaitable[str]]

# A slash command is a few hundred bytes; refuse to buffer much more before verifying it.
MAX_BODY_BYTES = 64 * 1024
# Slack sends about 15 fields.
MAX_FORM_FIELDS = 100
_FAILED_REPLY = {
    "response_type": "ephemeral",
    "text": "Sorry, newsbot could not answer that command; the error is in its log.",
}
# A field name quoted back to the caller: only letters, digits and `_`, so nothing needs
# escaping in Slack's markup.
_PLAIN = re.compile(r"[^A-Za-z0-9_]")

# aiohttp's own limits for the request line and each header line, stated here so they hold.
MAX_LINE_BYTES = 8190


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How long and how many: a slow or idle client cannot hold a connection for long."""

    # From connecting, or from the last answer on a kept-alive connection, to a request's
    # complete head; an idle connection is closed after as long.
    header_timeout_s: float = 5.0
    body_timeout_s: float = 5.0  # from the complete head to the complete body
    # After refusing a request with its body unread, how long to read and drop the rest (so
    # the client sees the answer, not a reset) before closing.
    linger_s: float = 2.0
    max_connections: int = 100


_ANSWER: web.AppKey[SlashAnswer] = web.AppKey("slash_answer")
_VERIFY: web.AppKey[RequestCheck] = web.AppKey("verify_request")
_READINESS: web.AppKey[ReadinessCheck] = web.AppKey("readiness")
_METRICS: web.AppKey[MetricsText] = web.AppKey("metrics")
_REJECTIONS: web.AppKey[RejectionLog] = web.AppKey("rejections")
_LIMITS: web.AppKey[HttpLimits] = web.AppKey("limits")
_EVENTS: web.AppKey[EventHandler] = web.AppKey("slack_events")
_ACTIONS: web.AppKey[EventHandler] = web.AppKey("slack_actions")
_LATER: web.AppKey[set[asyncio.Task[object]]] = web.AppKey("handled_after_answer")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    check = request.app.get(_READINESS)
    results = dict(await check()) if check is not None else {}
    checks = {k: v.ok if isinstance(v, Check) else v for k, v in results.items()}
    reasons = {
        k: v.reason for k, v in results.items() if isinstance(v, Check) and not v.ok and v.reason
    }
    ready = all(checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    if reasons:
        body["reasons"] = reasons
    return web.json_response(body, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = await request.app[_METRICS]()
    return web.Response(
        body=body.encode("utf-8"), headers={"Content-Type": METRICS_CONTENT_TYPE}
    )


async def _slack_commands(request: web.Request) -> web.Response:
    try:
        return await _slack_command(request)
    except Exception as exc:
        # A bug of ours, whatever the request: one line that says where, never the exception's
        # message (it may quote the body) or a traceback's values, and a polite answer.
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "slack: a command request failed on our side (%s in %s, %s line %s); answered "
            "with a generic error",
            type(exc).__name__, where.name, Path(where.filename).name, where.lineno,
        )
        return web.json_response(_FAILED_REPLY)


async def _verified_body(request: web.Request) -> bytes | web.Response:
    """The raw body, once it is known to be Slack's (signed, fresh, not a replay); else the
    refusal to answer with."""
    try:
        async with asyncio.timeout(request.app[_LIMITS].body_timeout_s):
            body = await request.read()
    except TimeoutError:
        request.app[_REJECTIONS].refuse(Rejection.SLOW_BODY)
        slow = web.Response(status=408, text="request body too slow")
        slow.force_close()
        return slow
    except web.HTTPRequestEntityTooLarge:
        request.app[_REJECTIONS].refuse(Rejection.BODY_TOO_LARGE)
        return web.Response(status=413, text="request body too large")
    refusal = request.app[_VERIFY](body, request.headers)
    if refusal is not None:
        request.app[_REJECTIONS].refuse(refusal)
        return web.Response(status=401, text="invalid request signature")
    return body


def _after_answer(app: web.Application, work: Awaitable[object]) -> None:
    """Slack wants its answer within 3 s: the work goes on after it (kept until done)."""

    async def run() -> object:
        try:
            return await work
        except Exception as exc:
            log.error("slack: handling an event failed on our side (%s)", type(exc).__name__)
            return None

    task = asyncio.ensure_future(run())
    app[_LATER].add(task)
    task.add_done_callback(app[_LATER].discard)


async def _slack_events(request: web.Request) -> web.Response:
    """The Events API: the URL check, and callbacks (reactions) handled after the answer."""
    body = await _verified_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        payload = json.loads(body)
    except ValueError:
        return web.Response(status=400, text="not JSON")
    if not isinstance(payload, dict):
        return web.Response(status=400, text="not a JSON object")
    if payload.get("type") == "url_verification":
        challenge = payload.get("challenge")
        return web.json_response({"challenge": challenge if isinstance(challenge, str) else ""})
    if payload.get("type") == "event_callback":
        _after_answer(request.app, request.app[_EVENTS](payload))
    return web.Response(text="")


async def _slack_actions(request: web.Request) -> web.Response:
    """Interactivity: a button press, answered later through its response_url."""
    body = await _verified_body(request)
    if isinstance(body, web.Response):
        return body
    form = _read_form(body)
    raw = form.get("payload") if isinstance(form, dict) else None
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return web.Response(status=400, text="no interactive payload")
    _after_answer(request.app, request.app[_ACTIONS](payload))
    return web.Response(text="")


async def _slack_command(request: web.Request) -> web.Response:
    body = await _verified_body(request)
    if isinstance(body, web.Response):
        return body
    # From here on the request is Slack's own: a form it should not have sent gets an answer
    # in the channel rather than an HTTP error nobody sees.
    form = _read_form(body)
    if isinstance(form, str):
        return web.json_response(_private_reply(f"newsbot could not read this command: {form}"))
    if form.get("ssl_check") == "1":
        return web.Response(text="")  # Slack checking the certificate: nothing to do
    payload = await request.app[_ANSWER](form)
    return web.json_response(payload)


def _read_form(body: bytes) -> dict[str, str] | str:
    """The slash command's fields, or what is wrong with them."""
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        return "it is not UTF-8 text."
    except ValueError:
        return f"it has more than {MAX_FORM_FIELDS} fields."
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # Which one would Slack mean? Run neither.
            return f"it has the field `{_PLAIN.sub('?', name)[:40]}` more than once."
        form[name] = value
    return form


def _private_reply(text: str) -> dict[str, Any]:
    """A Slack reply only the caller sees (plain words: nothing in it needs escaping)."""
    return {"response_type": "ephemeral", "text": text}


def create_app(
    *,
    slash_answer: SlashAnswer | None = None,
    verify_request: RequestCheck | None = None,
    readiness: ReadinessCheck | None = None,
    metrics: MetricsText | None = None,
    rejections: RejectionLog | None = None,
    limits: HttpLimits | None = None,
    slack_events: EventHandler | None = None,
    slack_actions: EventHandler | None = None,
) -> web.Application:
    """The routes: `/healthz` and `/readyz` always, `/metrics` when given the metrics,
    `/slack/commands` when given a handler (which then needs the request check). Refused
    requests go to `rejections` (by default only logged, a line per reason a minute); the
    server keeps to `limits`."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_REJECTIONS] = rejections or RejectionLog()
    app[_LIMITS] = limits or HttpLimits()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    if readiness is not None:
        app[_READINESS] = readiness
    if metrics is not None:
        app[_METRICS] = metrics
        app.router.add_get("/metrics", _metrics)
    if slash_answer is not None:
        if verify_request is None:
            raise ValueError("the Slack command endpoint needs its request check")
        app[_ANSWER] = slash_answer
        app[_VERIFY] = verify_request
        app.router.add_post("/slack/commands", _slack_commands)
        app[_LATER] = set()
        if slack_events is not None:
            app[_EVENTS] = slack_events
            app.router.add_post("/slack/events", _slack_events)
        if slack_actions is not None:
            app[_ACTIONS] = slack_actions
            app.router.add_post("/slack/actions", _slack_actions)
    return app


class HttpServer:
    """The app served on host:port (port 0: an ephemeral one, see `.port`)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    @classmethod
    async def start(cls, app: web.Application, host: str, port: int) -> HttpServer:
        """Serve `app` (from `create_app`) within its limits."""
        limits = app[_LIMITS]
        rejections = app[_REJECTIONS]
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=3.0,
            # aiohttp has no header timeout of its own, but its keep-alive timer is one: it
            # runs from connecting and from each answer, and closes the connection when no
            # complete request head has come by then (a trickled head as much as none).
            keepalive_timeout=limits.header_timeout_s,
            lingering_time=limits.linger_s,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
        )
        await runner.setup()
        try:
            site = CappedTCPSite(
                runner,
                host,
                port,
                max_connections=limits.max_connections,
                on_refused=lambda: rejections.refuse(Rejection.TOO_MANY_CONNECTIONS),
            )
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}): set [http] host and port to a "
                "free address"
            ) from None
        bound = runner.addresses[0][1] if runner.addresses else port
        log.info("http: listening on %s:%d", host, bound)
        return cls(runner, int(bound))

    async def aclose(self) -> None:
        await self._runner.cleanup()
