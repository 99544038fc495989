"""`newsbot check-config` tells the whole truth in one run: every problem in file order, the
documented exit status (0 ok, 1 problems, 2 a file that cannot be read or parsed), a store
folder that `run` would refuse, every non-finite number; and `--show` prints a configuration
that check-config accepts and shows again the same. Real processes, as a user runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import ConfigError, ConfigErrors, load_config
from tests.test_credentials import newsbot
from tests.test_process import write_config

FOUR_PROBLEMS = """\
min_quality = nan
[store]
path = "store"
rescan_intervall_s = 5
[[subscriptions]]
platform = "irc"
channel = "x"
[http]
port = 70000
"""


def test_every_problem_in_file_order_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    config = tmp_path / "newsbot.toml"
    config.write_text(FOUR_PROBLEMS, encoding="utf-8")
    check = newsbot(["check-config", "--config", str(config)], tmp_path)
    assert check.returncode == 1, check.stdout + check.stderr
    errors = [line for line in check.stdout.splitlines() if line.startswith("  error: ")]
    lines = [int(m.group(1)) for e in errors if (m := re.search(r"newsbot\.toml:(\d+):", e))]
    assert lines == [1, 4, 6, 9], check.stdout
    for key in ("`min_quality`", "`store.rescan_intervall_s`", "`subscriptions[0].platform`",
                "`http.port`"):
        assert sum(key in e for e in errors) == 1, (key, errors)
    assert "Traceback" not in check.stderr

    run = newsbot(["run", "--once", "--config", str(config)], tmp_path)
    assert run.returncode == 2
    assert all(key in run.stderr for key in ("`min_quality`", "`http.port`"))


def test_the_reader_collects_every_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(FOUR_PROBLEMS, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_config(config)
    assert len(caught.value.errors) == 4
    assert isinstance(caught.value, ConfigError)  # callers that want one exception get one


@pytest.mark.parametrize(
    "text",
    [
        "min_quality = nan", "min_quality = inf", "max_age_days = inf",
        "[store]\nrescan_interval_s = inf", "[store]\nrescan_interval_s = nan",
        "[discord]\nglobal_rate = inf", "[slack]\nworkspace_rate = nan",
        '[[subscriptions]]\nplatform = "console"\nchannel = "x"\nmin_quality = nan',
        '[[subscriptions]]\nplatform = "console"\nchannel = "x"\nmax_age_days = inf',
    ],
)
def test_no_number_key_takes_nan_or_inf(tmp_path: Path, text: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "got nan" in str(caught.value) or "got inf" in str(caught.value)


def test_exit_statuses_and_a_missing_store_folder(tmp_path: Path) -> None:
    good = write_config(tmp_path)
    ok = newsbot(["check-config", "--config", str(good)], tmp_path)
    assert ok.returncode == 0 and ": ok" in ok.stdout

    (tmp_path / "store").rmdir()
    missing = newsbot(["check-config", "--config", str(good)], tmp_path)
    assert missing.returncode == 1
    [error] = [line for line in missing.stdout.splitlines() if line.startswith("  error: ")]
    assert str(tmp_path / "store") in error and "store.path" in error
    refused = newsbot(["run", "--once", "--config", str(good)], tmp_path)
    assert refused.returncode == 2
    assert error.removeprefix("  error: ") in refused.stderr  # the same words as `run`

    broken = tmp_path / "broken.toml"
    broken.write_text("min_quality = = 3\n", encoding="utf-8")
    syntax = newsbot(["check-config", "--config", str(broken)], tmp_path)
    assert syntax.returncode == 2 and "TOML syntax error" in syntax.stderr
    absent = newsbot(["check-config", "--config", str(tmp_path / "nope.toml")], tmp_path)
    assert absent.returncode == 2 and "not found" in absent.stderr


def body_of(shown: str) -> str:
    """--show's text without its first line, which names the file it came from."""
    first, _, rest = shown.partition("\n")
    assert first.startswith("# effective configuration")
    return rest


def test_show_prints_a_configuration_that_check_config_accepts(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        body='include_unscored = true\n[slack]\nmanage = "users"\nmanage_user_ids = ["U1"]',
        subscription=(
            'topics = ["AI", "Data \\"Science\\""]\nkeywords = ["model"]\n'
            'providers_include = ["example.com"]\nproviders_exclude = ["Spam Daily"]\n'
            "max_age_days = 2.5\ninclude_unscored = false\nbackfill = 3\n"
            '[[subscriptions]]\nplatform = "discord"\nchannel = "webhook:team"\n'
        ),
    )
    env_hook = {"DISCORD_WEBHOOK_TEAM": "https://discord.com/api/webhooks/1/abc"}
    from tests.test_credentials import env_with

    env = env_with(**env_hook)
    shown = newsbot(["check-config", "--show", "--config", str(config)], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert "abc" not in shown.stdout  # secrets masked
    copy = tmp_path / "shown.toml"
    copy.write_text(shown.stdout, encoding="utf-8")
    check = newsbot(["check-config", "--config", str(copy)], tmp_path, env)
    assert check.returncode == 0, check.stdout + check.stderr
    again = newsbot(["check-config", "--show", "--config", str(copy)], tmp_path, env)
    assert body_of(again.stdout) == body_of(shown.stdout)
    assert load_config(copy).subscriptions == load_config(config).subscriptions

    # The embedded defaults too (no max_age_days, no floor of their own).
    defaults = newsbot(["check-config", "--show"], tmp_path)
    (tmp_path / "defaults.toml").write_text(defaults.stdout, encoding="utf-8")
    assert load_config(tmp_path / "defaults.toml").max_age_days is None
