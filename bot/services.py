"""What runs beside the worker: the chat command receivers (Discord's gateway, Slack's Socket
Mode or HTTP endpoint) and the HTTP face (health, readiness, metrics)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot.clock import Clock
from bot.commands import Commands
from bot.config import Config
from bot.delivery import Deliverer
from bot.metrics import Metrics, StateGauges, render_prometheus
from bot.platforms.base import Notifier
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
    await _start_discord_gateway(parts, commands, stack)
    slash = await _start_slack_commands(parts, commands, stack)
    if not (parts.config.http.enabled or slash is not None):
        return RunningBot()
    return await _start_http(parts, slash, stack)


async def _start_discord_gateway(
    parts: Parts, commands: Commands, stack: contextlib.AsyncExitStack
) -> None:
    discord = parts.notifiers.get("discord")
    if discord is None or not parts.config.discord.commands:
        return
    from bot.platforms.discord import DiscordNotifier
    from bot.platforms.discord_commands import DiscordGateway

    assert isinstance(discord, DiscordNotifier)
    if not discord.has_bot:
        return  # webhook targets only: the start-up line said slash commands are off
    config = parts.config
    gateway = DiscordGateway(discord, commands, parts.state, config.discord, config.render)
    await gateway.start()
    stack.push_async_callback(gateway.aclose)


async def _start_slack_commands(
    parts: Parts, commands: Commands, stack: contextlib.AsyncExitStack
) -> object | None:
    """Socket Mode, or the handler for the HTTP endpoint (returned, for the HTTP server)."""
    slack = parts.notifiers.get("slack")
    config = parts.config
    if slack is None or config.slack.commands == "off":
        return None
    from bot.platforms.slack import SlackNotifier
    from bot.platforms.slack_commands import build_slack_commands, start_socket_mode

    assert isinstance(slack, SlackNotifier)
    handler = build_slack_commands(
        config.slack, commands, config.render, slack.client, parts.clock
    )
    if config.slack.commands == "socket":
        receiver = await start_socket_mode(config.slack, handler, parts.environ)
        stack.push_async_callback(receiver.aclose)
        return None
    stack.push_async_callback(handler.aclose)
    return handler


async def _start_http(
    parts: Parts, slash: object | None, stack: contextlib.AsyncExitStack
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
        oldest = await parts.state.outbox.oldest_pending_since()
        gauges = StateGauges(
            deliveries={(p, str(s)): n for (p, s), n in counts.items()},
            parked_subscriptions=parked,
            store_lag_s=await parts.worker.store_lag_s(),
            heartbeat_age_s=parts.clock.monotonic() - parts.worker.last_heartbeat_s,
            oldest_pending_age_s=max(0.0, parts.clock.time() - oldest) if oldest else 0.0,
        )
        return render_prometheus(parts.metrics, gauges)

    check = None
    answer = None
    if slash is not None:
        from bot.platforms.slack_commands import SlackCommands, request_check, signing_secret

        assert isinstance(slash, SlackCommands)
        check = request_check(signing_secret(parts.environ), parts.clock)
        answer = slash.answer
    app = create_app(
        slash_answer=answer,
        verify_request=check,
        readiness=readiness,
        metrics=metrics_text,
        rejections=RejectionLog(parts.metrics.count_rejection, parts.clock),
    )
    server = await HttpServer.start(app, parts.config.http.host, parts.config.http.port)
    stack.push_async_callback(server.aclose)
    return RunningBot(http_port=server.port)
