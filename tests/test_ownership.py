"""The config file owns the subscriptions written in it: the CLI and chat refuse to remove one and
say where it is defined; and a subscription's backfill runs once per channel and topics, ever,
so a subscription removed and made again does not post old articles a second time. Real
`newsbot` processes on the console platform."""

from __future__ import annotations

import re
from pathlib import Path

from bot.commands import Caller, Commands
from bot.config import Config, DatabaseConfig, StoreConfig, SubscriptionSpec, locate_key
from bot.routing import RoutingDefaults
from bot.state import State
from bot.subscriptions import Subscription, SubscriptionSource
from tests.conftest import FakeClock
from tests.test_credentials import newsbot, write_stories
from tests.test_process import RULE

SUBSCRIPTION = '[[subscriptions]]\nplatform = "console"\nchannel = "terminal"\nbackfill = 2\n'


def write(folder: Path, subscriptions: str) -> Path:
    config = folder / "newsbot.toml"
    config.write_text(
        '[store]\npath = "store"\nrescan_interval_s = 600\n[database]\npath = "state.db"\n'
        + subscriptions,
        encoding="utf-8",
    )
    (folder / "store").mkdir(exist_ok=True)
    return config


def test_the_cli_refuses_to_remove_a_config_subscription_and_says_where_it_is(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, SUBSCRIPTION)
    titles = write_stories(tmp_path / "store", 3)
    first = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(RULE) == 2 and titles[2] in first.stdout

    listed = newsbot(["subscriptions", "list", "--config", str(config)], tmp_path)
    match = re.search(r"^\s*(\d+)\s+console:terminal", listed.stdout, re.M)
    assert match, listed.stdout
    removed = newsbot(
        ["subscriptions", "remove", "--id", match.group(1), "--config", str(config)], tmp_path
    )
    assert removed.returncode == 1
    assert f"{config}:6" in removed.stderr  # the [[subscriptions]] line
    assert "edit" in removed.stderr and "removed" not in removed.stdout
    by_channel = newsbot(
        ["subscriptions", "remove", "--platform", "console", "--channel", "terminal",
         "--config", str(config)],
        tmp_path,
    )
    assert by_channel.returncode == 1 and f"{config}:6" in by_channel.stderr

    again = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert RULE not in again.stdout
    assert "new subscription" not in again.stderr


def test_a_backfill_runs_once_even_for_a_subscription_removed_and_made_again(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, SUBSCRIPTION)
    write_stories(tmp_path / "store", 3)
    first = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert first.stdout.count(RULE) == 2, first.stderr

    write(tmp_path, "")  # removed from the file: the next start removes it
    gone = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert "no subscriptions" in newsbot(
        ["subscriptions", "list", "--config", str(config)], tmp_path
    ).stdout

    write(tmp_path, SUBSCRIPTION)  # and back
    back = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert back.returncode == 0, back.stderr
    assert RULE not in back.stdout
    assert "backfill already ran" in back.stderr

    # The same through the CLI: removed, added again with a backfill, nothing re-posted.
    write(tmp_path, "")
    assert newsbot(["run", "--once", "--config", str(config)], tmp_path).returncode == 0
    added = newsbot(
        ["subscriptions", "add", "--platform", "console", "--channel", "terminal",
         "--backfill", "3", "--config", str(config)],
        tmp_path,
    )
    assert added.returncode == 0 and "backfill already ran" in added.stdout
    last = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert RULE not in last.stdout


async def test_chat_refuses_to_unsubscribe_a_config_subscription(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = write(tmp_path, '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\n'
                 'topics = ["AI"]\n')
    config = Config(
        store=StoreConfig(path=tmp_path / "store"),
        database=DatabaseConfig(path=tmp_path / "state.db"),
        subscriptions=(SubscriptionSpec(platform="slack", channel="C1", topics=("AI",)),),
        source=path,
    )
    assert locate_key(path.read_text(), "subscriptions[0]") == 6
    state = await State.open(config.database.path, clock)
    try:
        await state.add_subscription(
            Subscription(0, "slack", "C1", ("AI",), source=SubscriptionSource.CONFIG)
        )
        from bot.config import subscription_origin

        commands = Commands(
            state, RoutingDefaults(), clock,
            origin=lambda sub: subscription_origin(config, sub.platform, sub.channel, sub.topics),
        )
        reply = await commands.unsubscribe(Caller("slack", "C1", "U1", can_manage=True), "ai")
        assert not reply.ok
        assert "newsbot.toml" in reply.text and "line 6" in reply.text
        assert str(tmp_path) not in reply.text  # the file's name, not the server's folders
        assert len(await state.subscriptions("slack", "C1")) == 1
    finally:
        await state.aclose()
