"""`[panel]` in the config, and what `check-config` says about the panel's password: the same
words `run` logs when it keeps the panel off."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigErrors, load_config
from tests.test_credentials import env_with, newsbot
from tests.test_process import write_config

PANEL = '[http]\nenabled = true\nport = 0\n[panel]\nenabled = true\n'


def test_the_panel_is_off_by_default_and_needs_the_http_server(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert not config.panel.enabled and config.http.host == "127.0.0.1"
    alone = write_config(tmp_path, "[panel]\nenabled = true\n")
    with pytest.raises(ConfigErrors, match=r"panel.enabled` needs the HTTP server"):
        load_config(alone)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[panel]\ntrusted_header = "X User"\n', "an HTTP header name"),
        ("[panel]\nenabled = 1\n", "true or false"),
        ('[panel]\ntrusted_headr = "X-User"\n', "did you mean `panel.trusted_header`?"),
    ],
)
def test_wrong_panel_settings_are_named(tmp_path: Path, body: str, words: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_config(write_config(tmp_path, body))
    assert words in str(raised.value)


def test_check_config_says_the_panel_needs_a_password(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, PANEL))
    missing = newsbot(["check-config", "--config", config], tmp_path, env_with())
    assert missing.returncode == 1
    assert "the panel is off: it needs a password: set NEWSBOT_PANEL_PASSWORD" in missing.stdout
    short = newsbot(
        ["check-config", "--config", config], tmp_path, env_with(NEWSBOT_PANEL_PASSWORD="abc")
    )
    assert short.returncode == 1 and "shorter than 8 characters" in short.stdout
    assert "abc" not in short.stdout.replace("about", "")
    secret = tmp_path / "panel_password"
    secret.write_text("a long enough password\n", encoding="utf-8")
    from_file = newsbot(
        ["check-config", "--config", config], tmp_path,
        env_with(NEWSBOT_PANEL_PASSWORD_FILE=str(secret)),
    )
    assert from_file.returncode == 0, from_file.stdout
    shown = newsbot(
        ["check-config", "--config", config, "--show"], tmp_path,
        env_with(NEWSBOT_PANEL_PASSWORD_FILE=str(secret)),
    )
    assert "NEWSBOT_PANEL_PASSWORD: set (from the file named by" in shown.stdout
    assert "long enough" not in shown.stdout
