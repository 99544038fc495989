"""What runs beside the worker: the chat command receivers (Discord's gateway, Slack's Socket
Mode or HTTP endpoint) and the HTTP face (health, readiness, metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.clock import Clock
from bot.commands import Commands
from bot.config import FEEDBACK_SALT_ENV, Config, subscription_origin
from bot.credentials import Target, blocked, parked_for_a_secret
from bot.crew import BEAT_S, COMMANDS_LEASE, Crew
from bot.delivery import Deliverer
from bot.metrics import Metrics, StateGauges, render_prometheus
from bot.notifiers import Platforms
from bot.platforms.registry import PLATFORMS, CommandEndpoint, ReceiverContext
from bot.state import State
from bot.tuning import PostsNotices, Tuner
from bot.worker import Worker, routing_defaults

if TYPE_CHECKING:
    from aiohttp import web

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
    platforms: Platforms
    clock: Clock
    metrics: Metrics
    crew: Crew | None = None  # beside other workers (bot/crew.py)


# How often the bot looks for suggestions whose weekly wait is over.
SUGGESTION_CHECK_S = 3600.0


def build_tuner(parts: Parts) -> Tuner:
    """Learning from reactions for this run: notices go out through the platforms that can
    post them."""
    from bot.feedback_store import FeedbackStore

    announcers = {
        name: notifier.post_notice
        for name, notifier in parts.platforms.notifiers.items()
        if isinstance(notifier, PostsNotices)
    }
    return Tuner(
        FeedbackStore(parts.state.database), parts.state, parts.config.feedback, parts.clock,
        global_floor=parts.config.min_quality,
        salt=parts.platforms.secrets.value(FEEDBACK_SALT_ENV),
        announcers=announcers,
    )


async def _suggest_weekly(tuner: Tuner) -> None:
    """Suggestions held back by the weekly limit are said once their week is over."""
    while True:
        await asyncio.sleep(SUGGESTION_CHECK_S)
        try:
            await tuner.due_suggestions()
        except Exception:
            log.exception("feedback: saying the waiting suggestions failed; trying again later")


async def start_services(parts: Parts, stack: contextlib.AsyncExitStack) -> RunningBot:
    """Start the receivers and the HTTP server; `stack` closes them, receivers first."""
    secrets = parts.platforms.secrets
    tuner = build_tuner(parts)
    commands = Commands(
        parts.state, routing_defaults(parts.config), parts.clock,
        blocked=lambda platform, channel: blocked(Target(platform, channel), secrets),
        origin=lambda sub: subscription_origin(parts.config, sub.platform, sub.channel, sub.topics),
        tuner=tuner,
    )
    if tuner.enabled:
        weekly = asyncio.create_task(_suggest_weekly(tuner), name="feedback-suggestions")

        async def stop_weekly() -> None:
            weekly.cancel()
            await asyncio.gather(weekly, return_exceptions=True)

        stack.push_async_callback(stop_weekly)
    crew = parts.crew
    if crew is None or not crew.shared:
        endpoint = await _start_receivers(parts, commands, tuner, stack)
    elif await crew.lead(COMMANDS_LEASE):
        # Beside other workers one holds the chat connections (Discord's gateway, Slack's
        # Socket Mode), so each command is answered once; another takes them over when it dies.
        log.info("this worker holds the chat connections (%s)", crew.worker_id)
        endpoint = await _start_receivers(parts, commands, tuner, stack)
        await _keep_lease(crew, stack)
    else:
        endpoint = None
        await _take_over_later(parts, commands, tuner, crew, stack)
    if not (parts.config.http.enabled or endpoint is not None):
        return RunningBot()
    return await _start_http(parts, endpoint, commands, stack)


async def _keep_lease(crew: Crew, stack: contextlib.AsyncExitStack) -> None:
    async def renew() -> None:
        while True:
            await asyncio.sleep(BEAT_S)
            try:
                if not await crew.lead(COMMANDS_LEASE):
                    log.error("another worker took the chat connections' lease from this one")
            except Exception:
                log.exception("could not renew the chat connections' lease")

    await _background(renew(), "commands-lease", stack)


async def _take_over_later(
    parts: Parts, commands: Commands, tuner: Tuner, crew: Crew,
    stack: contextlib.AsyncExitStack,
) -> None:
    """A worker without the chat connections waits for their holder to go, then opens them."""

    async def wait_then_open() -> None:
        while True:
            await asyncio.sleep(BEAT_S)
            try:
                if await crew.lead(COMMANDS_LEASE):
                    break
            except Exception:
                log.exception("could not read the chat connections' lease")
        log.info("this worker now holds the chat connections (%s)", crew.worker_id)
        endpoint = await _start_receivers(parts, commands, tuner, stack)
        if endpoint is not None:
            log.warning(
                "Slack's HTTP commands are served by the worker that started with the chat "
                "connections; use Socket Mode with several workers (docs/postgresql.md)"
            )
        while True:
            await asyncio.sleep(BEAT_S)
            with contextlib.suppress(Exception):
                await crew.lead(COMMANDS_LEASE)

    await _background(wait_then_open(), "commands-takeover", stack)


async def _background(
    work: Coroutine[Any, Any, None], name: str, stack: contextlib.AsyncExitStack
) -> None:
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)


async def _start_receivers(
    parts: Parts, commands: Commands, tuner: Tuner, stack: contextlib.AsyncExitStack
) -> CommandEndpoint | None:
    """Each platform's command receiver, where its plan says it runs (the start-up lines said
    why any is off); the one that answers over HTTP, if any, is returned for the HTTP server."""
    endpoint = None
    platforms = parts.platforms
    for name, notifier in platforms.notifiers.items():
        spec = PLATFORMS.get(name)
        plan = platforms.plans.get(name)
        if spec is None or spec.start_commands is None or plan is None or plan.secret is None:
            continue
        secret = platforms.secrets.value(plan.secret.variable)
        assert secret is not None  # the plan was made from the same secrets
        context = ReceiverContext(
            parts.config, notifier, commands, parts.state, parts.clock, plan, secret, tuner
        )
        endpoint = await spec.start_commands(context, stack) or endpoint
    return endpoint


async def _start_http(
    parts: Parts,
    endpoint: CommandEndpoint | None,
    commands: Commands,
    stack: contextlib.AsyncExitStack,
) -> RunningBot:
    from bot.rejections import RejectionLog
    from bot.web import Check, HttpServer, create_app

    async def readiness() -> dict[str, bool | Check]:
        store = parts.config.store.path
        checks: dict[str, bool | Check] = {
            "database": await parts.state.ping(),
            # Checked now, not at the last rescan: an unmounted volume shows at once.
            "store": store.is_dir() and os.access(store, os.R_OK | os.X_OK),
        }
        waiting = await _parked_for_secrets(parts.state)
        for platform, plan in parts.platforms.plans.items():
            why = (
                parts.deliverer.stopped_platforms.get(platform)
                or waiting.get(platform)
                or plan.problem
            )
            checks[f"platform:{platform}"] = Check(ok=not why, reason=why or "")
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

    app = create_app(
        slash_answer=endpoint.answer if endpoint else None,
        verify_request=endpoint.verify if endpoint else None,
        readiness=readiness,
        metrics=metrics_text,
        rejections=RejectionLog(parts.metrics.count_rejection, parts.clock),
        slack_events=endpoint.events if endpoint else None,
        slack_actions=endpoint.actions if endpoint else None,
    )
    if parts.config.panel.enabled:
        _mount_panel(app, parts, commands)
    server = await HttpServer.start(app, parts.config.http.host, parts.config.http.port)
    stack.push_async_callback(server.aclose)
    return RunningBot(http_port=server.port)


def _mount_panel(app: web.Application, parts: Parts, commands: Commands) -> None:
    from bot.panel.auth import panel_access
    from bot.panel.routes import PanelParts, add_panel

    access = panel_access(parts.config, parts.platforms.secrets)
    if isinstance(access, str):
        # The rest of the bot runs; /panel/ says the same to whoever opens it.
        log.error("panel: %s", access)
    else:
        log.info("panel: at /panel/ on the HTTP server")
    add_panel(
        app,
        PanelParts(parts.config, parts.state, commands, parts.clock, parts.worker.wake_delivery),
        access,
    )


async def _parked_for_secrets(state: State) -> dict[str, str]:
    """Per platform, why some of its subscriptions wait for a secret (the first reason)."""
    waiting: dict[str, str] = {}
    for sub in await state.subscriptions():
        if sub.is_parked and parked_for_a_secret(sub) and sub.parked_reason:
            waiting.setdefault(sub.platform, f"{sub.platform}:{sub.channel}: {sub.parked_reason}")
    return waiting
