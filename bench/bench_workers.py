"""Several workers on one PostgreSQL database (issue 13), printed, never asserted:

  N articles to M Slack channels (the fake Slack: one post per second per channel, Slack's own
  shape; the bot's workspace rate raised so the workers, not a configured cap, are the limit),
  delivered by 1, 2 and 4 `newsbot run` workers sharing one database, the fake answering each
  post after --latency-ms (as a real platform does, not at once). For each: the time from
  the first to the last post the fake received, posts per second, the 429s it answered, and the
  database round trips per delivery (every statement the PostgreSQL server ran, from its own
  statement log, over the deliveries).

    python bench/bench_workers.py [--articles 100] [--channels 5000] [--workers 1 2 4]
                                  [--latency-ms 100]

The issue's scale is 100 x 5,000 (500,000 posts); `--articles 10 --channels 1000` gives the
same comparison in a few minutes. Each run starts from an empty database and an empty fake.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.fakes.slack_server import FakeSlack  # noqa: E402
from tests.postgres_server import PostgresServer, running_postgres  # noqa: E402
from tests.processes import BotProcess  # noqa: E402
from tests.test_delivery_process import write_articles  # noqa: E402

STATEMENT_MARKS = ("LOG:  statement:", "LOG:  execute")


def channels(count: int) -> list[str]:
    return [f"C{n:08d}" for n in range(count)]


def write_config(folder: Path, slack: FakeSlack, url: str, names: list[str]) -> Path:
    store = folder / "store"
    store.mkdir(exist_ok=True)
    lines = [
        "[store]", f'path = "{store}"', "rescan_interval_s = 0.5", "watch = false",
        "[database]", f'url = "{url}"',
        "[slack]", f'api_base_url = "{slack.api_url}"', 'commands = "off"',
        "workspace_rate = 100000",
    ]  # fmt: skip
    for name in names:
        lines += ["[[subscriptions]]", 'platform = "slack"', f'channel = "{name}"']
    path = folder / "newsbot.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def one_run(
    server: PostgresServer, workers: int, articles: int, channel_count: int, latency_s: float
) -> tuple[float, int, int, float]:
    names = channels(channel_count)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with FakeSlack() as slack:
            for channel in names:
                slack.add_channel(channel)
            slack.rate_limit("chat.postMessage", per_second=1.0, burst=1)
            if latency_s > 0:
                # A real platform answers in tens of milliseconds, not at once: a worker's sends
                # in flight, not its CPU, then bound what it does alone.
                slack.inject("chat.postMessage", delay=latency_s, times=None)
            url = await asyncio.to_thread(
                server.create_database, f"bench_{workers}_{time.time_ns()}"
            )
            config = write_config(folder, slack, url, names)
            env = {"SLACK_BOT_TOKEN": slack.bot_token}
            first = await BotProcess.spawn("run", "--once", "--config", str(config), environ=env)
            assert await first.finish(timeout=600) == 0, first.stderr
            procs = [
                await BotProcess.spawn("run", "--config", str(config), environ=env)
                for _ in range(workers)
            ]
            try:
                for proc in procs:
                    await proc.wait_for_line(f"workers alive: {workers}", timeout=60)
                statements_before = _statements(server)
                write_articles(folder / "store", range(1, articles + 1))
                wanted = articles * channel_count
                while len(slack.calls("chat.postMessage")) < 1 or _posted(slack, names) < wanted:
                    await asyncio.sleep(0.2)  # a benchmark's poll, not a test's
                calls = slack.calls("chat.postMessage")
                ok = [c for c in calls if c.ok]
                elapsed = max(c.received_at for c in ok) - min(c.received_at for c in ok)
                refused = sum(1 for c in calls if c.status == 429)
                trips = (_statements(server) - statements_before) / wanted
            finally:
                for proc in procs:
                    await proc.terminate(timeout=60)
    return elapsed, wanted, refused, trips


def _posted(slack: FakeSlack, names: list[str]) -> int:
    return sum(len(slack.messages(n)) for n in names)


def _statements(server: PostgresServer) -> int:
    return sum(1 for line in list(server.log) if any(m in line for m in STATEMENT_MARKS))


async def main_async(args: argparse.Namespace) -> None:
    with running_postgres("log_statement=all") as server:
        print(
            f"{args.articles} articles to {args.channels} Slack channels "
            f"({args.articles * args.channels:,} posts), one post/s per channel at the fake, "
            f"answers after {args.latency_ms:g} ms"
        )
        base_rate = None
        for workers in args.workers:
            elapsed, posts, refused, trips = await one_run(
                server, workers, args.articles, args.channels, args.latency_ms / 1000
            )
            rate = posts / elapsed if elapsed > 0 else float("inf")
            base_rate = base_rate or rate
            print(
                f"    {workers} worker(s): {elapsed:7.1f} s  {rate:8.1f} posts/s  "
                f"x{rate / base_rate:4.2f}  429s {refused:4d}  "
                f"round trips/delivery {trips:5.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--channels", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
