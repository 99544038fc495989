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
from bot.platforms.registry import DEFAULT_PLATFORM, PLATFORM_NAMES, PLATFORMS
from bot.render.style import RenderStyle

DEFAULT_MIN_QUALITY = 40.0
DEFAULT_CONFIG_ENV = "NEWSBOT_CONFIG"


class ConfigError(Exception):
    """A config problem; the message names the key, the file and the fix."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # dotted, e.g. "subscriptions[1].min_quality", to find its line


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
    path: Path


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

Check = Callable[[str, Any], Any]
V = TypeVar("V")


class _Reader:
    """Reads one TOML table against a set of known keys, collecting precise errors."""

    def __init__(self, table: Mapping[str, Any], where: str, source: str) -> None:
        self.table = table
        self.where = where
        self.source = source

    def _name(self, key: str) -> str:
        return f"{self.where}{key}"

    def fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(
            f"{self.source}: `{self._name(key)}` must be {expected}, got {value!r} "
            f"({type(value).__name__})",
            key=self._name(key),
        )

    def check_unknown(self, known: set[str]) -> None:
        for key in self.table:
            if key not in known:
                import difflib  # only on this error path

                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean `{self.where}{close[0]}`?" if close else ""
                raise ConfigError(
                    f"{self.source}: unknown key `{self._name(key)}`{hint}", key=self._name(key)
                )

    def number(self, key: str, default: float | None, *, minimum: float = 0.0) -> float | None:
        value = self.table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.fail(key, f"a number of at least {minimum:g}", value)
        return float(value)

    def checked(self, key: str, default: V, check: Callable[[Any], V]) -> V:
        """A value held to `bot.validation`'s rule, the same as on the command line and in
        chat."""
        value = self.table.get(key, default)
        if value is None or key not in self.table:
            return value  # type: ignore[no-any-return]
        try:
            return check(value)
        except validation.InvalidValue as exc:
            raise self.fail(key, exc.expected, value) from None

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
            raise self.fail(key, expected, value)
        return value

    def boolean(self, key: str, default: bool | None) -> bool | None:
        value = self.table.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def string(self, key: str, default: str | None, choices: tuple[str, ...] = ()) -> str | None:
        value = self.table.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            expected = "one of " + ", ".join(f'"{c}"' for c in choices) if choices else "a string"
            raise self.fail(key, expected, value)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, 'a list of strings, like ["AI", "Robotics"]', value)
        return tuple(v.strip() for v in value if v.strip())

    def table_of(self, key: str) -> Mapping[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table", value)
        return value


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _subscription(table: Any, index: int, source: str) -> SubscriptionSpec:
    where = f"subscriptions[{index}]."
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: `subscriptions[{index}]` must be a table")
    r = _Reader(table, where, source)
    r.check_unknown(
        {
            "platform", "channel", "topics", "min_quality", "include_unscored", "backfill",
            "providers_include", "providers_exclude", "keywords", "max_age_days",
        }
    )
    platform = r.string("platform", None, PLATFORM_NAMES)
    channel = r.string("channel", None)
    if platform is None or not channel:
        raise ConfigError(
            f"{source}: `subscriptions[{index}]` needs `platform` (one of "
            f"{', '.join(PLATFORM_NAMES)}) and `channel` (the platform's channel id)"
        )
    return SubscriptionSpec(
        platform=platform,
        channel=channel,
        topics=r.strings("topics"),
        min_quality=r.checked("min_quality", None, validation.quality_floor),
        include_unscored=r.boolean("include_unscored", None),
        backfill=r.checked("backfill", 0, validation.backfill),
        providers_include=r.strings("providers_include"),
        providers_exclude=r.strings("providers_exclude"),
        keywords=r.strings("keywords"),
        max_age_days=r.checked("max_age_days", None, validation.max_age_days),
    )


def _render_style(table: Mapping[str, Any], source: str) -> RenderStyle:
    r = _Reader(table, "render.", source)
    r.check_unknown({"max_related", "show_images", "show_quality", "show_topics", "unfurl_links"})
    defaults = RenderStyle()
    return RenderStyle(
        max_related=r.integer("max_related", defaults.max_related),
        show_images=bool(r.boolean("show_images", defaults.show_images)),
        show_quality=bool(r.boolean("show_quality", defaults.show_quality)),
        show_topics=bool(r.boolean("show_topics", defaults.show_topics)),
        unfurl_links=bool(r.boolean("unfurl_links", defaults.unfurl_links)),
    )


def _discord(table: Mapping[str, Any], source: str) -> DiscordConfig:
    r = _Reader(table, "discord.", source)
    r.check_unknown({"api_base_url", "gateway_url", "commands", "guild_ids", "global_rate"})
    defaults = DiscordConfig()
    guild_ids = table.get("guild_ids", [])
    if not isinstance(guild_ids, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in guild_ids
    ):
        raise r.fail("guild_ids", "a list of server ids (numbers)", guild_ids)
    return DiscordConfig(
        api_base_url=(r.string("api_base_url", defaults.api_base_url) or "").rstrip("/"),
        gateway_url=r.string("gateway_url", defaults.gateway_url) or "",
        commands=bool(r.boolean("commands", defaults.commands)),
        guild_ids=tuple(guild_ids),
        global_rate=r.number("global_rate", defaults.global_rate, minimum=1.0)
        or defaults.global_rate,
    )


def _slack(table: Mapping[str, Any], source: str) -> SlackConfig:
    r = _Reader(table, "slack.", source)
    r.check_unknown({"api_base_url", "commands", "manage", "manage_user_ids", "workspace_rate"})
    defaults = SlackConfig()
    base = r.string("api_base_url", defaults.api_base_url) or defaults.api_base_url
    return SlackConfig(
        api_base_url=base if base.endswith("/") else base + "/",
        commands=r.string("commands", None, ("socket", "http", "off")),
        manage=r.string("manage", defaults.manage, ("anyone", "admins", "users"))
        or defaults.manage,
        manage_user_ids=r.strings("manage_user_ids"),
        workspace_rate=r.number("workspace_rate", defaults.workspace_rate, minimum=0.2)
        or defaults.workspace_rate,
    )


def _http(table: Mapping[str, Any], source: str) -> HttpConfig:
    r = _Reader(table, "http.", source)
    r.check_unknown({"enabled", "host", "port"})
    defaults = HttpConfig()
    return HttpConfig(
        enabled=bool(r.boolean("enabled", defaults.enabled)),
        host=r.string("host", defaults.host) or defaults.host,
        port=r.integer("port", defaults.port, minimum=0, maximum=65535),
    )


def parse_config(data: Mapping[str, Any], source: str, base: Path) -> Config:
    """Validate a parsed TOML document. Relative paths are resolved against `base`."""
    top = _Reader(data, "", source)
    top.check_unknown(
        {
            "min_quality", "include_unscored", "max_age_days", "store", "database",
            "subscriptions", "render", "logging", "http",
        }
        | {spec.config_section for spec in PLATFORMS.values() if spec.config_section}
    )
    store_r = _Reader(top.table_of("store"), "store.", source)
    store_r.check_unknown(
        {"path", "rescan_interval_s", "max_file_bytes", "watch", "parallel_threshold"}
    )
    db_r = _Reader(top.table_of("database"), "database.", source)
    db_r.check_unknown({"path"})
    log_r = _Reader(top.table_of("logging"), "logging.", source)
    log_r.check_unknown({"level", "format"})

    subscriptions_raw = data.get("subscriptions", [])
    if not isinstance(subscriptions_raw, list):
        raise ConfigError(f"{source}: `subscriptions` must be written as [[subscriptions]] tables")

    store_path = store_r.string("path", "seeds") or "seeds"
    db_path = db_r.string("path", "newsbot.db") or "newsbot.db"
    return Config(
        store=StoreConfig(
            path=_resolve(base, store_path),
            rescan_interval_s=store_r.number("rescan_interval_s", 30.0, minimum=0.1) or 30.0,
            max_file_bytes=store_r.integer("max_file_bytes", 1024 * 1024, minimum=1024),
            watch=bool(store_r.boolean("watch", True)),
            parallel_threshold=store_r.integer("parallel_threshold", 1000, minimum=1),
        ),
        database=DatabaseConfig(path=_resolve(base, db_path)),
        min_quality=top.checked("min_quality", DEFAULT_MIN_QUALITY, validation.quality_floor),
        include_unscored=bool(top.boolean("include_unscored", False)),
        max_age_days=top.checked("max_age_days", None, validation.max_age_days),
        subscriptions=tuple(
            _subscription(t, i, source) for i, t in enumerate(subscriptions_raw)
        ),
        render=_render_style(top.table_of("render"), source),
        log_level=(
            log_r.string("level", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")) or "INFO"
        ),
        log_format=log_r.string("format", "text", ("text", "json")) or "text",
        discord=_discord(top.table_of("discord"), source),
        slack=_slack(top.table_of("slack"), source),
        http=_http(top.table_of("http"), source),
        source=None,
    )


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at `path`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; copy config.example.toml and edit it, or run "
            "without --config to use the embedded defaults"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import tomllib  # only when there is a file to read

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    try:
        config = parse_config(data, str(path), path.resolve().parent)
    except ConfigError as exc:
        line = locate_key(raw.decode("utf-8"), exc.key) if exc.key else None
        if line is None:
            raise
        message = str(exc).replace(f"{path}: ", f"{path}:{line}: ", 1)
        raise ConfigError(message, key=exc.key) from None
    return replace(config, source=path)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\- ]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def locate_key(text: str, dotted: str) -> int | None:
    """The 1-based line where `dotted` ("store.path", "subscriptions[1].topics") is set, so an
    error can point at it. Plain TOML layouts only; None when it can't be found."""
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


