"""The scheduler: which outbox row goes next, so that every platform is used up to its rate
ceiling and no send ever waits on a spent bucket while another channel could go.

One lane per platform. Every (platform, channel) is its own queue, oldest story first (by the
article's published time). A channel is in exactly one place at a time:

    ready    its bucket allows a send now; served round robin: the channel served longest ago
             (or never) first; a channel that was idle and now has one post to send goes ahead
             of every backlog (even of channels not served yet in a first round)
    waiting  on a timer: its bucket is spent, or its next row's retry time has not come
    busy     a send is in flight (one per channel at a time: order and the channel's limit)

A send slot is taken only at the moment of sending, so a spent bucket never holds one. The
platform-wide budget (Discord's global limit, Slack's workspace) is taken at a gate right before
the request leaves, after the row is claimed in the database, so that a slow moment there cannot
bunch requests together at the platform's end. What the platform says back (`Attempt.rate`) goes
to the lane's pacer (bot/pacing.py), which decides when that channel and the platform may go
again. Waits the platform imposes by refusing (429) are
also written to the outbox by delivery, so they survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.clock import Clock
from bot.delivery import Attempt, Deliverer, Outcome
from bot.outbox import ChannelBacklog, Delivery, DeliveryKind, DeliveryState, Outbox
from bot.pacing import POST, Pacer

log = logging.getLogger(__name__)

# Rows read ahead per channel: enough to keep a channel busy between database reads, few
# enough that memory stays flat in the number of channels.
QUEUE_READ_AHEAD = 4
# Look for channels with new work this often even without being told (rows added by another
# process, such as `newsbot subscriptions add --backfill`).
DISCOVERY_INTERVAL_S = 5.0
# Sends a lane has in flight at most (channels are one at a time each).
DEFAULT_MAX_IN_FLIGHT = 32
PRUNE_EVERY_SENDS = 500
# Sends dispatched but not yet through the platform gate, at most: enough to keep the gate busy
# while the next row is claimed, few enough that a channel that was idle waits for no more than
# this many requests ahead of it.
GATE_DEPTH = 2
# After the database failed between sends.
ERROR_PAUSE_S = 1.0


def request_route(row: Delivery) -> str:
    """The rate-limit route a row's request uses: a digest is a message posted to the channel,
    like a post; edits and replies have their own."""
    return POST if row.kind is DeliveryKind.DIGEST else str(row.kind)


class Timer(Protocol):
    async def wait(self, wake: asyncio.Event, timeout_s: float | None, busy: bool) -> None:
        """Return when `wake` is set or `timeout_s` has passed. `busy`: sends are in flight
        (they set `wake` when they finish)."""
        ...


class AsyncioTimer:
    async def wait(self, wake: asyncio.Event, timeout_s: float | None, busy: bool) -> None:
        if timeout_s is not None and timeout_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout_s)


@dataclass(frozen=True, slots=True)
class Leftover:
    """Rows a lane could not deliver in a bounded run, per channel, with the reason."""

    platform: str
    channel: str
    rows: int
    reason: str


@dataclass(slots=True)
class LaneStats:
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    failed: int = 0
    parked: int = 0


@dataclass(slots=True)
class _Heap:
    """A heap of (key, seq, channel) with at most one live entry per channel; replaced or
    discarded entries are skipped when they surface."""

    entries: list[tuple[float, int, str]] = field(default_factory=list)
    live: dict[str, tuple[float, int]] = field(default_factory=dict)

    def push(self, at: float, seq: int, channel: str) -> None:
        self.live[channel] = (at, seq)
        heapq.heappush(self.entries, (at, seq, channel))

    def discard(self, channel: str) -> None:
        self.live.pop(channel, None)

    def time_of(self, channel: str) -> float | None:
        entry = self.live.get(channel)
        return None if entry is None else entry[0]

    def _drop_stale(self) -> None:
        while self.entries:
            at, seq, channel = self.entries[0]
            if self.live.get(channel) == (at, seq):
                return
            heapq.heappop(self.entries)

    def peek_time(self) -> float | None:
        self._drop_stale()
        return self.entries[0][0] if self.entries else None

    def pop(self) -> str:
        self._drop_stale()
        _, _, channel = heapq.heappop(self.entries)
        del self.live[channel]
        return channel

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, channel: object) -> bool:
        return channel in self.live


class _GatePass:
    """One send's way through its lane's platform gate: counted from dispatch until it has
    passed (or has no request to make after all)."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane
        self._counted = True
        lane._before_gate += 1

    async def __call__(self) -> None:
        await self._lane.pass_gate()
        self.leave()

    def leave(self) -> None:
        if self._counted:
            self._counted = False
            self._lane._before_gate -= 1
            self._lane._wake.set()


