"""Runs the bot from a `Config`: opens the state, starts the notifiers, prepares the worker,
then (unless `--once`) runs it with the services beside it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.config import Config, ConfigError, database_target
from bot.crew import Crew
from bot.delivery import Deliverer
from bot.metrics import Metrics
from bot.notifiers import MAX_IN_FLIGHT, build_pacers, open_platforms, park_what_cannot_post
from bot.platforms.base import Notifier, PermanentError
from bot.postgres import PostgresDatabase
from bot.run_lock import run_lock
from bot.scheduler import Leftover, Scheduler
from bot.services import Parts, RunningBot, start_services
from bot.state import State
from bot.worker import Worker, summary_lines

log = logging.getLogger(__name__)

__all__ = ["EXIT_DELIVERIES_LEFT", "RunningBot", "run_bot"]

# `run --once` left deliveries behind (a long backoff, a parked channel): try again later
# (EX_TEMPFAIL in sysexits.h).
EXIT_DELIVERIES_LEFT = 75
DEFAULT_MAX_WAIT_S = 300.0


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


def build_delivery(
    config: Config,
    state: State,
    notifiers: Mapping[str, Notifier],
    clock: Clock,
    metrics: Metrics | None = None,
    crew: Crew | None = None,
) -> tuple[Deliverer, Scheduler]:
    """The deliverer (one attempt) and the scheduler (who goes when) for these notifiers;
    beside other workers, for this worker's share of the channels (`crew`)."""
    deliverer = Deliverer(state, notifiers, clock, metrics=metrics)
    scheduler = Scheduler(
        deliverer, state.outbox, build_pacers(config, notifiers), clock,
        max_in_flight=MAX_IN_FLIGHT, serves=crew.serves if crew is not None else None,
    )
    return deliverer, scheduler


async def run_bot(
    config: Config,
    once: bool,
    out: TextIO,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    environ: Mapping[str, str] | None = None,
    on_ready: Callable[[RunningBot], None] | None = None,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> int:
    """Run the bot; returns the exit status. `once`: deliver what is queued (waiting out waits
    shorter than `max_wait_s`) and exit, 75 when deliveries are left."""
    clock = clock or SystemClock()
    environ = os.environ if environ is None else environ
    stop = stop or asyncio.Event()
    target = database_target(config, environ)
    # One process owns a SQLite database (a lock file beside it).
    owning = run_lock(target) if isinstance(target, Path) else contextlib.nullcontext()
    with _stop_on_signals(stop), owning:
        state = await State.open(target, clock)
        notifiers: dict[str, Notifier] = {}
        crew: Crew | None = None
        try:
            # On PostgreSQL any number of workers share the database and the work.
            crew = (
                Crew.joining(state.database, clock)
                if isinstance(state.database, PostgresDatabase)
                else Crew.alone(clock)
            )
            state.outbox.claimer = crew.worker_id
            platforms = await open_platforms(config, state, environ, out, clock)
            notifiers = dict(platforms.notifiers)
            await _start(notifiers)
            metrics = Metrics()
            deliverer, scheduler = build_delivery(config, state, notifiers, clock, metrics, crew)
            worker = Worker(config, state, scheduler, clock, metrics=metrics, crew=crew)
            summary = await worker.prepare(settle=once, stop=stop)
            await park_what_cannot_post(state, platforms)
            left: list[Leftover] = []
            if once and not stop.is_set():
                left = await worker.deliver_until_idle(stop, max_wait_s)
            for line in summary_lines(summary, config):
                log.info("%s", line)
            if once:
                return _report_leftovers(left)
            if stop.is_set():
                return 0
            async with contextlib.AsyncExitStack() as services:
                parts = Parts(config, state, worker, deliverer, platforms, clock, metrics, crew)
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
            if crew is not None:
                # Gone at once, not after ALIVE_S: the others take its channels and lease.
                with contextlib.suppress(Exception):
                    await crew.leave()
            for notifier in notifiers.values():
                await notifier.aclose()
            await state.aclose()


def _report_leftovers(left: list[Leftover]) -> int:
    """What a bounded run could not deliver: how many, where, why; the exit status."""
    if not left:
        return 0
    total = sum(item.rows for item in left)
    log.warning(
        "%d deliveries are left in %d channels; run again later (or without --once)",
        total, len(left),
    )
    for item in left:
        log.warning("left %s:%s rows=%d: %s", item.platform, item.channel, item.rows, item.reason)
    return EXIT_DELIVERIES_LEFT
