"""What runs beside the worker: the chat command receivers (Discord's gateway, Slack's Socket
Mode or HTTP endpoint) and the HTTP face (health, readiness, metrics)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot.clock import Clock
from bot.commands import Commands
from bot.config import Config, ConfigError, read_secret
from bot.delivery import Deliverer
from bot.metrics import Metrics, StateGauges, render_prometheus
from bot.platforms.base import Notifier
from bot.platforms.registry import PLATFORMS, CommandEndpoint, ReceiverContext
from bot.state import State
from bot.worker import Worker, routing_defaults

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunningBot:
    """What a started bot tells whoever started it (tests, supervisors)."""

    http_port: int | None = None


@dataclass(frozen=True, slots=True)
class Parts:
    """The running bot's pieces that the services answer from."""

    config: Config
    state: State
    worker: Worker
    deliverer: Deliverer
    notifiers: Mapping[str, Notifier]
    environ: Mapping[str, str]
    clock: Clock
    metrics: Metrics


async def start_services(parts: Parts, stack: contextlib.AsyncExitStack) -> RunningBot:
    """Start the receivers and the HTTP server; `stack` closes them, receivers first."""
    commands = Commands(parts.state, routing_defaults(parts.config), parts.clock)
    endpoint = await _start_receivers(parts, commands, stack)
    if not (parts.config.http.enabled or endpoint is not None):
        return RunningBot()
    return await _start_http(parts, endpoint, stack)


async def _start_receivers(
    parts: Parts, commands: Commands, stack: contextlib.AsyncExitStack
) -> CommandEndpoint | None:
    """Each running platform's command receiver, where its plan says it can run; the one that
    answers over HTTP, if any, is returned for the HTTP server."""
    endpoint = None
    has = functools.partial(_has_secret, parts.environ)
    for name, notifier in parts.notifiers.items():
        spec = PLATFORMS.get(name)
        if spec is None or spec.start_commands is None:
            continue
        plan = spec.plan_commands(parts.config, has)
        if plan.problem:
            raise ConfigError(plan.problem)
        if plan.receiver is None or plan.secret is None:
            continue
        secret = read_secret(plan.secret.variable, parts.environ)
        if secret is None:
            raise ConfigError(plan.secret.missing())
        context = ReceiverContext(
            parts.config, notifier, commands, parts.state, parts.clock, plan, secret
        )
        endpoint = await spec.start_commands(context, stack) or endpoint
    return endpoint


def _has_secret(environ: Mapping[str, str], variable: str) -> bool:
    return bool(environ.get(variable) or environ.get(f"{variable}_FILE"))


async def _start_http(
    parts: Parts, endpoint: CommandEndpoint | None, stack: contextlib.AsyncExitStack
) -> RunningBot:
    from bot.rejections import RejectionLog
    from bot.web import HttpServer, create_app

    async def readiness() -> dict[str, bool]:
        store = parts.config.store.path
        checks = {
            "database": await parts.state.ping(),
            # Checked now, not at the last rescan: an unmounted volume shows at once.
            "store": store.is_dir() and os.access(store, os.R_OK | os.X_OK),
        }
        for platform in parts.notifiers:
            checks[f"platform:{platform}"] = platform not in parts.deliverer.stopped_platforms
        return checks

    async def metrics_text() -> str:
        counts = await parts.state.outbox.counts()
        parked = sum(1 for s in await parts.state.subscriptions() if s.is_parked)
        gauges = StateGauges(
            deliveries={(p, str(s)): n for (p, s), n in counts.items()},
            parked_subscriptions=parked,
            store_lag_s=await parts.worker.store_lag_s(),
            heartbeat_age_s=parts.clock.monotonic() - parts.worker.last_heartbeat_s,
        )
        return render_prometheus(parts.metrics, gauges)

    app = create_app(
        slash_answer=endpoint.answer if endpoint else None,
        verify_request=endpoint.verify if endpoint else None,
        readiness=readiness,
        metrics=metrics_text,
        rejections=RejectionLog(parts.metrics.count_rejection, parts.clock),
    )
    server = await HttpServer.start(app, parts.config.http.host, parts.config.http.port)
    stack.push_async_callback(server.aclose)
    return RunningBot(http_port=server.port)
