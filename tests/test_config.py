"""bot/config.py: TOML + environment -> a typed Config, with errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.config import (
    DEFAULT_MIN_QUALITY,
    Config,
    ConfigError,
    DiscordConfig,
    HttpConfig,
    SlackConfig,
    SubscriptionSpec,
    embedded_default,
    find_config,
    load_config,
    parse_config,
    read_secret,
)
from bot.render import RenderStyle

BASE = Path("/srv/newsbot")
EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"

FULL = """
min_quality = 55.5
include_unscored = true
max_age_days = 3

[store]
path = "articles"
rescan_interval_s = 12.5
max_file_bytes = 65536
watch = false
parallel_threshold = 500

[database]
path = "var/state.db"

[logging]
level = "DEBUG"
format = "json"

[render]
max_related = 2
show_images = false
show_quality = false
show_topics = false
unfurl_links = true

[discord]
api_base_url = "http://127.0.0.1:9999/api/v10/"
commands = false
guild_ids = [123456789012345678]

[slack]
api_base_url = "http://127.0.0.1:9998/api"
commands = "http"
manage = "users"
manage_user_ids = ["U1", "U2"]

[http]
enabled = true
host = "0.0.0.0"
port = 9090

[[subscriptions]]
platform = "console"
channel = "terminal"

