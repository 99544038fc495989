"""The HTTP face: `/healthz`, `/readyz`, `/metrics` and Slack's slash-command endpoint.

`POST /slack/commands` trusts nothing it has not verified: the Slack adapter's request check
(the signature over the raw body, and its age) runs before the form is even parsed; anything
else is a 401 and changes nothing.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bot.config import ConfigError

log = logging.getLogger(__name__)

SlashAnswer = Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]
# Is this raw body with these headers really from Slack? (The Slack adapter decides.)
RequestCheck = Callable[[bytes, Mapping[str, str]], bool]
ReadinessCheck = Callable[[], Awaitable[Mapping[str, bool]]]
MetricsText = Callable[[], Awaitable[str]]

# A slash command is a few hundred bytes; refuse to buffer much more before verifying it.
MAX_BODY_BYTES = 64 * 1024

_ANSWER: web.AppKey[SlashAnswer] = web.AppKey("slash_answer")
_VERIFY: web.AppKey[RequestCheck] = web.AppKey("verify_request")
_READINESS: web.AppKey[ReadinessCheck] = web.AppKey("readiness")
_METRICS: web.AppKey[MetricsText] = web.AppKey("metrics")
# Prometheus' text exposition format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    check = request.app.get(_READINESS)
    checks = dict(await check()) if check is not None else {}
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = await request.app[_METRICS]()
    return web.Response(body=body.encode("utf-8"), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _slack_commands(request: web.Request) -> web.Response:
    body = await request.read()
    if not request.app[_VERIFY](body, request.headers):
        log.warning("slack: refused a command request with a bad or stale signature")
        return web.Response(status=401, text="invalid signature")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        return web.Response(status=400, text="not a form")
    form = dict(pairs)
    if form.get("ssl_check") == "1":
        return web.Response(text="")  # Slack checking the certificate: nothing to do
    payload = await request.app[_ANSWER](form)
    return web.json_response(payload)


def create_app(
    *,
    slash_answer: SlashAnswer | None = None,
    verify_request: RequestCheck | None = None,
    readiness: ReadinessCheck | None = None,
    metrics: MetricsText | None = None,
) -> web.Application:
    """The routes: `/healthz` and `/readyz` always, `/metrics` when given the metrics,
    `/slack/commands` when given a handler (which then needs the request check)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
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
    return app


class HttpServer:
    """The app served on host:port (port 0: an ephemeral one, see `.port`)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    @classmethod
    async def start(cls, app: web.Application, host: str, port: int) -> HttpServer:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=3.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
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
