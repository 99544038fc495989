"""`newsbot check-config --show`: the configuration as newsbot will use it, every default filled
in, written as TOML that `check-config` accepts (a key that is not set is a comment, never a
made-up value), and each secret shown only as set or not set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.config import FEEDBACK_SALT_ENV, PANEL_PASSWORD_ENV, Config, SubscriptionSpec
from bot.platforms.registry import PLATFORMS


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _strings(values: Iterable[str]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def _number(value: float) -> str:
    return repr(float(value))  # exact, and always a TOML float ("40.0", "1e-05")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def secret_variables(config: Config) -> list[str]:
    """Every secret the platforms may read, and the webhook variables the config names."""
    names = [secret.variable for spec in PLATFORMS.values() for secret in spec.secrets]
    if config.panel.enabled:
        names.append(PANEL_PASSWORD_ENV)
    if config.feedback.enabled:
        names.append(FEEDBACK_SALT_ENV)
    for sub in config.subscriptions:
        variable = PLATFORMS[sub.platform].webhook_variable(sub.channel)
        if variable and variable not in names:
            names.append(variable)
    return names


def describe_secret(name: str, environ: Mapping[str, str]) -> str:
    """Where a secret comes from, never its value."""
    if environ.get(name):
        return f"{name}: set (from the environment)"
    if environ.get(f"{name}_FILE"):
        return f"{name}: set (from the file named by {name}_FILE)"
    return f"{name}: not set"


def _subscription(spec: SubscriptionSpec) -> list[str]:
    lines = [
        "[[subscriptions]]",
        f"platform = {toml_string(spec.platform)}",
        f"channel = {toml_string(spec.channel)}",
        f"topics = {_strings(spec.topics)}",
        f"min_quality = {_number(spec.min_quality)}"
        if spec.min_quality is not None
        else "# min_quality: not set (the global min_quality)",
        f"include_unscored = {_bool(spec.include_unscored)}"
        if spec.include_unscored is not None
        else "# include_unscored: not set (the global include_unscored)",
        f"backfill = {spec.backfill}",
        f"providers_include = {_strings(spec.providers_include)}",
        f"providers_exclude = {_strings(spec.providers_exclude)}",
        f"keywords = {_strings(spec.keywords)}",
        f"max_age_days = {_number(spec.max_age_days)}"
        if spec.max_age_days is not None
        else "# max_age_days: not set (the global max_age_days)",
        f"late_coverage = {toml_string(spec.late_coverage)}",
        f"headline_margin = {_number(spec.headline_margin)}",
        f"mode = {toml_string(spec.mode)}",
        f"digest_at = {toml_string(spec.digest_at)}",
        f"timezone = {toml_string(spec.timezone)}",
        f"quiet_hours = {toml_string(spec.quiet_hours)}"
        if spec.quiet_hours is not None
        else "# quiet_hours: not set (stories go at any hour)",
        f"breaking_quality = {_number(spec.breaking_quality)}",
        f"breaking_outlets = {spec.breaking_outlets}",
        f"mention = {toml_string(spec.mention)}"
        if spec.mention is not None
        else "# mention: not set (breaking stories ping nobody)",
        f"learn = {toml_string(spec.learn)}"
        if spec.learn is not None
        else '# learn: not set ("suggest" while [feedback] enabled = true)',
    ]
    return lines


def effective_config(config: Config, environ: Mapping[str, str]) -> str:
    slack_commands = (
        f"commands = {toml_string(config.slack.commands)}"
        if config.slack.commands is not None
        else "# commands: not set (Socket Mode with SLACK_APP_TOKEN, HTTP with "
        "SLACK_SIGNING_SECRET, else off)"
    )
    lines = [
        f"# effective configuration ({config.source or 'embedded defaults'})",
        f"min_quality = {_number(config.min_quality)}",
        f"include_unscored = {_bool(config.include_unscored)}",
        f"max_age_days = {_number(config.max_age_days)}"
        if config.max_age_days is not None
        else "# max_age_days: not set (no age limit)",
        "[store]",
        f"path = {toml_string(str(config.store.path))}",
        f"rescan_interval_s = {_number(config.store.rescan_interval_s)}",
        f"max_file_bytes = {config.store.max_file_bytes}",
        f"watch = {_bool(config.store.watch)}",
        f"parallel_threshold = {config.store.parallel_threshold}",
        "[database]",
        f"path = {toml_string(str(config.database.path))}",
        *([f"url = {toml_string(config.database.url)}"] if config.database.url else []),
        "[render]",
        f"max_related = {config.render.max_related}",
        f"show_images = {_bool(config.render.show_images)}",
        f"show_quality = {_bool(config.render.show_quality)}",
        f"show_topics = {_bool(config.render.show_topics)}",
        f"unfurl_links = {_bool(config.render.unfurl_links)}",
        "[logging]",
        f"level = {toml_string(config.log_level)}",
        f"format = {toml_string(config.log_format)}",
        "[discord]",
        f"api_base_url = {toml_string(config.discord.api_base_url)}",
        f"gateway_url = {toml_string(config.discord.gateway_url)}",
        f"commands = {_bool(config.discord.commands)}",
        f"guild_ids = [{', '.join(str(g) for g in config.discord.guild_ids)}]",
        f"global_rate = {_number(config.discord.global_rate)}",
        "[slack]",
        f"api_base_url = {toml_string(config.slack.api_base_url)}",
        slack_commands,
        f"manage = {toml_string(config.slack.manage)}",
        f"manage_user_ids = {_strings(config.slack.manage_user_ids)}",
        f"workspace_rate = {_number(config.slack.workspace_rate)}",
        "[http]",
        f"enabled = {_bool(config.http.enabled)}",
        f"host = {toml_string(config.http.host)}",
        f"port = {config.http.port}",
        "[panel]",
        f"enabled = {_bool(config.panel.enabled)}",
        f"trusted_header = {toml_string(config.panel.trusted_header)}",
        f"behind_tls = {_bool(config.panel.behind_tls)}",
        "[feedback]",
        f"enabled = {_bool(config.feedback.enabled)}",
        f"up = {_strings(config.feedback.up)}",
        f"down = {_strings(config.feedback.down)}",
        f"window_days = {_number(config.feedback.window_days)}",
        f"min_people = {config.feedback.min_people}",
    ]
    for spec in config.subscriptions:
        lines += _subscription(spec)
    lines.append("# secrets (values never shown)")
    lines += [f"#   {describe_secret(name, environ)}" for name in secret_variables(config)]
    return "\n".join(lines) + "\n"
