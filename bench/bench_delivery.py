"""Delivery at the platforms' ceilings (issue 10), printed, never asserted:

  Discord: 20 articles to 1,000 channels, under Discord's limits as the fake enforces them
           (50 requests/s for the bot, 5 posts per 5 s per channel, real headers and 429s)
  Slack:   20 articles to 100 channels, at one post per second per channel

For each: the achieved rate as a fraction of the ceiling (the fastest the limits allow), the
429s the platform answered, the bot's peak memory (VmHWM of the `newsbot run` process), and the
latency of a new article for an idle channel while the fan-out drains (p50/p95, from the file
being written to the platform receiving the post). `--small` runs each at a tenth of the
channels too, to show memory stays flat in the number of channels.

    python bench/bench_delivery.py [--platform discord|slack|both] [--articles 20]
                                   [--discord-channels 1000] [--slack-channels 100] [--small]

The bot is a real `newsbot run` process; the fakes (tests/fakes) run in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.fakes.discord_server import FakeDiscord, RateLimitPolicy  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402

PY = sys.executable
NEUTRAL_CWD = tempfile.gettempdir()
# A new article for an idle channel this often during the drain, each to the next of
# IDLE_CHANNELS channels in turn: each stays idle (its own bucket full) between its articles.
IDLE_EVERY_S = {"discord": 2.0, "slack": 1.0}
IDLE_CHANNELS = 5


@dataclass(frozen=True, slots=True)
class Result:
    platform: str
    channels: int
    posts: int
    ceiling_per_s: float
    drain_s: float
    rate_limited: int
    peak_rss_mib: float
    idle_latencies_s: list[float]
    ideal_drain_s: float  # the shortest drain the platform's limits allow

    @property
    def achieved_per_s(self) -> float:
        return self.posts / self.drain_s

    @property
    def of_ceiling(self) -> float:
        return self.ideal_drain_s / self.drain_s

    def line(self) -> str:
        lat = sorted(self.idle_latencies_s)
        p50 = statistics.median(lat) if lat else float("nan")
        p95 = lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)] if lat else float("nan")
        return (
            f"{self.platform:8} {self.channels:5} channels, {self.posts:6} posts in "
            f"{self.drain_s:6.1f} s ({self.achieved_per_s:.1f}/s; the limits allow it in "
            f"{self.ideal_drain_s:.1f} s at {self.ceiling_per_s:g}/s) = {self.of_ceiling:.3f} "
            "of the ceiling; "
            f"429s {self.rate_limited}; peak RSS {self.peak_rss_mib:.0f} MiB; "
            f"idle-channel latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
            f"(n={len(lat)})"
        )


def article_text(n: int, topic: str) -> str:
    return (
        f'---\ntitle: "Bench story {n}"\nwebUrl: https://example.com/bench/{n}\n'
        f"publishedDateTime: 2026-11-{1 + n % 28:02d}T{n % 24:02d}:00:00Z\nquality: 90\n"
        f'excerpt: "A sentence about story {n}."\nprovider:\n  name: Example News\n'
        f"  domain: example.com\ntopics:\n  - {topic}\n---\n"
    )


def write_article(store: Path, n: int, topic: str) -> None:
    tmp = store / f".{n}.tmp"
    tmp.write_text(article_text(n, topic), encoding="utf-8")
    os.rename(tmp, store / f"{n}.md")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_fan_out(
    platform: str,
    channels: list[str],
    idle_channels: list[str],
    articles: int,
    platform_section: list[str],
    environ: dict[str, str],
    received: Callable[[], list[tuple[str, str, float]]],
    rate_limited: Callable[[], int],
    ceiling_per_s: float,
    ideal_drain_s: float,
) -> Result:
    """Backfill `articles` to every channel, and while that drains, write an article for the
    idle channel every few seconds; measure from what the fake received."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = root / "store"
        store.mkdir()
        for n in range(articles):
            write_article(store, n, "AI")
        subs = [
            f'[[subscriptions]]\nplatform = "{platform}"\nchannel = "{c}"\ntopics = ["AI"]\n'
            f"backfill = {articles}\n"
            for c in channels
        ]
        subs += [
            f'[[subscriptions]]\nplatform = "{platform}"\nchannel = "{idle}"\n'
            f'topics = ["Idle{i}"]\n'
            for i, idle in enumerate(idle_channels)
        ]
        config = root / "newsbot.toml"
        config.write_text(
            "\n".join(
                [
                    "[store]", f'path = "{store}"', "rescan_interval_s = 30", "watch = true",
                    "[database]", f'path = "{root / "newsbot.db"}"',
                    "[logging]", 'level = "WARNING"', *platform_section, *subs,
                ]
            ),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
        env.update(environ)
        proc = await asyncio.create_subprocess_exec(
            PY, "-m", "bot", "run", "--config", str(config), cwd=NEUTRAL_CWD, env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )
        expected = len(channels) * articles
        written: dict[str, float] = {}
        next_idle = articles + 1000
        started_at: float | None = None
        last_idle_at = 0.0
        try:
            idle_set = set(idle_channels)
            while True:
                got = received()
                if got and started_at is None:
                    started_at = time.monotonic()
                if sum(1 for r in got if r[0] not in idle_set) >= expected:
                    break
                if proc.returncode is not None:
                    raise SystemExit(f"newsbot ended early (rc={proc.returncode})")
                now = time.monotonic()
                if started_at is not None and now - last_idle_at >= IDLE_EVERY_S[platform]:
                    write_article(store, next_idle, f"Idle{next_idle % len(idle_channels)}")
                    written[f"Bench story {next_idle}"] = now
                    next_idle += 1
                    last_idle_at = now
                await asyncio.sleep(0.05)  # a benchmark's own polling, not the bot's
            # Let the last idle post arrive.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                idle = {title for ch, title, _ in received() if ch in idle_channels}
                if all(title in idle for title in written):
                    break
                await asyncio.sleep(0.05)
            peak = peak_rss_mib(proc.pid)
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
        got = received()
        fan_out_times = [t for ch, _, t in got if ch not in idle_channels]
        drain_s = max(fan_out_times) - min(fan_out_times)
        latencies = [t - written[title] for ch, title, t in got if ch in idle_channels
                     and title in written]
        return Result(
            platform, len(channels), len(fan_out_times), ceiling_per_s, drain_s,
            rate_limited(), peak, latencies, ideal_drain_s,
        )


async def bench_discord(channels: int, articles: int) -> Result:
    async with FakeDiscord(
        message_rate_limit=RateLimitPolicy(limit=5, window=5.0), global_rate_limit=50
    ) as fake:
        ids = [str(1_300_000_000_000_000_000 + n) for n in range(channels)]
        for channel in ids:
            fake.add_channel(int(channel))
        idle = [str(1_300_000_000_000_999_000 + n) for n in range(IDLE_CHANNELS)]
        for channel in idle:
            fake.add_channel(int(channel))

        seen: list[tuple[str, str, float]] = []
        cursor = 0

        def received() -> list[tuple[str, str, float]]:
            # Incremental: re-reading 20,000 records every poll would stall the fake (it shares
            # this event loop), and a stalled fake counts requests bunched together.
            nonlocal cursor
            requests = fake.requests
            while cursor < len(requests) and requests[cursor].status is not None:
                r = requests[cursor]
                if r.method == "POST" and r.route.endswith("/messages") and r.status == 200:
                    seen.append(
                        (r.route.split("/")[2], str(r.json["embeds"][0]["title"]), r.received_at)
                    )
                cursor += 1
            return seen

        # The first post at 0, then 50 a second; and no channel faster than 5 per 5 s.
        posts = channels * articles
        ideal = max((posts - 1) / 50.0, 5.0 * (math.ceil(articles / 5) - 1))
        return await run_fan_out(
            "discord", ids, idle, articles,
            ["[discord]", f'api_base_url = "{fake.base_url}"', "commands = false"],
            {"DISCORD_TOKEN": fake.bot_token},
            received, lambda: len(fake.rate_limited_responses()),
            ceiling_per_s=min(50.0, channels * 1.0), ideal_drain_s=ideal,
        )


async def bench_slack(channels: int, articles: int) -> Result:
    async with FakeSlack() as fake:
        ids = [f"C{n:09d}" for n in range(channels)]
        for channel in ids:
            fake.add_channel(channel)
        idle = [f"C0IDLE{n:04d}" for n in range(IDLE_CHANNELS)]
        for channel in idle:
            fake.add_channel(channel)
        fake.rate_limit("chat.postMessage", per_second=1.0, burst=1)

        seen: list[tuple[str, str, float]] = []
        cursor = 0

        def received() -> list[tuple[str, str, float]]:
            nonlocal cursor  # incremental, as for Discord
            calls = fake.calls("chat.postMessage")
            while cursor < len(calls) and calls[cursor].status is not None:
                c = calls[cursor]
                if c.ok:
                    seen.append(
                        (str(c.body["channel"]), str(c.body.get("text", "")).split(" — ")[0],
                         c.received_at)
                    )
                cursor += 1
            return seen

        result = await run_fan_out(
            "slack", ids, idle, articles,
            ["[slack]", f'api_base_url = "{fake.api_url}"', 'commands = "off"'],
            {"SLACK_BOT_TOKEN": fake.bot_token},
            received,
            lambda: sum(1 for c in fake.calls("chat.postMessage") if c.status == 429),
            # Every channel in parallel, one post a second each.
            ceiling_per_s=channels * 1.0, ideal_drain_s=float(articles - 1),
        )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=("discord", "slack", "both"), default="both")
    parser.add_argument("--articles", type=int, default=20)
    parser.add_argument("--discord-channels", type=int, default=1000)
    parser.add_argument("--slack-channels", type=int, default=100)
    parser.add_argument("--small", action="store_true", help="also at a tenth of the channels")
    args = parser.parse_args()
    runs: list[tuple[Callable[[int, int], object], int]] = []
    if args.platform in ("discord", "both"):
        runs.append((bench_discord, args.discord_channels))
    if args.platform in ("slack", "both"):
        runs.append((bench_slack, args.slack_channels))
    for bench, channels in runs:
        sizes = [max(1, channels // 10), channels] if args.small else [channels]
        for size in sizes:
            result = asyncio.run(bench(size, args.articles))  # type: ignore[arg-type]
            print(result.line(), flush=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
