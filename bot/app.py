"""Assembles the running bot from a `Config`: state, notifiers, deliverer, worker."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.delivery import Deliverer
from bot.platforms.base import Notifier
from bot.platforms.console import ConsoleNotifier
from bot.state import State
from bot.worker import Worker, summary_lines

log = logging.getLogger(__name__)


def build_notifiers(config: Config, out: TextIO) -> dict[str, Notifier]:
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier(out, config.render)}
    wanted = {s.platform for s in config.subscriptions} - set(notifiers)
    for platform in sorted(wanted):
        log.warning(
            "subscriptions for %s wait: the %s platform is not available in this build",
            platform,
            platform,
        )
    return notifiers


async def run_bot(
    config: Config, once: bool, out: TextIO, clock: Clock | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    clock = clock or SystemClock()
    state = await State.open(config.database.path, clock)
    notifiers = build_notifiers(config, out)
    try:
        for notifier in notifiers.values():
            await notifier.start()
        deliverer = Deliverer(state, notifiers, clock)
        worker = Worker(config, state, deliverer, clock)
        summary = await worker.prepare()
        if once:
            await worker.deliver_until_idle()
        for line in summary_lines(summary, config):
            print(line, file=sys.stderr)
        if once:
            return 0
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("watching %s (Ctrl-C to stop)", config.store.path)
        await worker.run(stop)
        log.info("stopped cleanly")
        return 0
    finally:
        for notifier in notifiers.values():
            await notifier.aclose()
        await state.aclose()