[[subscriptions]]
platform = "slack"
channel = "C0123"
topics = ["AI", " Robotics ", ""]
min_quality = 60
backfill = 5
include_unscored = false
providers_include = ["example.com"]
providers_exclude = ["Spam Daily"]
keywords = ["model"]
max_age_days = 0.5
"""


def parse(text: str, base: Path = BASE) -> Config:
    return parse_config(tomllib.loads(text), "test.toml", base)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


def test_defaults() -> None:
    config = parse("")
    assert config.store.path == BASE / "seeds"
    assert config.database.path == BASE / "newsbot.db"
    assert config.min_quality == DEFAULT_MIN_QUALITY == 40.0
    assert config.include_unscored is False
    assert config.max_age_days is None
    assert config.subscriptions == ()
    assert (config.store.rescan_interval_s, config.store.max_file_bytes) == (30.0, 1024 * 1024)
    assert config.store.watch is True
    assert config.render == RenderStyle()
    assert (config.log_level, config.log_format) == ("INFO", "text")


def test_every_documented_key() -> None:
    config = parse(FULL)
    assert (config.min_quality, config.include_unscored, config.max_age_days) == (55.5, True, 3.0)
    store = config.store
    assert store.path == BASE / "articles"
    assert (store.rescan_interval_s, store.max_file_bytes) == (12.5, 65536)
    assert (store.watch, store.parallel_threshold) == (False, 500)
    assert config.database.path == BASE / "var" / "state.db"
    assert (config.log_level, config.log_format) == ("DEBUG", "json")
    assert config.render == RenderStyle(
        max_related=2, show_images=False, show_quality=False, show_topics=False, unfurl_links=True
    )
    assert config.discord == DiscordConfig(
        api_base_url="http://127.0.0.1:9999/api/v10", commands=False,
        guild_ids=(123456789012345678,),
    )
    assert config.slack == SlackConfig(
        api_base_url="http://127.0.0.1:9998/api/", commands="http", manage="users",
        manage_user_ids=("U1", "U2"),
    )
    assert config.http == HttpConfig(enabled=True, host="0.0.0.0", port=9090)
    assert config.subscriptions == (
        SubscriptionSpec(platform="console", channel="terminal"),
        SubscriptionSpec(
            platform="slack",
            channel="C0123",
            topics=("AI", "Robotics"),
            min_quality=60.0,
            include_unscored=False,
            backfill=5,
            providers_include=("example.com",),
            providers_exclude=("Spam Daily",),
            keywords=("model",),
            max_age_days=0.5,
        ),
    )


def test_the_example_config_loads_and_documents_the_defaults() -> None:
    example = load_config(EXAMPLE)
    defaults = parse("", base=EXAMPLE.parent)
    (sub,) = example.subscriptions
    assert (sub.platform, sub.channel, sub.topics, sub.min_quality) == (
        "console", "terminal", ("AI",), 60.0
    )
    # "every key, with its default": apart from the sample subscription, nothing differs.
    from dataclasses import replace

    assert replace(example, subscriptions=(), source=None) == defaults
    # The keys shown commented out are valid too.
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = "\n".join(
        line[2:] if line.startswith("# max_age_days") else line for line in text.splitlines()
    )
    assert uncommented != text
    config = parse(uncommented, base=EXAMPLE.parent)
    assert config.max_age_days == 7.0 and config.subscriptions[0].max_age_days == 3.0


def test_issue_example_shape_is_understood() -> None:
    config = parse(
        'min_quality = 40\n[store]\npath = "seeds"\nrescan_interval_s = 30\n'
        '[database]\npath = "newsbot.db"\n'
        '[[subscriptions]]\nplatform = "console"\nchannel = "terminal"\ntopics = ["AI"]\n'
        "min_quality = 60\nbackfill = 0\ninclude_unscored = false\n"
    )
    assert config.subscriptions[0].topics == ("AI",)
    assert config.subscriptions[0].min_quality == 60.0
    assert config.store.rescan_interval_s == 30.0


def test_paths_resolve_against_the_config_file_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "newsbot"
    folder.mkdir(parents=True)
    config_file = folder / "newsbot.toml"
    config_file.write_text(
        '[store]\npath = "../articles"\n[database]\npath = "/var/lib/newsbot/state.db"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # A relative path to the config file itself works from the current folder too.
    config = load_config(Path("../etc/newsbot/newsbot.toml"))
    assert config.store.path.resolve() == (tmp_path / "etc" / "articles").resolve()
    assert config.database.path == Path("/var/lib/newsbot/state.db")
    assert config.source == Path("../etc/newsbot/newsbot.toml")


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = parse('[store]\npath = "~/news"\n')
    assert config.store.path == tmp_path / "news"


@pytest.mark.parametrize(
    ("text", "unknown", "suggestion"),
    [
        ("min_qualty = 50", "`min_qualty`", "`min_quality`"),
        ('[store]\npth = "x"', "`store.pth`", "`store.path`"),
        ("[store]\nrescan_interval = 5", "`store.rescan_interval`", "`store.rescan_interval_s`"),
        ('[database]\npaht = "x"', "`database.paht`", "`database.path`"),
        ('[logging]\nlevle = "INFO"', "`logging.levle`", "`logging.level`"),
        ("[render]\nmax_relatd = 1", "`render.max_relatd`", "`render.max_related`"),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = "t"\ntopic = ["AI"]',
            "`subscriptions[0].topic`",
            "`subscriptions[0].topics`",
        ),
    ],
)
def test_unknown_keys_are_named_with_the_nearest_valid_one(
    text: str, unknown: str, suggestion: str
) -> None:
    message = error_of(text)
    assert "test.toml" in message
    assert f"unknown key {unknown}" in message
    assert f"did you mean {suggestion}?" in message


def test_unknown_key_without_a_near_match_has_no_bad_suggestion() -> None:
    message = error_of("zzzzzzzz = 1")
    assert "unknown key `zzzzzzzz`" in message
    assert "did you mean" not in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('min_quality = "high"', "`min_quality`"),
        ("min_quality = -1", "`min_quality`"),
        ("min_quality = true", "`min_quality`"),
        ('include_unscored = "yes"', "`include_unscored`"),
        ("max_age_days = 0", "`max_age_days`"),
        ("store = 5", "`store`"),
        ("[store]\npath = 7", "`store.path`"),
        ("[store]\nrescan_interval_s = 0", "`store.rescan_interval_s`"),
        ("[store]\nmax_file_bytes = 1.5", "`store.max_file_bytes`"),
        ("[store]\nmax_file_bytes = 10", "`store.max_file_bytes`"),
        ('[store]\nwatch = "no"', "`store.watch`"),
        ("[store]\nparallel_threshold = 0", "`store.parallel_threshold`"),
        ("[database]\npath = []", "`database.path`"),
        ('[logging]\nlevel = "LOUD"', "`logging.level`"),
        ('[logging]\nformat = "xml"', "`logging.format`"),
        ("[render]\nmax_related = -1", "`render.max_related`"),
        ("[http]\nport = 70000", "`http.port`"),
        ("[http]\nport = -1", "`http.port`"),
        ('[http]\nenabled = "yes"', "`http.enabled`"),
        ('[slack]\ncommands = "sometimes"', "`slack.commands`"),
        ('[slack]\nmanage = "everyone"', "`slack.manage`"),
        ('[discord]\nguild_ids = ["123"]', "`discord.guild_ids`"),
        ('[discord]\ncommands = "on"', "`discord.commands`"),
        ('[render]\nshow_images = "true"', "`render.show_images`"),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = "t"\ntopics = "AI"',
            "`subscriptions[0].topics`",
        ),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = "t"\ntopics = ["AI", 3]',
            "`subscriptions[0].topics`",
        ),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = "t"\nbackfill = -2',
            "`subscriptions[0].backfill`",
        ),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = "t"\nmin_quality = "60"',
            "`subscriptions[0].min_quality`",
        ),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = "t"\ninclude_unscored = 1',
            "`subscriptions[0].include_unscored`",
        ),
        (
            '[[subscriptions]]\nplatform = "irc"\nchannel = "t"',
            "`subscriptions[0].platform`",
        ),
        (
            '[[subscriptions]]\nplatform = "console"\nchannel = 42',
            "`subscriptions[0].channel`",
        ),
    ],
)
def test_wrong_types_name_the_key(text: str, key: str) -> None:
    message = error_of(text)
    assert key in message
    assert "must be" in message


def test_invalid_subscription_tables() -> None:
    message = error_of('subscriptions = ["console"]')
    assert "`subscriptions[0]` must be a table" in message
    message = error_of('[subscriptions]\nplatform = "console"\nchannel = "t"')
    assert "[[subscriptions]]" in message
    message = error_of('[[subscriptions]]\nchannel = "t"')
    assert "`subscriptions[0]` needs `platform`" in message
    message = error_of('[[subscriptions]]\nplatform = "slack"')
    assert "needs" in message and "`channel`" in message
    message = error_of('[[subscriptions]]\nplatform = "slack"\nchannel = ""')
    assert "`channel`" in message
    # The index points at the bad one, not the first.
    message = error_of(
        '[[subscriptions]]\nplatform = "console"\nchannel = "a"\n'
        '[[subscriptions]]\nplatform = "console"\nchannel = "b"\nbackfill = "lots"\n'
    )
    assert "`subscriptions[1].backfill`" in message


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("min_quality = = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(broken)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[store]\npath = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(latin)
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(folder)
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("min_qualiti = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(bad_key)
    assert str(bad_key) in str(caught.value)


def test_find_config_order(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("min_quality = 10\n", encoding="utf-8")
    from_env = tmp_path / "env.toml"
    from_env.write_text("min_quality = 20\n", encoding="utf-8")
    env = {"NEWSBOT_CONFIG": str(from_env)}
    assert find_config(str(explicit), env, tmp_path).min_quality == 10.0
    assert find_config(None, env, tmp_path).min_quality == 20.0
    default = find_config(None, {}, tmp_path)
    assert default == embedded_default(tmp_path)
    assert default.source is None
    assert default.store.path == tmp_path / "seeds"
    assert default.database.path == tmp_path / "newsbot.db"
    (only,) = default.subscriptions
    assert (only.platform, only.topics) == ("console", ())
    assert only.backfill > 0  # a newcomer sees output at once


def test_read_secret_from_variable(tmp_path: Path) -> None:
    assert read_secret("DISCORD_TOKEN", {"DISCORD_TOKEN": "  abc.def \n"}) == "abc.def"
    assert read_secret("DISCORD_TOKEN", {}) is None
    assert read_secret("DISCORD_TOKEN", {"DISCORD_TOKEN": ""}) is None


def test_read_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n", encoding="utf-8")
    env: dict[str, Any] = {"DISCORD_TOKEN_FILE": str(secret)}
    assert read_secret("DISCORD_TOKEN", env) == "from-a-file"
    # The variable itself wins over the file.
    env["DISCORD_TOKEN"] = "from-the-variable"
    assert read_secret("DISCORD_TOKEN", env) == "from-the-variable"


def test_missing_secret_file_names_the_variable_not_any_content(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    with pytest.raises(ConfigError) as caught:
        read_secret("SLACK_BOT_TOKEN", {"SLACK_BOT_TOKEN_FILE": str(missing)})
    message = str(caught.value)
    assert "SLACK_BOT_TOKEN_FILE" in message and str(missing) in message

    # An unreadable "file" (a folder here) holding a secret-looking name: the message names
    # the variable and the path, never anything read.
    folder = tmp_path / "xoxb-in-a-folder"
    folder.mkdir()
    (folder / "inside").write_text("xoxb-secret-value", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_secret("SLACK_BOT_TOKEN", {"SLACK_BOT_TOKEN_FILE": str(folder)})
    assert "SLACK_BOT_TOKEN_FILE" in str(caught.value)
    assert "xoxb-secret-value" not in str(caught.value)


def test_secret_file_that_is_not_utf8_does_not_leak(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(b"xoxb-\xff\xfe-secret")
    with pytest.raises(ConfigError) as caught:
        read_secret("SLACK_BOT_TOKEN", {"SLACK_BOT_TOKEN_FILE": str(secret)})
    message = str(caught.value)
    assert "SLACK_BOT_TOKEN_FILE" in message
    assert "xoxb" not in message.replace(str(secret), "")


def test_empty_secret_file_is_an_error_not_an_empty_token(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"DISCORD_TOKEN_FILE .* is empty"):
        read_secret("DISCORD_TOKEN", {"DISCORD_TOKEN_FILE": str(secret)})


# --- errors point at the line; the effective config hides secrets ------------------------------


def test_a_wrong_type_names_the_file_line_key_and_expected_type(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'min_quality = 40\n[store]\npath = "seeds"\nrescan_interval_s = "often"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ")
    assert "`store.rescan_interval_s`" in message and "a number" in message


def test_an_unknown_key_in_the_second_subscription_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[subscriptions]]\nplatform = "console"\nchannel = "a"\nmin_qualty = 1\n'
        '[[subscriptions]]\nplatform = "console"\nchannel = "b"\nmin_qualty = 3\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    # The first subscription's typo is found first, at line 4.
    assert str(caught.value).startswith(f"{path}:4: unknown key `subscriptions[0].min_qualty`")
    assert "did you mean `subscriptions[0].min_quality`" in str(caught.value)


def test_effective_config_masks_secrets(tmp_path: Path) -> None:
    from bot.config_show import effective_config

    token_file = tmp_path / "token"
    token_file.write_text("file-secret-value\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(
        '[[subscriptions]]\nplatform = "discord"\nchannel = "webhook:team-news"\n',
        encoding="utf-8",
    )
    environ = {
        "DISCORD_TOKEN": "env-secret-value",
        "SLACK_BOT_TOKEN_FILE": str(token_file),
        "DISCORD_WEBHOOK_TEAM_NEWS": "https://discord.com/api/webhooks/1/secret-path",
    }
    shown = effective_config(load_config(path), environ)
    assert "DISCORD_TOKEN: set (from the environment)" in shown
    assert "SLACK_BOT_TOKEN: set (from the file named by SLACK_BOT_TOKEN_FILE)" in shown
    assert "DISCORD_WEBHOOK_TEAM_NEWS: set" in shown
    assert "SLACK_APP_TOKEN: not set" in shown
    for secret in ("env-secret-value", "file-secret-value", "secret-path"):
        assert secret not in shown


def test_missing_secrets_are_named_with_the_fix(tmp_path: Path) -> None:
    from bot.credentials import Secrets, config_targets, credential_problems

    def missing_secrets(config: Config, environ: dict[str, str]) -> list[str]:
        return credential_problems(config, config_targets(config), Secrets(environ))

    path = tmp_path / "c.toml"
    path.write_text(
        '[[subscriptions]]\nplatform = "discord"\nchannel = "123"\n'
        '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\n'
        '[slack]\ncommands = "http"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    problems = missing_secrets(config, {})
    assert any("DISCORD_TOKEN (or DISCORD_TOKEN_FILE)" in p for p in problems)
    assert any("SLACK_BOT_TOKEN" in p for p in problems)
    assert any("SLACK_SIGNING_SECRET" in p for p in problems)
    assert missing_secrets(
        config,
        {"DISCORD_TOKEN": "a", "SLACK_BOT_TOKEN": "b", "SLACK_SIGNING_SECRET": "c"},
    ) == []
