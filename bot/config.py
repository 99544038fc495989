"""TOML file + environment -> a typed `Config`, loaded once at the edge.

Every error names the key (and the file) and says what is expected, so a person can fix it
without reading code. Secrets never come from the file: only from the environment or a file
named by `<VAR>_FILE` (see `read_secret`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from bot import validation
from bot.platforms.registry import DEFAULT_PLATFORM, PLATFORM_NAMES, PLATFORMS, check_mention
from bot.render.style import RenderStyle
from bot.schedule_time import DeliveryMode, QuietHours, parse_time_of_day
from bot.sql import POSTGRES_SCHEMES
from bot.subscriptions import LateCoverage, Subscription, SubscriptionSource

DEFAULT_MIN_QUALITY = 40.0
DEFAULT_CONFIG_ENV = "NEWSBOT_CONFIG"
PANEL_PASSWORD_ENV = "NEWSBOT_PANEL_PASSWORD"  # or a file named by NEWSBOT_PANEL_PASSWORD_FILE


class ConfigError(Exception):
    """A config problem; the message names the key, the file and the fix."""

    def __init__(self, message: str, key: str | None = None, *, unreadable: bool = False) -> None:
        super().__init__(message)
        self.key = key  # dotted, e.g. "subscriptions[1].min_quality", to find its line
        self.unreadable = unreadable  # the file cannot be read or parsed at all


class ConfigErrors(ConfigError):
    """Every problem of one config file, in file order; one exception for callers that want
    one (its message is all of them, a line each)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors), errors[0].key if errors else None)
        self.errors = errors


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path
    rescan_interval_s: float = 30.0
    max_file_bytes: int = 1024 * 1024
    watch: bool = True  # file-system events; the periodic rescan runs regardless
    # A cold scan of at least this many changed files is parsed by a process pool.
    parallel_threshold: int = 1000


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    path: Path  # the SQLite file (the default)
    # A PostgreSQL URL without a password (one with a password belongs in DATABASE_URL or
    # DATABASE_URL_FILE); set, it replaces `path`. See `database_target`.
    url: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """A subscription as written in the config (or given on the command line)."""

    platform: str
    channel: str
    topics: tuple[str, ...] = ()
    min_quality: float | None = None  # None: the global floor
    include_unscored: bool | None = None  # None: the global setting
    backfill: int = 0
    providers_include: tuple[str, ...] = ()
    providers_exclude: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    max_age_days: float | None = None
    late_coverage: str = "edit"  # "edit", "thread" or "off": see bot.subscriptions.LateCoverage
    headline_margin: float = 20.0
    mode: str = "instant"  # "instant", "hourly" or "daily": see bot.schedule_time
    digest_at: str = "08:00"  # HH:MM, local to `timezone`
    timezone: str = "UTC"  # an IANA name
    quiet_hours: str | None = None  # "22:00-07:00", local to `timezone`
    breaking_quality: float = validation.DEFAULT_BREAKING_QUALITY
    breaking_outlets: int = validation.DEFAULT_BREAKING_OUTLETS
    mention: str | None = None  # a role (Discord) or user group (Slack) id: see bot.breaking
    # What the channel's reactions may do: "off", "suggest" or "auto" (bot/learning.py). None:
    # the default, "suggest" (only while [feedback] enabled = true).
    learn: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackConfig:
    """Reactions on our own posts tune the channel's subscriptions (bot/learning.py). The salt
    that hashes who reacted is a secret: NEWSBOT_FEEDBACK_SALT (or its _FILE), else one made
    at the first use and kept in the database."""

    enabled: bool = False
    # The reactions that count as a thumbs-up and a thumbs-down: Discord's emoji ("👍") and
    # Slack's names without colons ("+1"); skin tones count as the plain emoji.
    up: tuple[str, ...] = ("👍", "+1")
    down: tuple[str, ...] = ("👎", "-1")
    window_days: float = 30.0
    min_people: int = 2


FEEDBACK_SALT_ENV = "NEWSBOT_FEEDBACK_SALT"


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    api_base_url: str = "https://discord.com/api/v10"
    # The gateway websocket. Empty: Discord's own when api_base_url is Discord's, else the URL
    # that `GET {api_base_url}/gateway` names (a proxy or a test double serves its own).
    gateway_url: str = ""
    commands: bool = True  # register and answer slash commands (needs the gateway)
    guild_ids: tuple[int, ...] = ()  # sync commands to these servers at once (development)
    # Requests per second the bot may make in all (Discord's global limit is 50; Discord
    # grants large bots more on request).
    global_rate: float = 50.0


