"""One rule for the numbers a user gives, whichever way they give them (the config file, the
command line, chat): finite, and within the documented ranges."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot import validation
from bot.commands import Caller, Commands
from bot.platforms.slack_commands import BadInput, Subscribe, parse_command_text
from bot.routing import RoutingDefaults
from bot.state import State
from tests.conftest import FakeClock
from tests.test_credentials import newsbot
from tests.test_process import write_config


@pytest.mark.parametrize("value", [-5.0, math.nan, math.inf, -math.inf, 1000.5, 1e999])
def test_a_floor_outside_the_range_is_refused(value: float) -> None:
    with pytest.raises(validation.InvalidValue) as refused:
        validation.quality_floor(value)
    assert "from 0 to 1000" in refused.value.expected


@pytest.mark.parametrize("value", [0.0, 40, 170.5, 1000])
def test_a_floor_in_the_range_is_kept(value: float) -> None:
    assert validation.quality_floor(value) == float(value)


def test_counts_and_ages() -> None:
    assert validation.backfill(0) == 0 and validation.backfill(1000) == 1000
    assert validation.news_count(1) == 1 and validation.news_count(10) == 10
    assert validation.max_age_days(0.5) == 0.5
    for call, value in [
        (validation.backfill, -1), (validation.backfill, 1001),
        (validation.news_count, 0), (validation.news_count, 11),
        (validation.max_age_days, 0.0), (validation.max_age_days, math.nan),
        (validation.max_age_days, math.inf), (validation.max_age_days, -1.0),
    ]:
        with pytest.raises(validation.InvalidValue):
            call(value)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--min-quality", "-5"), ("--min-quality", "nan"), ("--min-quality", "inf"),
        ("--min-quality", "1e999"), ("--backfill", "-1"), ("--backfill", "100000"),
        ("--max-age-days", "0"), ("--max-age-days", "nan"),
    ],
)
def test_the_command_line_refuses_nonsense_with_exit_2(
    tmp_path: Path, option: str, value: str
) -> None:
    config = str(write_config(tmp_path))
    added = newsbot(
        ["subscriptions", "add", "--platform", "console", "--channel", "x", option, value,
         "--config", config],
        tmp_path,
    )
    assert added.returncode == 2, added.stdout
    assert option in added.stderr and "must be" in added.stderr
    assert "Traceback" not in added.stderr
    listed = newsbot(["subscriptions", "list", "--config", config], tmp_path)
    assert "no subscriptions" in listed.stdout


@pytest.mark.parametrize("number", ["1e999", "1" + "0" * 400, "-5", "1001"])
async def test_chat_refuses_a_floor_out_of_range(
    tmp_path: Path, clock: FakeClock, number: str
) -> None:
    request = parse_command_text(f"subscribe AI {number}")
    assert isinstance(request, Subscribe) and request.topic == "AI"
    state = await State.open(tmp_path / "bot.db", clock)
    try:
        commands = Commands(state, RoutingDefaults(), clock)
        caller = Caller("slack", "C1", "U1", can_manage=True)
        reply = await commands.subscribe(caller, request.topic, request.min_quality)
        assert not reply.ok and "from 0 to 1000" in reply.text
        assert await state.subscriptions() == []
        news = await commands.news("AI", 5, float("inf"))
        assert not news.ok and "from 0 to 1000" in news.text
    finally:
        await state.aclose()


def test_a_count_in_exponent_form_is_not_a_count() -> None:
    assert isinstance(parse_command_text("AI 1e3"), BadInput)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("min_quality = 5000", "`min_quality`"),
        ('[[subscriptions]]\nplatform = "console"\nchannel = "x"\nmin_quality = -5',
         "`subscriptions[0].min_quality`"),
        ('[[subscriptions]]\nplatform = "console"\nchannel = "x"\nbackfill = 5000',
         "`subscriptions[0].backfill`"),
    ],
)
def test_the_config_holds_the_same_rule(tmp_path: Path, text: str, key: str) -> None:
    from bot.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert key in str(refused.value) and "from 0 to" in str(refused.value)