def find_config(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> Config:
    """`--config FILE`, else `$NEWSBOT_CONFIG`, else the embedded default."""
    chosen = explicit or environ.get(DEFAULT_CONFIG_ENV)
    if chosen:
        return load_config(Path(chosen))
    return embedded_default(cwd)


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


def secret_variables(config: Config) -> list[str]:
    """Every secret the platforms may read, and the webhook variables the config names."""
    names = [secret.variable for spec in PLATFORMS.values() for secret in spec.secrets]
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


def effective_config(config: Config, environ: Mapping[str, str]) -> str:
    """The configuration as newsbot will use it, defaults filled in; secrets masked."""
    lines = [
        f"# effective configuration ({config.source or 'embedded defaults'})",
        f"min_quality = {config.min_quality:g}",
        f"include_unscored = {str(config.include_unscored).lower()}",
        f"max_age_days = {config.max_age_days if config.max_age_days is not None else 'off'}",
        "[store]",
        f'path = "{config.store.path}"',
        f"rescan_interval_s = {config.store.rescan_interval_s:g}",
        f"max_file_bytes = {config.store.max_file_bytes}",
        f"watch = {str(config.store.watch).lower()}",
        f"parallel_threshold = {config.store.parallel_threshold}",
        "[database]",
        f'path = "{config.database.path}"',
        "[render]",
        f"max_related = {config.render.max_related}",
        f"show_images = {str(config.render.show_images).lower()}",
        f"show_quality = {str(config.render.show_quality).lower()}",
        f"show_topics = {str(config.render.show_topics).lower()}",
        f"unfurl_links = {str(config.render.unfurl_links).lower()}",
        "[logging]",
        f'level = "{config.log_level}"',
        f'format = "{config.log_format}"',
        "[discord]",
        f'api_base_url = "{config.discord.api_base_url}"',
        f'gateway_url = "{config.discord.gateway_url}"',
        f"commands = {str(config.discord.commands).lower()}",
        f"guild_ids = {list(config.discord.guild_ids)}",
        f"global_rate = {config.discord.global_rate:g}",
        "[slack]",
        f'api_base_url = "{config.slack.api_base_url}"',
        (
            f'commands = "{config.slack.commands}"'
            if config.slack.commands is not None
            else '# commands: not set (Socket Mode with SLACK_APP_TOKEN, HTTP with '
            "SLACK_SIGNING_SECRET, else off)"
        ),
        f'manage = "{config.slack.manage}"',
        f"manage_user_ids = {list(config.slack.manage_user_ids)}",
        f"workspace_rate = {config.slack.workspace_rate:g}",
        "[http]",
        f"enabled = {str(config.http.enabled).lower()}",
        f'host = "{config.http.host}"',
        f"port = {config.http.port}",
    ]
    for spec in config.subscriptions:
        lines += [
            "[[subscriptions]]",
            f'platform = "{spec.platform}"',
            f'channel = "{spec.channel}"',
            f"topics = {list(spec.topics)}",
            "min_quality = "
            + (f"{spec.min_quality:g}" if spec.min_quality is not None else "(global)"),
            f"backfill = {spec.backfill}",
        ]
    lines.append("# secrets (values never shown)")
    lines += [f"#   {describe_secret(name, environ)}" for name in secret_variables(config)]
    return "\n".join(lines) + "\n"