@dataclass(frozen=True, slots=True)
class SlackConfig:
    api_base_url: str = "https://slack.com/api/"
    # How slash commands reach us: "socket" (Socket Mode, no public endpoint), "http" (the
    # /slack/commands endpoint of the HTTP server) or "off". None (not set): Socket Mode when
    # SLACK_APP_TOKEN is set, else HTTP when SLACK_SIGNING_SECRET is, else off (posting needs
    # neither).
    commands: str | None = None
    # Who may change a channel's subscriptions: "anyone" (in the channel), "admins"
    # (workspace admins and owners) or "users" (the ids in manage_user_ids).
    manage: str = "anyone"
    manage_user_ids: tuple[str, ...] = ()
    # Posts per second across the workspace at most; learned down when Slack answers 429 where
    # no channel's own pace explains it.
    workspace_rate: float = 200.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = False
    host: str = "127.0.0.1"  # localhost unless an operator decides otherwise
    port: int = 8080


@dataclass(frozen=True, slots=True)
class PanelConfig:
    """The web panel (bot/panel/), on the HTTP server. Its password is a secret: from
    NEWSBOT_PANEL_PASSWORD or the file named by NEWSBOT_PANEL_PASSWORD_FILE."""

    enabled: bool = False
    # A header that an authenticating reverse proxy sets to the user's name (and strips from
    # what clients send): a request carrying it is logged in. Empty: the password form only.
    trusted_header: str = ""
    # TLS ends at a proxy in front: the session cookie is `Secure` (it is also when the
    # request itself came over TLS).
    behind_tls: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    store: StoreConfig
    database: DatabaseConfig
    min_quality: float = DEFAULT_MIN_QUALITY
    include_unscored: bool = False
    max_age_days: float | None = None
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    render: RenderStyle = field(default_factory=RenderStyle)
    log_level: str = "INFO"
    log_format: str = "text"
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    slack: SlackConfig = field(default_factory=SlackConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    source: Path | None = None  # the file this came from; None for the embedded default


def embedded_default(cwd: Path) -> Config:
    """What `newsbot run` uses with no config file: the seeds, a local database, the terminal,
    and one subscription to everything that backfills the seeds so a newcomer sees output."""
    return Config(
        store=StoreConfig(path=cwd / "seeds"),
        database=DatabaseConfig(path=cwd / "newsbot.db"),
        subscriptions=(
            SubscriptionSpec(platform=DEFAULT_PLATFORM, channel="terminal", backfill=50),
        ),
    )


# --- schema-driven validation ---------------------------------------------------------------

V = TypeVar("V")


class _Reader:
    """Reads one TOML table against a set of known keys. A wrong value is recorded in `errors`
    (shared by every reader of one file) and the default used instead, so that one reading
    finds every problem."""

    def __init__(
        self, table: Mapping[str, Any], where: str, source: str, errors: list[ConfigError]
    ) -> None:
        self.table = table
        self.where = where
        self.source = source
        self.errors = errors

    def _name(self, key: str) -> str:
        return f"{self.where}{key}"

    def error(self, message: str, key: str) -> None:
        self.errors.append(ConfigError(f"{self.source}: {message}", key=key))

    def fail(self, key: str, expected: str, value: Any) -> None:
        self.error(
            f"`{self._name(key)}` must be {expected}, got {value!r} ({type(value).__name__})",
            self._name(key),
        )

    def nested(self, key: str, where: str | None = None) -> _Reader:
        return _Reader(self.table_of(key), where or f"{self.where}{key}.", self.source, self.errors)

    def check_unknown(self, known: set[str]) -> None:
        for key in self.table:
            if key not in known:
                import difflib  # only on this error path

                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean `{self.where}{close[0]}`?" if close else ""
                self.error(f"unknown key `{self._name(key)}`{hint}", self._name(key))

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.table.get(key, default)
        try:
            number = validation.finite(value, f"a number of at least {minimum:g}")
        except validation.InvalidValue as exc:
            self.fail(key, exc.expected, value)
            return default
        if number < minimum:
            self.fail(key, f"a number of at least {minimum:g}", value)
            return default
        return number

    def checked(self, key: str, default: V, check: Callable[[Any], V]) -> V:
        """A value held to `bot.validation`'s rule, the same as on the command line and in
        chat."""
        if key not in self.table:
            return default
        value = self.table[key]
        try:
            return check(value)
        except validation.InvalidValue as exc:
            self.fail(key, exc.expected, value)
            return default

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.table.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            expected = (
                f"a whole number from {minimum} to {maximum}"
                if maximum is not None
                else f"a whole number of at least {minimum}"
            )
            self.fail(key, expected, value)
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "true or false", value)
            return default
        return value

    def optional_boolean(self, key: str) -> bool | None:
        return self.boolean(key, False) if key in self.table else None

    def string(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            expected = "one of " + ", ".join(f'"{c}"' for c in choices) if choices else "a string"
            self.fail(key, expected, value)
            return default
        return value

    def optional_string(self, key: str, choices: tuple[str, ...] = ()) -> str | None:
        if key not in self.table:
            return None
        value = self.string(key, "", choices)
        return value if value or not choices else None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, 'a list of strings, like ["AI", "Robotics"]', value)
            return ()
        return tuple(v.strip() for v in value if v.strip())

    def table_of(self, key: str) -> Mapping[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            self.fail(key, "a table", value)
            return {}
        return value


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _subscription(top: _Reader, table: Any, index: int) -> SubscriptionSpec | None:
    where = f"subscriptions[{index}]"
    if not isinstance(table, Mapping):
        top.error(f"`{where}` must be a table", where)
        return None
    r = _Reader(table, f"{where}.", top.source, top.errors)
    r.check_unknown(
        {
            "platform", "channel", "topics", "min_quality", "include_unscored", "backfill",
            "providers_include", "providers_exclude", "keywords", "max_age_days",
            "late_coverage", "headline_margin", "mode", "digest_at", "timezone",
            "quiet_hours", "breaking_quality", "breaking_outlets", "mention", "learn",
        }
    )
    platform = r.optional_string("platform", PLATFORM_NAMES)
    channel = r.optional_string("channel")
    if any(table.get(key) in (None, "") for key in ("platform", "channel")):
        r.error(
            f"`{where}` needs `platform` (one of {', '.join(PLATFORM_NAMES)}) and `channel` "
            "(the platform's channel id)",
            where,
        )
    if platform is None or not channel:
        return None
    return SubscriptionSpec(
        platform=platform,
        channel=channel,
        topics=r.strings("topics"),
        min_quality=r.checked("min_quality", None, validation.quality_floor),
        include_unscored=r.optional_boolean("include_unscored"),
        backfill=r.checked("backfill", 0, validation.backfill),
        providers_include=r.strings("providers_include"),
        providers_exclude=r.strings("providers_exclude"),
        keywords=r.strings("keywords"),
        max_age_days=r.checked("max_age_days", None, validation.max_age_days),
        late_coverage=r.checked("late_coverage", "edit", validation.late_coverage),
        headline_margin=r.checked("headline_margin", 20.0, validation.headline_margin),
        mode=r.checked("mode", "instant", validation.delivery_mode),
        digest_at=r.checked("digest_at", "08:00", validation.time_of_day),
        timezone=r.checked("timezone", "UTC", validation.timezone),
        quiet_hours=r.checked("quiet_hours", None, validation.quiet_hours),
        breaking_quality=r.checked(
            "breaking_quality", validation.DEFAULT_BREAKING_QUALITY, validation.breaking_quality
        ),
        breaking_outlets=r.checked(
            "breaking_outlets", validation.DEFAULT_BREAKING_OUTLETS, validation.breaking_outlets
        ),
        mention=r.checked("mention", None, lambda value: check_mention(platform, value)),
        learn=r.checked("learn", None, validation.learn_mode),
    )


def _render_style(r: _Reader) -> RenderStyle:
    r.check_unknown({"max_related", "show_images", "show_quality", "show_topics", "unfurl_links"})
    defaults = RenderStyle()
    return RenderStyle(
        max_related=r.integer("max_related", defaults.max_related),
        show_images=r.boolean("show_images", defaults.show_images),
        show_quality=r.boolean("show_quality", defaults.show_quality),
        show_topics=r.boolean("show_topics", defaults.show_topics),
        unfurl_links=r.boolean("unfurl_links", defaults.unfurl_links),
    )


def _discord(r: _Reader) -> DiscordConfig:
    r.check_unknown({"api_base_url", "gateway_url", "commands", "guild_ids", "global_rate"})
    defaults = DiscordConfig()
    guild_ids = r.table.get("guild_ids", [])
    if not isinstance(guild_ids, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in guild_ids
    ):
        r.fail("guild_ids", "a list of server ids (numbers)", guild_ids)
        guild_ids = []
    return DiscordConfig(
        api_base_url=r.string("api_base_url", defaults.api_base_url).rstrip("/"),
        gateway_url=r.string("gateway_url", defaults.gateway_url),
        commands=r.boolean("commands", defaults.commands),
        guild_ids=tuple(guild_ids),
        global_rate=r.number("global_rate", defaults.global_rate, minimum=1.0),
    )


def _slack(r: _Reader) -> SlackConfig:
    r.check_unknown({"api_base_url", "commands", "manage", "manage_user_ids", "workspace_rate"})
    defaults = SlackConfig()
    base = r.string("api_base_url", defaults.api_base_url) or defaults.api_base_url
    return SlackConfig(
        api_base_url=base if base.endswith("/") else base + "/",
        commands=r.optional_string("commands", ("socket", "http", "off")),
        manage=r.string("manage", defaults.manage, ("anyone", "admins", "users")),
        manage_user_ids=r.strings("manage_user_ids"),
        workspace_rate=r.number("workspace_rate", defaults.workspace_rate, minimum=0.2),
    )


def _http(r: _Reader) -> HttpConfig:
    r.check_unknown({"enabled", "host", "port"})
    defaults = HttpConfig()
    return HttpConfig(
        enabled=r.boolean("enabled", defaults.enabled),
        host=r.string("host", defaults.host) or defaults.host,
        port=r.integer("port", defaults.port, minimum=0, maximum=65535),
    )


_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def _panel(r: _Reader, http: HttpConfig) -> PanelConfig:
    r.check_unknown({"enabled", "trusted_header", "behind_tls"})
    enabled = r.boolean("enabled", False)
    header = r.string("trusted_header", "")
    if header and not _HEADER_NAME.fullmatch(header):
        r.fail("trusted_header", "an HTTP header name (letters, digits and -)", header)
        header = ""
    if enabled and not http.enabled:
        r.error(
            "`panel.enabled` needs the HTTP server: set `enabled = true` under [http] too",
            "panel.enabled",
        )
    return PanelConfig(
        enabled=enabled, trusted_header=header, behind_tls=r.boolean("behind_tls", False)
    )


def _signs(r: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if key not in r.table:
        return default
    signs = r.strings(key)
    if not signs:
        r.fail(key, 'a list of at least one emoji or reaction name, like ["👍", "+1"]',
               r.table[key])
        return default
    # Slack writes a reaction's name without colons: ":+1:" is "+1".
    return tuple(s[1:-1] if len(s) > 2 and s[0] == s[-1] == ":" else s for s in signs)


def _feedback(r: _Reader) -> FeedbackConfig:
    r.check_unknown({"enabled", "up", "down", "window_days", "min_people"})
    defaults = FeedbackConfig()
    up = _signs(r, "up", defaults.up)
    down = _signs(r, "down", defaults.down)
    both = sorted(set(up) & set(down))
    if both:
        r.error(
            f"`feedback.down` repeats {', '.join(both)} of `feedback.up`: a reaction is one or "
            "the other",
            "feedback.down",
        )
    return FeedbackConfig(
        enabled=r.boolean("enabled", defaults.enabled),
        up=up,
        down=down,
        window_days=r.checked("window_days", defaults.window_days, validation.window_days),
        min_people=r.checked("min_people", defaults.min_people, validation.min_people),
    )


def parse_config(data: Mapping[str, Any], source: str, base: Path) -> Config:
    """Validate a parsed TOML document. Relative paths are resolved against `base`. Every
    problem is found in one reading: `ConfigErrors` carries them all."""
    errors: list[ConfigError] = []
    top = _Reader(data, "", source, errors)
    top.check_unknown(
        {
            "min_quality", "include_unscored", "max_age_days", "store", "database",
            "subscriptions", "render", "logging", "http", "panel", "feedback",
        }
        | {spec.config_section for spec in PLATFORMS.values() if spec.config_section}
    )
    store_r = top.nested("store")
    store_r.check_unknown(
        {"path", "rescan_interval_s", "max_file_bytes", "watch", "parallel_threshold"}
    )
    db_r = top.nested("database")
    db_r.check_unknown({"path", "url"})
    log_r = top.nested("logging")
    log_r.check_unknown({"level", "format"})

    subscriptions_raw = data.get("subscriptions", [])
    if not isinstance(subscriptions_raw, list):
        top.error("`subscriptions` must be written as [[subscriptions]] tables", "subscriptions")
        subscriptions_raw = []
    subscriptions = [_subscription(top, t, i) for i, t in enumerate(subscriptions_raw)]
    http = _http(top.nested("http"))

    store_path = store_r.string("path", "seeds") or "seeds"
    db_path = db_r.string("path", "newsbot.db") or "newsbot.db"
    config = Config(
        store=StoreConfig(
            path=_resolve(base, store_path),
            rescan_interval_s=store_r.number("rescan_interval_s", 30.0, minimum=0.1),
            max_file_bytes=store_r.integer("max_file_bytes", 1024 * 1024, minimum=1024),
            watch=store_r.boolean("watch", True),
            parallel_threshold=store_r.integer("parallel_threshold", 1000, minimum=1),
        ),
        database=DatabaseConfig(path=_resolve(base, db_path), url=_database_url(db_r)),
        min_quality=top.checked("min_quality", DEFAULT_MIN_QUALITY, validation.quality_floor),
        include_unscored=top.boolean("include_unscored", False),
        max_age_days=top.checked("max_age_days", None, validation.max_age_days),
        subscriptions=tuple(s for s in subscriptions if s is not None),
        render=_render_style(top.nested("render")),
        log_level=log_r.string("level", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        log_format=log_r.string("format", "text", ("text", "json")),
        discord=_discord(top.nested("discord")),
        slack=_slack(top.nested("slack")),
        http=http,
        panel=_panel(top.nested("panel"), http),
        feedback=_feedback(top.nested("feedback")),
        source=None,
    )
    if errors:
        raise ConfigErrors(errors)
    return config


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at `path`. A file that cannot be read or is not TOML is
    a `ConfigError` (`unreadable`); problems in a readable file are all in one `ConfigErrors`,
    in file order, each with its line where it can be found."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; copy config.example.toml and edit it, or run "
            "without --config to use the embedded defaults",
            unreadable=True,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}", unreadable=True
        ) from None
    import tomllib  # only when there is a file to read

    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8", unreadable=True) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", unreadable=True) from None
    try:
        config = parse_config(data, str(path), path.resolve().parent)
    except ConfigErrors as exc:
        located = []
        for error in exc.errors:
            line = locate_key(text, error.key) if error.key else None
            message = str(error)
            if line is not None:
                message = message.replace(f"{path}: ", f"{path}:{line}: ", 1)
            located.append((line, ConfigError(message, key=error.key)))
        # File order; the few that cannot be placed keep their reading order, after the rest.
        located.sort(key=lambda item: item[0] if item[0] is not None else len(text) + 1)
        raise ConfigErrors([error for _, error in located]) from None
    return replace(config, source=path)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\- ]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def locate_key(text: str, dotted: str) -> int | None:
    """The 1-based line where `dotted` ("store.path", "subscriptions[1].topics") is set, so an
    error can point at it. Plain TOML layouts only; None when it can't be found."""
    whole = re.fullmatch(r"([A-Za-z_]+)\[(\d+)\]", dotted)
    if whole is not None:  # an array table itself: its header
        return _array_header(text, whole.group(1), int(whole.group(2)))
    match = re.fullmatch(r"(?:([A-Za-z_]+)(?:\[(\d+)\])?\.)?([A-Za-z0-9_\-]+)", dotted)
    if match is None:
        return None
    table, index, key = match.group(1) or "", match.group(2), match.group(3)
    current, seen_arrays = "", -1
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(2).strip()
            if header.group(1) == "[[" and current == table:
                seen_arrays += 1
            continue
        assignment = _ASSIGNMENT.match(line)
        if not assignment or assignment.group(1) != key or current != table:
            continue
        if index is None or seen_arrays == int(index):
            return number
    return None


