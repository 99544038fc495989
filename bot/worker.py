"""Wires the loop together: store -> state (with routing) -> outbox -> delivery, plus the
watcher and the periodic rescan, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from bot.articles import Article
from bot.clock import Clock
from bot.config import Config, subscription_from_spec
from bot.crew import ALIVE_S, BEAT_S, SCAN_LEASE, Crew
from bot.feedback_store import FeedbackStore
from bot.health import HEARTBEAT_INTERVAL_S, HEARTBEAT_KEY, STOPPED_KEY
from bot.metrics import Metrics
from bot.routing import Routing, RoutingDefaults, Verdict, judge, route
from bot.scheduler import Leftover, Scheduler
from bot.state import IngestReport, RouteFn, State
from bot.store import (
    SETTLE_S,
    FileOutcome,
    FileStamp,
    Unsettled,
    diff,
    list_store,
    parse_files,
)
from bot.stored_article import StoredArticle, to_stored
from bot.stories import Newcomer
from bot.subscriptions import Subscription, SubscriptionSource

log = logging.getLogger(__name__)

_BASELINE_KEY = "store_baseline_done"
StoredResult = FileOutcome[StoredArticle] | Unsettled
# Files recorded per transaction by a first scan (later scans record each parsed batch).
_BASELINE_TRANSACTION = 2000
# How long a graceful stop waits for sends in flight before leaving them `sending` (safe: they
# are resolved at the next start).
STOP_GRACE_S = 8.0


@dataclass(slots=True)
class ScanSummary:
    files: int = 0
    parsed: int = 0
    new_articles: int = 0
    updated_articles: int = 0
    duplicates: int = 0
    bad_files: int = 0
    removed_files: int = 0
    deliveries: int = 0
    held_unscored: int = 0
    backfilled: int = 0  # rows queued by new subscriptions' backfill at start-up
    # Unscored articles that a new subscription's backfill would have taken had they a score.
    unscored_passed_over: int = 0
    unsettled: int = 0
    baseline: bool = False
    store_missing: bool = False

    def merge(self, later: ScanSummary) -> None:
        """Fold a follow-up scan (of the files that were still being written) into this one."""
        self.parsed += later.parsed
        self.new_articles += later.new_articles
        self.updated_articles += later.updated_articles
        self.duplicates += later.duplicates
        self.bad_files += later.bad_files
        self.removed_files += later.removed_files
        self.deliveries += later.deliveries
        self.held_unscored += later.held_unscored
        self.unsettled = later.unsettled

    def add(self, report: IngestReport) -> None:
        self.new_articles += report.new_articles
        self.updated_articles += report.updated_articles
        self.duplicates += report.duplicates
        self.bad_files += report.bad_files
        self.removed_files += report.removed_files
        self.deliveries += report.deliveries
        self.held_unscored += report.held_unscored


def routing_defaults(config: Config) -> RoutingDefaults:
    return RoutingDefaults(
        min_quality=config.min_quality,
        include_unscored=config.include_unscored,
        max_age_days=config.max_age_days,
    )


class Worker:
    def __init__(
        self,
        config: Config,
        state: State,
        scheduler: Scheduler,
        clock: Clock,
        metrics: Metrics | None = None,
        crew: Crew | None = None,
    ) -> None:
        self._config = config
        # Alone on its database (SQLite) a worker does everything; beside others (PostgreSQL)
        # the store scan is the leader's and the channels are shared out (bot/crew.py).
        self._crew = crew or Crew.alone(clock)
        self._leading = False
        self._tell_crew = False  # deliveries were queued since the other workers were told
        self.metrics = metrics or Metrics()
        self._state = state
        self._scheduler = scheduler
        self._clock = clock
        self._defaults = routing_defaults(config)
        self._feedback = FeedbackStore(state.database)
        self._index: dict[str, FileStamp] = {}
        self._store_missing_reported = False
        self._scan_lock = asyncio.Lock()
        self._stop: asyncio.Event | None = None
        self.last_heartbeat_s = clock.monotonic()
        self.store_missing = False

    def _takes_unscored(self, sub: Subscription) -> bool:
        if sub.include_unscored is not None:
            return sub.include_unscored
        return self._defaults.include_unscored

    def wants(self, sub: Subscription, article: Article) -> bool:
        return judge(article, sub, self._defaults, self._clock.now()) is Verdict.DELIVER

    async def prepare(
        self, settle: bool = False, stop: asyncio.Event | None = None
    ) -> ScanSummary:
        """Start-up: load the index, resolve interrupted sends, scan, sync config subscriptions.
        The very first scan of a store records what is there without posting it. `settle`
        (for `run --once`, which has no later rescan): wait for files caught mid-write and
        scan them again, so that the run sees the store whole. `stop` cuts a long scan short
        between batches (what was recorded stays; the rest is scanned at the next start)."""
        self._stop = stop
        if self._crew.shared:
            await self._crew.beat()
            self._scheduler.set_share(self._crew.share)
            await self._crew.on_new_rows(self._scheduler.notify)
            if not await self._take_lead():
                log.info(
                    "another worker scans the store; this one delivers to its share of the "
                    "channels (%d workers)", len(self._crew.live),
                )
                return ScanSummary()
        else:
            self._leading = True
            self._index = await self._state.load_file_index()
            await self._scheduler.recover_interrupted()
        summary = await self.scan()
        for _ in range(3):
            if not (settle and summary.unsettled) or (stop is not None and stop.is_set()):
                break
            await asyncio.sleep(SETTLE_S)
            summary.merge(await self.scan())
        wanted = [
            subscription_from_spec(s, SubscriptionSource.CONFIG) for s in self._config.subscriptions
        ]
        ran_before = {
            (s.platform, s.channel, s.topics)
            for s in wanted
            if s.backfill and await self._state.backfill_ran(s.platform, s.channel, s.topics)
        }
        queued_before = sum((await self._state.outbox.counts()).values())
        created = await self._state.sync_config_subscriptions(wanted, self.wants)
        await self._sync_learn_modes()
        summary.backfilled = sum((await self._state.outbox.counts()).values()) - queued_before
        for sub in created:
            if (sub.platform, sub.channel, sub.topics) in ran_before:
                log.info(
                    "new subscription %s (its backfill already ran once for this channel and "
                    "topics: not again)", sub.describe(),
                )
            else:
                log.info("new subscription %s (backfill %d)", sub.describe(), sub.backfill)
        summary.unscored_passed_over = await self._unscored_passed_over(created)
        self._scheduler.notify()
        return summary

    async def _sync_learn_modes(self) -> None:
        """Each config subscription's `learn` (none written: the default)."""
        from bot.learning import LearnMode
        from bot.subscriptions import topics_key

        wanted = {
            (s.platform, s.channel, topics_key(s.topics)): s.learn
            for s in self._config.subscriptions
        }
        for sub in await self._state.subscriptions():
            key = (sub.platform, sub.channel, topics_key(sub.topics))
            if sub.source is SubscriptionSource.CONFIG and key in wanted:
                learn = wanted[key]
                await self._feedback.set_learn_mode(
                    sub.id, LearnMode(learn) if learn is not None else None
                )

    async def _unscored_passed_over(self, created: list[Subscription]) -> int:
        """Backfill passes over unscored articles like routing does: how many of them one of
        these new subscriptions would have taken (its topics, providers, keywords and age)."""
        backfilling = [s for s in created if s.backfill and not self._takes_unscored(s)]
        if not backfilling:
            return 0
        now = self._clock.now()
        return sum(
            any(judge(article, s, self._defaults, now) is Verdict.UNSCORED for s in backfilling)
            for article in await self._state.unscored_articles()
        )

    async def _router(self) -> tuple[bool, RouteFn]:
        baseline = await self._state.get_meta(_BASELINE_KEY) is None
        from bot.tuning import learned_for_routing

        subs = [s for s in await self._state.subscriptions() if not s.is_parked]
        now = self._clock.now()
        # What each channel's reactions taught, read at every scan: an adjustment applied or
        # undone counts from the next article on.
        learned = await learned_for_routing(self._feedback, subs, self._config.feedback.enabled)

        def decide(article: Article) -> Routing:
            return route(article, subs, self._defaults, now, learned)

        return baseline, decide

    async def _take_lead(self) -> bool:
        """Beside other workers: take (or keep) the scan lease. A worker that becomes the
        leader loads the store index and resolves the sends that gone workers left."""
        leading = await self._crew.lead(SCAN_LEASE)
        if leading and not self._leading:
            log.info("this worker now scans the store (%s)", self._crew.worker_id)
            self._index = await self._state.load_file_index()
        self._leading = leading
        if leading:
            await self._scheduler.recover_interrupted(self._clock.time() - ALIVE_S)
        return leading

    async def _crew_beat(self, stop: asyncio.Event) -> None:
        """Beside other workers: stay alive in the crew, follow who else is, and take the
        lead when the leader is gone."""
        while not stop.is_set():
            try:
                if await self._crew.beat():
                    self._scheduler.set_share(self._crew.share)
                await self._take_lead()
            except Exception:
                log.exception("could not reach the other workers through the database")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BEAT_S)

    async def scan(self) -> ScanSummary:
        """Compare the store with the index; parse and record only what changed."""
        async with self._scan_lock:
            return await self._scan()

    async def _scan(self) -> ScanSummary:
        store = self._config.store
        listing = await asyncio.to_thread(list_store, store.path)
        summary = ScanSummary(files=len(listing.files))
        self.last_heartbeat_s = self._clock.monotonic()
        if not listing.root_exists:
            # An unmounted volume: keep every record; nothing is new or deleted until it's back.
            self.store_missing = summary.store_missing = True
            if not self._store_missing_reported:
                log.error(
                    "the article store %s is missing or not a folder; check the volume mount "
                    "(state is kept; scanning resumes when it returns)",
                    store.path,
                )
                self._store_missing_reported = True
            return summary
        self.store_missing = self._store_missing_reported = False
        summary.files += len(listing.refused)
        # Refused entries are indexed like files (with the entry's own stamp), so each is
        # recorded and reported once, until it changes, across restarts too.
        refused_stamps = {path: refusal.stamp for path, refusal in listing.refused.items()}
        changes = diff(self._index, {**listing.files, **refused_stamps})
        baseline, decide = await self._router()
        route_fn = None if baseline else decide
        summary.baseline = baseline
        if changes.removed:
            # Removals first: a file renamed since the last scan reads as the same file moved,
            # not as a second copy of its story.
            summary.add(await self._state.record_files([], removed=changes.removed))
            for path in changes.removed:
                self._index.pop(path, None)
        refusals = [listing.refused[p] for p in changes.changed if p in listing.refused]
        if refusals:
            summary.parsed += len(refusals)
            self._recorded(refusals, await self._state.record_files(refusals), summary)
        batches: Generator[list[StoredResult], None, None] = parse_files(
            store.path,
            [p for p in changes.changed if p not in listing.refused],
            store.max_file_bytes,
            self._clock.time(),
            store.parallel_threshold,
            transform=to_stored,
        )
        unplaced: list[Newcomer] = []
        waiting: list[FileOutcome[StoredArticle]] = []
        recording: asyncio.Task[None] | None = None

        async def record(outcomes: list[FileOutcome[StoredArticle]]) -> None:
            # A first scan posts nothing, so its stories can wait for its end: one placement
            # over the whole store instead of one per batch against all the batches before.
            report = await self._state.record_stored(
                outcomes, route=route_fn, place_later=baseline
            )
            unplaced.extend(report.unplaced)
            self._recorded(outcomes, report, summary)

        async def flush() -> None:
            # One transaction at a time, in order, while the pool parses the next files.
            nonlocal recording
            if recording is not None:
                await recording
            recording = asyncio.create_task(record(list(waiting))) if waiting else None
            waiting.clear()

        stopped = False
        if baseline:
            # A first scan posts nothing: losing its last commits to a power cut costs only a
            # rescan of those files, so commits need not wait for the disk one by one.
            await self._state.database.sync_each_commit(False)
        try:
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                if self._stop is not None and self._stop.is_set():
                    stopped = True
                    await asyncio.to_thread(batches.close)  # shuts the parser pool down
                    break
                outcomes = [r for r in batch if isinstance(r, FileOutcome)]
                summary.unsettled += len(batch) - len(outcomes)
                summary.parsed += len(outcomes)
                waiting.extend(outcomes)
                # Each transaction waits for the disk; a first scan, which posts nothing,
                # writes in fewer, larger ones.
                if len(waiting) >= (_BASELINE_TRANSACTION if baseline else 1):
                    await flush()
            await flush()
        finally:
            if recording is not None:
                await recording
            if baseline:
                # From here every commit is durable again (and makes the ones before durable).
                await self._state.database.sync_each_commit(True)
        if baseline and not stopped:
            # An interrupted first scan stays a first scan: the next start completes it
            # without posting what was already there (and places what it left unplaced).
            await self._state.place_stories(unplaced)
            await self._state.set_meta(_BASELINE_KEY, "1")
        return summary

    def _recorded(
        self,
        outcomes: Sequence[FileOutcome[Article]] | Sequence[FileOutcome[StoredArticle]],
        report: IngestReport,
        summary: ScanSummary,
    ) -> None:
        """Index what was recorded, and report each bad file: one warning per bad file that
        the summary counts."""
        summary.add(report)
        for outcome in outcomes:
            self._index[outcome.path] = outcome.stamp
            if outcome.error is not None:
                self.metrics.count_bad_file()
                log.warning("bad article file %s: %s", outcome.path, outcome.error)
            else:
                self.metrics.count_parsed()
        if report.deliveries or report.new_articles or report.updated_articles:
            # New posts, or edits and replies of posts already out.
            self._scheduler.notify()
            self._tell_crew = True

    # --- the long-running loop -------------------------------------------------------------

    def wake_delivery(self) -> None:
        """Rows may have become due outside the worker (a channel resumed): look at once."""
        self._scheduler.notify()

    async def deliver_until_idle(
        self, stop: asyncio.Event | None = None, max_wait_s: float = 0.0
    ) -> list[Leftover]:
        """Deliver everything that may go within `max_wait_s` (waiting out rate limits and
        short backoffs); returns what is left, by channel, with the reason."""
        return await self._scheduler.drain(stop or asyncio.Event(), max_wait_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch, rescan and deliver until `stop` is set."""
        self._stop = stop
        rescan_needed = asyncio.Event()
        # The first beat before "watching" is logged: healthy from then on.
        await self._record_start()
        tasks = [
            asyncio.create_task(self._watch(stop, rescan_needed), name="watch"),
            asyncio.create_task(self._rescan_timer(stop, rescan_needed), name="rescan-timer"),
            asyncio.create_task(self._scan_loop(stop, rescan_needed), name="scan"),
            asyncio.create_task(self._heartbeat(stop), name="heartbeat"),
        ]
        if self._crew.shared:
            tasks.append(asyncio.create_task(self._crew_beat(stop), name="crew"))
        delivery = asyncio.create_task(self._scheduler.run(stop, STOP_GRACE_S), name="deliver")
        # Files written between the start-up scan and the moment the watcher is armed raise no
        # event: look again now and once the watcher has surely started.
        rescan_needed.set()
        asyncio.get_running_loop().call_later(1.0, rescan_needed.set)
        # One turn of the loop gives each task its first step; the watcher arms its file-system
        # watches synchronously in that step, so once this is logged no new file is missed.
        await asyncio.sleep(0)
        log.info("watching %s (Ctrl-C to stop)", self._config.store.path)
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # The scheduler lets sends in flight finish (a row cut off stays `sending` and is
            # resolved at the next start, so nothing is lost or doubled).
            await delivery

    async def _record_start(self) -> None:
        await self._state.set_meta(HEARTBEAT_KEY, repr(self._clock.time()))
        await self._state.delete_meta(STOPPED_KEY)

    async def record_stop(self) -> None:
        """A clean stop: `newsbot healthcheck` says so at once instead of waiting for the
        heartbeat to grow stale; the other workers take this one's channels and lease."""
        try:
            await self._crew.leave()
            await self._state.set_meta(STOPPED_KEY, repr(self._clock.time()))
        except Exception:
            log.exception("could not record the stop for the health check")

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Record that the worker is alive, for `newsbot healthcheck` in another process."""
        while not stop.is_set():
            try:
                await self._state.set_meta(HEARTBEAT_KEY, repr(self._clock.time()))
            except Exception:
                log.exception("could not record the heartbeat")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_INTERVAL_S)

    async def store_lag_s(self) -> float:
        """Age of the newest store file not processed yet (0 when the worker is caught up)."""
        listing = await asyncio.to_thread(list_store, self._config.store.path)
        waiting = [
            stamp.mtime_ns
            for path, stamp in listing.files.items()
            if self._index.get(path) != stamp
        ]
        if not waiting:
            return 0.0
        return max(0.0, self._clock.time() - max(waiting) / 1e9)

    async def _watch(self, stop: asyncio.Event, rescan_needed: asyncio.Event) -> None:
        if not self._config.store.watch:
            return
        from bot.store import watch

        async for _paths in watch(self._config.store.path, stop):
            rescan_needed.set()

    async def _rescan_timer(self, stop: asyncio.Event, rescan_needed: asyncio.Event) -> None:
        interval_s = self._config.store.rescan_interval_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            rescan_needed.set()

    async def _scan_loop(self, stop: asyncio.Event, rescan_needed: asyncio.Event) -> None:
        while not stop.is_set():
            await rescan_needed.wait()
            rescan_needed.clear()
            if not self._leading:
                continue  # another worker scans
            try:
                summary = await self.scan()
            except Exception:
                log.exception("scanning the store failed; will retry at the next rescan")
                continue
            if self._tell_crew:
                self._tell_crew = False
                await self._crew.new_rows()
            if summary.new_articles or summary.bad_files:
                log.info(
                    "scan: %d new articles, %d bad files, %d deliveries queued",
                    summary.new_articles, summary.bad_files, summary.deliveries,
                )
            if summary.unsettled:
                # Files caught mid-write: look again once they have had time to settle.
                asyncio.get_running_loop().call_later(SETTLE_S / 2, rescan_needed.set)


def summary_lines(summary: ScanSummary, config: Config) -> list[str]:
    """The human summary of a run (or a scan), including what was held back and why."""
    lines = [
        f"store {config.store.path}: {summary.files} article files, {summary.parsed} new or "
        f"changed: {summary.new_articles} new articles, {summary.bad_files} bad files; "
        f"{summary.deliveries + summary.backfilled} deliveries queued"
    ]
    if summary.store_missing:
        lines.append(f"the store folder {config.store.path} does not exist: check store.path")
    if summary.baseline and summary.new_articles and summary.backfilled:
        lines.append(
            "first scan of this store: existing articles are recorded; "
            f"{summary.backfilled} of the most recent were queued by backfill"
        )
    elif summary.baseline and summary.new_articles:
        lines.append(
            "first scan of this store: existing articles are recorded, not posted "
            "(set backfill = N on a subscription to post the N most recent)"
        )
    if summary.held_unscored:
        lines.append(
            f"{summary.held_unscored} new articles have no quality score and were held back; "
            "set include_unscored = true (globally or on a subscription) to receive them"
        )
    if summary.unscored_passed_over:
        lines.append(
            f"the backfill passed over {summary.unscored_passed_over} articles that it would "
            "have taken but that have no quality score; set include_unscored = true (globally "
            "or on a subscription) to include them"
        )
    if summary.bad_files:
        lines.append("run `newsbot scan` to list the bad files with their reasons")
    return lines

