"""The HTTP face: `/healthz`, `/readyz`, `/metrics` and Slack's slash-command endpoint.

`POST /slack/commands` trusts nothing it has not verified: the signature is checked on the raw
body (HMAC-SHA256 with the signing secret, constant-time, timestamp within 5 minutes) before
the form is even parsed; anything else is a 401 and changes nothing.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier

from bot.clock import Clock, SystemClock
from bot.config import ConfigError

log = logging.getLogger(__name__)

SlashAnswer = Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]
ReadinessCheck = Callable[[], Awaitable[Mapping[str, bool]]]
MetricsText = Callable[[], Awaitable[str]]

# A slash command is a few hundred bytes; refuse to buffer much more before verifying it.
MAX_BODY_BYTES = 64 * 1024

_ANSWER: web.AppKey[SlashAnswer] = web.AppKey("slash_answer")
_VERIFIER: web.AppKey[SignatureVerifier] = web.AppKey("signature_verifier")
_READINESS: web.AppKey[ReadinessCheck] = web.AppKey("readiness")
_METRICS: web.AppKey[MetricsText] = web.AppKey("metrics")
# Prometheus' text exposition format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _VerifierClock(SignatureClock):
    """Our clock, in the shape slack_sdk's verifier asks for (tests move it by hand)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.time()


def signature_verifier(signing_secret: str, clock: Clock) -> SignatureVerifier:
    return SignatureVerifier(signing_secret, clock=_VerifierClock(clock))


def is_signed_by_slack(
    verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]
) -> bool:
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature or not timestamp.strip().isdigit():
        return False  # the verifier would raise on a timestamp that is not a number
    return verifier.is_valid(body=body, timestamp=timestamp.strip(), signature=signature)


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
    if not is_signed_by_slack(request.app[_VERIFIER], body, request.headers):
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
    signing_secret: str | None = None,
    readiness: ReadinessCheck | None = None,
    metrics: MetricsText | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """The routes: `/healthz` and `/readyz` always, `/metrics` when given the metrics,
    `/slack/commands` when given a handler (which then needs the signing secret)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    if readiness is not None:
        app[_READINESS] = readiness
    if metrics is not None:
        app[_METRICS] = metrics
        app.router.add_get("/metrics", _metrics)
    if slash_answer is not None:
        if not signing_secret:
            raise ValueError("the Slack command endpoint needs the signing secret")
        app[_ANSWER] = slash_answer
        app[_VERIFIER] = signature_verifier(signing_secret, clock or SystemClock())
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
