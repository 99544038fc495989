"""`[feedback]` and a subscription's `learn`, validated like every other key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigErrors, FeedbackConfig, parse_config
from bot.config_show import effective_config


def parse(text: str) -> object:
    import tomllib

    return parse_config(tomllib.loads(text), "newsbot.toml", Path("/tmp"))


def test_feedback_defaults_and_settings() -> None:
    config = parse('[feedback]\nenabled = true\nup = [":thumbsup:", "👍"]\nmin_people = 3\n'
                   '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\nlearn = "auto"\n')
    assert config.feedback == FeedbackConfig(  # type: ignore[attr-defined]
        enabled=True, up=("thumbsup", "👍"), min_people=3
    )
    assert config.subscriptions[0].learn == "auto"  # type: ignore[attr-defined]
    assert parse("").feedback == FeedbackConfig()  # type: ignore[attr-defined]
    shown = effective_config(config, {})  # type: ignore[arg-type]
    assert '[feedback]\nenabled = true\nup = ["thumbsup", "👍"]' in shown
    assert 'learn = "auto"' in shown and "NEWSBOT_FEEDBACK_SALT: not set" in shown


def test_feedback_problems_are_named() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse('[feedback]\nenabled = "yes"\nup = []\ndown = ["+1"]\nwindow_days = 0\n'
              "min_people = 0\nsalt = 'x'\n"
              '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\nlearn = "always"\n')
    text = str(caught.value)
    for expected in (
        "`feedback.enabled` must be true or false",
        "`feedback.up` must be a list of at least one emoji",
        "`feedback.down` repeats +1 of `feedback.up`",
        "`feedback.window_days` must be a number of days above 0",
        "`feedback.min_people` must be a whole number from 1 to 1000",
        "unknown key `feedback.salt`",
        '`subscriptions[0].learn` must be one of "off", "suggest", "auto"',
    ):
        assert expected in text, (expected, text)


def test_the_panel_lists_adjustments_with_their_buttons_and_escapes_topics() -> None:
    from bot.feedback_store import AdjustmentRow, Status
    from bot.learning import Kind, Tally
    from bot.panel.pages import Chrome, learned_section

    rows = [
        AdjustmentRow(1, "discord", "1", Kind.TOPIC, "<script>x</script>", 20.0, False,
                      Status.APPLIED, Tally(0, 6, 2, 0.0, 0.0), 0.0),
        AdjustmentRow(2, "slack", "C1", Kind.PROVIDER, "Tabloid", 0.0, True,
                      Status.SUGGESTED, Tally(0, 4, 2, 0.0, 0.0), 0.0),
    ]
    html = str(learned_section(Chrome("me", lambda: "tok"), rows))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('action="/panel/tune"') == 3  # undo; apply and dismiss
    assert 'name="action" value="undo"' in html and 'value="dismiss"' in html
    assert "6 thumbs-down from 2 people" in html and "not posted here any more" in html
