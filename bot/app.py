"""Runs the bot from a `Config`: opens the state, starts the notifiers, prepares the worker,
then (unless `--once`) runs it with the services beside it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.config import Config, ConfigError
from bot.delivery import Deliverer
from bot.metrics import Metrics
from bot.notifiers import build_notifiers
from bot.platforms.base import Notifier, PermanentError
from bot.services import Parts, RunningBot, start_services
from bot.state import State
from bot.worker import Worker, summary_lines

log = logging.getLogger(__name__)

__all__ = ["RunningBot", "run_bot"]


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` from the very start, so a stop during a long first scan
    is as graceful as one later."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # No handler where the loop can't install one (no signal support on the platform, or
        # run_bot embedded off the main thread): the default signal handling then stays.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _start(notifiers: Mapping[str, Notifier]) -> None:
    try:
        for notifier in notifiers.values():
            await notifier.start()
    except PermanentError as exc:
        # Refused credentials: a configuration problem the operator must fix (exit 2).
        raise ConfigError(exc.reason) from None


async def run_bot(
    config: Config,
    once: bool,
    out: TextIO,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    environ: Mapping[str, str] | None = None,
    on_ready: Callable[[RunningBot], None] | None = None,
) -> int:
    clock = clock or SystemClock()
    environ = os.environ if environ is None else environ
    stop = stop or asyncio.Event()
    with _stop_on_signals(stop):
        state = await State.open(config.database.path, clock)
        notifiers: dict[str, Notifier] = {}
        try:
            platforms_in_db = {s.platform for s in await state.subscriptions()}
            notifiers = build_notifiers(config, out, environ, clock, platforms_in_db)
            await _start(notifiers)
            metrics = Metrics()
            deliverer = Deliverer(state, notifiers, clock, metrics=metrics)
            worker = Worker(config, state, deliverer, clock, metrics=metrics)
            summary = await worker.prepare(settle=once, stop=stop)
            if once and not stop.is_set():
                await worker.deliver_until_idle()
            for line in summary_lines(summary, config):
                log.info("%s", line)
            if once or stop.is_set():
                return 0
            async with contextlib.AsyncExitStack() as services:
                parts = Parts(config, state, worker, deliverer, notifiers, environ, clock, metrics)
                try:
                    running = await start_services(parts, services)
                except PermanentError as exc:
                    raise ConfigError(exc.reason) from None
                if on_ready is not None:
                    on_ready(running)
                await worker.run(stop)
            await worker.record_stop()
            log.info("stopped cleanly")
            return 0
        finally:
            for notifier in notifiers.values():
                await notifier.aclose()
            await state.aclose()