Serves = Callable[[str, str], bool]


def _serves_all(platform: str, channel: str) -> bool:
    return True


class Lane:
    """One platform's queues, pacing and sends."""

    def __init__(
        self,
        platform: str,
        pacer: Pacer,
        deliverer: Deliverer,
        outbox: Outbox,
        clock: Clock,
        timer: Timer,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        serves: Serves | None = None,
    ) -> None:
        self.platform = platform
        self.pacer = pacer
        # Beside other workers, the channels this one serves (bot/crew.py); alone, all.
        self._serves = serves or _serves_all
        self._deliverer = deliverer
        self._outbox = outbox
        self._clock = clock
        self._timer = timer
        self._max_in_flight = max(1, max_in_flight)
        self._queues: dict[str, deque[Delivery]] = {}
        self._ready = _Heap()  # keyed by when the channel was last served
        self._waiting = _Heap()  # keyed by when it may go
        self._busy: set[str] = set()
        self._waiting_for_rows: set[str] = set()  # waiting for a row's retry time, not a bucket
        self._urgent: set[str] = set()  # back from idle with one post: ahead of the rotation
        self._last_served: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._discover_at = float("-inf")
        self._sends_since_prune = 0
        self._looked_since_send = False
        self._gate_lock = asyncio.Lock()  # first come, first through
        # A send finished or reached the gate (what a virtual timer's gate wait waits for).
        self._gate_wake = asyncio.Event()
        self._before_gate = 0
        self._at_gate = 0
        self.stats = LaneStats()
        self.stopped_reason: str | None = None

    # --- what the outside says -----------------------------------------------------------

    def notify(self) -> None:
        """New rows may be in the outbox: look at once."""
        self._discover_at = float("-inf")
        self._wake.set()

    @property
    def in_flight(self) -> int:
        # The channels with a send in flight (one each): a finished send leaves this set
        # before it wakes the loop, unlike its task, whose removal is a callback for later.
        return len(self._busy)

    # --- time --------------------------------------------------------------------------------

    def _mono_of(self, wall_s: float) -> float:
        """A stored wall-clock time on the monotonic clock the pacing uses."""
        return self._clock.monotonic() + (wall_s - self._clock.time())

    # --- where a channel goes ------------------------------------------------------------

    def _place(self, channel: str, at: float, urgent: bool = False) -> None:
        """Ready now, or waiting until `at`. `urgent`: it comes back from idle with a single
        post: it goes ahead of the rotation until it has sent it."""
        self._ready.discard(channel)
        self._waiting.discard(channel)
        self._waiting_for_rows.discard(channel)
        if urgent:
            self._urgent.add(channel)
        now = self._clock.monotonic()
        if at <= now:
            self._ready.push(self._turn(channel), next(self._seq), channel)
        else:
            self._waiting.push(at, next(self._seq), channel)

    def _turn(self, channel: str) -> float:
        """Its place in the rotation: ahead of everyone if urgent (first come, first served
        among those), else by when it was last served (never: before those served)."""
        if channel in self._urgent:
            return float("-inf")
        return self._last_served.get(channel, 0.0)

    def _retire(self, channel: str) -> None:
        """Nothing left for the channel: it leaves memory (and comes back first in line)."""
        self._ready.discard(channel)
        self._waiting.discard(channel)
        self._waiting_for_rows.discard(channel)
        self._urgent.discard(channel)
        self._queues.pop(channel, None)
        self._last_served.pop(channel, None)

    async def _discover(self) -> None:
        """Every channel with pending rows that the lane does not hold yet, or holds on a
        timer later than its rows need."""
        self._discover_at = self._clock.monotonic() + DISCOVERY_INTERVAL_S
        self._looked_since_send = True
        for work in await self._outbox.backlog([self.platform]):
            if self._serves(self.platform, work.channel):
                self._consider(work)

    def _consider(self, work: ChannelBacklog) -> None:
        channel = work.channel
        if channel in self._busy or channel in self._ready:
            return
        current = self._waiting.time_of(channel)
        if current is not None and channel not in self._waiting_for_rows:
            return  # waiting for its bucket: its rows are read when its turn comes
        at = self._mono_of(work.next_attempt_at)
        if current is not None and current <= at:
            return
        # New to the lane, or a row came that may go sooner than the one it waited for. With
        # one post to send it was idle: it goes ahead of the backlogs.
        self._queues.pop(channel, None)
        self._place(channel, at, urgent=work.pending <= 1)

    async def _refill(self, channel: str) -> bool:
        """Read the channel's next due rows; False when none is due now (then the channel
        waits for its next row, or leaves when it has none, or has passed to another
        worker)."""
        if not self._serves(self.platform, channel):
            self._queues.pop(channel, None)
            self._retire(channel)
            return False
        rows = await self._outbox.due_rows(
            self.platform, channel, self._clock.time(), QUEUE_READ_AHEAD
        )
        if rows:
            self._queues[channel] = deque(rows)
            return True
        self._queues.pop(channel, None)
        next_at = await self._outbox.next_attempt_at(self.platform, channel)
        if next_at is None:
            self._retire(channel)
            return False
        self._place(channel, self._mono_of(next_at))
        if channel in self._waiting:
            # Nothing to send until then: idle meanwhile, so it comes back first in line.
            self._waiting_for_rows.add(channel)
            self._last_served.pop(channel, None)
        return False

    # --- the loop ------------------------------------------------------------------------

    def _promote(self, now: float) -> None:
        while (at := self._waiting.peek_time()) is not None and at <= now:
            channel = self._waiting.pop()
            self._ready.push(self._turn(channel), next(self._seq), channel)

    async def _dispatch_one(self, now: float) -> None:
        """Start the send of the next ready channel, if it is really ready (else it goes back
        to wait for its bucket, or to read its rows)."""
        channel = self._ready.pop()
        queue = self._queues.get(channel)
        if not queue:
            if not await self._refill(channel):
                return
            queue = self._queues[channel]
            now = self._clock.monotonic()
        # The next row's request (a post, an edit, a reply) is what its bucket must allow.
        route = request_route(queue[0])
        channel_at = self.pacer.channel_ready_at(channel, now, route)
        if channel_at > now:
            self._waiting.push(channel_at, next(self._seq), channel)
            return
        row = queue.popleft()
        self._looked_since_send = False
        self.pacer.dispatched(channel, now, route)
        self._busy.add(channel)
        # Counted as before the gate from now, not from when the task first runs.
        gate = _GatePass(self)
        task = asyncio.create_task(self._send(channel, row, gate), name=f"send {row.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, channel: str, row: Delivery, gate: _GatePass) -> None:
        try:
            try:
                attempt = await self._deliverer.attempt(row, gate)
            except Exception:
                # A bug, or the database failing under the attempt (the send itself maps its
                # errors). The row is still pending or sending: the channel pauses, then it is
                # tried again (and at the latest resolved at the next start), never in a loop.
                log.exception("delivery attempt for %s failed", row.key)
                self._count(Outcome.RETRY)
                self._queues.pop(channel, None)
                self._place(channel, self._clock.monotonic() + ERROR_PAUSE_S)
                return
            await self._after(channel, attempt, request_route(row))
        except Exception:
            log.exception("could not read the next rows of %s:%s", self.platform, channel)
            self._queues.pop(channel, None)
            self._place(channel, self._clock.monotonic() + ERROR_PAUSE_S)
        finally:
            gate.leave()
            # Still busy until it is placed, so that discovery never places it twice.
            self._busy.discard(channel)
            self._wake.set()
            self._gate_wake.set()

    async def pass_gate(self) -> None:
        """Wait for the platform-wide budget, in turn, and take it."""
        self._at_gate += 1
        self._gate_wake.set()  # one more idle at the gate: the waiter there looks again
        try:
            async with self._gate_lock:
                while True:
                    now = self._clock.monotonic()
                    at = self.pacer.platform_ready_at(now)
                    if at <= now:
                        self.pacer.take_platform(now)
                        return
                    # Busy: other sends are doing their work (only sends waiting here idle).
                    busy = len(self._busy) > self._at_gate
                    self._gate_wake.clear()
                    await self._timer.wait(self._gate_wake, at - now, busy=busy)
        finally:
            self._at_gate -= 1

    async def _after(self, channel: str, attempt: Attempt, route: str) -> None:
        """Learn from the answer, then put the channel where it belongs: waiting for its
        bucket, ready, or (nothing left to send now) waiting for its next row, or gone."""
        now = self._clock.monotonic()
        self.pacer.answered(channel, attempt.rate, now, route)
        self._count(attempt.outcome)
        self._prune(now)
        outcome = attempt.outcome
        if outcome is Outcome.PLATFORM_STOPPED:
            self.stopped_reason = attempt.reason or "the platform refused our credentials"
            return
        if outcome is Outcome.PARKED:
            self._retire(channel)
            return
        self._last_served[channel] = now
        self._urgent.discard(channel)  # its turn came: it joins the rotation, if it stays
        if outcome is Outcome.RATE_LIMITED:
            # The channel's rows were held in the outbox: read afresh once the wait is over.
            self._queues.pop(channel, None)
        elif not self._queues.get(channel) and not await self._refill(channel):
            return  # nothing due now: `_refill` put it to wait for its next row, or retired it
        queue = self._queues.get(channel)
        route = request_route(queue[0]) if queue else route
        self._place(channel, self.pacer.channel_ready_at(channel, self._clock.monotonic(), route))

    def _prune(self, now: float) -> None:
        self._sends_since_prune += 1
        if self._sends_since_prune >= PRUNE_EVERY_SENDS:
            self._sends_since_prune = 0
            self.pacer.prune(now)

    def _count(self, outcome: Outcome) -> None:
        if outcome in (Outcome.SENT, Outcome.FOUND):
            self.stats.sent += 1
        elif outcome is Outcome.RETRY:
            self.stats.retried += 1
        elif outcome is Outcome.RATE_LIMITED:
            self.stats.rate_limited += 1
        elif outcome is Outcome.FAILED:
            self.stats.failed += 1
        elif outcome is Outcome.PARKED:
            self.stats.parked += 1

    async def run(self, stop: asyncio.Event, horizon_s: float | None = None) -> None:
        """Deliver until `stop` is set. With `horizon_s` (a bounded run): return once nothing
        is in flight and nothing may go within `horizon_s` from now."""
        while not stop.is_set() and self.stopped_reason is None:
            try:
                if await self._step(horizon_s):
                    return
            except Exception:
                # The database failed between sends: pause, then look at everything afresh.
                log.exception("the %s delivery lane failed; retrying shortly", self.platform)
                self._queues.clear()
                self._discover_at = self._clock.monotonic() + ERROR_PAUSE_S
                self._wake.clear()
                await self._timer.wait(self._wake, ERROR_PAUSE_S, busy=bool(self._busy))

    async def _step(self, horizon_s: float | None) -> bool:
        """Start one send, or wait for the next moment one could start; True when a bounded
        run is over."""
        now = self._clock.monotonic()
        if now >= self._discover_at:
            await self._discover()
            return False
        self._promote(now)
        wake_at = self._discover_at
        if (
            len(self._ready)
            and len(self._busy) < self._max_in_flight
            and self._before_gate < GATE_DEPTH
        ):
            platform_at = self.pacer.platform_ready_at(now)
            if platform_at <= now:
                await self._dispatch_one(now)
                return False
            wake_at = min(wake_at, platform_at)
        waiting_at = self._waiting.peek_time()
        if waiting_at is not None:
            wake_at = min(wake_at, waiting_at)
        if horizon_s is not None and not self._busy:
            if not self._looked_since_send:
                # Before calling it done, look once more for rows added meanwhile.
                self._discover_at = float("-inf")
                return False
            next_send = self._next_possible_send(now, waiting_at)
            if next_send is None or next_send > now + horizon_s:
                return True
            # Nothing in flight: only timers are left, all within the horizon.
            wake_at = next_send
        self._wake.clear()
        await self._timer.wait(self._wake, max(0.0, wake_at - now), busy=bool(self._busy))
        return False

    def _next_possible_send(self, now: float, waiting_at: float | None) -> float | None:
        """The earliest moment a send could start, as far as the lane knows now."""
        if len(self._ready):
            earliest = now
        elif waiting_at is not None:
            earliest = waiting_at
        else:
            return None
        # A platform-wide wait (a global 429, Slack's workspace) holds every channel.
        return max(earliest, self.pacer.platform_ready_at(now))

    async def finish_in_flight(self, grace_s: float) -> bool:
        """Let sends in flight finish (at most `grace_s`); False when some were cut off (their
        rows stay `sending` and are resolved at the next start)."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        return not pending


class Scheduler:
    """The lanes of all platforms, run together."""

    def __init__(
        self,
        deliverer: Deliverer,
        outbox: Outbox,
        pacers: Mapping[str, Pacer],
        clock: Clock,
        timer: Timer | None = None,
        max_in_flight: Mapping[str, int] | None = None,
        serves: Serves | None = None,
    ) -> None:
        self._deliverer = deliverer
        self._outbox = outbox
        self._clock = clock
        timer = timer or AsyncioTimer()
        limits = max_in_flight or {}
        self.lanes = {
            platform: Lane(
                platform, pacer, deliverer, outbox, clock, timer,
                limits.get(platform, DEFAULT_MAX_IN_FLIGHT), serves,
            )
            for platform, pacer in pacers.items()
            if platform in deliverer.active_platforms
        }

    def notify(self) -> None:
        """New rows may be in the outbox."""
        for lane in self.lanes.values():
            lane.notify()

    def set_share(self, fraction: float) -> None:
        """Beside other workers: pace at this part of each platform's global rate, and look
        again at which channels are this worker's."""
        now = self._clock.monotonic()  # the pacers' time, as the lanes give it
        for lane in self.lanes.values():
            lane.pacer.share(fraction, now)
            lane.notify()

    async def recover_interrupted(self, gone_before: float | None = None) -> int:
        """Resolve the rows a crash left `sending`: at a start alone, before any lane runs;
        beside other workers, those of workers gone (the scan leader does it)."""
        return await self._deliverer.recover_interrupted(gone_before)

    async def run(self, stop: asyncio.Event, grace_s: float) -> None:
        """Deliver until `stop`; then give sends in flight `grace_s` to finish."""
        await self._run_lanes(stop, None)
        cut_off = [
            lane.platform
            for lane in self.lanes.values()
            if not await lane.finish_in_flight(grace_s)
        ]
        if cut_off:
            log.warning("stopping with sends still in flight; they resume at next start")

    async def drain(self, stop: asyncio.Event, max_wait_s: float) -> list[Leftover]:
        """Deliver everything that may go within `max_wait_s` (waiting out rate limits and
        short backoffs), then say what is left and why."""
        self.notify()  # look at the outbox as it is now, whatever a previous run saw
        await self._run_lanes(stop, max_wait_s)
        for lane in self.lanes.values():
            await lane.finish_in_flight(float("inf") if not stop.is_set() else 8.0)
        return await self.leftovers()

    async def _run_lanes(self, stop: asyncio.Event, horizon_s: float | None) -> None:
        tasks = [
            asyncio.create_task(lane.run(stop, horizon_s), name=f"lane {lane.platform}")
            for lane in self.lanes.values()
        ]
        if not tasks:
            return
        waker = asyncio.create_task(self._wake_on(stop), name="lanes wake on stop")
        try:
            await asyncio.gather(*tasks)
        finally:
            waker.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(waker, *tasks, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        """A lane waiting on a timer learns of the stop at once, not when the timer fires."""
        await stop.wait()
        for lane in self.lanes.values():
            lane.notify()

    async def leftovers(self) -> list[Leftover]:
        """Rows still waiting (pending or parked), by channel, each with why."""
        stopped = self._deliverer.stopped_platforms
        now = self._clock.time()
        left = []
        for work in await self._outbox.backlog():
            if work.platform in stopped:
                reason = f"the platform stopped: {stopped[work.platform]}"
            elif work.platform not in self.lanes:
                reason = f"{work.platform} is not running (no notifier for it)"
            else:
                wait_s = max(0.0, work.next_attempt_at - now)
                why = f": {work.last_error}" if work.last_error else ""
                reason = f"next attempt in {wait_s:.0f} s{why}"
            left.append(Leftover(work.platform, work.channel, work.pending, reason))
        for work in await self._outbox.backlog(state=DeliveryState.PARKED):
            reason = f"parked: {work.last_error or 'the channel refused us'}"
            left.append(Leftover(work.platform, work.channel, work.pending, reason))
        return left