def _array_header(text: str, table: str, index: int) -> int | None:
    seen = -1
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and header.group(1) == "[[" and header.group(2).strip() == table:
            seen += 1
            if seen == index:
                return number
    return None


def subscription_origin(
    config: Config, platform: str, channel: str, topics: tuple[str, ...]
) -> str:
    """Where a config subscription is written, for a refusal to remove it elsewhere: the file
    and the line of its `[[subscriptions]]` header when this config has it."""
    from bot.subscriptions import topics_key

    wanted = topics_key(topics)
    index = next(
        (
            i
            for i, spec in enumerate(config.subscriptions)
            if (spec.platform, spec.channel, topics_key(spec.topics)) == (platform, channel, wanted)
        ),
        None,
    )
    if index is None or config.source is None:
        where = "the embedded defaults" if config.source is None else str(config.source)
        return f"the config file the bot runs with (it is not in {where})"
    try:
        line = locate_key(config.source.read_text(encoding="utf-8"), f"subscriptions[{index}]")
    except (OSError, UnicodeDecodeError):
        line = None
    return f"{config.source}:{line}" if line else str(config.source)


def find_config(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> Config:
    """`--config FILE`, else `$NEWSBOT_CONFIG`, else the embedded default."""
    chosen = explicit or environ.get(DEFAULT_CONFIG_ENV)
    if chosen:
        return load_config(Path(chosen))
    return embedded_default(cwd)


def _database_url(db_r: Any) -> str | None:
    url = db_r.optional_string("url")
    if url is None:
        return None
    if not url.startswith(POSTGRES_SCHEMES):
        db_r.error("url must be a postgresql://host/database URL (or leave it out for SQLite "
                   "at `path`)", "url")
        return None
    if "@" in url.partition("://")[2] and ":" in url.partition("://")[2].rpartition("@")[0]:
        db_r.error("url holds a password: secrets never go in the config file; set "
                   "DATABASE_URL or DATABASE_URL_FILE instead", "url")
        return None
    return str(url)


def database_target(config: Config, environ: Mapping[str, str]) -> Path | str:
    """Where the state lives: DATABASE_URL (or the file DATABASE_URL_FILE names), else
    `[database] url`, else the SQLite file `[database] path`."""
    url = read_secret("DATABASE_URL", environ) or config.database.url
    if url is None:
        return config.database.path
    if not url.startswith(POSTGRES_SCHEMES):
        raise ConfigError(
            "DATABASE_URL must be a postgresql://user:password@host/database URL"
        )
    return url


def read_secret(name: str, environ: Mapping[str, str]) -> str | None:
    """A secret from `$NAME`, or from the file named by `$NAME_FILE` (container secrets)."""
    value = environ.get(name)
    if value:
        return value.strip()
    file_name = environ.get(f"{name}_FILE")
    if not file_name:
        return None
    # Errors name the variable and the file, never the content.
    try:
        value = Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {name}_FILE ({file_name}): {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{name}_FILE ({file_name}) is not UTF-8 text; it should hold only the secret"
        ) from None
    if not value:
        raise ConfigError(
            f"{name}_FILE ({file_name}) is empty; put the secret in it, or unset {name}_FILE"
        )
    return value


def subscription_from_spec(spec: SubscriptionSpec, source: SubscriptionSource) -> Subscription:
    """The subscription a spec (from the config file, the CLI or the panel) describes."""
    return Subscription(
        id=0,
        platform=spec.platform,
        channel=spec.channel,
        topics=spec.topics,
        min_quality=spec.min_quality,
        include_unscored=spec.include_unscored,
        providers_include=spec.providers_include,
        providers_exclude=spec.providers_exclude,
        keywords=spec.keywords,
        max_age_days=spec.max_age_days,
        backfill=spec.backfill,
        source=source,
        late_coverage=LateCoverage(spec.late_coverage),
        headline_margin=spec.headline_margin,
        mode=DeliveryMode(spec.mode),
        digest_at=parse_time_of_day(spec.digest_at),
        timezone=spec.timezone,
        quiet_hours=QuietHours.parse(spec.quiet_hours) if spec.quiet_hours else None,
        breaking_quality=spec.breaking_quality,
        breaking_outlets=spec.breaking_outlets,
        mention=spec.mention,
    )
